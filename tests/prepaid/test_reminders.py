"""Low-balance reminders: one message per episode, not per rating run (SPEC S4.1-3)."""

from __future__ import annotations

from pathlib import Path

import pytest

from prepaid.messages import MessageStatus, Outbox
from prepaid.reminders import list_reminders, run_reminders

from .dunning_rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


def _low(rig: Rig, customer_no: str) -> list[str]:
    outbox = Outbox(rig.engine, clock=rig.clock)
    return [m.text for m in outbox.messages(kind="low_balance", customer_no=customer_no)]


def test_one_reminder_per_episode_and_again_after_recovery_and_a_new_drop(rig: Rig) -> None:
    # default reminder amount 20.00 yuan (defaults.toml)
    rig.add("C1", balance=5_000)
    run = lambda: run_reminders(rig.engine, clock=rig.clock, settings=rig.settings)  # noqa: E731

    assert run().opened == 0  # 50.00 ≥ 20.00: nothing to say
    rig.next_day()
    rig.balance("C1", 1_500)  # the daily rating took it to 15.00
    first = run()
    assert (first.opened, first.sms) == (1, 1)
    texts = _low(rig, "C1")
    assert len(texts) == 1
    assert "剩余电费15.00元" in texts[0] and "低于提醒金额20.00元" in texts[0]

    for fen in (1_200, 800, 300):  # three more ratings, still low: no new message
        rig.next_day()
        rig.balance("C1", fen)
        report = run()
        assert (report.opened, report.closed) == (0, 0)
    assert len(_low(rig, "C1")) == 1

    rig.next_day()
    rig.balance("C1", 10_300)  # paid 100.00: the episode ends
    assert run().closed == 1
    assert len(_low(rig, "C1")) == 1

    rig.next_day()
    rig.balance("C1", 1_900)  # a new drop: a new episode, a new message
    assert run().opened == 1
    texts = _low(rig, "C1")
    assert len(texts) == 2 and "剩余电费19.00元" in texts[1]

    episodes = list_reminders(rig.engine, customer_no="C1")
    assert [e.open for e in episodes] == [True, False]  # newest first
    assert episodes[1].closed_balance_fen == 10_300


def test_the_reminder_amount_comes_from_the_settings_hierarchy(rig: Rig) -> None:
    rig.add("C1", balance=4_000, area="A1")
    rig.add("C2", balance=4_000, area="A2")
    rig.add("C3", balance=4_000, area="A2")
    rig.set("reminder_amount", "50.00", level="area", key="A2")
    rig.set("reminder_amount", "30.00", level="customer", key="C3")
    report = run_reminders(rig.engine, clock=rig.clock, settings=rig.settings)
    # C1: 40.00 ≥ default 20.00; C2: 40.00 < area A2's 50.00; C3: 40.00 ≥ its own 30.00
    assert report.opened == 1
    assert [e.customer_no for e in list_reminders(rig.engine)] == ["C2"]
    assert list_reminders(rig.engine)[0].reminder_fen == 5_000


def test_paper_customers_get_a_paper_notice_and_bad_phones_the_manual_list(rig: Rig) -> None:
    rig.add("P1", balance=100, paper=True)  # the account's own mode (CIS)
    rig.add("P2", balance=100, area="A2")
    rig.set("notification_mode", "paper", level="customer", key="P2")  # by the settings
    rig.add("X1", balance=100, phone="1380013")  # too short
    rig.add("S1", balance=100)
    report = run_reminders(rig.engine, clock=rig.clock, settings=rig.settings)
    assert (report.opened, report.sms, report.paper, report.invalid_phone) == (4, 1, 2, 1)
    outbox = Outbox(rig.engine, clock=rig.clock)
    status = {m.customer_no: m.status for m in outbox.messages(kind="low_balance")}
    assert status == {
        "P1": MessageStatus.PAPER,
        "P2": MessageStatus.PAPER,
        "X1": MessageStatus.INVALID_NUMBER,
        "S1": MessageStatus.QUEUED,
    }


def test_auto_reminder_off_for_an_area_is_honoured_by_the_run_after_rating(rig: Rig) -> None:
    rig.add("C1", balance=100, area="A1")
    rig.add("C2", balance=100, area="A2")
    rig.set("auto_reminder", "false", level="area", key="A2")
    auto = run_reminders(rig.engine, clock=rig.clock, settings=rig.settings)
    assert (auto.opened, auto.skipped_auto_off) == (1, 1)
    assert [e.customer_no for e in list_reminders(rig.engine)] == ["C1"]
    # an operator reminding area A2 by hand is not held back by the automatic switch
    manual = run_reminders(rig.engine, clock=rig.clock, settings=rig.settings, auto=False, by="op")
    assert manual.opened == 1
    assert {e.customer_no for e in list_reminders(rig.engine)} == {"C1", "C2"}


def test_running_again_at_once_sends_nothing_new(rig: Rig) -> None:
    for n in range(30):
        rig.add(f"C{n:02d}", balance=n * 10)
    a = run_reminders(rig.engine, clock=rig.clock, settings=rig.settings)
    b = run_reminders(rig.engine, clock=rig.clock, settings=rig.settings)
    assert (a.opened, b.opened) == (30, 0)
    assert Outbox(rig.engine, clock=rig.clock).counts() == {"queued": 30}
