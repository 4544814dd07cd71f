"""The outbox on a real PostgreSQL: the messages branch migrates, one message per episode
from concurrent writers, dispatch (the server is the head-end tests' throw-away cluster)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from prepaid.db import current_revisions, migrate, open_database
from prepaid.messages import FileSink, MessageStatus, Outbox, Recipient
from protocol.clock import SteppedClock
from tests.headend.test_postgres import pg_url  # noqa: F401 - the fixture (skips without PG)

DUNNING = {"balance": -1200, "amount_due": 5000, "pay_by": datetime(2026, 3, 8, 18, 0)}


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:  # noqa: F811 - uses the imported fixture
    engine = open_database(pg_url)
    migrate(engine)
    yield engine
    with engine.begin() as c:
        c.execute(text("TRUNCATE prepaid_message_attempt, prepaid_message CASCADE"))
    engine.dispose()


def test_outbox_on_postgres(pg: Engine, tmp_path: Path) -> None:
    assert "m0001" in current_revisions(pg)
    outbox = Outbox(pg, clock=SteppedClock(datetime(2026, 3, 5, 8, 0)))
    created: list[bool] = []
    lock = threading.Lock()

    def worker(barrier: threading.Barrier, who: Recipient) -> None:
        barrier.wait()
        done = outbox.enqueue(who, "dunning", DUNNING, episode="arrears-1")
        with lock:
            created.append(done.created)

    for i in range(5):
        who = Recipient(f"C00{i}", "张三", f"1380013800{i}", "幸福路1号", "A01")
        barrier = threading.Barrier(3)
        threads = [threading.Thread(target=worker, args=(barrier, who)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert sorted(created) == [False] * 10 + [True] * 5
    assert len(outbox.messages()) == 5
    report = outbox.dispatch(FileSink(tmp_path / "sms.jsonl"))
    assert report.counts == {"delivered": 5}
    message = outbox.messages()[0]
    assert message.status is MessageStatus.DELIVERED
    assert message.fields["balance"] == "-12.00"  # the JSON column round-trips
    assert message.text.startswith("【费控中心】尊敬的张三")
