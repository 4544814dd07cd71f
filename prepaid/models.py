"""The prepaid platform's tables (SQLModel): customers' accounts, rating state and charges.

Every table name starts with ``prepaid_`` (the head-end keeps ``headend_*``); the
schema is owned by Alembic (``prepaid/migrations``, branch ``accounts``).

Layout for 15 million accounts
------------------------------
- Organisation units are small tables referenced by integer ids: :class:`SupplyUnit`
  (供电单位), :class:`FeederLine` (线路), :class:`TransformerArea` (台区) and
  :class:`ReadingSegment` (抄表段). A province has a few hundred units, tens of
  thousands of lines and a few hundred thousand areas; an integer costs 1–4 bytes
  per account in SQLite where the names would cost ~60, i.e. ~1 GB at 15 M rows.
- :class:`Account` (用电户) is one customer number of the CIS (户号) with its meter,
  tariff and flags; ``id`` is a dense integer assigned in meter-address order, so
  that the rating of a range of accounts reads the head-end's readings in key order.
  ``ix_prepaid_account_rating`` covers what rating needs (meter, tariff, household,
  free allowance, active), so rating scans that narrow index, never the wide rows.
- :class:`RatingState` (算费状态) is one narrow row per account: the last rated
  reading, the billing period so far, what was charged in it and the real-time
  balance (实时余额). Rating updates it in place, in account order.
- :class:`Charge` (电费明细) is one row per (day, account) that was rated, keyed
  ``(day, account_id)`` WITHOUT ROWID: a day's charges are appended at the end of
  the B-tree in key order. The key is also what makes a rating run idempotent.

Days are stored as integers: days since 1970-01-01 (``epoch day``, see
:func:`day_number` / :func:`day_date`), compact and fast to compare at scale.
Money is integer fen, energy integer 0.01 kWh (``*_ckwh``), never float.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

__all__ = [
    "EPOCH",
    "Account",
    "Anomaly",
    "AnomalyKind",
    "Charge",
    "FeeControlMode",
    "FeederLine",
    "NotifyMode",
    "Outcome",
    "RatingState",
    "RatingTou",
    "ReadingSegment",
    "SupplyUnit",
    "TariffRow",
    "TariffVersionRow",
    "TransformerArea",
    "day_date",
    "day_number",
    "metadata",
]

metadata = SQLModel.metadata

EPOCH: Final = date(1970, 1, 1)
_EPOCH_ORDINAL: Final = EPOCH.toordinal()


def day_number(day: date) -> int:
    """``day`` as days since 1970-01-01 (how days are stored in the prepaid tables)."""
    return day.toordinal() - _EPOCH_ORDINAL


def day_date(number: int) -> date:
    """The date of a stored day number (inverse of :func:`day_number`)."""
    return EPOCH + timedelta(days=number)


def utcnow() -> datetime:
    return datetime.now(UTC)


class NotifyMode(enum.StrEnum):
    """How the customer is notified (通知方式): SMS or a paper notice (纸质通知)."""

    SMS = "sms"
    PAPER = "paper"


class FeeControlMode(enum.StrEnum):
    """远程费控 (the master station rates and trips) or 本地费控 (the meter's card wallet)."""

    REMOTE = "remote"
    LOCAL = "local"


class Outcome(enum.IntEnum):
    """What rating an account for a day gave (算费结果); stored as a small integer."""

    NORMAL = 1
    BELOW_REMINDER = 2  # real-time balance below the reminder amount (余额不足提醒)
    NEGATIVE = 3  # real-time balance below zero (欠费)
    MISSING_READING = 4  # no reading for the day (缺数)
    ANOMALY = 5  # the reading was not rated: see prepaid_anomaly

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


class AnomalyKind(enum.StrEnum):
    """Rating anomalies (算费异常)."""

    MISSING_READING = "missing-reading"  # 缺抄
    NEGATIVE_CONSUMPTION = "negative-consumption"  # 示值倒走
    JUMP = "jump"  # 电量突增
    NO_TARIFF = "no-tariff"  # no tariff version in force / cannot be rated
    NO_TOU_REGISTERS = "no-tou-registers"  # TOU tariff, reading without rate registers


#: Numeric state columns default to 0 in the database too, for bulk SQL inserts.
_ZERO: Final[dict[str, Any]] = {"server_default": "0"}


def _in(table: str, column: str, values: type[enum.Enum]) -> CheckConstraint:
    # Constant SQL: the allowed values come from our own enums, never from input.
    allowed = ", ".join(
        f"'{v.value}'" if isinstance(v.value, str) else str(v.value) for v in values
    )
    return CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{table}_{column}")


class SupplyUnit(SQLModel, table=True):
    """A supply unit (供电单位): a county or city company that serves the accounts."""

    __tablename__ = "prepaid_supply_unit"
    __table_args__ = (UniqueConstraint("code", name="uq_prepaid_supply_unit_code"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=16)
    name: str = Field(max_length=64)


class FeederLine(SQLModel, table=True):
    """A 10 kV feeder line (线路) of a supply unit."""

    __tablename__ = "prepaid_feeder_line"
    __table_args__ = (UniqueConstraint("code", name="uq_prepaid_feeder_line_code"),)

    id: int | None = Field(default=None, primary_key=True)
    supply_unit_id: int = Field(foreign_key="prepaid_supply_unit.id")
    code: str = Field(max_length=24)
    name: str = Field(max_length=64)


class TransformerArea(SQLModel, table=True):
    """A transformer area (台区): the accounts fed by one distribution transformer."""

    __tablename__ = "prepaid_transformer_area"
    __table_args__ = (UniqueConstraint("code", name="uq_prepaid_transformer_area_code"),)

    id: int | None = Field(default=None, primary_key=True)
    feeder_line_id: int = Field(foreign_key="prepaid_feeder_line.id")
    code: str = Field(max_length=24)
    name: str = Field(max_length=64)


class ReadingSegment(SQLModel, table=True):
    """A meter-reading segment (抄表段): the accounts read (and rated) together."""

    __tablename__ = "prepaid_reading_segment"
    __table_args__ = (UniqueConstraint("code", name="uq_prepaid_reading_segment_code"),)

    id: int | None = Field(default=None, primary_key=True)
    supply_unit_id: int = Field(foreign_key="prepaid_supply_unit.id")
    code: str = Field(max_length=24)
    name: str = Field(max_length=64)


class TariffRow(SQLModel, table=True):
    """A tariff (电价) by code; its versions are :class:`TariffVersionRow`."""

    __tablename__ = "prepaid_tariff"
    __table_args__ = (UniqueConstraint("code", name="uq_prepaid_tariff_code"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32)
    name: str = Field(max_length=128)


class TariffVersionRow(SQLModel, table=True):
    """One version of a tariff (电价版本) as data: ``definition`` is ``Tariff.to_dict()``."""

    __tablename__ = "prepaid_tariff_version"

    tariff_id: int = Field(foreign_key="prepaid_tariff.id", primary_key=True)
    version: int = Field(primary_key=True)
    effective_from: date = Field(sa_type=Date)
    effective_to: date | None = Field(default=None, sa_type=Date)
    definition: dict[str, Any] = Field(sa_type=JSON)


class Account(SQLModel, table=True):
    """An account (用电户): one CIS customer number (户号), its meter, tariff and flags.

    ``phone`` is kept as the CIS has it, valid or not (see
    :func:`prepaid.accounts.phone_problem`). ``household_size`` is 0 when unknown.
    ``free_allowance``: the household gets the tariff's free allowance (低保/五保).
    ``power_guarantee`` (保电): never disconnected; ``vulnerable`` (特殊群体): handled
    with care by the fee-control workflows. ``meter_address`` is the 12-digit address
    of the meter in the head-end archive (``headend_meter.address``).
    """

    __tablename__ = "prepaid_account"
    __table_args__ = (
        UniqueConstraint("customer_no", name="uq_prepaid_account_customer_no"),
        UniqueConstraint("meter_address", name="uq_prepaid_account_meter_address"),
        _in("prepaid_account", "notify_mode", NotifyMode),
        _in("prepaid_account", "fee_control_mode", FeeControlMode),
        CheckConstraint("household_size >= 0", name="ck_prepaid_account_household_size"),
        Index(
            "ix_prepaid_account_rating",
            "id",
            "meter_address",
            "tariff_id",
            "household_size",
            "free_allowance",
            "active",
        ),
        # the console's name / phone prefix search (migration o0001; on PostgreSQL the
        # column is indexed in the "C" collation the prefix ranges use)
        Index("ix_prepaid_account_name", "name", "id"),
        Index("ix_prepaid_account_phone", "phone", "id"),
        Index("ix_prepaid_account_area", "transformer_area_id"),
        Index("ix_prepaid_account_segment", "reading_segment_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_no: str = Field(max_length=20)
    name: str = Field(max_length=64)
    phone: str = Field(default="", max_length=32)
    address: str = Field(default="", max_length=128)
    supply_unit_id: int = Field(foreign_key="prepaid_supply_unit.id")
    feeder_line_id: int | None = Field(default=None, foreign_key="prepaid_feeder_line.id")
    transformer_area_id: int | None = Field(default=None, foreign_key="prepaid_transformer_area.id")
    reading_segment_id: int | None = Field(default=None, foreign_key="prepaid_reading_segment.id")
    meter_address: str = Field(max_length=12)
    tariff_id: int = Field(foreign_key="prepaid_tariff.id")
    household_size: int = Field(default=0, sa_type=SmallInteger)
    notify_mode: str = Field(default=NotifyMode.SMS.value, max_length=8)
    fee_control_mode: str = Field(default=FeeControlMode.REMOTE.value, max_length=8)
    power_guarantee: bool = False
    vulnerable: bool = False
    free_allowance: bool = False
    active: bool = True
    opened_on: date = Field(sa_type=Date)


class RatingState(SQLModel, table=True):
    """Where an account's rating stands (算费状态): one narrow row per account.

    - ``reading_day`` / ``reading_ckwh``: the last rated reading (its day number and
      register, 0.01 kWh); ``None`` before the first.
    - ``period_start``: first day (day number) of the billing period being rated;
      ``period_ckwh`` the energy in it so far and ``charged_fen`` what was deducted
      for it so far (cumulative rating: the next deduction is charge(period_ckwh) −
      charged_fen). ``prior_ckwh``: annual tier cycles, the energy of the cycle's
      earlier periods.
    - TOU tariffs keep their rate registers in :class:`RatingTou`.
    - ``balance_fen``: the real-time balance (实时余额): rating subtracts each
      deduction; crediting a payment adds to it in the same transaction.
    - ``reminder_fen``: the account's reminder amount (提醒金额), ``None``: the default.
    - ``avg_daily_ckwh``: recent average daily energy (jump detection, days of credit).
    - ``last_energy_ckwh`` / ``last_amount_fen``: energy and deduction of the last
      rating (its :class:`Charge` row is a copy of this row).
    - ``tariff_version`` and ``tier``: the version and tier of the last rating.
    - ``outcome``: the :class:`Outcome` of the last rating.
    """

    __tablename__ = "prepaid_rating_state"
    # rewritten daily: room for in-place (HOT) updates on PostgreSQL (migration a0002)
    __table_args__ = ({"postgresql_with": {"fillfactor": 80}},)

    account_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("prepaid_account.id"), primary_key=True, autoincrement=False
        )
    )
    reading_day: int | None = Field(default=None, sa_type=Integer)
    reading_ckwh: int | None = Field(default=None, sa_type=BigInteger)
    period_start: int | None = Field(default=None, sa_type=Integer)
    period_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    prior_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    charged_fen: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    balance_fen: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    reminder_fen: int | None = Field(default=None, sa_type=BigInteger)
    avg_daily_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    last_energy_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    last_amount_fen: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    tariff_version: int | None = Field(default=None, sa_type=SmallInteger)
    tier: int = Field(default=0, sa_type=SmallInteger, sa_column_kwargs=_ZERO)
    outcome: int | None = Field(default=None, sa_type=SmallInteger)


class RatingTou(SQLModel, table=True):
    """The rate registers of an account on a time-of-use tariff (分时电量), 0.01 kWh.

    ``reg_*``: the registers (sharp 尖, peak 峰, flat 平, valley 谷) of the last rated
    reading; ``ptd_*``: each TOU period's energy in the billing period so far. Only
    accounts on TOU tariffs have a row, so rating the others never reads it.
    """

    __tablename__ = "prepaid_rating_tou"
    __table_args__ = ({"postgresql_with": {"fillfactor": 80}},)

    account_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("prepaid_account.id"), primary_key=True, autoincrement=False
        )
    )
    reg_sharp_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    reg_peak_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    reg_flat_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    reg_valley_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    ptd_sharp_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    ptd_peak_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    ptd_flat_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)
    ptd_valley_ckwh: int = Field(default=0, sa_type=BigInteger, sa_column_kwargs=_ZERO)


