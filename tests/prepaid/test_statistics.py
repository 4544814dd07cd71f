"""The fee-control overview per supply unit (``prepaid.statistics``, ``feikong stats``).

A hand-counted population (day D = 2026-03-03; reminder amount: 20.00 yuan by default,
50.00 in area A1, 10.00 for customer 05):

=====  ====  ====  ========  =========================  =================
acct   unit  area  balance   state                      reading on D
=====  ====  ====  ========  =========================  =================
01     3301  A1    10.00     warning (< 50)             yes
02     3301  A1    30.00     warning (< 50)             yes
03     3301  -     30.00     -  (>= 20)                 yes
04     3301  -     15.00     warning (< 20)             on D-1 only
05     3301  -     15.00     -  (>= its own 10)         other DI only
06     3301  -      0.00     warning (0 is not < 0)     no
07     3301  -     -0.01     arrears                    yes
08     3301  -    -50.00     arrears                    no
09     3301  -     -1.00     inactive: not counted      yes (not counted)
10     3302  -     -2.00     arrears                    yes
11     3302  -   1000.00     -                          no
=====  ====  ====  ========  =========================  =================

3301: 8 customers, warning 01 02 04 06 = 4, arrears 07 08 = 2, read 01 02 03 07 = 4/8
= 0.5000. 3302: 2 customers, arrears 1, read 1/2 = 0.5000. 3303: no account.

Disconnections: 07 requested and 08 approved-l1 (pending: 2 in 3301), 03 rejected and
10 disconnected (not pending). History on D: 10 tripped 10:00 and a failed attempt
09:30 (3302: 1 trip, 1 failure); 06 (failed episode) a failed attempt 10:00 and the
last one 10:30 (3301: 0 trips, 2 failures). Outside D (not counted): 10 tripped at
D-1 23:59, failed at D+1 00:00.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from typer.testing import CliRunner

from feikong.cli import app
from headend.readings import NewReading, store_readings
from prepaid.accounts import open_accounts
from prepaid.db import migrate, open_database
from prepaid.models import FeederLine, SupplyUnit, TransformerArea
from prepaid.rating import DAILY_FORWARD_DI
from prepaid.settings import SettingsStore
from prepaid.statistics import (
    SnapshotSource,
    UnitOverview,
    fee_control_overview,
    overview_total,
    refresh_overview,
    stored_overview,
    write_overview_csv,
)
from prepaid.workflows.tables import disconnection_event_table, disconnection_table
from protocol.clock import SteppedClock

from ..headend.test_postgres import pg_url
from .rating_helpers import account, add_meters, with_tariffs_and_unit
from .security_helpers import START, add_staff, fresh_engine, make_users

_ = pg_url
D = date(2026, 3, 3)
BALANCES = {
    1: 1_000,
    2: 3_000,
    3: 3_000,
    4: 1_500,
    5: 1_500,
    6: 0,
    7: -1,
    8: -5_000,
    9: -100,
    10: -200,
    11: 100_000,
}


def populate(engine: Engine) -> None:
    """The population of the module doc."""
    clock = SteppedClock(START)
    staff = add_staff(make_users(engine, clock))
    with engine.begin() as c:
        unit = with_tariffs_and_unit(c)
        units = SupplyUnit.__table__  # type: ignore[attr-defined]
        other = c.execute(
            sa.insert(units).values(code="3302", name="宁波").returning(units.c.id)
        ).scalar_one()
        c.execute(sa.insert(units).values(code="3303", name="温州"))
        c.execute(
            sa.insert(FeederLine.__table__),  # type: ignore[attr-defined]
            [{"id": 1, "supply_unit_id": unit, "code": "L1", "name": "一线"}],
        )
        c.execute(
            sa.insert(TransformerArea.__table__),  # type: ignore[attr-defined]
            [{"id": 1, "feeder_line_id": 1, "code": "A1", "name": "台区一"}],
        )
        ids = open_accounts(
            c,
            [
                account(
                    n,
                    unit if n < 10 else other,
                    balance_fen=fen,
                    transformer_area_id=1 if n in (1, 2) else None,
                    feeder_line_id=1 if n in (1, 2) else None,
                )
                for n, fen in BALANCES.items()
            ],
        )
        c.execute(
            text("UPDATE prepaid_account SET active = :f WHERE id = :i"), {"f": False, "i": ids[8]}
        )
    settings = SettingsStore(engine, clock=clock)
    settings.set("reminder_amount", "50.00", level="area", key="A1", user=staff["admin"])
    settings.set(
        "reminder_amount", "10.00", level="customer", key="3300000005", user=staff["admin"]
    )
    add_meters(engine, list(BALANCES))
    readings = [(n, D, DAILY_FORWARD_DI) for n in (1, 2, 3, 7, 9, 10)]
    readings += [(4, date(2026, 3, 2), DAILY_FORWARD_DI), (5, D, 0x00010000)]
    store_readings(
        engine,
        [NewReading(f"{n:012d}", di, day, Decimal("100.00"), 10_000) for n, day, di in readings],
    )
    episodes = {7: "requested", 8: "approved-l1", 3: "rejected", 10: "disconnected", 6: "failed"}
    events = {
        10: [
            ("tripped", datetime(2026, 3, 3, 10, 0)),
            ("trip-failed", datetime(2026, 3, 3, 9, 30)),
            ("tripped", datetime(2026, 3, 2, 23, 59)),
            ("trip-failed", datetime(2026, 3, 4, 0, 0)),
            ("check", datetime(2026, 3, 3, 11, 0)),
        ],
        6: [("trip-failed", datetime(2026, 3, 3, 10, 0)), ("failed", datetime(2026, 3, 3, 10, 30))],
        7: [("request", datetime(2026, 3, 3, 9, 0))],
    }
    with engine.begin() as c:
        for n, state in episodes.items():
            episode = c.execute(
                sa.insert(disconnection_table)
                .values(
                    number=f"TD2026030300000{n:02d}",
                    account_id=ids[n - 1],
                    customer_no=f"33{n:08d}",
                    meter_address=f"{n:012d}",
                    state=state,
                    origin="manual",
                    reason="arrears",
                    balance_fen=BALANCES[n],
                    threshold_fen=0,
                    requested_by="operator",
                    requested_at=datetime(2026, 3, 1, 9, 0),
                    updated_at=datetime(2026, 3, 1, 9, 0),
                )
                .returning(disconnection_table.c.id)
            ).scalar_one()
            for action, at in events.get(n, []):
                c.execute(
                    sa.insert(disconnection_event_table).values(
                        disconnection_id=episode,
                        at=at,
                        actor="system",
                        action=action,
                        to_state=state,
                    )
                )


EXPECTED = [
    UnitOverview("3301", 8, 4, 2, 2, 0, 2, Decimal("0.5000"), "杭州供电公司", 4),
    UnitOverview("3302", 2, 0, 1, 0, 1, 1, Decimal("0.5000"), "宁波", 1),
    UnitOverview("3303", 0, 0, 0, 0, 0, 0, None, "温州", 0),
]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = fresh_engine(tmp_path)
    populate(engine)
    return engine


def test_overview_counts_the_hand_counted_population(engine: Engine) -> None:
    assert fee_control_overview(engine, D) == EXPECTED


def test_the_day_only_moves_trips_and_readings(engine: Engine) -> None:
    before = {r.supply_unit: r for r in fee_control_overview(engine, date(2026, 3, 2))}
    # D-1: 10's trip at 23:59 counts; 04's reading counts; balances and pending do not move
    assert (before["3302"].trips_today, before["3302"].trip_failures) == (1, 0)
    assert (before["3301"].trips_today, before["3301"].trip_failures) == (0, 0)
    assert before["3301"].meters_read == 1 and before["3301"].collection_rate == Decimal("0.1250")
    assert before["3302"].collection_rate == Decimal("0.0000")
    assert (before["3301"].in_warning, before["3301"].in_arrears) == (4, 2)
    assert before["3301"].pending_approvals == 2


def test_total_row_sums_and_recomputes_the_rate() -> None:
    total = overview_total(EXPECTED)
    assert (total.customers, total.in_warning, total.in_arrears) == (10, 4, 3)
    assert (total.pending_approvals, total.trips_today, total.trip_failures) == (2, 1, 3)
    # (4 + 1) / (8 + 2), not the mean of the units' rates (which would count 3303 as 0)
    assert total.meters_read == 5 and total.collection_rate == Decimal("0.5000")
    assert overview_total([]).collection_rate is None


def test_csv_export_has_a_header_and_a_row_per_unit() -> None:
    out = io.StringIO()
    assert write_overview_csv(EXPECTED, out) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["supply_unit"] for r in rows] == ["3301", "3302", "3303"]
    assert rows[0]["in_warning"] == "4" and rows[0]["collection_rate"] == "0.5000"
    assert rows[2]["collection_rate"] == ""


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_cli_table_json_and_csv(engine: Engine, tmp_path: Path) -> None:
    url = engine.url.render_as_string(hide_password=False)
    table = _cli("stats", "overview", "--date", "2026-03-03", "--db", url)
    lines = table.splitlines()
    unit_line = next(line for line in lines if "3301" in line)
    cells = [c.strip() for c in unit_line.split("│")[3:10]]
    assert cells == ["8", "4", "2", "2", "0", "2", "50.00%"]
    total_line = next(line for line in lines if "total" in line)
    assert [c.strip() for c in total_line.split("│")[3:10]] == [
        "10",
        "4",
        "3",
        "2",
        "1",
        "3",
        "50.00%",
    ]
    data = json.loads(_cli("stats", "overview", "--date", "2026-03-03", "--db", url, "--json"))
    assert [u["supply_unit"] for u in data["units"]] == ["3301", "3302", "3303"]
    assert data["units"][1]["in_arrears"] == 1 and data["total"]["trip_failures"] == 3
    assert data["day"] == "2026-03-03"
    target = tmp_path / "overview.csv"
    _cli("stats", "overview", "--date", "2026-03-03", "--db", url, "--csv", str(target))
    rows = list(csv.DictReader(target.read_text(encoding="utf-8-sig").splitlines()))
    assert [r["supply_unit"] for r in rows] == ["3301", "3302", "3303", "total"]
    assert rows[3]["customers"] == "10"


def test_cli_refuses_a_bad_date(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["stats", "overview", "--date", "3 March", "--db", url])
    assert result.exit_code == 2
    assert "--date" in result.output and "YYYY-MM-DD" in result.output


_names = itertools.count()


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    name = f"feikong_stats_{next(_names)}"
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    engine = open_database(
        make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    )
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_overview_on_postgresql(pg_engine: Engine) -> None:
    populate(pg_engine)
    assert fee_control_overview(pg_engine, D) == EXPECTED


async def test_overview_follows_the_real_workflow(tmp_path: Path) -> None:
    """Three customers in arrears (tests.prepaid.workflows_rig): 01 approved twice and
    tripped on Tuesday, 02 approved twice with a breaker that fails to trip (one failed
    attempt), 03 only requested (pending)."""
    from breaker_sim import BreakerState

    from .workflows_rig import CUSTOMERS, METERS, platform

    async with platform(tmp_path) as p:
        flow, staff = p.fc.disconnection, p.staff
        for customer in CUSTOMERS[:2]:
            episode = flow.request(customer, by=staff["operator"])
            flow.approve_l1(episode.number, by=staff["approver-l1"])
            flow.approve_l2(episode.number, by=staff["approver-l2"])
        flow.request(CUSTOMERS[2], by=staff["operator"])
        (monday,) = fee_control_overview(p.engine, date(2026, 3, 2))
        assert (monday.customers, monday.pending_approvals, monday.trips_today) == (3, 1, 0)
        # every customer was re-rated to -5.40 yuan by the requests
        assert (monday.in_arrears, monday.in_warning) == (3, 0)
        assert monday.collection_rate == Decimal("1.0000")  # 3 meters read on Monday

        p.he.breaker(METERS[1]).set_fault("fails-to-trip")
        await p.go_to(datetime(2026, 3, 3, 10, 0))
        p.fc.step()
        await p.run_jobs()
        assert p.he.breaker(METERS[0]).state is not BreakerState.CLOSED
        (tuesday,) = fee_control_overview(p.engine, date(2026, 3, 3))
        assert (tuesday.trips_today, tuesday.trip_failures) == (1, 1)
        assert tuesday.pending_approvals == 1
        assert tuesday.collection_rate == Decimal("0.0000")  # nothing read on Tuesday yet


# -- the stored overview (prepaid_overview_snapshot) -------------------------------------


def test_a_refresh_stores_what_the_live_count_gives_with_its_time(engine: Engine) -> None:
    assert stored_overview(engine, D) is None  # never counted
    clock = SteppedClock(datetime(2026, 3, 3, 2, 10, 30))
    refreshed = refresh_overview(engine, D, clock=clock, source=SnapshotSource.RATING)
    assert list(refreshed.units) == EXPECTED
    stored = stored_overview(engine, D)
    assert stored is not None
    assert list(stored.units) == EXPECTED
    assert stored.computed_at == datetime(2026, 3, 3, 2, 10, 30)
    assert stored.source is SnapshotSource.RATING
    assert stored.as_of() == "as of the 02:10 rating"
    assert stored_overview(engine, date(2026, 3, 2)) is None  # another day: not counted


def test_the_stored_counts_stay_until_a_refresh_while_approvals_and_trips_are_live(
    engine: Engine,
) -> None:
    refresh_overview(engine, D, clock=SteppedClock(datetime(2026, 3, 3, 2, 10)))
    with engine.begin() as c:
        # 03 falls into arrears, 11's meter is read after the count, 07's request is done
        c.execute(text("UPDATE prepaid_rating_state SET balance_fen = -300 WHERE account_id = 3"))
        c.execute(
            sa.update(disconnection_table)
            .where(disconnection_table.c.account_id == 7)
            .values(state="rejected")
        )
    store_readings(
        engine, [NewReading(f"{11:012d}", DAILY_FORWARD_DI, D, Decimal("100.00"), 10_000)]
    )
    stored = stored_overview(engine, D)
    assert stored is not None
    unit = stored.units[0]
    assert (unit.in_arrears, unit.meters_read) == (2, 4)  # as counted at 02:10
    assert unit.pending_approvals == 1  # counted now
    live = fee_control_overview(engine, D)
    assert (live[0].in_arrears, live[1].meters_read) == (3, 2)
    later = refresh_overview(engine, D, clock=SteppedClock(datetime(2026, 3, 3, 11, 5)))
    assert list(later.units) == live
    again = stored_overview(engine, D)
    assert again is not None and list(again.units) == live
    assert again.as_of() == "as of the 11:05 refresh"


def test_the_stored_overview_equals_the_live_count_after_payments_and_ratings(
    tmp_path: Path,
) -> None:
    from prepaid.cis import LedgerCis
    from prepaid.cis.payments import PaymentService
    from prepaid.generate import GenerateOptions, generate
    from prepaid.rating import rate_day

    engine = fresh_engine(tmp_path)
    start = date(2026, 3, 1)
    generate(engine, GenerateOptions(customers=400, days=4, seed=3, start=start))
    for n in (1, 2):
        rate_day(engine, start + timedelta(days=n))
    day = start + timedelta(days=2)
    clock = SteppedClock(datetime(2026, 3, 3, 9, 0))
    assert list(refresh_overview(engine, day, clock=clock).units) == fee_control_overview(
        engine, day
    )
    first = stored_overview(engine, day)
    assert first is not None and list(first.units) == fee_control_overview(engine, day)
    assert sum(u.in_arrears for u in first.units) > 0
    assert sum(u.in_warning for u in first.units) > 0
    # every customer in arrears pays 100 yuan; the next day is rated
    with engine.connect() as c:
        owing = [
            str(r[0])
            for r in c.execute(
                text(
                    "SELECT a.customer_no FROM prepaid_account a JOIN prepaid_rating_state s"
                    " ON s.account_id = a.id WHERE s.balance_fen < 0"
                )
            )
        ]
    payments = PaymentService(engine, LedgerCis(engine, clock=clock), clock=clock)
    for n, customer in enumerate(owing):
        payments.pay(customer, 10_000, f"PAY-{n}")
    rate_day(engine, start + timedelta(days=3))
    moved = fee_control_overview(engine, day)
    assert list(first.units) != moved  # the stored counts are those of 09:00
    refresh_overview(engine, day, clock=clock)
    again = stored_overview(engine, day)
    assert again is not None and list(again.units) == moved


def test_cli_says_as_of_when_and_refresh_counts_again(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    first = json.loads(_cli("stats", "overview", "--date", "2026-03-03", "--db", url, "--json"))
    assert first["counted_now"] is True and first["source"] == "refresh"
    with engine.begin() as c:
        c.execute(text("UPDATE prepaid_rating_state SET balance_fen = -300 WHERE account_id = 3"))
    table = _cli("stats", "overview", "--date", "2026-03-03", "--db", url)
    assert "as of the" in table and "refresh" in table and "--refresh counts them again" in table
    unit_line = next(line for line in table.splitlines() if "3301" in line)
    assert [c.strip() for c in unit_line.split("│")[3:6]] == ["8", "4", "2"]  # stored
    data = json.loads(
        _cli("stats", "overview", "--date", "2026-03-03", "--db", url, "--refresh", "--json")
    )
    assert data["counted_now"] is True and data["units"][0]["in_arrears"] == 3
    stored = json.loads(_cli("stats", "overview", "--date", "2026-03-03", "--db", url, "--json"))
    assert stored["counted_now"] is False and stored["units"][0]["in_arrears"] == 3
    assert stored["computed_at"] == data["computed_at"]


def test_rate_stores_the_days_overview_as_of_the_rating(tmp_path: Path) -> None:
    from prepaid.generate import GenerateOptions, generate

    engine = fresh_engine(tmp_path)
    generate(engine, GenerateOptions(customers=60, days=2, seed=4, start=date(2026, 3, 1)))
    url = engine.url.render_as_string(hide_password=False)
    rated = json.loads(_cli("rate", "--date", "2026-03-02", "--db", url, "--json"))
    assert rated["overview_seconds"] >= 0
    stored = stored_overview(engine, date(2026, 3, 2))
    assert stored is not None and stored.source is SnapshotSource.RATING
    assert stored.as_of().endswith("rating")
    assert list(stored.units) == fee_control_overview(engine, date(2026, 3, 2))
    _cli("rate", "--date", "2026-03-02", "--db", url, "--no-overview")
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM prepaid_overview_snapshot")).scalar_one() == (
            len(stored.units)
        )


def test_the_stored_overview_on_postgresql(pg_engine: Engine) -> None:
    populate(pg_engine)
    refresh_overview(pg_engine, D, clock=SteppedClock(datetime(2026, 3, 3, 2, 10)))
    refresh_overview(pg_engine, D, clock=SteppedClock(datetime(2026, 3, 3, 2, 20)))
    stored = stored_overview(pg_engine, D)
    assert stored is not None and list(stored.units) == EXPECTED
    assert stored.computed_at == datetime(2026, 3, 3, 2, 20)
