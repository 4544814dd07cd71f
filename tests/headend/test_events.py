"""Head-end events: JSON round trips, the in-process bus, and the MQTT bridge."""

from __future__ import annotations

import asyncio
import json
from datetime import date, datetime
from typing import Any

import pytest

from headend.errors import EventFormatError, MqttURLError
from headend.events import (
    CommandFailed,
    CommandSucceeded,
    Event,
    EventBus,
    JobQueued,
    MeterAlarm,
    MqttEventPublisher,
    MqttEventSubscriber,
    MqttSettings,
    ReadingCollected,
    ReadingMissing,
    event_from_json,
)

AT = datetime(2026, 3, 10, 10, 0, 5)
ADDRESS = "000000000001"


def samples() -> list[Event]:
    return [
        ReadingCollected(
            address=ADDRESS,
            at=AT,
            di="05060101",
            value="1234.56",
            quantity="forward-active-energy",
            unit="kWh",
            freeze_date=date(2026, 3, 9),
            energy_ckwh=123456,
        ),
        ReadingMissing(address=ADDRESS, at=AT, di="05060101", reason="no reply in 2 s"),
        CommandSucceeded(
            address=ADDRESS,
            at=AT,
            job_id="j-1",
            command="trip",
            attempts=2,
            relay="open",
            energy_ckwh=100050,
            reason="arrears",
            info=("direct trip",),
        ),
        CommandFailed(
            address=ADDRESS,
            at=AT,
            job_id="j-2",
            command="trip",
            reason="deadline passed",
            attempts=0,
            expired=True,
        ),
        MeterAlarm(address=ADDRESS, at=AT, alarm="esam-suspended", detail="too many MAC errors"),
        JobQueued(address=ADDRESS, at=AT, job_id="j-3", command="read", priority=5),
    ]


@pytest.mark.parametrize("event", samples(), ids=lambda e: e.kind.value)
def test_every_event_round_trips_through_json(event: Event) -> None:
    text = event.to_json()
    data = json.loads(text)
    assert data["kind"] == event.kind.value
    assert data["address"] == ADDRESS and data["at"] == "2026-03-10T10:00:05"
    assert event_from_json(text) == event
    assert event_from_json(text.encode()) == event


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("not json", "must be JSON"),
        ("[1, 2]", "JSON object"),
        ('{"kind": "teleport"}', "unknown event kind 'teleport'"),
        ('{"kind": "meter-alarm", "address": "1"}', "lacks the field 'at'"),
        (
            '{"kind": "meter-alarm", "address": "1", "at": "yesterday", "alarm": "x"}',
            "Invalid isoformat",
        ),
        (
            '{"kind": "command-failed", "address": "1", "at": "2026-01-01T00:00:00",'
            ' "job_id": "j", "command": "trip", "reason": "r", "attempts": "two"}',
            "attempts must be an integer",
        ),
    ],
)
def test_malformed_events_are_refused_with_the_reason(payload: str, message: str) -> None:
    with pytest.raises(EventFormatError, match=message):
        event_from_json(payload)


async def test_subscribers_get_the_types_they_asked_for() -> None:
    bus = EventBus()
    failures = bus.subscribe(CommandFailed)
    commands = bus.subscribe((CommandSucceeded, CommandFailed))
    everything = bus.subscribe()
    seen: list[str] = []
    bus.on(lambda e: seen.append(e.kind.value), ReadingCollected)
    for event in samples():
        bus.publish(event)
    assert [e.kind.value for e in drain(failures)] == ["command-failed"]
    assert [e.kind.value for e in drain(commands)] == ["command-succeeded", "command-failed"]
    assert len(drain(everything)) == len(samples())
    assert seen == ["reading-collected"]


def drain(sub: Any) -> list[Event]:
    out = []
    while (event := sub.get_nowait()) is not None:
        out.append(event)
    return out


async def test_async_iteration_ends_when_the_subscription_closes() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    got: list[Event] = []

    async def consume() -> None:
        async for event in sub:
            got.append(event)

    task = asyncio.create_task(consume())
    for event in samples()[:3]:
        bus.publish(event)
    await asyncio.sleep(0)
    sub.close()
    await asyncio.wait_for(task, 1)
    assert got == samples()[:3]
    assert bus.subscribers == 0


async def test_a_slow_subscriber_loses_events_but_never_blocks_the_publisher() -> None:
    bus = EventBus(queue_size=3)
    slow = bus.subscribe()
    fast_seen: list[Event] = []
    bus.on(fast_seen.append)
    events = [JobQueued(address=ADDRESS, at=AT, job_id=f"j-{i}", command="read") for i in range(10)]
    for event in events:
        bus.publish(event)  # synchronous: returns at once although nobody reads `slow`
    assert fast_seen == events
    assert [e.job_id for e in drain(slow) if isinstance(e, JobQueued)] == ["j-0", "j-1", "j-2"]
    assert slow.dropped == 7 and bus.dropped == 7
    slow.close()
    assert bus.dropped == 7  # closed subscribers' losses stay counted


