"""``feikong messages …`` (CliRunner on the messages command group) on a real SQLite file."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feikong.cmd_messages import messages_app
from prepaid.db import migrate, open_database
from protocol.clock import SteppedClock
from tests.prepaid.security_helpers import PASSWORD, add_staff, make_users
from tests.prepaid.test_sms_gateway import FakeSmsPlatform

runner = CliRunner()

CUSTOMERS = (
    "customer_no,name,phone,address,area\n"
    "C001,张三,138-0013-8000,幸福路1号,A01\n"
    "C002,李四,1380013800,幸福路2号,A01\n"
    "C003,王五,,幸福路3号,A01\n"
    "C004,赵六,+86 139 0013 9000,幸福路4号,A02\n"
    ",无户号,13800138009,,A01\n"
)
DUNNING = ["--set", "balance=-12.30", "--set", "amount_due=50", "--set", "pay_by=2026-03-08T18:00"]


def run(*args: str, db: Path | None = None) -> tuple[int, str]:
    env = {"FEIKONG_DB": f"sqlite:///{db}", "FEIKONG_PASSWORD": PASSWORD} if db else {}
    result = runner.invoke(messages_app, list(args), env=env)
    return result.exit_code, result.output


def staffed(db: Path) -> Path:
    """A migrated database with one operator per role (``customer.service`` sends SMS)."""
    engine = open_database(f"sqlite:///{db}")
    migrate(engine)
    add_staff(make_users(engine, SteppedClock()))
    engine.dispose()
    return db


CS = ("--user", "customer.service")


@pytest.fixture
def customers(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text(CUSTOMERS, encoding="utf-8")
    return path


@pytest.fixture
def platform() -> Iterator[FakeSmsPlatform]:
    server = FakeSmsPlatform()
    server.thread.start()
    yield server
    server.release.set()
    server.server.shutdown()
    server.server.server_close()


def test_render_previews_text_and_segments() -> None:
    values = ["name=张三", "customer_no=C001", "amount=200", "balance=169.8", "at=2026-03-09T10:02"]
    code, out = run("render", "topup", *[arg for v in values for arg in ("--set", v)])
    assert code == 0, out
    assert "缴费到账通知" in out
    text = "【费控中心】尊敬的张三：您的户号C001于2026年3月9日 10:02缴费200.00元已到账，"
    assert text + "当前余额169.80元。" in out
    assert "UCS-2, 1 segment" in out
    code, out = run(
        "render", "custom", "--lang", "en", "--set", "name=Li", "--set", "text=Hi.", "--json"
    )
    assert code == 0, out
    data = json.loads(out)
    assert data["text"] == "[Power Supply] Dear Li, Hi."
    # 27 characters; [ and ] are GSM-7 extension characters, two septets each
    assert (data["encoding"], data["segments"], data["chars"]) == ("GSM-7", 1, 29)


def test_render_errors_name_the_problem() -> None:
    code, out = run("render", "custom", "--set", "name=张三")
    assert code == 2
    assert "needs a value for text" in out
    code, out = run("render", "topup", "--set", "amount=lots")
    assert code == 2 and "amount wants money like 123.45 (yuan), got 'lots'" in out
    code, out = run("render", "custom", "--set", "nmae=x")
    assert code == 2 and "no placeholder nmae" in out
    code, out = run("render", "welcome")
    assert code == 2 and "no message kind 'welcome'" in out


def test_templates_lists_every_kind() -> None:
    code, out = run("templates", "--json")
    assert code == 0, out
    kinds = {row["kind"]: row for row in json.loads(out)}
    assert len(kinds) == 10
    assert kinds["monthly_bill"]["placeholders"]["this_reading"] == "energy"


def test_check_phones_lists_and_exports(customers: Path, tmp_path: Path) -> None:
    export = tmp_path / "invalid.csv"
    code, out = run("check-phones", str(customers), "--export", str(export))
    assert code == 0, out
    assert "2 of 4 number(s) invalid (empty 1, too-short 1)" in out
    assert f"{customers}:6: no customer number" in out
    with export.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["customer_no"], r["problem"]) for r in rows] == [
        ("C002", "too-short"),
        ("C003", "empty"),
    ]
    code, out = run("check-phones", str(customers), "--json")
    assert json.loads(out)["by_problem"] == {"too-short": 1, "empty": 1}


def test_enqueue_outbox_send_and_print(customers: Path, tmp_path: Path) -> None:
    db = staffed(tmp_path / "feikong.db")
    code, out = run(
        "enqueue", "dunning", "--to", str(customers), "--episode", "2026-03", *DUNNING, *CS, db=db
    )
    assert code == 0, out
    assert "4 new message(s), 0 already queued" in out and "1 bad row(s)" in out
    code, out = run(
        "enqueue",
        "dunning",
        "--to",
        str(customers),
        "--episode",
        "2026-03",
        *DUNNING,
        *CS,
        "--json",
        db=db,
    )
    assert json.loads(out)["created"] == 0 and json.loads(out)["existing"] == 4
    code, out = run("outbox", "--json", db=db)
    assert json.loads(out)["counts"] == {"queued": 2, "invalid-number": 2}
    sink = tmp_path / "sms.jsonl"
    code, out = run("send-queued", "--sink", f"file:{sink}", db=db)
    assert code == 0, out
    assert "sent 2 message(s)" in out and "delivered 2" in out
    assert [json.loads(line)["to"] for line in sink.read_text().splitlines()] == [
        "13800138000",
        "13900139000",
    ]
    code, out = run("outbox", "--status", "invalid-number", db=db)
    assert code == 0 and "C002" in out and "C003" in out and "C001" not in out
    code, out = run(
        "print-notices",
        "--area",
        "A01",
        "--out",
        str(tmp_path / "paper"),
        "--batch",
        "A01-1",
        db=db,
    )
    assert code == 0, out
    assert "batch A01-1: 2 notice(s)" in out and "2 marked printed" in out
    html = (tmp_path / "paper" / "A01-1.html").read_text(encoding="utf-8")
    assert 'data-customer="C002"' in html and 'data-customer="C003"' in html
    code, out = run("print-notices", "--area", "A01", "--out", str(tmp_path / "paper"), db=db)
    assert code == 1 and "nothing to print" in out
    code, out = run("outbox", "--status", "lost", db=db)
    assert code == 2 and "--status wants one of queued" in out


def test_send_queued_over_http_exits_1_when_a_message_failed(
    customers: Path, tmp_path: Path, platform: FakeSmsPlatform
) -> None:
    db = staffed(tmp_path / "feikong.db")
    run(
        "enqueue",
        "custom",
        "--to",
        str(customers),
        "--episode",
        "hello",
        "--set",
        "text=你好",
        *CS,
        db=db,
    )
    code, out = run(
        "send-queued", "--http", platform.url("/fail"), "--retries", "1", "--json", db=db
    )
    assert code == 1
    assert json.loads(out)["failed"] == 2
    assert len(platform.requests) == 4  # two messages, two tries each
    code, out = run("send-queued", "--http", platform.url("/ok"), "--retry-failed", db=db)
    assert code == 0 and "delivered 2" in out
    code, out = run("send-queued", "--http", "ftp://x", db=db)
    assert code == 2 and "--http wants an http:// or https:// URL" in out
    code, out = run("send-queued", "--http", platform.url("/ok"), "--sink", "file:x", db=db)
    assert code == 2 and "choose one gateway" in out


def test_enqueue_needs_a_login_with_the_send_custom_sms_role(
    customers: Path, tmp_path: Path
) -> None:
    db = staffed(tmp_path / "feikong.db")
    args = ("enqueue", "custom", "--to", str(customers), "--episode", "e1", "--set", "text=你好")
    code, out = run(*args, db=db)
    assert code == 2 and "give your login with --user" in out
    code, out = run(*args, "--user", "operator", db=db)
    assert code == 1 and "refused" in out and "send-custom-sms" in out
    code, out = run("outbox", "--json", db=db)
    assert json.loads(out)["counts"] == {}  # nothing queued
    engine = open_database(f"sqlite:///{db}")
    with engine.connect() as c:
        actions = [r[0] for r in c.exec_driver_sql("SELECT action FROM prepaid_audit ORDER BY id")]
    engine.dispose()
    assert "messages.enqueue.refused" in actions and "messages.enqueue" not in actions
    code, out = run(*args, *CS, db=db)
    assert code == 0 and "4 new message(s)" in out
