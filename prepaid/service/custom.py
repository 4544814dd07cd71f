"""Custom SMS (自定义短信) typed by customer service to a chosen set of customers.

Staff write a text (a holiday greeting, a planned outage) and choose the customers by
supply unit, feeder line, transformer area or a list of customer numbers
(:class:`~prepaid.service.Selection`; "everyone" must be asked for explicitly). The
send is a *campaign* (``prepaid_sms_campaign``): who sent it, when, the text, the
selection and the counts — recorded and audited (``sms.custom``) before any message is
stored. Each customer gets the ``custom`` template ("尊敬的{name}：{text}") once per
campaign; customers notified on paper are left out (counted), invalid numbers are
stored as ``invalid-number`` (visible in the outbox and on the campaign).

Only operators with ``send-custom-sms`` (customer service) may send.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from protocol.clock import Clock

from ..audit import AuditLog
from ..messages import Lang, MessageKind, Recipient, TemplateSet, default_templates, sms_length
from ..settings import SettingsStore
from ..users import Action, Operator, PermissionDeniedError, require
from ._bulk import Outgoing, enqueue_many
from ._errors import CampaignError
from ._population import FETCH_CHUNK, Population, Selection, chunks
from .tables import sms_campaign

__all__ = ["MAX_TEXT", "Campaign", "list_campaigns", "send_custom_sms"]

log = logging.getLogger(__name__)

MAX_TEXT: Final = 300
"""Characters of custom text at most (about 5 SMS segments in Chinese)."""

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Campaign:
    """One custom SMS send: who, when, what, to whom, and what came of it."""

    id: int
    created_at: datetime
    created_by: str
    text: str
    selection: dict[str, list[str]]
    recipients: int
    queued: int
    invalid: int
    skipped_paper: int
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(timespec="seconds"),
            "created_by": self.created_by,
            "text": self.text,
            "selection": self.selection,
            "recipients": self.recipients,
            "queued": self.queued,
            "invalid": self.invalid,
            "skipped_paper": self.skipped_paper,
            "dry_run": self.dry_run,
        }


def _check_text(text: str) -> str:
    body = text.strip()
    if not body:
        raise CampaignError("the custom SMS has no text: type what the customers should read")
    if len(body) > MAX_TEXT:
        raise CampaignError(
            f"the custom SMS has {len(body)} characters; at most {MAX_TEXT} "
            f"({sms_length(body).segments} SMS segments): shorten it"
        )
    if "{" in body or "}" in body:
        raise CampaignError("the custom SMS text may not contain { or }: write it out in full")
    return body


def send_custom_sms(
    engine: Engine,
    text: str,
    *,
    by: Operator,
    clock: Clock,
    selection: Selection,
    everyone: bool = False,
    settings: SettingsStore | None = None,
    templates: TemplateSet | None = None,
    dry_run: bool = False,
    lang: Lang = Lang.ZH,
    progress: Progress | None = None,
) -> Campaign:
    """Send ``text`` to the customers of ``selection`` (checked, recorded, audited).

    ``everyone`` must be true to send to every customer (an empty selection).
    ``dry_run`` counts who would get it and stores nothing. Raises
    :class:`CampaignError` (no text, too long, nobody chosen) or
    :class:`~prepaid.users.PermissionDeniedError`.
    """
    try:
        require(by, Action.SEND_CUSTOM_SMS)
    except PermissionDeniedError as exc:
        AuditLog(engine, clock).record(
            by, "sms.custom.refused", "campaign:new", {"reason": str(exc)}
        )
        raise
    body = _check_text(text)
    if selection.everyone and not everyone:
        raise CampaignError(
            "no customers chosen: give areas, lines, supply units or customer numbers "
            "(or ask for every customer explicitly)"
        )
    settings = settings or SettingsStore(engine, clock=clock)
    templates = templates or default_templates()
    templates.render(MessageKind.CUSTOM.value, {"name": "x", "text": body}, lang)  # checked
    pop = Population(settings)
    a = pop.account
    unit_limit = pop.unit_t.c.code == by.supply_unit if by.supply_unit else sa.true()
    where = sa.and_(a.c.active.is_(True), pop.chosen(selection), unit_limit)
    now = clock.now()
    chosen = selection.to_dict()
    try:
        with engine.connect() as connection:
            total, paper = connection.execute(
                sa.select(sa.func.count(), sa.func.count().filter(pop.paper()))
                .select_from(pop.from_(state=False))
                .where(where)
            ).one()
        total, paper = int(total), int(paper)
        if total == 0:
            raise CampaignError(f"no active customer in {selection}: check the codes")
        if dry_run:
            return Campaign(0, now, by.login, body, chosen, total - paper, 0, 0, paper, True)
        with engine.begin() as connection:
            campaign_id = int(
                connection.execute(
                    sa.insert(sms_campaign)
                    .values(
                        created_at=now,
                        created_by=by.login,
                        text=body,
                        selection=json.dumps(chosen, ensure_ascii=False),
                        recipients=total - paper,
                        queued=0,
                        invalid=0,
                        skipped_paper=paper,
                    )
                    .returning(sms_campaign.c.id)
                ).scalar_one()
            )
            AuditLog(engine, clock).record(
                by,
                "sms.custom",
                f"campaign:{campaign_id}",
                {"text": body, "selection": chosen, "recipients": total - paper},
                connection=connection,
            )
        queued = invalid = 0
        statement = (
            sa.select(*pop.recipient_columns())
            .select_from(pop.from_(state=False))
            .where(where, sa.not_(pop.paper()))
            .order_by(a.c.id)
        )
        with engine.connect() as reader:
            for rows in chunks(reader, statement, FETCH_CHUNK):
                items = [
                    Outgoing(
                        Recipient(r.customer_no, r.name, r.phone, r.address, r.area),
                        MessageKind.CUSTOM.value,
                        f"campaign-{campaign_id}",
                        {"text": body},
                    )
                    for r in rows
                ]
                with engine.begin() as writer:
                    stored = enqueue_many(writer, items, templates=templates, now=now, lang=lang)
                    for m in stored.values():
                        if m.status.value == "invalid-number":
                            invalid += 1
                        else:
                            queued += 1
                    writer.execute(
                        sa.update(sms_campaign)
                        .where(sms_campaign.c.id == campaign_id)
                        .values(queued=queued, invalid=invalid)
                    )
                if progress is not None:
                    progress(queued + invalid)
    except SQLAlchemyError as exc:
        raise CampaignError(f"the custom SMS stopped in the database: {exc}") from exc
    log.info(
        "custom SMS campaign %d by %s: %d queued, %d invalid",
        campaign_id,
        by.login,
        queued,
        invalid,
    )
    return Campaign(campaign_id, now, by.login, body, chosen, total - paper, queued, invalid, paper)


def list_campaigns(engine: Engine, *, limit: int | None = 50) -> list[Campaign]:
    """Custom SMS campaigns, newest first."""
    statement = sa.select(sms_campaign).order_by(sms_campaign.c.id.desc())
    if limit is not None:
        statement = statement.limit(limit)
    with engine.connect() as connection:
        return [
            Campaign(
                int(r.id),
                r.created_at,
                r.created_by,
                r.text,
                json.loads(r.selection),
                int(r.recipients),
                int(r.queued),
                int(r.invalid),
                int(r.skipped_paper),
            )
            for r in connection.execute(statement)
        ]
