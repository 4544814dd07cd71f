"""Tier reminders (阶梯提醒): an SMS when a customer's usage enters a higher tariff tier.

After the daily rating, ``prepaid_rating_state.tier`` is the tier of the account's
last kWh in its tier cycle (1-based; a monthly tariff's cycle is the month, an
annual tariff's the year from its ``cycle_start_month``). An account whose tier is 2
or more and has not been told about that tier (or a higher one) in this cycle gets
one ``tier_reached`` message — with the cycle's energy so far and the tier's price —
and a row in ``prepaid_tier_notice``: one message per tier per cycle, sent at the
crossing and never again. Jumping two tiers in one day sends the higher one only.
Customers notified on paper are recorded but not sent anything (a tier reminder on
paper would come too late to matter).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from protocol.clock import Clock

from ..accounts import TariffCatalog, load_catalog
from ..messages import Channel, Lang, MessageKind, Recipient, TemplateSet, default_templates
from ..models import day_date, day_number
from ..settings import SettingsStore
from ..tariff import Cycle, Tariff
from ._bulk import Outgoing, enqueue_many
from ._errors import ServiceError
from ._population import FETCH_CHUNK, Population, Selection, chunks
from .tables import tier_notice

__all__ = ["TierReport", "run_tier_reminders"]

log = logging.getLogger(__name__)

Progress = Callable[[int], None]


@dataclass(slots=True)
class TierReport:
    """What a tier-reminder run did."""

    at: datetime
    sent: int = 0
    invalid_phone: int = 0
    skipped_paper: int = 0
    unknown_tariff: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(timespec="seconds"),
            "sent": self.sent,
            "invalid_phone": self.invalid_phone,
            "skipped_paper": self.skipped_paper,
            "unknown_tariff": self.unknown_tariff,
        }


def _notice_insert(connection: Connection) -> Any:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    return (
        dialect.insert(tier_notice)
        .on_conflict_do_nothing(index_elements=["account_id", "cycle_start", "tier"])
        .returning(tier_notice.c.account_id)
    )


def _version(catalog: TariffCatalog, tariff_id: int, version: int) -> Tariff | None:
    code = catalog.codes.get(int(tariff_id))
    if code is None:
        return None
    return next((t for t in catalog.book.versions(code) if t.version == int(version)), None)


def run_tier_reminders(
    engine: Engine,
    *,
    clock: Clock,
    settings: SettingsStore | None = None,
    templates: TemplateSet | None = None,
    selection: Selection | None = None,
    lang: Lang = Lang.ZH,
    progress: Progress | None = None,
) -> TierReport:
    """Tell each account that entered a higher tier since the last run (once per tier)."""
    settings = settings or SettingsStore(engine, clock=clock)
    templates = templates or default_templates()
    pop = Population(settings)
    a, s = pop.account, pop.state
    now = clock.now()
    report = TierReport(now)
    told = sa.exists().where(
        tier_notice.c.account_id == a.c.id,
        tier_notice.c.tier >= s.c.tier,
        tier_notice.c.cycle_start <= s.c.period_start,
        tier_notice.c.cycle_end >= s.c.period_start,
    )
    statement = (
        sa.select(
            *pop.recipient_columns(),
            a.c.tariff_id,
            s.c.tariff_version,
            s.c.tier,
            s.c.period_start,
            s.c.period_ckwh,
            s.c.prior_ckwh,
        )
        .select_from(pop.from_())
        .where(
            a.c.active.is_(True),
            s.c.tier >= 2,
            s.c.period_start.is_not(None),
            s.c.tariff_version.is_not(None),
            pop.chosen(selection),
            ~told,
        )
        .order_by(a.c.id)
    )
    try:
        with engine.connect() as reader:
            catalog = load_catalog(reader)
            reader.rollback()
            for rows in chunks(reader, statement, FETCH_CHUNK):
                with engine.begin() as writer:
                    _store(writer, rows, catalog, report, templates, now, lang)
                if progress is not None:
                    progress(report.sent)
    except SQLAlchemyError as exc:
        raise ServiceError(
            f"the tier reminders stopped in the database ({exc}); run them again to finish"
        ) from exc
    log.info("tier reminders: %s", report.to_dict())
    return report


def _store(
    writer: Connection,
    rows: list[Any],
    catalog: TariffCatalog,
    report: TierReport,
    templates: TemplateSet,
    now: datetime,
    lang: Lang,
) -> None:
    values: list[dict[str, Any]] = []
    kept: list[Any] = []
    for r in rows:
        tariff = _version(catalog, r.tariff_id, r.tariff_version)
        if tariff is None or int(r.tier) > tariff.tier_count:
            report.unknown_tariff += 1
            continue
        period = day_date(int(r.period_start))
        usage = int(r.period_ckwh) + (int(r.prior_ckwh) if tariff.cycle is Cycle.ANNUAL else 0)
        values.append(
            {
                "account_id": r.account_id,
                "cycle_start": day_number(tariff.cycle_start(period)),
                "tier": int(r.tier),
                "cycle_end": day_number(tariff.cycle_end(period)),
                "period_start": int(r.period_start),
                "usage_ckwh": usage,
                "price_e4": tariff.price_e4(int(r.tier)),
                "created_at": now,
            }
        )
        kept.append(r)
    if not values:
        return
    new = {int(x) for x in writer.execute(_notice_insert(writer), values).scalars()}
    items: list[Outgoing] = []
    key_of: dict[str, dict[str, Any]] = {}
    for r, v in zip(kept, values, strict=True):
        if int(r.account_id) not in new:
            continue
        if r.paper:
            report.skipped_paper += 1
            continue
        item = Outgoing(
            Recipient(r.customer_no, r.name, r.phone, r.address, r.area, Channel.SMS),
            MessageKind.TIER_REACHED.value,
            f"tier{v['tier']}-{day_date(v['cycle_start']):%Y%m%d}",
            {"tier": v["tier"], "usage": v["usage_ckwh"], "price": v["price_e4"]},
        )
        items.append(item)
        key_of[item.key] = v
    stored = enqueue_many(writer, items, templates=templates, now=now, lang=lang)
    if stored:
        writer.execute(
            sa.update(tier_notice)
            .where(
                tier_notice.c.account_id == sa.bindparam("acc"),
                tier_notice.c.cycle_start == sa.bindparam("cs"),
                tier_notice.c.tier == sa.bindparam("t"),
            )
            .values(message_id=sa.bindparam("mid")),
            [
                {
                    "acc": key_of[k]["account_id"],
                    "cs": key_of[k]["cycle_start"],
                    "t": key_of[k]["tier"],
                    "mid": m.id,
                }
                for k, m in stored.items()
            ],
        )
    for m in stored.values():
        if m.status.value == "invalid-number":
            report.invalid_phone += 1
        else:
            report.sent += 1
