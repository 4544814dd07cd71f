"""The demo's district (演示台区): the database and the simulators' files, before anything runs.

:func:`build_district` composes what the product already has:

1. the schema (``prepaid.db.migrate``: head-end and prepaid tables);
2. the population (:func:`prepaid.generate.generate`, one day of readings: the opening
   reading on the first simulated day and each account's rating state there);
3. the staff (:class:`prepaid.users.Users`): an admin, an operator who raises the
   disconnection requests, a level-1 and a level-2 approver (two different people) and
   a fault handler with a phone for work-order SMS;
4. the fee-control settings of the scenario at the default level, power guarantee (保电)
   for a few customers and paper notices for customers without a phone
   (:class:`prepaid.settings.SettingsStore`, audited like an operator's change);
5. the channels pointed at the meter simulator's gateway (:func:`headend.archive.import_archive`);
6. the meter fleet (one :class:`~meter_sim.config.MeterConfig` per archived meter: its
   kind, its customer's average consumption, faults) and the meters' opening registers
   equal to the generated opening reading (a meter-sim state file), so the first
   collected freeze continues the account's history.
"""

from __future__ import annotations

import csv
import logging
import random
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .scenario import Scenario

__all__ = ["DEMO_PASSWORD", "District", "build_district", "meter_configs"]

log = logging.getLogger(__name__)

DEMO_PASSWORD: Final = "feikong-demo"
"""Every demo operator's password (for ``feikong console``)."""
ADMIN: Final = "demo.admin"
UNITS_PER_CKWH: Final = 1000
"""meter_sim keeps energy in 1e-5 kWh; readings are 0.01 kWh."""


@dataclass(slots=True)
class District:
    """What :func:`build_district` made (JSON-ready through :meth:`to_dict`)."""

    customers: int = 0
    areas: int = 0
    remote: int = 0
    local: int = 0
    guaranteed: list[str] = field(default_factory=list)
    without_phone: list[str] = field(default_factory=list)
    breakers_failing: list[str] = field(default_factory=list)
    """Meter addresses whose breaker fails to trip."""
    offline: list[str] = field(default_factory=list)
    meters: list[dict[str, Any]] = field(default_factory=list)
    """One entry per meter: address, kind, mean_daily_kwh, offline, account, customer_no."""
    bench_areas: list[str] = field(default_factory=list)
    """Transformer areas whose breakers ``feikong breaker-sim`` serves over Modbus."""
    seconds: float = 0.0

    def fleet(self, name: str) -> list[dict[str, Any]]:
        return [m for m in self.meters if m["fleet"] == name]

    def to_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "areas": self.areas,
            "remote_meters": self.remote,
            "card_meters": self.local,
            "guaranteed": self.guaranteed,
            "without_phone": self.without_phone,
            "breakers_failing": self.breakers_failing,
            "offline_meters": self.offline,
            "bench_areas": self.bench_areas,
            "modbus_breakers": len(self.fleet("bench")),
        }


def _staff(engine: Engine, scenario: Scenario, clock: Any) -> Any:
    from prepaid.users import Role, Users

    users = Users(engine, clock=clock, work_factor=2**12)
    admin = users.add(
        ADMIN, display_name="演示管理员", password=DEMO_PASSWORD, roles=[Role.ADMIN], by=None
    )
    s = scenario.staff
    people = (
        (s.operator, "张伟 (操作员)", Role.OPERATOR),
        (s.approver_l1, "李娜 (一级审批)", Role.APPROVER_L1),
        (s.approver_l2, "王芳 (二级审批)", Role.APPROVER_L2),
        (s.fault_handler, "陈杰 (故障处理)", Role.FAULT_HANDLER),
    )
    logins = [p[0] for p in people]
    if len(set(logins)) != len(logins) or ADMIN in logins:
        from .scenario import ScenarioError

        raise ScenarioError(
            f"{scenario.source}: users: the operator, the two approvers and the fault "
            f"handler must be four different logins (and not {ADMIN}), got {', '.join(logins)}"
        )
    for login, name, role in people:
        users.add(login, display_name=name, password=DEMO_PASSWORD, roles=[role], by=admin)
    return admin


