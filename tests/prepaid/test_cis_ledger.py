"""The built-in CIS ledger: payments credited once, refunds within the balance, audit."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from prepaid.cis import (
    AmountError,
    CisAdapter,
    DuplicateMismatchError,
    LedgerCis,
    MovementKind,
    PaymentOrder,
    Receipt,
    RefundRefusedError,
    SettlementItem,
    format_fen,
    parse_yuan,
)
from prepaid.cis.tables import movement, rejection
from prepaid.db import open_database
from protocol.clock import SteppedClock

from . import cis_rig
from .cis_rig import START

db_url, engine, clock, ledger = cis_rig.db_url, cis_rig.engine, cis_rig.clock, cis_rig.ledger


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_the_ledger_is_a_cis_adapter(ledger: LedgerCis) -> None:
    assert isinstance(ledger, CisAdapter)


@pytest.mark.parametrize(
    ("text", "fen"),
    [("100.00", 10000), ("0.01", 1), ("1,234.5", 123450), ("¥20", 2000), ("7元", 700)],
)
def test_yuan_text_is_parsed_to_fen_exactly(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("0", "more than 0"),
        ("-5.00", "more than 0"),
        ("1.005", "more than 2 decimals"),
        ("abc", "not a number of yuan"),
        (1.5, "decimal string"),
        ("NaN", "not a number"),
        ("20000000", "more than"),
    ],
)
def test_bad_amounts_are_refused_with_the_reason(value: object, says: str) -> None:
    with pytest.raises(AmountError, match=says):
        parse_yuan(value)


def test_format_fen_is_exact() -> None:
    assert [format_fen(v) for v in (0, 5, 12345, -5, -12345)] == [
        "0.00",
        "0.05",
        "123.45",
        "-0.05",
        "-123.45",
    ]


def test_a_payment_is_credited_and_stamped_with_the_clock(
    ledger: LedgerCis, clock: SteppedClock
) -> None:
    receipt = ledger.pay("3100012345", 10_000, "PAY-1", source="counter")
    assert receipt.balance_fen == 10_000
    assert not receipt.duplicate
    assert receipt.occurred_at == START
    assert ledger.balance("3100012345") == 10_000
    (moved,) = ledger.movements("3100012345")
    assert (moved.kind, moved.amount_fen, moved.balance_after_fen, moved.source) == (
        MovementKind.PAYMENT,
        10_000,
        10_000,
        "counter",
    )


def test_the_same_payment_id_twice_credits_once(ledger: LedgerCis, engine: Engine) -> None:
    first = ledger.pay("3100012345", 10_000, "PAY-1")
    second = ledger.pay("3100012345", 10_000, "PAY-1")
    assert second.duplicate
    assert (second.movement_id, second.balance_fen) == (first.movement_id, first.balance_fen)
    assert ledger.balance("3100012345") == 10_000
    assert _count(engine, movement) == 1


def test_a_payment_id_reused_with_another_amount_or_account_is_refused(
    ledger: LedgerCis, engine: Engine
) -> None:
    ledger.pay("3100012345", 10_000, "PAY-1")
    with pytest.raises(DuplicateMismatchError, match=r"already applied as 100\.00 yuan") as info:
        ledger.pay("3100012345", 20_000, "PAY-1")
    assert isinstance(info.value.original, Receipt)
    assert info.value.original.amount_fen == 10_000
    with pytest.raises(DuplicateMismatchError, match="on account 3100099999"):
        ledger.pay("3100099999", 10_000, "PAY-1")
    assert ledger.balance("3100012345") == 10_000
    assert ledger.balance("3100099999") == 0
    assert _count(engine, movement) == 1
    assert [r.operation_id for r in ledger.rejections()] == ["PAY-1", "PAY-1"]


def test_two_concurrent_attempts_of_one_payment_credit_it_once(
    ledger: LedgerCis, engine: Engine
) -> None:
    """Eight threads, each with its own database connection, send the same two payments."""
    barrier = threading.Barrier(8)
    results: list[Receipt] = []
    errors: list[BaseException] = []

    def attempt(payment_id: str) -> None:
        try:
            barrier.wait()
            results.append(ledger.pay("3100012345", 5_000, payment_id))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(f"PAY-{i % 2}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(r.duplicate for r in results) == [False, False] + [True] * 6
    assert ledger.balance("3100012345") == 10_000  # two payments of 50.00, each once
    assert _count(engine, movement) == 2
    assert ledger.audit() == []


def test_a_crash_before_the_commit_leaves_nothing_and_the_retry_credits_once(
    ledger: LedgerCis, engine: Engine
) -> None:
    def crash(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("UPDATE prepaid_cis_movement"):
            raise RuntimeError("power cut")

    event.listen(engine, "before_cursor_execute", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        ledger.pay("3100012345", 10_000, "PAY-1")
    event.remove(engine, "before_cursor_execute", crash)
    assert ledger.balance("3100012345") == 0
    assert _count(engine, movement) == 0
    assert not ledger.pay("3100012345", 10_000, "PAY-1").duplicate
    assert ledger.pay("3100012345", 10_000, "PAY-1").duplicate
    assert ledger.balance("3100012345") == 10_000


_KILLED_MIDWAY = """
import os, signal, sys
from sqlalchemy import event
from prepaid.cis import LedgerCis
from prepaid.db import open_database

engine = open_database(sys.argv[1])
ledger = LedgerCis(engine)
ledger.pay("3100012345", 10_000, "PAY-0")
def die(conn, cursor, statement, *args):
    if statement.startswith("UPDATE prepaid_cis_movement"):
        os.kill(os.getpid(), signal.SIGKILL)
