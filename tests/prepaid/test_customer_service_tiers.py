"""Tier reminders after the daily rating (SPEC S4.4-4): at the crossing only, once per tier."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from prepaid.messages import Outbox
from prepaid.service import run_tier_reminders

from .dunning_rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path, start=datetime(2026, 3, 1, 6, 0))


def _tier_texts(rig: Rig, customer_no: str) -> list[str]:
    outbox = Outbox(rig.engine, clock=rig.clock)
    return [m.text for m in outbox.messages(kind="tier_reached", customer_no=customer_no)]


def test_a_tier_reminder_at_each_crossing_and_never_in_between(rig: Rig) -> None:
    # res-monthly: tier 1 up to 200 kWh a month (0.52), tier 2 to 400 (0.57), tier 3 (0.82)
    rig.add("T1", balance=100_000, name="钱七")
    rig.add("T2", balance=100_000)  # stays in tier 1
    rig.meters()
    # (day, T1's register in 0.01 kWh, T1's tier after rating, reminders sent by then)
    days = [
        (date(2026, 3, 1), 0, "baseline", 0),
        (date(2026, 3, 5), 15_000, "150 kWh: tier 1", 0),
        (date(2026, 3, 10), 21_000, "210 kWh: tier 2 → one reminder", 1),
        (date(2026, 3, 11), 30_000, "300 kWh: tier 2, already told", 1),
        (date(2026, 3, 20), 41_000, "410 kWh: tier 3 → one reminder", 2),
        (date(2026, 3, 25), 45_000, "450 kWh: tier 3, already told", 2),
        (date(2026, 4, 2), 46_000, "a new month: tier 1 again", 2),
        (date(2026, 4, 20), 68_000, "April: 221.25 kWh, tier 2 of April → one reminder", 3),
    ]
    for n, (day, register, why, expected) in enumerate(days):
        rig.reading("T1", day, register)
        rig.reading("T2", day, n * 100)
        rig.rate(day)
        run_tier_reminders(rig.engine, clock=rig.clock, settings=rig.settings)
        run_tier_reminders(rig.engine, clock=rig.clock, settings=rig.settings)  # twice: no harm
        assert len(_tier_texts(rig, "T1")) == expected, why
    texts = _tier_texts(rig, "T1")
    assert texts[0] == (
        "【费控中心】尊敬的钱七：您的户号T1本期用电已达210.00千瓦时，进入第2档阶梯，"
        "电价0.5700元/千瓦时。"
    )
    assert "已达410.00千瓦时，进入第3档阶梯，电价0.8200元" in texts[1]
    # the 10 kWh between the freezes of 25 March and 2 April cover 25 March – 1 April
    # (8 days): 1 day of it, 1.25 kWh, is April's; + 220.00 kWh to 20 April = 221.25
    assert "已达221.25千瓦时，进入第2档阶梯" in texts[2]
    assert _tier_texts(rig, "T2") == []
