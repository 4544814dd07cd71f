"""The outbox on a real (migrated) SQLite database: one message per episode, dispatch, paper."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from prepaid.db import current_revisions, migrate, open_database
from prepaid.messages import (
    Channel,
    FileSink,
    Lang,
    MessageStatus,
    MissingPlaceholderError,
    Notice,
    NoticeBatch,
    Outbox,
    OutboxError,
    Recipient,
    SendResult,
    StreamSink,
    write_batch,
)
from prepaid.messages.tables import AttemptRow, MessageRow
from protocol.clock import SteppedClock

START = datetime(2026, 3, 5, 8, 0)
ZHANG = Recipient("C001", "张三", "138-0013-8000", "幸福路1号", "A01")
DUNNING = {"balance": -1200, "amount_due": 5000, "pay_by": datetime(2026, 3, 8, 18, 0)}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 'feikong.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


@pytest.fixture
def outbox(engine: Engine, clock: SteppedClock) -> Outbox:
    return Outbox(engine, clock=clock)


def rows(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(MessageRow)).scalar_one())


def test_the_messages_branch_is_migrated(engine: Engine) -> None:
    assert "m0001" in current_revisions(engine)


def test_enqueue_renders_stores_and_fills_the_recipient(outbox: Outbox) -> None:
    done = outbox.enqueue(ZHANG, "dunning", DUNNING, episode="arrears-1")
    assert done.created
    m = done.message
    assert m.episode_key == "C001/dunning/arrears-1"
    assert m.status is MessageStatus.QUEUED
    assert (m.phone, m.phone_raw) == ("13800138000", "138-0013-8000")
    assert m.text == (
        "【费控中心】尊敬的张三：您的户号C001当前余额-12.00元，请于2026年3月8日 18:00前"
        "缴纳电费50.00元以上，逾期将按规定停电。"
    )
    assert m.body == m.text.removeprefix("【费控中心】")
    assert m.fields["balance"] == "-12.00" and m.fields["pay_by"] == "2026年3月8日 18:00"
    assert m.segments == 2  # 77 Chinese characters: more than 70
    assert (m.created_at, m.area, m.channel, m.lang) == (START, "A01", Channel.SMS, Lang.ZH)


def test_same_episode_twice_is_one_message(outbox: Outbox, engine: Engine) -> None:
    first = outbox.enqueue(ZHANG, "dunning", DUNNING, episode="arrears-1")
    # the next rating run finds the customer still in arrears, with a new balance
    again = outbox.enqueue(ZHANG, "dunning", {**DUNNING, "balance": -2400}, episode="arrears-1")
    assert not again.created
    assert again.message == first.message  # the stored one, unchanged
    assert rows(engine) == 1
    # a new arrears episode, another kind or the English text of another month: new messages
    assert outbox.enqueue(ZHANG, "dunning", DUNNING, episode="arrears-2").created
    low = {"balance": 900, "reminder": 2000, "as_of": START}
    assert outbox.enqueue(ZHANG, "low_balance", low, episode="arrears-1").created
    assert rows(engine) == 3


def test_same_episode_from_two_threads_is_one_message(outbox: Outbox, engine: Engine) -> None:
    results: dict[str, list[bool]] = {}
    ids: dict[str, set[int]] = {}
    lock = threading.Lock()

    def worker(barrier: threading.Barrier, episode: str) -> None:
        barrier.wait()
        done = outbox.enqueue(ZHANG, "dunning", DUNNING, episode=episode)
        with lock:
            results.setdefault(episode, []).append(done.created)
            ids.setdefault(episode, set()).add(done.message.id)

    for round_ in range(10):
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(target=worker, args=(barrier, f"arrears-{round_}")) for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert rows(engine) == 10
    for episode, created in results.items():
        assert sorted(created) == [False, True], episode
        assert len(ids[episode]) == 1


def test_the_unique_constraint_decides_a_race(
    outbox: Outbox, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both writers looked before either stored: the database keeps one, both get it."""
    first = outbox.enqueue(ZHANG, "dunning", DUNNING, episode="arrears-1").message
    looks: list[str] = []
    real = Outbox.get_by_episode

    def look(self: Outbox, key: str) -> object:
        looks.append(key)
        return None if len(looks) == 1 else real(self, key)  # the first look misses it

    monkeypatch.setattr(Outbox, "get_by_episode", look)
    again = outbox.enqueue(ZHANG, "dunning", {**DUNNING, "balance": -1}, episode="arrears-1")
    assert (again.created, again.message) == (False, first)
    assert len(looks) == 2 and rows(engine) == 1


