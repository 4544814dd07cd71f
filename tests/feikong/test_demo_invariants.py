"""The invariant checks that end `feikong demo`: silent on a real run, and each one fails
when one row of that run is corrupted.

The run (:func:`flow_database`, built once per test session on the workflows rig:
simulated meters over TCP, the head-end's job runner, the prepaid platform, one
stepped clock) — three customers, 5.00 yuan each, 20 kWh × 0.52 = 10.40 yuan charged
on Monday 2 March 2026:

- Monday 09:00: reminders and dunning; disconnection requests for 3300000001 and
  3300000002 (operator), approved at level 1 and level 2 by two other people; the
  notice plans the trips for Tuesday 09:00;
- Tuesday 10:00: both trips go out: 3300000001's breaker opens; 3300000002's breaker
  fails to trip and, with ``remote_attempts`` 1 for that customer, a
  disconnection-failure work order goes to the fault handler (and an SMS);
- Tuesday 10:30: 3300000001 pays 100.00 yuan (PAY-1): reconnected (permit-close);
- Wednesday 11:00: 3300000003 pays 20.00 yuan (PAY-2).

Each corruption test copies that database, changes one row the way a bug would, and
expects exactly one violation, with the numbers.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from feikong.demo.invariants import (
    INVARIANTS,
    InvariantCheckError,
    Violation,
    check_invariants,
)
from headend.jobs import to_db_time
from prepaid.db import open_database
from prepaid.dunning import run_dunning
from prepaid.reminders import run_reminders

from ..prepaid.workflows_rig import CUSTOMERS, METERS, platform

MONDAY_9 = datetime(2026, 3, 2, 9, 0)
TUESDAY_10 = datetime(2026, 3, 3, 10, 0)
TUESDAY_1030 = datetime(2026, 3, 3, 10, 30)
WEDNESDAY_11 = datetime(2026, 3, 4, 11, 0)
HANDLER_PHONE = "13900000001"


async def run_flow(folder: Path, db_url: str | None = None) -> Path:
    """Run the module doc's flow in ``folder`` (a copy of the migrated SQLite template, or
    the empty database ``db_url``); returns the SQLite file."""
    async with platform(folder, db_url=db_url) as p:
        fc, flow, staff = p.fc, p.fc.disconnection, p.staff
        fc.ctx.set_handler_phone(staff["fault-handler"].login, HANDLER_PHONE, by=staff["operator"])
        p.settings.set(
            "remote_attempts", 1, level="customer", key=CUSTOMERS[1], user=staff["admin"]
        )
        for customer in CUSTOMERS[:2]:
            episode = flow.request(customer, by=staff["operator"], reason="arrears")
            flow.approve_l1(episode.number, by=staff["approver-l1"])
            flow.approve_l2(episode.number, by=staff["approver-l2"])
        run_reminders(p.engine, clock=p.clock, settings=p.settings)
        run_dunning(p.engine, clock=p.clock, settings=p.settings, auto=False)

        p.he.breaker(METERS[1]).set_fault("fails-to-trip")
        await p.go_to(TUESDAY_10)
        fc.step()
        await p.run_jobs()
        await p.go_to(TUESDAY_1030)
        p.payments.pay(CUSTOMERS[0], 10_000, "PAY-1")
        await p.run_jobs()
        await p.go_to(WEDNESDAY_11)
        p.payments.pay(CUSTOMERS[2], 2_000, "PAY-2")
        await p.run_jobs()
        if db_url is None:
            with p.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return folder / "feikong.db"


_built: Path | None = None


def flow_database() -> Path:
    """The database of the module doc's run, built once per test session (read-only)."""
    global _built
    if _built is None:
        folder = Path(tempfile.mkdtemp(prefix="feikong-demo-checks-"))
        atexit.register(shutil.rmtree, folder, True)
        _built = asyncio.run(run_flow(folder))
    return _built


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A copy of the run's database, ours to corrupt."""
    target = tmp_path / "run.db"
    shutil.copyfile(flow_database(), target)
    engine = open_database(f"sqlite:///{target}")
    try:
        yield engine
    finally:
        engine.dispose()


def _one(engine: Engine) -> Violation:
    found = check_invariants(engine)
    assert len(found) == 1, found
    return found[0]


def _episode(engine: Engine, customer: str) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text("SELECT number FROM prepaid_disconnection WHERE customer_no = :c"),
                {"c": customer},
            ).scalar_one()
        )


def _trip_job(engine: Engine, customer: str) -> str:
    return f"fk-{_episode(engine, customer)}-trip1-1"


def test_the_real_run_breaks_no_invariant(engine: Engine) -> None:
    assert check_invariants(engine) == []
    # and the run did what the checks look at: two trips, one failed with its order
    with engine.connect() as conn:
        states: dict[str, str] = dict(
            conn.execute(sa.text("SELECT customer_no, state FROM prepaid_disconnection")).all()
        )
        orders = conn.execute(
            sa.text("SELECT kind FROM prepaid_work_order WHERE kind = 'disconnection-failure'")
        ).all()
        payments = conn.execute(
            sa.text("SELECT COUNT(*) FROM prepaid_cis_movement WHERE kind = 'payment'")
        ).scalar_one()
    assert states == {CUSTOMERS[0]: "ended", CUSTOMERS[1]: "failed"}
    assert len(orders) == 1 and payments == 2
    assert [i.value for i in INVARIANTS] == [
        "money-conserved",
        "two-approvals",
        "no-guaranteed-trip",
        "no-trip-in-protected-hours",
        "failed-trip-has-work-order",
    ]


