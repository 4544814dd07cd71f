"""Meters (电表) for the console: the archive page by page, a meter's live status, and the
commands an operator sends it through the head-end.

Commands are head-end jobs (:class:`headend.jobs.JobStore`, as ``feikong headend
command`` queues them): a running ``feikong headend run`` carries them out and the
console follows their state. Each command is checked against the operator's role
first (:func:`prepaid.users.require`: read-meter, trip, permit-close, guarantee) and
written to the audit log (``meter.<command>``) with the job id.

A trip sent from here is a manual one, outside the disconnection workflow (no
approvals, no notice): for tests on a bench and emergencies; disconnections for
arrears go through the approvals.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from headend.jobs import JobRecord, JobSpec, JobStore
from headend.models import JobKind
from headend.service import CONTROL_PRIORITY
from prepaid.audit import AuditLog
from prepaid.users import Action, Operator, PermissionDeniedError, require
from protocol.clock import Clock

__all__ = [
    "Command",
    "MeterCommands",
    "MeterRow",
    "MeterStatus",
    "meter_page",
    "meter_status",
]

PAGE: Final = 50


def _col(name: str) -> sa.ColumnClause[Any]:
    times = {"created_at", "updated_at", "finished_at", "collected_at"}
    return sa.column(name, sa.DateTime()) if name in times else sa.column(name)


_meter = sa.table(
    "headend_meter",
    *(
        _col(c)
        for c in (
            "address",
            "meter_number",
            "kind",
            "channel_id",
            "breaker_type",
            "customer_no",
            "supply_unit",
            "active",
        )
    ),
)
_channel = sa.table("headend_channel", sa.column("id"), sa.column("name"), sa.column("kind"))
_account = sa.table(
    "prepaid_account",
    *(
        sa.column(c)
        for c in ("id", "customer_no", "name", "meter_address", "power_guarantee", "supply_unit_id")
    ),
)
_unit = sa.table("prepaid_supply_unit", sa.column("id"), sa.column("code"))
_job = sa.table(
    "headend_job",
    *(_col(c) for c in ("id", "kind", "meter_address", "state", "created_at", "result", "error")),
)
_reading = sa.table(
    "headend_reading",
    *(_col(c) for c in ("meter_address", "di", "freeze_date", "value", "collected_at")),
)
_guarantee = sa.table(
    "prepaid_guarantee_meter",
    sa.column("meter_address"),
    sa.column("wanted_on"),
    sa.column("state"),
)


class Command(enum.StrEnum):
    """What the console can ask of a meter, and the role action each needs."""

    READ = "read"
    TRIP = "trip"
    PERMIT_CLOSE = "permit-close"
    GUARANTEE_ON = "guarantee-on"
    GUARANTEE_OFF = "guarantee-off"

    @property
    def action(self) -> Action:
        return {
            Command.READ: Action.READ_METER,
            Command.TRIP: Action.TRIP,
            Command.PERMIT_CLOSE: Action.PERMIT_CLOSE,
            Command.GUARANTEE_ON: Action.GUARANTEE,
            Command.GUARANTEE_OFF: Action.GUARANTEE,
        }[self]

    @property
    def label(self) -> str:
        return {
            Command.READ: "Read now (召测)",
            Command.TRIP: "Trip (拉闸)",
            Command.PERMIT_CLOSE: "Permit close (合闸允许)",
            Command.GUARANTEE_ON: "Guarantee on (保电)",
            Command.GUARANTEE_OFF: "Guarantee off (保电解除)",
        }[self]


@dataclass(frozen=True, slots=True)
class MeterRow:
    address: str
    customer_no: str
    name: str
    kind: str
    breaker_type: str
    channel: str
    active: bool


def meter_page(
    engine: Engine, prefix: str = "", *, after: str | None = None, limit: int = PAGE
) -> tuple[list[MeterRow], str | None]:
    """Meters whose address starts with ``prefix``, in address order after ``after``
    (the archive's primary key), and the cursor of the next page."""
    m, a = _meter, _account
    conditions: list[Any] = []
    prefix = prefix.strip()
    if prefix:
        conditions += [m.c.address >= prefix, m.c.address < prefix[:-1] + chr(ord(prefix[-1]) + 1)]
    if after is not None:
        conditions.append(m.c.address > after)
    query = (
        sa.select(
            m.c.address,
            sa.func.coalesce(a.c.customer_no, m.c.customer_no),
            a.c.name,
            m.c.kind,
            m.c.breaker_type,
            _channel.c.name,
            m.c.active,
        )
        .select_from(
            m.outerjoin(a, a.c.meter_address == m.c.address).outerjoin(
                _channel, _channel.c.id == m.c.channel_id
            )
        )
        .where(*conditions)
        .order_by(m.c.address)
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        found = conn.execute(query).all()
    rows = [
        MeterRow(r[0], r[1] or "", r[2] or "", r[3], r[4], r[5] or "", bool(r[6]))
        for r in found[:limit]
    ]
    return rows, (rows[-1].address if len(found) > limit else None)


@dataclass(frozen=True, slots=True)
class MeterStatus:
    """What is known of a meter now (the last reads and commands)."""

    address: str
    meter_number: str
    kind: str
    breaker_type: str
    channel: str
    active: bool
    customer_no: str
    name: str
    supply_unit: str | None
    account_guarantee: bool
    guarantee_meter: str | None
    """The power-guarantee state the workflows keep for the meter (``None``: none)."""
    relay: str | None
    relay_at: datetime | None
    energy: str | None
    energy_at: datetime | None
    recent: tuple[JobRecord, ...]

    def facts(self) -> list[tuple[str, str]]:
        return [
            ("meter (表号)", f"{self.address} (number {self.meter_number})"),
            ("customer", f"{self.customer_no} {self.name}".strip() or "-"),
            ("kind / breaker", f"{self.kind} / {self.breaker_type}"),
            ("channel", self.channel or "-"),
            ("in service", "yes" if self.active else "no"),
            (
                "relay",
                f"{self.relay} (as of {_when(self.relay_at)})" if self.relay else "not read yet",
            ),
            (
                "energy",
                f"{self.energy} kWh (as of {_when(self.energy_at)})"
                if self.energy
                else "not read yet",
            ),
            (
                "power guarantee (保电)",
                ("on the account" if self.account_guarantee else "not on the account")
                + (f"; meter: {self.guarantee_meter}" if self.guarantee_meter else ""),
            ),
        ]


def _when(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else "-"


def meter_status(engine: Engine, address: str, *, recent: int = 12) -> MeterStatus | None:
    """The meter's archive entry, customer, last known relay and energy, recent jobs."""
    m, a = _meter, _account
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(
                m.c.address,
                m.c.meter_number,
                m.c.kind,
                m.c.breaker_type,
                _channel.c.name,
                m.c.active,
                sa.func.coalesce(a.c.customer_no, m.c.customer_no),
                a.c.name,
                _unit.c.code,
                a.c.power_guarantee,
            )
            .select_from(
                m.outerjoin(a, a.c.meter_address == m.c.address)
                .outerjoin(_channel, _channel.c.id == m.c.channel_id)
                .outerjoin(_unit, _unit.c.id == a.c.supply_unit_id)
            )
            .where(m.c.address == address)
        ).first()
        if row is None:
            return None
        guarantee = conn.execute(
            sa.select(_guarantee.c.state).where(_guarantee.c.meter_address == address)
        ).scalar_one_or_none()
        job_ids = [
            r[0]
            for r in conn.execute(
                sa.select(_job.c.id)
                .where(_job.c.meter_address == address)
                .order_by(_job.c.created_at.desc(), _job.c.id.desc())
                .limit(50)
            )
        ]
    store = JobStore(engine)
    jobs = [j for j in (store.get(i) for i in job_ids) if j is not None]
    relay = relay_at = energy = energy_at = None
    for job in jobs:
        result = job.result or {}
        if relay is None and job.state.value == "succeeded" and result.get("relay"):
            relay, relay_at = str(result["relay"]), job.finished_at
        if (
            energy is None
            and job.state.value == "succeeded"
            and result.get("what") == "energy"
            and result.get("value") is not None
        ):
            energy, energy_at = str(result["value"]), job.finished_at
    return MeterStatus(
        address=row[0],
        meter_number=row[1],
        kind=row[2],
        breaker_type=row[3],
        channel=row[4] or "",
        active=bool(row[5]),
        customer_no=row[6] or "",
        name=row[7] or "",
        supply_unit=row[8],
        account_guarantee=bool(row[9]),
        guarantee_meter=guarantee,
        relay=relay,
        relay_at=relay_at,
        energy=energy,
        energy_at=energy_at,
        recent=tuple(jobs[:recent]),
    )


class MeterCommands:
    """Queues meter commands for the head-end on behalf of an operator (role-checked, audited)."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        control_deadline: timedelta = timedelta(minutes=30),
        read_deadline: timedelta = timedelta(minutes=10),
    ) -> None:
        self.store = JobStore(engine)
        self.audit = AuditLog(engine, clock)
        self.clock = clock
        self.control_deadline = control_deadline
        self.read_deadline = read_deadline

    def send(
        self,
        user: Operator,
        command: Command,
        address: str,
        *,
        reason: str = "",
        supply_unit: str | None = None,
    ) -> list[JobRecord]:
        """Queue ``command`` for meter ``address``; returns its jobs (a read is two: energy
        and relay). Raises :class:`~prepaid.users.PermissionDeniedError` if the operator
        may not, :class:`~headend.errors.HeadendError` (e.g. unknown meter)."""
        try:
            require(user, command.action, supply_unit=supply_unit)
        except PermissionDeniedError as exc:
            self.audit.record(
                user,
                f"meter.{command.value}.refused",
                f"meter:{address}"[:200],
                {"reason": str(exc), "via": "console"},
            )
            raise
        reason = reason.strip()
        if command is Command.TRIP and not reason:
            raise ValueError("a trip needs a reason (e.g. 'bench test'); it is kept with the job")
        now = self.clock.now()
        specs: list[JobSpec]
        if command is Command.READ:
            specs = [
                JobSpec(
                    kind=JobKind.READ,
                    address=address,
                    deadline=now + self.read_deadline,
                    params={"what": what, "di": di},
                )
                for what, di in (("energy", "00010000"), ("relay", "04000503"))
            ]
        else:
            params = {
                "reason": f"{reason} (console, {user.login})"
                if reason
                else f"console, {user.login}"
            }
            specs = [
                JobSpec(
                    kind=JobKind(command.value),
                    address=address,
                    priority=CONTROL_PRIORITY,
                    deadline=now + self.control_deadline,
                    params=params,
                )
            ]
        jobs = [self.store.submit(spec, now)[0] for spec in specs]
        self.audit.record(
            user,
            f"meter.{command.value}",
            f"meter:{address}",
            {"jobs": [j.id for j in jobs], "reason": reason, "via": "console"},
        )
        return jobs
