"""Customer service (SPEC S4.4): monthly bill SMS, custom SMS, invalid phone numbers."""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path

import pytest

from prepaid.audit import AuditLog
from prepaid.messages import MessageStatus, Outbox
from prepaid.service import (
    BillError,
    CampaignError,
    Selection,
    export_invalid_phones,
    invalid_phones,
    list_bills,
    list_campaigns,
    problem_counts,
    send_custom_sms,
    send_monthly_bills,
)
from prepaid.users import PermissionDeniedError

from .dunning_rig import CLERK, OPERATOR, Rig, make_rig

MAR1, MAR15, APR1 = date(2026, 3, 1), date(2026, 3, 15), date(2026, 4, 1)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path, start=datetime(2026, 3, 1, 6, 0))


# -- monthly bill ----------------------------------------------------------------------


def test_the_monthly_bill_of_march_with_hand_calculated_usage_and_charge(rig: Rig) -> None:
    rig.add("B1", balance=50_000, name="赵六")  # res-monthly: 0.52 to 200 kWh, 0.57 to 400
    rig.add("B2", balance=50_000)  # no reading at the end of March: no bill
    rig.add("P1", balance=50_000, paper=True)
    rig.meters()
    rig.reading("B1", MAR1, 100_000)  # 1000.00 kWh when March began
    rig.reading("B2", MAR1, 5_000)
    rig.reading("P1", MAR1, 0)
    rig.rate(MAR1)  # the baselines
    rig.reading("B1", MAR15, 110_000)
    rig.rate(MAR15)  # 100.00 kWh × 0.52 = 52.00
    rig.reading("B1", APR1, 123_456)  # 1234.56 kWh when March ended
    rig.reading("P1", APR1, 1_000)
    rig.rate(APR1)  # closes March: 234.56 kWh

    with pytest.raises(BillError, match="send it from 2026-04-01 on"):
        rig.clock.set(datetime(2026, 3, 31, 20, 0))
        send_monthly_bills(rig.engine, MAR1, clock=rig.clock, settings=rig.settings)
    rig.clock.set(datetime(2026, 4, 2, 9, 0))
    report = send_monthly_bills(rig.engine, MAR15, clock=rig.clock, settings=rig.settings)
    assert (report.sent, report.paper, report.no_reading, report.missing) == (2, 1, 1, ["B2"])

    # usage 1234.56 − 1000.00 = 234.56 kWh;
    # charge 200 × 0.52 + 34.56 × 0.57 = 104.00 + 19.6992 = 123.6992 → 123.70 yuan
    # balance 500.00 − 123.70 = 376.30 yuan
    (bill,) = list_bills(rig.engine, customer_no="B1")
    assert (bill.usage_ckwh, bill.charge_fen, bill.balance_fen) == (23_456, 12_370, 37_630)
    (message,) = Outbox(rig.engine, clock=rig.clock).messages(kind="monthly_bill", customer_no="B1")
    assert message.text == (
        "【费控中心】尊敬的赵六：您的户号B1的2026年3月账单：上月示数1000.00，本月示数1234.56，"
        "用电234.56千瓦时，电费123.70元，当前余额376.30元。"
    )
    assert message.status is MessageStatus.QUEUED
    paper = Outbox(rig.engine, clock=rig.clock).messages(kind="monthly_bill", customer_no="P1")
    assert paper[0].status is MessageStatus.PAPER and "用电10.00千瓦时" in paper[0].text

    again = send_monthly_bills(rig.engine, MAR1, clock=rig.clock, settings=rig.settings)
    assert again.sent == 0  # once per customer and month
    assert len(Outbox(rig.engine, clock=rig.clock).messages(kind="monthly_bill")) == 2


# -- custom SMS ------------------------------------------------------------------------