event.listen(engine, "before_cursor_execute", die)
ledger.pay("3100012345", 10_000, "PAY-1")
"""


def test_a_process_killed_in_the_middle_of_a_payment_credits_it_once_on_retry(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _KILLED_MIDWAY, db_url],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == -9, done.stderr
    restarted = LedgerCis(open_database(db_url))
    assert restarted.balance("3100012345") == 10_000  # PAY-0 only
    assert restarted.pay("3100012345", 10_000, "PAY-0").duplicate  # the reply was lost
    assert not restarted.pay("3100012345", 10_000, "PAY-1").duplicate
    assert restarted.balance("3100012345") == 20_000
    assert restarted.audit() == []


def test_a_refund_takes_money_back_once(ledger: LedgerCis) -> None:
    ledger.pay("3100012345", 10_000, "PAY-1")
    receipt = ledger.refund("3100012345", 3_000, "REF-1")
    assert (receipt.kind, receipt.amount_fen, receipt.balance_fen) == (
        MovementKind.REFUND,
        3_000,
        7_000,
    )
    assert ledger.refund("3100012345", 3_000, "REF-1").duplicate
    assert ledger.balance("3100012345") == 7_000
    assert [m.amount_fen for m in ledger.movements("3100012345")] == [-3_000, 10_000]


def test_a_refund_cannot_exceed_the_balance_and_the_refusal_is_recorded(
    ledger: LedgerCis, engine: Engine
) -> None:
    ledger.pay("3100012345", 10_000, "PAY-1")
    with pytest.raises(RefundRefusedError, match=r"more than its CIS balance of 100\.00") as info:
        ledger.refund("3100012345", 10_001, "REF-1")
    assert info.value.available_fen == 10_000
    assert ledger.balance("3100012345") == 10_000
    ledger.refund("3100012345", 10_000, "REF-2")  # all of it is fine
    assert ledger.balance("3100012345") == 0
    with pytest.raises(RefundRefusedError):
        ledger.refund("3100077777", 100, "REF-3")  # an account that never paid
    assert _count(engine, rejection) == 2
    assert [r.operation_id for r in ledger.rejections()] == ["REF-3", "REF-1"]
    assert ledger.audit() == []


def test_payment_and_refund_ids_are_separate_namespaces(ledger: LedgerCis) -> None:
    ledger.pay("3100012345", 10_000, "X-1")
    ledger.refund("3100012345", 1_000, "X-1")
    assert ledger.balance("3100012345") == 9_000


def test_pay_many_credits_good_orders_and_returns_the_errors(ledger: LedgerCis) -> None:
    results = ledger.pay_many(
        [
            PaymentOrder("P1", "A1", 1_000),
            PaymentOrder("P2", "A1", 0),
            PaymentOrder("P1", "A1", 1_000),
            PaymentOrder("P1", "A2", 1_000),
            PaymentOrder("", "A2", 1_000),
        ]
    )
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["Receipt", "AmountError", "Receipt", "DuplicateMismatchError", "AmountError"]
    assert ledger.balances(["A1", "A2", "A3"]) == {"A1": 1_000, "A2": 0, "A3": 0}


def test_settlement_deducts_once_per_id_and_may_go_negative(ledger: LedgerCis) -> None:
    ledger.pay("A1", 1_000, "P1")
    items = [
        SettlementItem("S-A1-1", "A1", 1_500, START.date()),
        SettlementItem("S-A2-1", "A2", 200, START.date()),
    ]
    first = ledger.settle(items)
    again = ledger.settle(items)
    assert (first.applied, first.already, first.amount_fen) == (2, 0, 1_700)
    assert (again.applied, again.already, again.amount_fen) == (0, 2, 0)
    assert ledger.balances(["A1", "A2"]) == {"A1": -500, "A2": -200}
    assert ledger.audit() == []


def test_the_audit_finds_a_balance_that_is_not_the_sum_of_its_movements(
    ledger: LedgerCis, engine: Engine
) -> None:
    ledger.pay("A1", 1_000, "P1")
    ledger.pay("A1", 2_000, "P2")
    ledger.refund("A1", 500, "R1")
    assert ledger.audit() == []
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE prepaid_cis_account SET balance_fen = 9999"))
    (bad,) = ledger.audit()
    assert (bad.account_no, bad.balance_fen, bad.movements_fen) == ("A1", 9999, 2_500)


def test_opening_balances_are_applied_once_per_account_in_bulk(ledger: LedgerCis) -> None:
    assert ledger.open_balances([("A1", 5_000), ("A2", -300), ("A3", 0)]) == 3
    assert ledger.open_balances([("A1", 5_000), ("A2", -300)]) == 0
    assert ledger.balances(["A1", "A2", "A3"]) == {"A1": 5_000, "A2": -300, "A3": 0}
    (opening,) = ledger.movements("A2")
    assert (opening.kind, opening.amount_fen, opening.balance_after_fen) == (
        MovementKind.OPENING,
        -300,
        -300,
    )
    assert ledger.audit() == []


def test_bulk_settlement_of_many_accounts_keeps_every_balance_auditable(
    ledger: LedgerCis,
) -> None:
    ledger.open_balances([(f"A{i}", 10_000) for i in range(1200)])
    items = [SettlementItem(f"S{i}", f"A{i % 1200}", 1 + i % 7, START.date()) for i in range(2400)]
    report = ledger.settle(items)
    assert (report.applied, report.already) == (2400, 0)
    assert report.amount_fen == sum(1 + i % 7 for i in range(2400))
    assert ledger.balance("A5") == 10_000 - (1 + 5 % 7) - (1 + 1205 % 7)
    assert [m.balance_after_fen for m in ledger.movements("A5")] == [
        ledger.balance("A5"),
        10_000 - (1 + 5 % 7),
        10_000,
    ]
    assert ledger.audit() == []
