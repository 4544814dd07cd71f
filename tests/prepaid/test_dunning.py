"""Dunning (催费): batches per transformer area, SMS / paper / manual (SPEC S4.2-2)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from prepaid.audit import AuditLog
from prepaid.dunning import (
    DunningError,
    list_batches,
    list_records,
    overdue_records,
    print_batch,
    run_dunning,
)
from prepaid.messages import MessageStatus, Outbox
from prepaid.users import PermissionDeniedError

from .dunning_rig import CLERK, HANDLER, OPERATOR, Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    rig = make_rig(tmp_path)
    # area A1: two SMS customers, a paper customer, two without a usable phone,
    # one in credit and one under power guarantee; area A2: one SMS customer
    rig.add("S1", balance=-500, name="张三")
    rig.add("S2", balance=-100)
    rig.add("P1", balance=-200, paper=True, name="李四")
    rig.add("M1", balance=-300, phone="", name="王五")
    rig.add("M2", balance=-50, phone="1380013abcd")
    rig.add("OK", balance=1_000)
    rig.add("G1", balance=-900, guarantee=True)
    rig.add("S3", balance=-300, area="A2")
    return rig


def test_a_batch_per_area_split_into_sms_paper_and_manual(rig: Rig, tmp_path: Path) -> None:
    report = run_dunning(
        rig.engine,
        clock=rig.clock,
        by=OPERATOR,
        settings=rig.settings,
        auto=False,
        notices_dir=tmp_path / "notices",
    )
    batches = {b.area: b for b in report.batches}
    assert sorted(batches) == ["A1", "A2"]
    a1 = batches["A1"]
    assert a1.batch_no == "DN20260302-A1-01"
    assert (a1.records, a1.sms, a1.paper, a1.manual) == (5, 2, 1, 2)
    assert (batches["A2"].sms, batches["A2"].paper + batches["A2"].manual) == (1, 0)
    assert report.skipped_guarantee == 1

    method = {r.customer_no: r.method for r in list_records(rig.engine, batch_no=a1.batch_no)}
    assert method == {"S1": "sms", "S2": "sms", "P1": "paper", "M1": "manual", "M2": "manual"}
    manual = list_records(rig.engine, methods=("paper", "manual"), open_only=True)
    assert [(r.customer_no, r.phone_problem is not None) for r in manual] == [
        ("P1", False),
        ("M1", True),
        ("M2", True),
    ]
    assert "empty" in (manual[1].phone_problem or "")
    assert "letters" in (manual[2].phone_problem or "")

    outbox = Outbox(rig.engine, clock=rig.clock)
    status = {m.customer_no: m.status for m in outbox.messages(kind="dunning")}
    assert status["S1"] is MessageStatus.QUEUED and status["S3"] is MessageStatus.QUEUED
    # the non-SMS notices were printed in the batch's file
    assert {status["P1"], status["M1"], status["M2"]} == {MessageStatus.PRINTED}
    s1 = outbox.messages(kind="dunning", customer_no="S1")[0]
    # amount due = reminder amount 20.00 − balance (−5.00) = 25.00; pay by now + 1 day
    assert "当前余额-5.00元" in s1.text and "缴纳电费25.00元以上" in s1.text
    assert "2026年3月3日 08:00" in s1.text


def test_the_paper_file_contains_each_notice_of_the_batch(rig: Rig, tmp_path: Path) -> None:
    report = run_dunning(
        rig.engine, clock=rig.clock, by=OPERATOR, settings=rig.settings, auto=False
    )
    a1 = next(b for b in report.batches if b.area == "A1")
    files = print_batch(rig.engine, a1.batch_no, tmp_path / "print", clock=rig.clock)
    assert files.count == 3
    html = files.html.read_text(encoding="utf-8")
    assert files.html.name == "DN20260302-A1-01.html"
    assert re.findall(r'data-customer="([^"]+)"', html) == ["P1", "M1", "M2"]
    assert "李四" in html and "王五" in html and "张三" not in html  # S1 got an SMS
    assert "22.00" in html  # P1: 20.00 − (−2.00)
    pages = files.text.read_text(encoding="utf-8").split("\f")
    assert len(pages) == 3 and all("DN20260302-A1-01" in p for p in pages)
    assert list_batches(rig.engine, area="A1")[0].notice_file == str(files.html)
    # printing again (a spoiled print run) writes the same notices
    again = print_batch(rig.engine, a1.batch_no, tmp_path / "again", clock=rig.clock)
    assert again.html.read_text(encoding="utf-8").count("<section") == 3
    a2 = next(b for b in report.batches if b.area == "A2")
    with pytest.raises(DunningError, match="every customer in it got an SMS"):
        print_batch(rig.engine, a2.batch_no, tmp_path / "x", clock=rig.clock)


def test_one_record_per_arrears_episode(rig: Rig) -> None:
    def run() -> int:
        report = run_dunning(
            rig.engine, clock=rig.clock, by=OPERATOR, settings=rig.settings, auto=False
        )
        return report.records

    assert run() == 6
    rig.next_day()
    assert run() == 0  # still in arrears: no second record, no second SMS
    rig.balance("S1", 5_000)  # paid
    rig.next_day()
    assert run() == 0
    assert list_records(rig.engine, customer_no="S1")[0].closed_at is not None
    rig.next_day()
    rig.balance("S1", -10)  # in arrears again: a new episode, in a new batch
    assert run() == 1
    records = list_records(rig.engine, customer_no="S1")
    assert [r.batch_no for r in records] == ["DN20260302-A1-01", "DN20260305-A1-01"]
    outbox = Outbox(rig.engine, clock=rig.clock)
    assert len(outbox.messages(kind="dunning", customer_no="S1")) == 2
    assert len(outbox.messages(kind="dunning", customer_no="S2")) == 1


def test_auto_dunning_follows_each_areas_setting(rig: Rig) -> None:
    # auto_dunning is off by default: the run after rating dunns nobody
    assert run_dunning(rig.engine, clock=rig.clock, settings=rig.settings).records == 0
    rig.set("auto_dunning", "true", level="area", key="A2")
    report = run_dunning(rig.engine, clock=rig.clock, settings=rig.settings)
    assert [b.area for b in report.batches] == ["A2"]
    assert report.batches[0].created_by == "system:dunning"
    assert report.skipped_auto_off == 6  # every candidate of A1 (G1 too)
    entries = AuditLog(rig.engine, rig.clock).query(action="dunning.batches")
    assert [e.target for e in entries] == [f"dunning:{report.batches[0].batch_no}"]


def test_only_operators_create_dunning_and_the_threshold_is_per_scope(rig: Rig) -> None:
    with pytest.raises(PermissionDeniedError, match="create-dunning"):
        run_dunning(rig.engine, clock=rig.clock, by=HANDLER, settings=rig.settings, auto=False)
    rig.set("disconnection_threshold", "-5.00", level="area", key="A1")
    rig.set("dunning_threshold", "-2.50", level="area", key="A1")  # an overdraft allowance
    report = run_dunning(rig.engine, clock=rig.clock, by=CLERK, settings=rig.settings, auto=False)
    dunned = {r.customer_no for r in list_records(rig.engine)}
    # A1: only balances below −2.50 (S1 −5.00, M1 −3.00); S2 −1.00, P1 −2.00, M2 −0.50 not
    assert dunned == {"S1", "M1", "S3"}
    assert report.records == 3


def test_records_past_their_pay_by_time_are_overdue(rig: Rig) -> None:
    run_dunning(rig.engine, clock=rig.clock, by=OPERATOR, settings=rig.settings, auto=False)
    assert overdue_records(rig.engine, rig.clock.now()) == []
    rig.balance("S2", 3_000)
    rig.clock.set(datetime(2026, 3, 3, 8, 0) + timedelta(minutes=1))
    run_dunning(rig.engine, clock=rig.clock, by=OPERATOR, settings=rig.settings, auto=False)
    due = {r.customer_no for r in overdue_records(rig.engine, rig.clock.now())}
    assert due == {"S1", "P1", "M1", "M2", "S3"}  # S2 paid: its record is closed
