"""Local fee control: card sales, the card in a simulated local meter, and reconciliation
of the meters' remaining amounts read through the head-end over TCP.

Customers (all opened with 0.00 yuan; meters on one TCP gateway of the head-end rig):

=========== ============ ====== ===========================================
customer    meter        mode   in the test
=========== ============ ====== ===========================================
3300000001  000000000001 local  buys 50.00 + 20.00, both cards inserted
3300000002  000000000002 local  buys 30.00, card not inserted
3300000003  000000000003 local  meter opened at install with 9.99 yuan
3300000004  000000000004 remote no card sales (pays through the CIS)
=========== ============ ====== ===========================================

Nobody uses energy (``mean_daily_kwh = 0``), so the amounts are exact: 01's meter has
70.00 = the ledger; 02's meter has 0.00 against 30.00 sold (the card of sale S-3 is not
in); 03's meter has 9.99 against 0.00 sold: a mismatch.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from feikong.cli import app
from headend.service import HeadendService
from meter_sim.config import BreakerKind, MeterConfig, MeterKind
from prepaid.accounts import open_accounts
from prepaid.audit import AuditLog
from prepaid.balance import realtime_balance
from prepaid.cis import LedgerCis
from prepaid.cis.payments import PaymentService
from prepaid.db import migrate, open_database
from prepaid.models import FeeControlMode
from prepaid.users import Operator, PermissionDeniedError
from prepaid.vending import (
    MatchState,
    NotLocalError,
    SaleConflictError,
    Vending,
    VendingError,
)
from protocol.card import CardType, read_card
from protocol.security import SimulatedEncryptionMachine

from ..headend.fleet_rig import KEY
from ..headend.jobs_rig import HeadEnd, headend
from ..headend.test_postgres import pg_url
from .rating_helpers import account, with_tariffs_and_unit
from .security_helpers import PASSWORD, _template_file, add_staff, make_users

_ = pg_url
MACHINE = SimulatedEncryptionMachine(KEY)
START = datetime(2026, 3, 2, 9, 0)


def _config(n: int, **extra: Any) -> MeterConfig:
    return MeterConfig(
        f"{n:012d}",
        kind=MeterKind.LOCAL,
        breaker=BreakerKind.INTERNAL,
        mean_daily_kwh=0.0,
        customer_number=f"{3300000000 + n:012d}",
        extra=extra,
    )


@dataclasses.dataclass
class Office:
    he: HeadEnd
    vending: Vending
    staff: dict[str, Operator]
    port: HeadendService

    @property
    def engine(self) -> Any:
        return self.he.engine

    async def read_meters(self) -> list[str]:
        jobs = self.vending.request_remaining(self.port)
        runner = self.he.runner
        await self.he.run_until(lambda: runner.queued == 0 and runner.running == 0)
        return jobs


@asynccontextmanager
async def office(tmp_path: Path, db_url: str | None = None) -> AsyncIterator[Office]:
    """The customers of the module doc; ``db_url``: an empty database (PostgreSQL)
    instead of a copy of the migrated SQLite template."""
    url = db_url or f"sqlite:///{tmp_path / 'feikong.db'}"
    if db_url is None:
        shutil.copyfile(_template_file(), tmp_path / "feikong.db")
    configs = [_config(1), _config(2), _config(3, remaining_fen=999, purchase_count=0)]
    configs.append(dataclasses.replace(_config(4), kind=MeterKind.REMOTE, extra={}))
    async with headend(tmp_path, configs=configs, db_url=url) as he:
        await he.clock.advance((START - he.clock.now()).total_seconds())
        engine = he.engine
        if db_url is not None:
            migrate(engine, headend=False)
        with engine.begin() as c:
            unit = with_tariffs_and_unit(c)
            open_accounts(
                c,
                [
                    account(
                        n,
                        unit,
                        fee_control_mode=(FeeControlMode.LOCAL if n < 4 else FeeControlMode.REMOTE),
                    )
                    for n in (1, 2, 3, 4)
                ],
            )
        staff = add_staff(make_users(engine, he.clock))
        payments = PaymentService(engine, LedgerCis(engine, clock=he.clock), clock=he.clock)
        vending = Vending(engine, payments, MACHINE, clock=he.clock)
        yield Office(he, vending, staff, HeadendService(he.runner))


async def test_sell_insert_the_card_and_reconcile_through_the_head_end(tmp_path: Path) -> None:
    async with office(tmp_path) as o:
        v, clerk = o.vending, o.staff["customer-service"]
        first = v.sell("3300000001", 5_000, "S-1", by=clerk, card_path=tmp_path / "c1.json")
        assert first.new and first.sale.card_type is CardType.OPEN
        assert first.sale.purchase_count == 1 and first.sale.balance_fen == 5_000
        again = v.sell("3300000001", 5_000, "S-1", by=clerk, card_path=tmp_path / "c1b.json")
        assert not again.new and again.card == first.card  # the same card, credited once
        assert realtime_balance(o.engine, "3300000001").realtime_fen == 5_000

        meter = o.he.meter("000000000001")
        back = await meter.insert_card_file(tmp_path / "c1.json")
        assert (back.remaining_fen, back.purchase_count) == (5_000, 1)
        assert read_card(tmp_path / "c1.json").returned == back  # the meter wrote back

        second = v.sell("3300000001", 2_000, "S-2", by=clerk, card_path=tmp_path / "c2.json")
        assert (second.sale.card_type, second.sale.purchase_count) == (CardType.PURCHASE, 2)
        assert (await meter.insert_card_file(tmp_path / "c2.json")).remaining_fen == 7_000
        # the meter takes a card once: inserting it again adds nothing
        assert (await meter.insert_card_file(tmp_path / "c2.json")).remaining_fen == 7_000

        v.sell("3300000002", 3_000, "S-3", by=clerk, card_path=tmp_path / "c3.json")
        assert [s.sale_id for s in v.history("3300000001")] == ["S-2", "S-1"]

        assert v.reconcile().count(MatchState.NOT_READ) == 3  # nothing read yet
        jobs = await o.read_meters()
        assert len(jobs) == 3  # the three local meters, not the remote one
        report = v.reconcile(tolerance_fen=0)
        rows = {r.customer_no: r for r in report.rows}
        assert rows["3300000001"].state is MatchState.MATCH
        assert (rows["3300000001"].meter_fen, rows["3300000001"].ledger_fen) == (7_000, 7_000)
        assert rows["3300000002"].state is MatchState.NOT_INSERTED
        assert rows["3300000002"].not_inserted == ("S-3",)
        assert rows["3300000003"].state is MatchState.MISMATCH
        assert rows["3300000003"].difference_fen == 999
        assert [r.customer_no for r in report.mismatches] == ["3300000002", "3300000003"]

        # the customer inserts the card: the next read matches
        await o.he.meter("000000000002").insert_card_file(tmp_path / "c3.json")
        await o.he.clock.advance(60)  # a new minute: new read jobs
        await o.read_meters()
        assert {r.customer_no: r.state for r in v.reconcile(tolerance_fen=0).rows}[
            "3300000002"
        ] is MatchState.MATCH


async def test_a_lost_card_is_replaced_and_credited_once(tmp_path: Path) -> None:
    async with office(tmp_path) as o:
        v, clerk = o.vending, o.staff["customer-service"]
        meter = o.he.meter("000000000001")
        v.sell("3300000001", 5_000, "L-1", by=clerk, card_path=tmp_path / "c1.json")
        v.sell("3300000001", 2_000, "L-2", by=clerk)  # the customer loses this card
        # the open-account card, lost before the meter was opened, stays an open card
        assert v.reissue("L-1", by=clerk).type is CardType.OPEN
        await meter.insert_card_file(tmp_path / "c1.json")
        replacement = v.reissue("L-2", by=clerk, card_path=tmp_path / "r2.json")
        assert (replacement.type, replacement.purchase_count) == (CardType.REPLACEMENT, 2)
        assert (await meter.insert_card_file(tmp_path / "r2.json")).remaining_fen == 7_000
        assert (await meter.insert_card_file(tmp_path / "r2.json")).remaining_fen == 7_000
        with pytest.raises(PermissionDeniedError):
            v.reissue("L-2", by=o.staff["auditor"])
        actions = [e.action for e in AuditLog(o.engine, o.he.clock).iter_entries()]
        assert actions.count("vend.reissue") == 2 and "vend.sell.refused" in actions


async def test_sales_refused_with_a_reason_and_audited(tmp_path: Path) -> None:
    async with office(tmp_path) as o:
        v, clerk = o.vending, o.staff["customer-service"]
        with pytest.raises(NotLocalError, match="remote fee control"):
            v.sell("3300000004", 1_000, "R-1", by=clerk)
        with pytest.raises(PermissionDeniedError):
            v.sell("3300000001", 1_000, "R-2", by=o.staff["auditor"])
        with pytest.raises(VendingError, match="whole fen"):
            v.sell("3300000001", 10.5, "R-3", by=clerk)  # type: ignore[arg-type]
        with pytest.raises(VendingError, match="out of range"):
            v.sell("3300000001", 0, "R-4", by=clerk)
        with pytest.raises(VendingError, match="no customer"):
            v.sell("3399999999", 100, "R-5", by=clerk)
        v.sell("3300000001", 1_000, "OK-1", by=clerk)
        with pytest.raises(SaleConflictError, match="new id"):
            v.sell("3300000001", 1_500, "OK-1", by=clerk)
        assert realtime_balance(o.engine, "3300000001").realtime_fen == 1_000
        entries = list(AuditLog(o.engine, o.he.clock).iter_entries())
        actions = [e.action for e in entries if e.action.startswith("vend.")]
        assert actions.count("vend.sell") == 1 and actions.count("vend.sell.refused") == 6


def _cli(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})
    assert result.exit_code == code, result.output
    return result.output


async def test_cli_sell_history_reconcile(tmp_path: Path) -> None:
    async with office(tmp_path) as o:
        env = {"FEIKONG_DB": str(o.engine.url), "FEIKONG_PASSWORD": PASSWORD}
        key = tmp_path / "key.txt"
        key.write_text(KEY.hex())
        card = tmp_path / "card.json"
        sell = ["vend", "sell", "3300000001", "12.34", "--sale-id", "CLI-1", "--key-file", str(key)]
        out = _cli(env, *sell, "--user", "customer.service", "--card", str(card), "--json")
        data = json.loads(out)
        assert (data["amount_fen"], data["purchase_count"], data["new"]) == (1_234, 1, True)
        assert read_card(card).amount_fen == 1_234
        await o.he.meter("000000000001").insert_card_file(card)
        again = _cli(env, *sell, "--user", "customer.service", "--card", str(card))
        assert "already sold" in again
        refused = _cli(env, "vend", "sell", "3300000001", "1.234", "--sale-id", "X", code=2)
        assert "--amount" in refused or "2 decimals" in refused
        history = _cli(env, "vend", "history", "3300000001")
        assert "CLI-1" in history and "12.34" in history and "open" in history
        # the reads are queued in the job table; the running head-end carries them out
        queued = _cli(env, "vend", "reconcile", "--read", "--tolerance", "0")
        assert "queued 3 remaining-amount read(s)" in queued and "not-read=3" in queued
        runner = o.he.runner
        runner.refresh()
        await o.he.run_until(lambda: runner.queued == 0 and runner.running == 0)
        table = _cli(env, "vend", "reconcile", "--tolerance", "0")
        # only what needs a look, unless --all
        assert "3300000003" in table and "mismatch" in table and "3300000001" not in table
        assert "match=2  card-not-inserted=0  mismatch=1  not-read=0" in table
        assert "3300000001" in _cli(env, "vend", "reconcile", "--all", "--tolerance", "0")
        data = json.loads(_cli(env, "vend", "reconcile", "--json", "--tolerance", "0"))
        # 01: 12.34 = 12.34; 02: nothing sold, 0.00 = 0.00; 03: 9.99 on a meter sold nothing
        assert (data["match"], data["mismatch"], data["card-not-inserted"]) == (2, 1, 0)
        assert data["not-read"] == 0


def test_sale_ids_and_customer_numbers_are_checked(tmp_path: Path) -> None:
    from prepaid.vending import card_customer_number

    assert card_customer_number("3300000001") == "003300000001"
    with pytest.raises(VendingError, match="12 digits"):
        card_customer_number("A-33")


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("CREATE DATABASE feikong_vending"))
    yield make_url(pg_url).set(database="feikong_vending").render_as_string(hide_password=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("DROP DATABASE feikong_vending WITH (FORCE)"))
    admin.dispose()


async def test_sell_and_reconcile_on_postgresql(tmp_path: Path, pg_database: str) -> None:
    async with office(tmp_path, db_url=pg_database) as o:
        v, clerk = o.vending, o.staff["customer-service"]
        card = tmp_path / "c1.json"
        for _ in range(2):  # credited once
            v.sell("3300000001", 5_000, "PG-1", by=clerk, card_path=card)
        assert realtime_balance(o.engine, "3300000001").realtime_fen == 5_000
        await o.he.meter("000000000001").insert_card_file(card)
        v.sell("3300000002", 3_000, "PG-2", by=clerk)
        await o.read_meters()
        states = {r.customer_no: r.state for r in v.reconcile(tolerance_fen=0).rows}
        assert states == {
            "3300000001": MatchState.MATCH,
            "3300000002": MatchState.NOT_INSERTED,
            "3300000003": MatchState.MISMATCH,
        }