def test_template_errors_store_nothing(outbox: Outbox, engine: Engine) -> None:
    with pytest.raises(MissingPlaceholderError, match="pay_by"):
        outbox.enqueue(ZHANG, "dunning", {"balance": -1200, "amount_due": 5000}, episode="e1")
    with pytest.raises(OutboxError, match="non-empty episode"):
        outbox.enqueue(ZHANG, "dunning", DUNNING, episode=" ")
    assert rows(engine) == 0


def test_invalid_number_is_not_sent_and_goes_to_the_manual_list(
    outbox: Outbox, tmp_path: Path
) -> None:
    li = Recipient("C002", "李四", "1380013800", "幸福路2号", "A01")
    wang = Recipient("C003", "王五", "", "幸福路3号", "A01")
    zhao = Recipient("C004", "赵六", "13900139000", "幸福路4号", "A01", Channel.PAPER)
    other_area = Recipient("C005", "钱七", "abc", "光明路5号", "A02")
    for who in (ZHANG, li, wang, zhao, other_area):
        outbox.enqueue(who, "dunning", DUNNING, episode="2026-03")
    li_msg = outbox.get_by_episode("C002/dunning/2026-03")
    assert li_msg is not None
    assert li_msg.status is MessageStatus.INVALID_NUMBER
    assert li_msg.error == "too-short: 10 digits; a mobile has 11"
    assert li_msg.phone is None and li_msg.phone_raw == "1380013800"
    manual = outbox.manual_list(area="A01", kind="dunning")
    assert [(m.customer_no, m.status) for m in manual] == [
        ("C002", MessageStatus.INVALID_NUMBER),
        ("C003", MessageStatus.INVALID_NUMBER),
        ("C004", MessageStatus.PAPER),
    ]
    sink = tmp_path / "sms.jsonl"
    report = outbox.dispatch(FileSink(sink))
    assert report.counts == {"delivered": 1}  # only C001; never the invalid ones
    sent = [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines()]
    assert [s["to"] for s in sent] == ["13800138000"]
    # the paper batch of area A01, then the list is done
    files = write_batch(
        NoticeBatch.of("A01-dunning-1", START, [Notice.from_message(m) for m in manual]), tmp_path
    )
    html = files.html.read_text(encoding="utf-8")
    assert all(f'data-customer="{c}"' in html for c in ("C002", "C003", "C004"))
    assert "当前余额（元）</th><td>-12.00" in html
    assert outbox.mark_printed([m.id for m in manual], "A01-dunning-1") == 3
    assert outbox.manual_list(area="A01") == []
    printed = outbox.messages(status=MessageStatus.PRINTED)
    assert {m.batch_no for m in printed} == {"A01-dunning-1"}


def test_dispatch_through_the_file_sink_records_status_and_attempts(
    outbox: Outbox, engine: Engine, clock: SteppedClock, tmp_path: Path
) -> None:
    for i in range(3):
        who = Recipient(f"C10{i}", f"客户{i}", f"1380013800{i}", "", "A01")
        outbox.enqueue(
            who, "topup", {"amount": 1000 * (i + 1), "balance": 500, "at": START}, episode="p1"
        )
    clock.set(START + timedelta(minutes=5))
    sink = tmp_path / "out" / "sms.jsonl"
    seen: list[tuple[int, int]] = []
    report = outbox.dispatch(FileSink(sink, clock=clock), progress=lambda d, t: seen.append((d, t)))
    assert report.counts == {"delivered": 3} and report.total == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]
    lines = [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines()]
    assert [line["to"] for line in lines] == ["13800138000", "13800138001", "13800138002"]
    assert lines[1]["text"].endswith("缴费20.00元已到账，当前余额5.00元。")
    assert lines[0]["at"] == "2026-03-05T08:05:00" and lines[0]["episode"] == "C100/topup/p1"
    for m in outbox.messages():
        assert m.status is MessageStatus.DELIVERED
        assert (m.attempts, m.gateway, m.delivered_at) == (1, "file", START + timedelta(minutes=5))
    assert outbox.attempts(1)[0]["outcome"] == "delivered"
    # a second run sends nothing again
    assert outbox.dispatch(FileSink(sink)).total == 0
    assert len(sink.read_text(encoding="utf-8").splitlines()) == 3
    assert outbox.counts() == {"delivered": 3}


