"""Reminders, dunning, customer service and anomaly orders on a real PostgreSQL (skipped
without initdb or psycopg, like the head-end's PostgreSQL tests): the partial unique
indexes, ON CONFLICT, the phone regex and the date arithmetic of that dialect."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from prepaid.anomaly_orders import list_anomaly_orders, open_anomaly_orders
from prepaid.db import open_database
from prepaid.dunning import list_records, run_dunning
from prepaid.messages import Outbox
from prepaid.reminders import run_reminders
from prepaid.service import (
    Selection,
    invalid_phones,
    list_bills,
    run_tier_reminders,
    send_custom_sms,
    send_monthly_bills,
)

from ..headend.test_postgres import pg_url
from .dunning_rig import CLERK, OPERATOR, Rig, make_rig

_ = pg_url
_names = itertools.count()


@pytest.fixture
def rig(pg_url: str, tmp_path: Path) -> Iterator[Rig]:
    name = f"feikong_dunning_{next(_names)}"
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    rig = make_rig(tmp_path, datetime(2026, 3, 1, 6, 0), url=url)
    yield rig
    rig.engine.dispose()
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_the_notification_runs_on_postgresql(rig: Rig, tmp_path: Path) -> None:
    rig.add("S1", balance=50_000, name="张三")
    rig.add("P1", balance=50_000, paper=True)
    rig.add("M1", balance=50_000, phone="1380013abcd", area="A2")
    rig.meters()
    rig.operators()
    march = [date(2026, 3, d) for d in (1, 10, 20)]
    sent = []
    for day, register in zip(march, (0, 21_000, 41_000), strict=True):
        rig.reading("S1", day, register)
        rig.reading("P1", day, register // 10)
        rig.rate(day)
        sent.append(run_tier_reminders(rig.engine, clock=rig.clock, settings=rig.settings).sent)
    # S1: tier 2 reached on 10 March (210 kWh), tier 3 on 20 March (410 kWh): once each
    assert sent == [0, 1, 1]
    assert run_tier_reminders(rig.engine, clock=rig.clock, settings=rig.settings).sent == 0

    # M1 was never read: an anomaly work order once three days are missing
    assert open_anomaly_orders(rig.engine, date(2026, 3, 3), clock=rig.clock).opened
    (order,) = list_anomaly_orders(rig.engine)
    assert (order.customer_no, order.gap_start, order.reading_since) == (
        "M1",
        date(2026, 1, 1),
        None,
    )
    assert open_anomaly_orders(rig.engine, date(2026, 3, 4), clock=rig.clock).opened == []
    rig.reading("M1", date(2026, 3, 5), 100)  # shown, closes nothing
    assert list_anomaly_orders(rig.engine, unfinished=True)[0].reading_since == date(2026, 3, 5)

    for customer in ("S1", "P1", "M1"):
        rig.balance(customer, -300)
    threads = [
        threading.Thread(
            target=run_reminders,
            kwargs={"engine": rig.engine, "clock": rig.clock, "settings": rig.settings},
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    outbox = Outbox(rig.engine, clock=rig.clock)
    assert len(outbox.messages(kind="low_balance")) == 3  # three runs at once, one each

    report = run_dunning(
        rig.engine,
        clock=rig.clock,
        by=OPERATOR,
        settings=rig.settings,
        auto=False,
        notices_dir=tmp_path / "n",
    )
    assert sorted((b.area, b.sms, b.paper, b.manual) for b in report.batches) == [
        ("A1", 1, 1, 0),
        ("A2", 0, 0, 1),
    ]
    assert (
        run_dunning(
            rig.engine, clock=rig.clock, by=OPERATOR, settings=rig.settings, auto=False
        ).records
        == 0
    )
    assert {r.method for r in list_records(rig.engine, methods=("manual",))} == {"manual"}
    assert {p.recipient.customer_no for p in invalid_phones(rig.engine, settings=rig.settings)} == {
        "M1"
    }
    campaign = send_custom_sms(
        rig.engine,
        "停电检修通知",
        by=CLERK,
        clock=rig.clock,
        selection=Selection.of(areas=["A1", "A2"]),
    )
    assert (campaign.queued, campaign.invalid, campaign.skipped_paper) == (1, 1, 1)

    rig.reading("S1", date(2026, 4, 1), 45_000)
    rig.rate(date(2026, 4, 1))
    rig.clock.set(datetime(2026, 4, 2, 9, 0))
    bills = send_monthly_bills(rig.engine, date(2026, 3, 1), clock=rig.clock, settings=rig.settings)
    assert bills.sent == 1  # P1 has no reading on 1 April, M1 none at all
    assert list_bills(rig.engine)[0].usage_ckwh == 45_000