def test_an_extra_charge_breaks_money_conservation(engine: Engine) -> None:
    # a charge of 3.00 yuan on Thursday that never reached the real-time balance:
    # 5.00 + 100.00 − 0 − (0.00 on 1 March + 10.40 + 3.00) = 91.60, but the balance is 94.60
    with engine.begin() as conn:
        account_id = conn.execute(
            sa.text("SELECT id FROM prepaid_account WHERE customer_no = :c"), {"c": CUSTOMERS[0]}
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO prepaid_charge (day, account_id, period_start, reading_ckwh, "
                "energy_ckwh, period_ckwh, amount_fen, charged_fen, balance_fen, "
                "tariff_version, tier, outcome) SELECT day + 3, account_id, period_start, "
                "reading_ckwh, 0, period_ckwh, 300, charged_fen + 300, balance_fen - 300, "
                "tariff_version, tier, outcome FROM prepaid_charge WHERE account_id = :a "
                "ORDER BY day DESC LIMIT 1"
            ),
            {"a": account_id},
        )
    v = _one(engine)
    assert (v.invariant, v.subject) == ("money-conserved", f"account {CUSTOMERS[0]}")
    assert v.detail == (
        "opening 5.00 + payments 100.00 (1) − refunds 0.00 (0) − charges 13.40 (3) = "
        "91.60 yuan, but the real-time balance is 94.60 yuan (3.00 yuan off)"
    )


def test_a_payment_credited_twice_is_found(engine: Engine) -> None:
    # a ledger without its unique (kind, payment id) — as an imported CIS might be —
    # takes PAY-2 a second time, and the balances follow: the sums agree, the id does not
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE prepaid_cis_movement RENAME TO old_movement")
        conn.exec_driver_sql("CREATE TABLE prepaid_cis_movement AS SELECT * FROM old_movement")
        conn.exec_driver_sql("DROP TABLE old_movement")
        conn.exec_driver_sql(
            "INSERT INTO prepaid_cis_movement SELECT id + 1000, account_no, kind, operation_id, "
            "amount_fen, balance_after_fen + amount_fen, occurred_at, recorded_at, source "
            "FROM prepaid_cis_movement WHERE operation_id = 'PAY-2'"
        )
        conn.exec_driver_sql(
            "UPDATE prepaid_cis_account SET balance_fen = balance_fen + 2000 "
            f"WHERE account_no = '{CUSTOMERS[2]}'"
        )
        conn.exec_driver_sql(
            "UPDATE prepaid_rating_state SET balance_fen = balance_fen + 2000 WHERE account_id = "
            f"(SELECT id FROM prepaid_account WHERE customer_no = '{CUSTOMERS[2]}')"
        )
    v = _one(engine)
    assert (v.invariant, v.subject) == ("money-conserved", "payment PAY-2")
    assert v.detail == f"credited 2 times (40.00 yuan in all) to {CUSTOMERS[2]}"


def test_a_cis_balance_that_is_not_its_movements_is_found(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE prepaid_cis_account SET balance_fen = balance_fen + 1 WHERE account_no = :c"
            ),
            {"c": CUSTOMERS[1]},
        )
    v = _one(engine)
    assert (v.invariant, v.subject) == ("money-conserved", f"account {CUSTOMERS[1]}")
    assert v.detail == "CIS ledger balance 5.01 yuan is not the sum of its movements 5.00 yuan"


def test_a_trip_with_one_approval_is_found(engine: Engine) -> None:
    number = _episode(engine, CUSTOMERS[0])
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE prepaid_disconnection SET l2_by = NULL, l2_at = NULL WHERE number = :n"
            ),
            {"n": number},
        )
    v = _one(engine)
    assert (v.invariant, v.subject) == ("two-approvals", f"disconnection {number}")
    assert v.detail == (
        "no level-2 approval (requested by operator, L1 approver.l1, L2 -); "
        f"trip job(s) fk-{number}-trip1-1"
    )


def test_approvals_by_the_requester_or_one_person_are_found(engine: Engine) -> None:
    number = _episode(engine, CUSTOMERS[1])
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE prepaid_disconnection SET l2_by = 'approver.l1' WHERE number = :n"),
            {"n": number},
        )
        conn.execute(
            sa.text(
                "UPDATE prepaid_disconnection SET requested_by = 'approver.l1' WHERE number = :n"
            ),
            {"n": number},
        )
    v = _one(engine)
    assert v.subject == f"disconnection {number}"
    assert v.detail.startswith(
        "both approvals by approver.l1; the level-1 approver approver.l1 is the requester; "
        "the level-2 approver approver.l1 is the requester"
    )