def test_custom_sms_to_a_chosen_set_is_recorded_and_audited(rig: Rig) -> None:
    rig.add("A1-1", balance=1, area="A1")
    rig.add("A1-2", balance=1, area="A1", phone="12345")  # invalid: stored as such
    rig.add("A1-P", balance=1, area="A1", paper=True)  # paper: left out
    rig.add("A2-1", balance=1, area="A2")
    rig.add("A2-2", balance=1, area="A2")
    text = "春节期间营业厅照常营业，祝您新春快乐！"
    with pytest.raises(PermissionDeniedError, match="send-custom-sms"):
        send_custom_sms(
            rig.engine, text, by=OPERATOR, clock=rig.clock, selection=Selection.of(areas=["A1"])
        )
    with pytest.raises(CampaignError, match="no customers chosen"):
        send_custom_sms(rig.engine, text, by=CLERK, clock=rig.clock, selection=Selection())
    with pytest.raises(CampaignError, match="no text"):
        send_custom_sms(
            rig.engine, "  ", by=CLERK, clock=rig.clock, selection=Selection.of(areas=["A1"])
        )

    preview = send_custom_sms(
        rig.engine,
        text,
        by=CLERK,
        clock=rig.clock,
        dry_run=True,
        selection=Selection.of(areas=["A1"], customers=["A2-2"]),
    )
    assert (preview.recipients, preview.skipped_paper) == (3, 1)
    assert Outbox(rig.engine, clock=rig.clock).messages(kind="custom") == []

    campaign = send_custom_sms(
        rig.engine,
        text,
        by=CLERK,
        clock=rig.clock,
        selection=Selection.of(areas=["A1"], customers=["A2-2"]),
    )
    assert (campaign.recipients, campaign.queued, campaign.invalid, campaign.skipped_paper) == (
        3,
        2,
        1,
        1,
    )
    sent = {m.customer_no: m for m in Outbox(rig.engine, clock=rig.clock).messages(kind="custom")}
    assert sorted(sent) == ["A1-1", "A1-2", "A2-2"]
    assert sent["A2-2"].text == f"【费控中心】尊敬的户A2-2：{text}"
    assert sent["A1-2"].status is MessageStatus.INVALID_NUMBER
    assert list_campaigns(rig.engine)[0].queued == 2
    audit = AuditLog(rig.engine, rig.clock)
    (entry,) = audit.query(action="sms.custom")
    assert entry.actor == "cs" and entry.details["text"] == text
    assert entry.details["selection"]["areas"] == ["A1"]
    assert [e.actor for e in audit.query(action="sms.custom.refused")] == ["op"]


# -- invalid phones --------------------------------------------------------------------


def test_invalid_phone_numbers_are_listed_and_exported(rig: Rig, tmp_path: Path) -> None:
    phones = {
        "OK1": "13800138000",
        "OK2": "+86 139 0013 9000",  # usable once normalised
        "E1": "",
        "S1": "1380013800",  # 10 digits
        "L1": "138OO138000",  # letters O for zeros
        "X1": "02087654321",  # a landline: no SMS
        "X2": "12345678901",  # 12x is not a mobile prefix
    }
    for i, (customer, phone) in enumerate(phones.items()):
        rig.add(customer, balance=1, phone=phone, area="A1" if i % 2 else "A2")
    found = list(invalid_phones(rig.engine, settings=rig.settings))
    assert {p.recipient.customer_no: p.check.problem.value for p in found if p.check.problem} == {
        "E1": "empty",
        "S1": "too-short",
        "L1": "letters",
        "X1": "bad-prefix",
        "X2": "bad-prefix",
    }
    assert problem_counts(found) == {"empty": 1, "too-short": 1, "letters": 1, "bad-prefix": 2}
    in_a1 = list(
        invalid_phones(rig.engine, settings=rig.settings, selection=Selection.of(areas=["A1"]))
    )
    assert {p.recipient.customer_no for p in in_a1} == {"S1", "X1"}

    path = tmp_path / "invalid.csv"
    assert export_invalid_phones(found, path) == 5
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel opens the Chinese names right
    rows = list(csv.DictReader(path.read_text(encoding="utf-8-sig").splitlines()))
    assert [r["customer_no"] for r in rows] == ["E1", "S1", "L1", "X1", "X2"]
    assert rows[2]["phone"] == "138OO138000" and rows[2]["problem"] == "letters"
    assert rows[0]["name"] == "户E1"


def test_no_bill_before_the_month_is_rated_to_its_end(rig: Rig) -> None:
    rig.add("B1", balance=50_000)
    rig.meters()
    rig.reading("B1", MAR1, 100_000)
    rig.rate(MAR1)
    rig.reading("B1", APR1, 123_456)  # read, but not rated yet
    rig.clock.set(datetime(2026, 4, 1, 5, 0))
    report = send_monthly_bills(rig.engine, MAR1, clock=rig.clock, settings=rig.settings)
    assert (report.sent, report.not_rated) == (0, 1)
    rig.rate(APR1)
    report = send_monthly_bills(rig.engine, MAR1, clock=rig.clock, settings=rig.settings)
    assert (report.sent, report.not_rated) == (1, 0)
    assert list_bills(rig.engine)[0].charge_fen == 12_370