class _Broken:
    name = "broken"

    def send(self, sms: object) -> SendResult:
        raise RuntimeError("socket closed")


def test_a_gateway_that_raises_fails_the_message_not_the_dispatcher(
    outbox: Outbox, engine: Engine
) -> None:
    outbox.enqueue(ZHANG, "dunning", DUNNING, episode="e1")
    report = outbox.dispatch(_Broken())
    assert report.counts == {"failed": 1}
    m = outbox.get_by_episode("C001/dunning/e1")
    assert m is not None and m.status is MessageStatus.FAILED
    assert m.error == "gateway broken raised RuntimeError: socket closed"
    # retried on request, up to max_attempts (3)
    outbox.dispatch(_Broken(), retry_failed=True)
    outbox.dispatch(_Broken(), retry_failed=True)
    assert outbox.dispatch(_Broken(), retry_failed=True).total == 0
    with engine.connect() as connection:
        tries = connection.execute(select(func.count()).select_from(AttemptRow)).scalar_one()
    assert tries == 3


def test_a_message_left_sending_by_a_dead_dispatcher_is_requeued(
    outbox: Outbox, engine: Engine, clock: SteppedClock
) -> None:
    outbox.enqueue(ZHANG, "dunning", DUNNING, episode="e1")
    with engine.begin() as connection:
        connection.execute(update(MessageRow).values(status="sending", claimed_at=START))
    assert outbox.requeue_stuck() == 0  # not stale yet
    clock.set(START + timedelta(minutes=11))
    sink: list[str] = []

    class _Memory:
        def write(self, text: str) -> None:
            sink.append(text)

        def flush(self) -> None:
            pass

    report = outbox.dispatch(StreamSink(_Memory(), clock=clock))  # type: ignore[arg-type]
    assert report.requeued == 1 and report.counts == {"delivered": 1}
    assert len(sink) == 1


def test_delivery_receipts(outbox: Outbox, engine: Engine) -> None:
    outbox.enqueue(ZHANG, "dunning", DUNNING, episode="e1")
    with pytest.raises(OutboxError, match="a receipt is for a sent message"):
        outbox.record_receipt(1, True)
    with engine.begin() as connection:
        connection.execute(update(MessageRow).values(status="sent"))
    assert outbox.record_receipt(1, True).status is MessageStatus.DELIVERED
    assert outbox.record_receipt(1, True).status is MessageStatus.DELIVERED  # repeated receipt
    with pytest.raises(OutboxError, match="no message 99"):
        outbox.record_receipt(99, True)


async def test_periodic_dispatch_runs_on_the_clock(
    outbox: Outbox, clock: SteppedClock, tmp_path: Path
) -> None:
    reports: asyncio.Queue[int] = asyncio.Queue()
    sink = tmp_path / "sms.jsonl"
    task = asyncio.create_task(
        outbox.run(FileSink(sink), every_s=60, on_report=lambda r: reports.put_nowait(r.total))
    )
    try:
        assert await asyncio.wait_for(reports.get(), 5) == 0  # the first run: nothing queued
        outbox.enqueue(ZHANG, "dunning", DUNNING, episode="e1")
        await clock.advance(59)
        assert reports.empty()  # not yet a minute
        await clock.advance(1)
        assert await asyncio.wait_for(reports.get(), 5) == 1
        assert len(sink.read_text(encoding="utf-8").splitlines()) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
