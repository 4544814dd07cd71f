"""MqttTransport and MqttFrameServer against a real mosquitto (started by tests/conftest.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from protocol.address import Address
from protocol.errors import ResponseTimeoutError, TransportError
from protocol.frame import Frame, encode_frame
from protocol.transport import (
    MqttFrameServer,
    MqttTransport,
    meter_topic,
    open_frame_server,
    open_transport,
)
from tests.conftest import Mosquitto

from .conftest import LogEvents

pytestmark = pytest.mark.broker

METER = Address("123456781012")
# DL/T 645-2007 read of 00000000 to 123456781012 and the meter's reply (50.50 kWh), no FE
READ_REQUEST = bytes.fromhex("68 12 10 78 56 34 12 68 11 04 33 33 33 33 E7 16")
REPLY_5050 = bytes.fromhex("68 12 10 78 56 34 12 68 91 08 33 33 33 33 83 83 33 33 D7 16")


def read(address: str) -> Frame:
    return Frame(Address(address), 0x11, bytes(4))


def reply(address: str, value: str = "50500000") -> Frame:
    return Frame(Address(address), 0x91, bytes(4) + bytes.fromhex(value))


async def answer_reads(frame: Frame) -> Frame | None:
    return reply(frame.address) if frame.function == 0x11 else None


@pytest.fixture
async def raw(mosquitto: Mosquitto) -> AsyncIterator[aiomqtt.Client]:
    """A plain MQTT client: a DTU-style meter or a master written by someone else."""
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as client:
        yield client


def test_topics() -> None:
    assert meter_topic("feikong/meters", METER, "down") == "feikong/meters/123456781012/down"
    assert meter_topic("a/b", "AAAAAAAAAAAA", "up") == "a/b/AAAAAAAAAAAA/up"


async def test_request_goes_to_the_meters_down_topic_and_the_reply_comes_up(
    mosquitto: Mosquitto, mqtt_prefix: str, raw: aiomqtt.Client
) -> None:
    """Against a raw MQTT 'meter': the exact topic and bytes of the standard example."""
    await raw.subscribe(f"{mqtt_prefix}/+/down")
    got: list[tuple[str, bytes]] = []

    async def dtu_meter() -> None:
        async for message in raw.messages:
            assert isinstance(message.payload, bytes)
            got.append((message.topic.value, message.payload))
            await raw.publish(meter_topic(mqtt_prefix, METER, "up"), REPLY_5050)
            return

    meter = asyncio.create_task(dtu_meter())
    async with open_transport(f"{mosquitto.url}/{mqtt_prefix}?timeout=5") as client:
        assert client.url == f"{mosquitto.url}/{mqtt_prefix}"
        assert await client.request(read(METER)) == reply(METER)
    await meter
    assert got == [(f"{mqtt_prefix}/{METER}/down", READ_REQUEST)]


async def test_server_answers_a_wildcard_request_on_the_meters_own_topic(
    mosquitto: Mosquitto, mqtt_prefix: str, raw: aiomqtt.Client
) -> None:
    async def meter(frame: Frame) -> Frame | None:
        if frame.function == 0x13 and frame.address.matches(METER):
            return Frame(METER, 0x93, METER.wire)
        return None

    async with open_frame_server(f"{mosquitto.url}/{mqtt_prefix}", meter) as server:
        await raw.subscribe(f"{mqtt_prefix}/+/up")
        wildcard = Address("AAAAAAAAAAAA")
        await raw.publish(
            meter_topic(mqtt_prefix, wildcard, "down"), encode_frame(Frame(wildcard, 0x13))
        )
        async with asyncio.timeout(5):
            message = await anext(raw.messages)
        assert message.topic.value == f"{mqtt_prefix}/{METER}/up"
        assert message.payload == encode_frame(Frame(METER, 0x93, METER.wire), 0)
        assert server.stats.replies_sent == 1


async def test_requests_to_different_meters_are_in_flight_together(
    mosquitto: Mosquitto, mqtt_prefix: str
) -> None:
    meters = [Address(f"0000000000{n:02d}") for n in range(1, 11)]
    arrived: list[str] = []
    all_in = asyncio.Event()

    async def gateway(frame: Frame) -> Frame | None:
        arrived.append(frame.address)
        if len(arrived) == len(meters):
            all_in.set()
        await all_in.wait()  # answers only once every request is in
        return reply(frame.address, f"{int(frame.address):08d}")

    async with (
        MqttFrameServer(gateway, mosquitto.host, mosquitto.port, mqtt_prefix) as server,
        MqttTransport(mosquitto.host, mosquitto.port, mqtt_prefix, response_timeout=5) as client,
    ):
        answers = await asyncio.gather(*(client.request(read(a)) for a in meters))
    assert answers == [reply(a, f"{int(a):08d}") for a in meters]
    assert sorted(arrived) == meters
    assert (client.stats.ignored_frames, server.stats.replies_sent) == (0, 10)


async def test_requests_to_one_meter_go_one_after_the_other(
    mosquitto: Mosquitto, mqtt_prefix: str
) -> None:
    seen: list[bytes] = []
    release = asyncio.Event()
    first_in = asyncio.Event()

    async def meter(frame: Frame) -> Frame | None:
        seen.append(frame.data[:4])
        first_in.set()
        await release.wait()
        return Frame(frame.address, 0x91, frame.data[:4] + bytes(4))

    async with (
        MqttFrameServer(meter, mosquitto.host, mosquitto.port, mqtt_prefix),
        MqttTransport(mosquitto.host, mosquitto.port, mqtt_prefix, response_timeout=5) as client,
    ):
        first = asyncio.create_task(client.request(Frame(METER, 0x11, bytes(4))))
        second = asyncio.create_task(client.request(Frame(METER, 0x11, bytes.fromhex("00000200"))))
        await first_in.wait()
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(seen) == 1
        release.set()
        await asyncio.gather(first, second)
    assert seen == [bytes(4), bytes.fromhex("00000200")]


async def test_frame_on_another_meters_topic_is_ignored(
    mosquitto: Mosquitto, mqtt_prefix: str, raw: aiomqtt.Client, log_events: LogEvents
) -> None:
    ignored = log_events.watch("came on the topic of")
    async with MqttFrameServer(answer_reads, mosquitto.host, mosquitto.port, mqtt_prefix) as server:
        await raw.publish(meter_topic(mqtt_prefix, "000000000001", "down"), READ_REQUEST)
        async with asyncio.timeout(5):
            await ignored.wait()
        stats = server.stats
    assert (stats.frames_received, stats.ignored_frames, stats.replies_sent) == (0, 1, 0)


async def test_garbage_payloads_are_counted_not_fatal(
    mosquitto: Mosquitto, mqtt_prefix: str, raw: aiomqtt.Client
) -> None:
    async with MqttFrameServer(answer_reads, mosquitto.host, mosquitto.port, mqtt_prefix) as server:
        await raw.subscribe(f"{mqtt_prefix}/+/up")
        topic = meter_topic(mqtt_prefix, METER, "down")
        bad = bytearray(READ_REQUEST)
        bad[-2] ^= 0xFF
        # in order on one connection: noise, a truncated frame, a checksum error, a good read
        for payload in (b"\x00\x13\x42\x16\xfe\x99", READ_REQUEST[:9], bytes(bad), READ_REQUEST):
            await raw.publish(topic, payload)
        async with asyncio.timeout(5):
            message = await anext(raw.messages)
        assert message.payload == REPLY_5050 and message.topic.value.endswith(f"{METER}/up")
        stats = server.stats
    assert stats.noise_bytes >= 5
    assert stats.partial_frames_dropped == 1
    assert stats.checksum_errors == 1
    assert (stats.frames_received, stats.replies_sent) == (1, 1)


async def test_unreachable_broker_is_a_clear_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"mqtt://127.0.0.1:{port}/feikong/meters"
    client = open_transport(f"{url}?connect_attempts=2&reconnect_delay=0.01")
    with pytest.raises(TransportError) as caught:
        await client.request(read(METER))
    message = str(caught.value)
    assert f"cannot connect to the MQTT broker at 127.0.0.1:{port} for {url}" in message
    assert "2 attempts" in message and "mosquitto" in message
    assert not isinstance(caught.value, ResponseTimeoutError)
    server = open_frame_server(f"{url}?connect_attempts=1", answer_reads)
    with pytest.raises(TransportError, match="1 attempt"):
        await server.start()
    assert not server.is_serving


async def test_broker_restart_both_ends_reconnect(private_mosquitto: Mosquitto) -> None:
    broker = private_mosquitto
    prefix = "feikong/meters"
    server = MqttFrameServer(
        answer_reads,
        broker.host,
        broker.port,
        prefix,
        reconnect_delay=0.02,
        max_reconnect_delay=0.1,
    )
    client = MqttTransport(broker.host, broker.port, prefix, response_timeout=2, connect_attempts=1)
    async with server:
        assert await client.request(read(METER)) == reply(METER)

        broker.stop()
        await client.wait_disconnected()
        with pytest.raises(TransportError, match="cannot connect to the MQTT broker"):
            await client.request(read(METER))
        assert not server.is_connected

        broker.start()
        async with asyncio.timeout(5):
            await server.wait_connected()  # the server came back by itself
        assert await client.request(read(METER)) == reply(METER)  # the client on its next request
        await client.close()
        stats = server.stats
    assert client.stats.connects == 2 and client.stats.connection_losses == 1
    assert (stats.connections, stats.replies_sent) == (2, 2)
