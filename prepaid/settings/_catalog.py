"""Every setting of the settings hierarchy: its kind and the levels it may be set at.

The default *values* are not here: they are in ``defaults.toml`` (one visible place).
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from ._errors import UnknownSettingError
from ._kinds import Count, Duration, Flag, Kind, Money, OneOf, Window

__all__ = [
    "ALL_LEVELS",
    "CATALOG",
    "CONSISTENCY",
    "Level",
    "NotificationMode",
    "SettingSpec",
    "spec_of",
]


class Level(enum.StrEnum):
    """Where a setting is set; the most specific level in force wins (customer first)."""

    DEFAULT = "default"
    LINE = "line"
    """A 10 kV feeder line (线路)."""
    AREA = "area"
    """A transformer area (台区)."""
    CUSTOMER = "customer"
    """One customer (用电户), by customer number (户号)."""

    @property
    def chinese(self) -> str:
        return _CHINESE_LEVEL[self]

    @property
    def rank(self) -> int:
        """0 for default … 3 for customer (more specific is higher)."""
        return _RANK[self]


_CHINESE_LEVEL: Final = {
    Level.DEFAULT: "默认",
    Level.LINE: "线路",
    Level.AREA: "台区",
    Level.CUSTOMER: "客户",
}
_RANK: Final = {Level.DEFAULT: 0, Level.LINE: 1, Level.AREA: 2, Level.CUSTOMER: 3}
ALL_LEVELS: Final = frozenset(Level)
_NOT_CUSTOMER: Final = frozenset({Level.DEFAULT, Level.LINE, Level.AREA})


class NotificationMode(enum.StrEnum):
    """How a customer is notified (通知方式): SMS, or a paper notice (纸质通知)."""

    SMS = "sms"
    PAPER = "paper"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One setting: its name, Chinese term, kind, allowed levels and meaning."""

    name: str
    chinese: str
    kind: Kind
    levels: frozenset[Level]
    description: str
    field: str
    """The attribute of :class:`~prepaid.settings.EffectiveSettings` holding the value."""

    @property
    def title(self) -> str:
        return f"{self.name} ({self.chinese})"


def _spec(
    name: str,
    chinese: str,
    kind: Kind,
    description: str,
    *,
    levels: frozenset[Level] = ALL_LEVELS,
    field: str | None = None,
) -> SettingSpec:
    return SettingSpec(name, chinese, kind, levels, description, field or name)


_DAY = timedelta(days=1)

CATALOG: Final[Mapping[str, SettingSpec]] = {
    s.name: s
    for s in (
        _spec(
            "reminder_amount",
            "提醒金额",
            Money(minimum_fen=0),
            "real-time balance below this → one low-balance reminder SMS",
            field="reminder_amount_fen",
        ),
        _spec(
            "dunning_threshold",
            "催费阈值",
            Money(),
            "real-time balance below this → dunning (催费) with a disconnection warning; "
            "may be negative (an overdraft allowance)",
            field="dunning_threshold_fen",
        ),
        _spec(
            "disconnection_threshold",
            "停电阈值",
            Money(),
            "real-time balance still below this after the notice period and a fresh "
            "rating → a disconnection request; may be negative",
            field="disconnection_threshold_fen",
        ),
        _spec(
            "notification_mode",
            "通知方式",
            OneOf(NotificationMode),
            "how customers are notified: sms, or paper notices for manual dunning",
        ),
        _spec(
            "power_guarantee",
            "保电",
            Flag(),
            "power guarantee: these customers are never disconnected (a request is refused)",
        ),
        _spec(
            "guarantee_send_3ah",
            "下发保电命令",
            Flag(),
            "also send the power-guarantee command (3AH) to the meters of guaranteed customers",
        ),
        _spec(
            "auto_reminder",
            "自动提醒",
            Flag(),
            "send low-balance reminders without an operator (per transformer area)",
            levels=_NOT_CUSTOMER,
        ),
        _spec(
            "auto_dunning",
            "自动催费",
            Flag(),
            "create dunning batches without an operator (per transformer area)",
            levels=_NOT_CUSTOMER,
        ),
        _spec(
            "auto_reconnect",
            "自动复电",
            Flag(),
            "issue the reconnect instruction on payment without an operator (per transformer area)",
            levels=_NOT_CUSTOMER,
        ),
        _spec(
            "auto_disconnection_request",
            "自动发起停电申请",
            Flag(),
            "raise disconnection requests automatically; false: an operator raises them",
            levels=_NOT_CUSTOMER,
        ),
        _spec(
            "notice_lead_time",
            "停电通知提前时间",
            Duration(minimum=timedelta(hours=1), maximum=30 * _DAY),
            "the customer is notified at least this long before a planned disconnection",
        ),
        _spec(
            "repeat_trip_interval",
            "重复跳闸间隔",
            Duration(minimum=timedelta(minutes=10), maximum=30 * _DAY),
            "while the arrears last, trip again this long after the customer re-closed",
        ),
        _spec(
            "repeat_trip_max",
            "最大重复跳闸次数",
            Count(minimum=0, maximum=100),
            "at most this many repeated trips after the first (0: never repeat)",
        ),
        _spec(
            "protected_hours",
            "保护时段",
            Window(),
            "daily window in which no trip is executed (a due trip waits), or none",
        ),
        _spec(
            "protected_weekends",
            "周末不停电",
            Flag(),
            "no trip on Saturdays and Sundays (adjusted working days 调休上班 excepted)",
        ),
        _spec(
            "protected_holidays",
            "节假日不停电",
            Flag(),
            "no trip on public holidays of the holiday calendar",
        ),
        _spec(
            "remote_attempts",
            "远程停电尝试次数",
            Count(minimum=1, maximum=20),
            "failed remote trips before a disconnection-failure work order (停电失败工单)",
        ),
        _spec(
            "reconnect_direct_close",
            "直接合闸复电",
            Flag(),
            "reconnect by a direct close (1CH) where the meter's switch supports it; "
            "false: permit-close only",
        ),
        _spec(
            "anomaly_missing_days",
            "连续缺数天数",
            Count(minimum=1, maximum=60),
            "a reading missing this many consecutive days opens an anomaly work order",
        ),
    )
}

CONSISTENCY: Final = (
    ("reminder_amount", "dunning_threshold"),
    ("dunning_threshold", "disconnection_threshold"),
)
"""Pairs (higher, lower) of money settings in force at one scope: higher ≥ lower.

The low-balance reminder comes before dunning, and dunning before disconnection.
"""


def spec_of(name: str) -> SettingSpec:
    """The setting called ``name`` (``-`` and ``_`` alike); a suggestion if it is unknown."""
    key = name.strip().lower().replace("-", "_")
    spec = CATALOG.get(key)
    if spec is None:
        close = difflib.get_close_matches(key, list(CATALOG), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UnknownSettingError(
            f"unknown setting {name!r}: {hint}the settings are {', '.join(CATALOG)} "
            "(feikong settings show lists them with their values)"
        )
    return spec
