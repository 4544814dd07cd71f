"""CSV import of payments: bad rows by line number, good rows load, re-import is a no-op."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from prepaid.cis import CsvFormatError, LedgerCis, import_payments
from prepaid.cis.tables import movement, rejection

from . import cis_rig

db_url, engine, clock, ledger = cis_rig.db_url, cis_rig.engine, cis_rig.clock, cis_rig.ledger

PAYMENTS = """\
payment_id,account_no,amount,paid_at,source,cashier
P-001,A1,100.00,2026-03-09 08:00:00,counter,Li
P-002,A2,50.5,2026-03-09,bank,
# a comment line is skipped
P-003,A1,abc,,app,
P-004,,20.00,,app,
P-005,A3,10.001,,app,

P-006,A2,30.00,yesterday,app,
P-007,A3,0,,app,
P-008,A3,12.34,,app,
P-001,A1,100.00,,counter,
P-002,A2,99.00,,bank,
"""


def _count(engine: Engine, table: sa.Table) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_bad_rows_are_reported_by_line_and_good_rows_still_load(
    ledger: LedgerCis, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "payments.csv"
    path.write_text(PAYMENTS, encoding="utf-8")
    seen: list[tuple[int, int]] = []
    report = import_payments(ledger, path, progress=lambda done, total: seen.append((done, total)))
    assert (report.rows, report.credited, report.duplicates) == (10, 3, 1)
    assert report.credited_fen == 10_000 + 5_050 + 1_234
    lines = {e.line: e.reason for e in report.errors}
    assert sorted(lines) == [5, 6, 7, 9, 10, 13]
    assert "not a number of yuan" in lines[5]
    assert "account_no is empty" in lines[6]
    assert "more than 2 decimals" in lines[7]
    assert "paid_at 'yesterday'" in lines[9]
    assert "more than 0" in lines[10]
    assert "already applied as 50.50 yuan" in lines[13]  # same id, other amount: refused
    assert report.ignored_columns == ["cashier"]
    assert report.accounts == ["A1", "A2", "A3"]
    assert ledger.balances(["A1", "A2", "A3"]) == {"A1": 10_000, "A2": 5_050, "A3": 1_234}
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    assert _count(engine, rejection) == 6  # every bad row is on record
    first = ledger.movements("A1")[0]
    assert first.occurred_at.isoformat() == "2026-03-09T08:00:00"
    assert first.source == "counter (payments.csv:2)"


def test_importing_the_same_file_again_credits_nothing_twice(
    ledger: LedgerCis, engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "payments.csv"
    path.write_text(PAYMENTS, encoding="utf-8")
    import_payments(ledger, path)
    again = import_payments(ledger, path)
    assert (again.credited, again.credited_fen, again.duplicates) == (0, 0, 4)
    assert again.accounts == []
    assert ledger.balances(["A1", "A2", "A3"]) == {"A1": 10_000, "A2": 5_050, "A3": 1_234}
    assert _count(engine, movement) == 3
    assert ledger.audit() == []


def test_chinese_headers_and_gb18030_are_accepted(ledger: LedgerCis, tmp_path: Path) -> None:
    path = tmp_path / "缴费.csv"
    path.write_bytes(
        "缴费流水号,户号,缴费金额,缴费时间,渠道\nQ1,A9,8.80,2026/03/09 10:00,银行\n".encode(
            "gb18030"
        )
    )
    report = import_payments(ledger, path)
    assert (report.credited, report.errors) == (1, [])
    assert ledger.balance("A9") == 880
    assert ledger.movements("A9")[0].source.startswith("银行")


def test_unknown_accounts_are_bad_rows_when_the_platform_says_so(ledger: LedgerCis) -> None:
    text = "payment_id,account_no,amount\nP1,A1,1.00\nP2,NOPE,2.00\n"
    report = import_payments(ledger, io.StringIO(text), known_accounts=lambda nos: {"A1"})
    assert report.credited == 1
    assert [str(e) for e in report.errors] == [
        "line 3: account NOPE is not a platform account; check the number"
    ]
    assert ledger.balance("NOPE") == 0


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "is empty"),
        ("account_no,amount\nA1,1.00\n", r"needs the column\(s\) payment_id"),
        ("payment_id,account_no,amount,amount\n", "'amount' is given twice"),
    ],
)
def test_a_file_that_cannot_be_read_credits_nothing(
    ledger: LedgerCis, tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "p.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CsvFormatError, match=says):
        import_payments(ledger, path)


def test_a_missing_file_says_so(ledger: LedgerCis, tmp_path: Path) -> None:
    with pytest.raises(CsvFormatError, match="cannot read payments file"):
        import_payments(ledger, tmp_path / "nope.csv")


def test_a_row_with_too_many_cells_is_a_bad_row(ledger: LedgerCis) -> None:
    text = "payment_id,account_no,amount\nP1,A1,1.00,extra\nP2,A1,2.00\n"
    report = import_payments(ledger, io.StringIO(text))
    assert [str(e) for e in report.errors] == ["line 2: 4 cells but the header has 3 columns"]
    assert ledger.balance("A1") == 200