def build_district(
    engine: Engine,
    scenario: Scenario,
    *,
    clock: Any,
    gateways: dict[str, tuple[str, int]],
    work_dir: Path,
) -> District:
    """Fill the empty database ``engine`` for ``scenario``; write the archive CSV there.

    ``gateways`` are the TCP gateways of the two meter fleets: ``"bench"`` — the meters
    of the first transformer areas (up to ``district.modbus_breakers`` of them), whose
    breakers ``feikong breaker-sim`` serves over Modbus: SPEC S1's breaker that only a
    hand closes — and ``"main"``, the other areas, whose breakers are in the meter
    simulator's process and close on a remote close (reconnection by direct close).
    """
    import time

    from headend.archive import import_archive
    from prepaid.db import migrate
    from prepaid.generate import GenerateOptions, generate
    from prepaid.settings import AccountsDirectory, SettingsStore
    from prepaid.workflows import WorkflowContext

    started = time.perf_counter()
    migrate(engine)
    run, wanted = scenario.run, scenario.district
    generate(
        engine,
        GenerateOptions(
            customers=wanted.customers,
            days=1,
            seed=run.seed,
            start=run.start,
            missing_rate=0.0,
            backwards_rate=0.0,
            jump_rate=0.0,
        ),
    )
    admin = _staff(engine, scenario, clock)
    settings = SettingsStore(engine, clock=clock, directory=AccountsDirectory(engine))
    if scenario.settings:
        settings.set_many(
            dict(scenario.settings), level="default", user=admin, comment="demo scenario"
        )
    district = District(customers=wanted.customers)
    rows = _accounts(engine)
    sizes: dict[str, int] = {}
    for r in rows:
        sizes[r["area"]] = sizes.get(r["area"], 0) + 1
    district.areas = len(sizes)
    bench_areas: set[str] = set()
    total = 0
    for area in sorted(sizes):
        if bench_areas and total + sizes[area] > wanted.modbus_breakers:
            break
        if wanted.modbus_breakers == 0:
            break
        bench_areas.add(area)
        total += sizes[area]
    for r in rows:
        r["fleet"] = "bench" if r["area"] in bench_areas else "main"
    district.bench_areas = sorted(bench_areas)
    for area in sorted(set(sizes) - bench_areas):
        settings.set(
            "reconnect_direct_close",
            True,
            level="area",
            key=area,
            user=admin,
            comment="demo: remotely closable breakers in this area",
        )
    rng = random.Random(run.seed)
    remote = [r for r in rows if r["mode"] == "remote" and not r["guarantee"]]
    # the special customers are drawn from those likely to run into arrears, so the demo
    # shows what happens to them
    remote.sort(key=lambda r: (r["balance"] / max(1, r["avg"]), r["id"]))
    likely = remote[: max(len(remote) // 3, 1)]
    rng.shuffle(likely)
    picks = iter(likely)

    def take(n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            row = next(picks, None)
            if row is None:
                break
            out.append(row)
        return out

    # the breakers that fail to trip belong to customers who will be tripped: already in
    # arrears and not paying before a trip (their habit, drawn as the runner will draw it);
    # the bench areas' first: the fault is injected over Modbus there, as on a lab bench
    from .behaviour import Profile, draw_profiles

    habits = draw_profiles(
        [r["id"] for r in rows if r["mode"] == "remote"], scenario.behaviour, run.seed
    )
    unpaying = (Profile.AFTER_CUTOFF, Profile.NEVER)
    candidates = sorted(
        (r for r in likely if habits[r["id"]].profile in unpaying),
        key=lambda r: (r["fleet"] != "bench", r["balance"], r["id"]),
    )
    failing = candidates[: wanted.breakers_failing]
    picks = iter([r for r in likely if r not in failing])
    guaranteed = take(wanted.guaranteed)
    paper = take(wanted.without_phone)
    offline = take(wanted.offline_meters)
    for row in guaranteed:
        settings.set(
            "power_guarantee",
            True,
            level="customer",
            key=row["customer_no"],
            user=admin,
            comment="demo: hospital / vulnerable customer",
        )
    district.guaranteed = sorted(r["customer_no"] for r in guaranteed)
    if paper:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE prepaid_account SET phone = '', notify_mode = 'paper' WHERE id = :id"
                ),
                [{"id": r["id"]} for r in paper],
            )
    district.without_phone = sorted(r["customer_no"] for r in paper)
    district.breakers_failing = sorted(r["meter"] for r in failing)
    district.offline = sorted(r["meter"] for r in offline)
    # the fault handler's phone, for the disconnection-failure work-order SMS
    from prepaid.audit import AuditLog
    from prepaid.calendar import default_calendar
    from prepaid.messages import Outbox
    from prepaid.workflows import WorkflowConfig
    from prepaid.workorders import WorkOrders

    audit = AuditLog(engine, clock)
    ctx = WorkflowContext(
        engine=engine,
        clock=clock,
        control=None,  # type: ignore[arg-type]  # only the handler contact is written
        settings=settings,
        outbox=Outbox(engine, clock=clock),
        workorders=WorkOrders(engine, clock=clock, audit=audit),
        audit=audit,
        calendar=default_calendar(),
        config=WorkflowConfig(),
    )
    from prepaid.users import Users

    operator = Users(engine, clock=clock).get(scenario.staff.operator)
    ctx.set_handler_phone(scenario.staff.fault_handler, scenario.staff.handler_phone, by=operator)

    archive = work_dir / "archive.csv"
    _write_archive(engine, archive, gateways, bench_areas)
    report = import_archive(engine, archive)
    if report.errors:
        raise RuntimeError(f"the channel archive {archive} did not load: {report.errors[0]}")

    offline_set = set(district.offline)
    failing_set = set(district.breakers_failing)
    for row in rows:
        district.meters.append(
            {
                "address": row["meter"],
                "kind": row["kind"],
                "mean_daily_kwh": round(max(row["avg"], 50) / 100, 2),
                "offline": row["meter"] in offline_set,
                "fleet": row["fleet"],
                "fails_to_trip": row["meter"] in failing_set,
                "account": row["id"],
                "customer_no": row["customer_no"],
                "balance_fen": row["balance"],
                "reading_ckwh": row["reading"],
                "rates": row["rates"],
                "seed": run.seed * 100_003 + row["id"],
            }
        )
    district.remote = sum(1 for r in rows if r["kind"] == "remote")
    district.local = len(rows) - district.remote
    district.seconds = time.perf_counter() - started
    return district


def _accounts(engine: Engine) -> list[dict[str, Any]]:
    from prepaid.rating import parse_rate_registers

    query = sa.text(
        "SELECT a.id, a.customer_no, a.meter_address, a.fee_control_mode, a.power_guarantee,"
        " t.code AS area, s.balance_fen, s.avg_daily_ckwh, m.kind, r.energy_ckwh, r.value"
        " FROM prepaid_account a"
        " JOIN prepaid_transformer_area t ON t.id = a.transformer_area_id"
        " JOIN prepaid_rating_state s ON s.account_id = a.id"
        " JOIN headend_meter m ON m.address = a.meter_address"
        " LEFT JOIN headend_reading r ON r.meter_address = a.meter_address AND r.di = :di"
        " ORDER BY a.meter_address"
    )
    out = []
    with engine.connect() as conn:
        for row in conn.execute(query, {"di": 0x05060101}):
            out.append(
                {
                    "id": int(row.id),
                    "customer_no": str(row.customer_no),
                    "meter": str(row.meter_address),
                    "mode": str(row.fee_control_mode),
                    "guarantee": bool(row.power_guarantee),
                    "area": str(row.area),
                    "balance": int(row.balance_fen),
                    "avg": int(row.avg_daily_ckwh),
                    "kind": str(row.kind),
                    "reading": int(row.energy_ckwh or 0),
                    "rates": parse_rate_registers(row.value),
                }
            )
    return out


def _write_archive(
    engine: Engine, path: Path, gateways: dict[str, tuple[str, int]], bench_areas: set[str]
) -> None:
    """The archive again (CSV, imported over the generated one): each area's channel
    pointed at its fleet's TCP gateway; each meter's number (表号) the 12 digits its ESAM
    is diversified with (the generated archive carries the 16-digit asset number) and
    its breaker type (remotely closable outside the bench areas)."""
    with engine.connect() as conn:
        meters = conn.execute(
            sa.text(
                "SELECT m.address, m.kind, c.name AS channel, m.customer_no,"
                " m.supply_unit, m.reading_segment, t.code AS area FROM headend_meter m"
                " JOIN headend_channel c ON c.id = m.channel_id"
                " JOIN prepaid_account a ON a.meter_address = m.address"
                " JOIN prepaid_transformer_area t ON t.id = a.transformer_area_id"
                " ORDER BY m.address"
            )
        ).all()
    channels: dict[str, str] = {}
    for m in meters:
        channels.setdefault(str(m.channel), "bench" if m.area in bench_areas else "main")
    columns = ["record", "name", "kind", "host", "port", "concurrency", "address"]
    columns += ["meter_number", "channel", "breaker_type", "customer_no", "supply_unit"]
    columns += ["reading_segment"]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(columns)
        for name, fleet in sorted(channels.items()):
            host, port = gateways[fleet]
            out.writerow(["channel", name, "gateway", host, port, 1, *[""] * 7])
        for m in meters:
            breaker = "external" if m.area in bench_areas else "external-remote-close"
            out.writerow(
                [
                    "meter",
                    "",
                    m.kind,
                    "",
                    "",
                    "",
                    m.address,
                    m.address,
                    m.channel,
                    breaker,
                    m.customer_no or "",
                    m.supply_unit or "",
                    m.reading_segment or "",
                ]
            )


TWO_RATE_TOU: Final = "00:00=4,08:00=2,22:00=4"
"""Peak (峰) 08:00–22:00, valley (谷) at night: the meter's day table for a peak/valley tariff."""


def meter_configs(meters: list[dict[str, Any]], permit_close_delay_s: float = 60.0) -> list[Any]:
    """The fleet: one :class:`~meter_sim.config.MeterConfig` per meter of the district."""
    from meter_sim.config import BreakerKind, FaultConfig, MeterConfig, MeterKind

    configs = []
    for m in meters:
        kind = MeterKind.LOCAL if m["kind"] == "local" else MeterKind.REMOTE
        extra: dict[str, Any] = {}
        if kind is MeterKind.LOCAL:
            extra["remaining_fen"] = max(0, int(m["balance_fen"]))
        rates = m.get("rates")
        if rates is not None and rates[0] == 0 and rates[2] == 0:
            # a peak/valley tariff: the meter accrues on those two registers only
            extra["tou"] = TWO_RATE_TOU
        configs.append(
            MeterConfig(
                address=m["address"],
                kind=kind,
                customer_number=m["address"],
                permit_close_delay_s=permit_close_delay_s,
                seed=int(m["seed"]),
                mean_daily_kwh=float(m["mean_daily_kwh"]),
                breaker=BreakerKind.EXTERNAL
                if m["fleet"] == "bench"
                else BreakerKind.EXTERNAL_REMOTE_CLOSE,
                faults=FaultConfig(
                    offline=bool(m["offline"]),
                    # in-process breakers get their fault here; the bench's over Modbus
                    breaker_fault="fails-to-trip"
                    if m["fails_to_trip"] and m["fleet"] != "bench"
                    else "none",
                ),
                extra=extra,
            )
        )
    return configs


def opening_state(meters: list[dict[str, Any]], clock: Any, path: Path) -> None:
    """Write a meter-sim state file whose registers equal each meter's opening reading."""
    from meter_sim.fleet import Fleet
    from meter_sim.registers import FORWARD, REVERSE
    from meter_sim.state import write_state
    from protocol.security import TEST_MASTER_KEY

    fleet = Fleet(meter_configs(meters), clock, master_key=TEST_MASTER_KEY)
    states: dict[str, dict[str, Any]] = {}
    by_address = {m["address"]: m for m in meters}
    for meter in fleet:
        m = by_address[str(meter.address)]
        rates = m["rates"]
        if rates is not None and sum(rates) == m["reading_ckwh"]:
            forward = [int(v) * UNITS_PER_CKWH for v in rates]
        else:  # one register: the flat rate (费率3) carries the whole total
            forward = [0, 0, int(m["reading_ckwh"]) * UNITS_PER_CKWH, 0]
        registers = meter.registers  # type: ignore[attr-defined]
        registers.forward = forward
        # the freeze of 00:00 on the first day, as the meter would have taken it
        minute = (clock.now().date() - date(2000, 1, 1)).days * 1440
        meter.daily_freezes.take(  # type: ignore[attr-defined]
            minute, registers.block(FORWARD), registers.block(REVERSE)
        )
        states[str(meter.address)] = meter.to_state()
    write_state(path, states)


def now_origin(scenario: Scenario) -> datetime:
    """Simulated time at which the demo starts: 00:00 of the first simulated day."""
    return datetime.combine(scenario.run.start, datetime.min.time())