class Charge(SQLModel, table=True):
    """One day's charge of one account (电费明细), stored once per (day, account).

    ``day`` is the day number of the reading; ``reading_ckwh`` the register rated,
    ``energy_ckwh`` the energy since the previous rated reading, ``period_ckwh`` the
    period-to-date energy; ``amount_fen`` the deduction (may be negative after a
    mid-period price change), ``charged_fen`` the period-to-date charge after it and
    ``balance_fen`` the real-time balance after it. ``period_start`` names the billing
    period (its first day): a period's bill is the sum of its ``amount_fen``.
    """

    __tablename__ = "prepaid_charge"
    __table_args__ = ({"sqlite_with_rowid": False},)

    day: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    account_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    period_start: int = Field(sa_type=Integer)
    reading_ckwh: int = Field(sa_type=BigInteger)
    energy_ckwh: int = Field(sa_type=BigInteger)
    period_ckwh: int = Field(sa_type=BigInteger)
    amount_fen: int = Field(sa_type=BigInteger)
    charged_fen: int = Field(sa_type=BigInteger)
    balance_fen: int = Field(sa_type=BigInteger)
    tariff_version: int = Field(sa_type=SmallInteger)
    tier: int = Field(sa_type=SmallInteger)
    outcome: int = Field(sa_type=SmallInteger)


class Anomaly(SQLModel, table=True):
    """A rating anomaly (算费异常) of one account on one day, recorded once per kind.

    ``reading_ckwh`` / ``previous_ckwh`` are the registers involved (when there are);
    ``detail`` says what was found and what to do.
    """

    __tablename__ = "prepaid_anomaly"
    __table_args__ = (
        _in("prepaid_anomaly", "kind", AnomalyKind),
        Index("ix_prepaid_anomaly_account", "account_id", "day"),
    )

    day: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    account_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    kind: str = Field(sa_column=Column(String(24), primary_key=True))
    reading_ckwh: int | None = Field(default=None, sa_type=BigInteger)
    previous_ckwh: int | None = Field(default=None, sa_type=BigInteger)
    detail: str = Field(default="", max_length=255)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