async def test_a_failing_callback_does_not_reach_the_publisher() -> None:
    bus = EventBus()
    sub = bus.subscribe()

    def broken(_: Event) -> None:
        raise RuntimeError("subscriber bug")

    off = bus.on(broken)
    bus.publish(samples()[0])
    assert bus.callback_errors == 1 and drain(sub) == [samples()[0]]
    off()
    bus.publish(samples()[0])
    assert bus.callback_errors == 1


async def test_remote_events_can_be_left_out() -> None:
    bus = EventBus()
    local_only = bus.subscribe(include_remote=False)
    every = bus.subscribe()
    bus.publish(samples()[0], remote=True)
    bus.publish(samples()[1])
    assert drain(local_only) == [samples()[1]]
    assert drain(every) == samples()[:2]


def test_mqtt_urls() -> None:
    s = MqttSettings.from_url("mqtt://u:p%40ss@broker.example:1884/site/a/events")
    assert (s.host, s.port, s.prefix, s.username, s.password) == (
        "broker.example",
        1884,
        "site/a/events",
        "u",
        "p@ss",
    )
    assert MqttSettings.from_url("mqtt://127.0.0.1").port == 1883
    assert MqttSettings.from_url("mqtt://127.0.0.1").prefix == "feikong/events"
    for bad in ("tcp://127.0.0.1:1883", "mqtt://", "mqtt://h:port", "mqtt://h/a/#"):
        with pytest.raises(MqttURLError, match="mqtt://"):
            MqttSettings.from_url(bad)


# --------------------------------------------------------------------------- MQTT bridge


async def test_events_cross_processes_over_a_real_broker(mosquitto: Any, mqtt_prefix: str) -> None:
    """Head-end bus → MQTT → another bus: the same events come out, remote-marked."""
    url = f"{mosquitto.url}/{mqtt_prefix}/events"
    headend_bus, prepaid_bus = EventBus(), EventBus()
    received = prepaid_bus.subscribe()
    local_only = prepaid_bus.subscribe(include_remote=False)
    async with (
        MqttEventSubscriber(prepaid_bus, url) as subscriber,
        MqttEventPublisher(headend_bus, url) as publisher,
    ):
        await subscriber.wait_connected()
        await publisher.wait_connected()
        for event in samples():
            headend_bus.publish(event)
        got = [await asyncio.wait_for(received.get(), 5) for _ in samples()]
        await publisher.drain()
    assert got == samples()
    assert publisher.sent == len(samples()) and subscriber.received == len(samples())
    assert local_only.get_nowait() is None  # they arrived from MQTT: remote


async def test_the_topic_is_the_event_kind_and_bad_messages_are_counted(
    mosquitto: Any, mqtt_prefix: str
) -> None:
    import aiomqtt

    prefix = f"{mqtt_prefix}/events"
    bus = EventBus()
    sub = bus.subscribe()
    async with (
        MqttEventSubscriber(bus, f"{mosquitto.url}/{prefix}") as subscriber,
        aiomqtt.Client(mosquitto.host, mosquitto.port) as raw,
    ):
        await subscriber.wait_connected()
        await raw.subscribe(f"{prefix}/#")
        await raw.publish(f"{prefix}/command-failed", b"{not json", qos=1)
        await raw.publish(f"{prefix}/meter-alarm", samples()[4].to_json(), qos=1)
        event = await asyncio.wait_for(sub.get(), 5)
        assert event == samples()[4]
        assert subscriber.rejected == 1
        # the publisher side puts each kind on its own topic
        async with MqttEventPublisher(EventBus(), f"{mosquitto.url}/{prefix}") as publisher:
            await publisher.wait_connected()
            publisher.bus.publish(samples()[2])
            async for message in raw.messages:
                if message.topic.value == f"{prefix}/command-succeeded":
                    assert event_from_json(bytes(message.payload)) == samples()[2]  # type: ignore[arg-type]
                    break


async def test_the_publisher_reconnects_and_sends_what_waited(
    private_mosquitto: Any, mqtt_prefix: str
) -> None:
    from protocol import SteppedClock

    url = f"{private_mosquitto.url}/{mqtt_prefix}"
    bus = EventBus()
    clock = SteppedClock()
    async with MqttEventPublisher(bus, url, clock=clock) as publisher:
        await publisher.wait_connected()
        private_mosquitto.stop()
        bus.publish(samples()[0])  # the broker is down: the event waits
        await publisher.wait_disconnected()
        assert publisher.sent == 0 and not publisher.connected.is_set()
        assert clock.pending == 1  # it waits for the backoff on the clock
        private_mosquitto.start()
        await clock.advance(1)  # the backoff is on the clock
        await publisher.wait_connected()
        await publisher.drain()
        assert publisher.sent == 1 and publisher.connects == 2