def test_a_trip_job_without_a_request_is_found(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO headend_job (id, kind, meter_address, priority, state, created_at, "
                "updated_at, attempts, max_attempts) VALUES ('manual-1', 'trip', :m, 0, "
                "'queued', :t, :t, 0, 3)"
            ),
            {"m": METERS[2], "t": to_db_time(WEDNESDAY_11)},
        )
    v = _one(engine)
    assert (v.invariant, v.subject) == ("two-approvals", "job manual-1")
    assert "belongs to no disconnection request" in v.detail


def test_a_guarantee_flag_on_a_tripped_account_is_found(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE prepaid_account SET power_guarantee = 1 WHERE customer_no = :c"),
            {"c": CUSTOMERS[0]},
        )
    job = _trip_job(engine, CUSTOMERS[0])
    v = _one(engine)
    assert (v.invariant, v.subject) == ("no-guaranteed-trip", f"account {CUSTOMERS[0]}")
    assert v.detail.startswith(f"trip job {job} reached meter {METERS[0]} at 2026-03-03 10:00")
    assert v.detail.endswith("(succeeded), when its account record is flagged power guarantee")


def _setting_change(
    engine: Engine, at: datetime, level: str, key: str, name: str, new: str
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO prepaid_setting_change (at, level, scope_key, name, old_value, "
                "new_value, changed_by, comment) VALUES (:at, :level, :key, :name, NULL, :new, "
                "'root', '')"
            ),
            {"at": at, "level": level, "key": key, "name": name, "new": new},
        )


def test_a_guarantee_for_the_area_at_trip_time_is_found_but_not_one_set_after(
    engine: Engine,
) -> None:
    # set for area A1 (both tripped customers) on Tuesday 12:00, after the trips: fine
    _setting_change(
        engine, TUESDAY_10 + timedelta(hours=2), "area", "A1", "power_guarantee", "true"
    )
    assert check_invariants(engine) == []
    # the same set on Monday: it was in force at both trips
    _setting_change(engine, MONDAY_9, "line", "L1", "power_guarantee", "true")
    found = check_invariants(engine)
    assert [(v.invariant, v.subject) for v in found] == [
        ("no-guaranteed-trip", f"account {CUSTOMERS[0]}"),
        ("no-guaranteed-trip", f"account {CUSTOMERS[1]}"),
    ]
    assert found[0].detail.endswith("when power_guarantee was on for line L1")


def test_a_trip_at_20_00_is_found(engine: Engine) -> None:
    job = _trip_job(engine, CUSTOMERS[0])
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE headend_job_attempt SET started_at = :t WHERE job_id = :j"),
            {"t": to_db_time(datetime(2026, 3, 3, 20, 0)), "j": job},
        )
    v = _one(engine)
    assert (v.invariant, v.subject) == ("no-trip-in-protected-hours", f"job {job}")
    assert v.detail == (
        f"trip attempt started at 2026-03-03 20:00:00 (Tuesday) on meter {METERS[0]} "
        f"(account {CUSTOMERS[0]}), protected (protected-hours: 18:00-08:00)"
    )


def test_protected_hours_are_those_in_force_at_the_trip(engine: Engine) -> None:
    # a window 09:00-11:00 set for the customer on Monday covers the 10:00 trip
    _setting_change(engine, MONDAY_9, "customer", CUSTOMERS[0], "protected_hours", "09:00-11:00")
    v = _one(engine)
    assert v.invariant == "no-trip-in-protected-hours"
    assert v.detail.endswith("protected (protected-hours: 09:00-11:00)")


def test_a_trip_on_a_saturday_is_found(engine: Engine) -> None:
    job = _trip_job(engine, CUSTOMERS[1])
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE headend_job_attempt SET started_at = :t WHERE job_id = :j"),
            {"t": to_db_time(datetime(2026, 3, 7, 10, 0)), "j": job},
        )
    v = _one(engine)
    assert v.subject == f"job {job}"
    # its three attempts (the job's own retries) are one violation
    assert v.detail.endswith("protected (weekend: Saturday 2026-03-07); 3 of its 3 attempts")


def test_a_deleted_work_order_is_found(engine: Engine) -> None:
    number = _episode(engine, CUSTOMERS[1])
    with engine.begin() as conn:
        order = conn.execute(
            sa.text("SELECT work_order FROM prepaid_disconnection WHERE number = :n"), {"n": number}
        ).scalar_one()
        conn.execute(
            sa.text(
                "DELETE FROM prepaid_work_order_event WHERE work_order_id = "
                "(SELECT id FROM prepaid_work_order WHERE number = :o)"
            ),
            {"o": order},
        )
        conn.execute(sa.text("DELETE FROM prepaid_work_order WHERE number = :o"), {"o": order})
    v = _one(engine)
    assert (v.invariant, v.subject) == ("failed-trip-has-work-order", f"disconnection {number}")
    assert v.detail == (
        f"work order {order} (account {CUSTOMERS[1]}, state failed) is not in prepaid_work_order"
    )


def test_a_database_that_is_not_feikong_is_refused(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(InvariantCheckError, match="not a migrated feikong database"):
        check_invariants(engine)
    engine.dispose()
