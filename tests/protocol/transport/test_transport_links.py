"""The same link behaviour over real TCP sockets, a pty serial line and an MQTT broker.

Noise on the line, a late reply after a timeout, an unknown address and a meter
that never answers: a master must behave the same on every medium.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from protocol.address import Address
from protocol.errors import ResponseTimeoutError
from protocol.frame import Frame, encode_frame
from protocol.transport import (
    FrameServer,
    MqttFrameServer,
    MqttTransport,
    SerialFrameServer,
    SerialTransport,
    TcpFrameServer,
    TcpTransport,
    Transport,
)

from .conftest import LogEvents, PtyNullModem

METER = Address("123456781012")
OTHER = Address("123456781013")
UNKNOWN = Address("999999990001")
ENERGY = bytes(4)
REVERSE_ENERGY = bytes.fromhex("00000200")  # DI 00020000 as sent

Handler = Callable[[Frame], Awaitable[Frame | bytes | None]]


def read(address: str, di: bytes = ENERGY) -> Frame:
    return Frame(Address(address), 0x11, di)


def reply(address: str, di: bytes = ENERGY, value: str = "50500000") -> Frame:
    return Frame(Address(address), 0x91, di + bytes.fromhex(value))


class Link:
    """Serves a handler on one medium and connects a master to it."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        self._request = request

    @contextlib.asynccontextmanager
    async def open(
        self, handler: Handler, *, timeout: float = 0.3
    ) -> AsyncIterator[tuple[Transport, FrameServer]]:
        server: FrameServer
        client: Transport
        modem: PtyNullModem | None = None
        if self.kind == "tcp":
            server = TcpFrameServer(handler)
            await server.start()
            client = TcpTransport("127.0.0.1", server.port, response_timeout=timeout)
        elif self.kind == "serial":
            # pty devices here refuse even parity: 8N1 (real RS-485 ports use 8E1)
            modem = PtyNullModem()
            server = SerialFrameServer(handler, modem.a, baudrate=9600, parity="N")
            await server.start()
            client = SerialTransport(
                modem.b, baudrate=9600, parity="N", response_timeout=timeout, inter_frame_gap=0
            )
        else:
            broker = self._request.getfixturevalue("mosquitto")
            prefix = self._request.getfixturevalue("mqtt_prefix")
            server = MqttFrameServer(handler, broker.host, broker.port, prefix)
            await server.start()
            client = MqttTransport(broker.host, broker.port, prefix, response_timeout=timeout)
        try:
            async with client:
                yield client, server
        finally:
            await server.stop()
            if modem is not None:
                modem.close()


@pytest.fixture(params=["tcp", "serial", pytest.param("mqtt", marks=pytest.mark.broker)])
def link(request: pytest.FixtureRequest) -> Link:
    return Link(request.param, request)


async def test_request_and_reply(link: Link) -> None:
    async def meter(frame: Frame) -> Frame | None:
        return reply(frame.address) if frame.address == METER else None

    async with link.open(meter) as (client, server):
        assert await client.request(read(METER)) == reply(METER)
    assert (client.stats.replies, server.stats.replies_sent) == (1, 1)


async def test_noise_around_the_reply_is_skipped(link: Link) -> None:
    noise = bytes.fromhex("00 13 68 FF 42 16")  # including a false start byte (68H)

    async def noisy(frame: Frame) -> bytes:
        return noise + encode_frame(reply(frame.address)) + noise

    async with link.open(noisy) as (client, _):
        assert await client.request(read(METER)) == reply(METER)
        assert await client.request(read(OTHER)) == reply(OTHER)
        stats = client.stats
    assert stats.replies == 2
    assert stats.noise_bytes >= len(noise) * 2
    assert stats.checksum_errors == 0


async def test_late_reply_is_not_taken_for_the_next_request(
    link: Link, log_events: LogEvents
) -> None:
    """The meter answers the first read after it timed out, while the master awaits a
    read of another DI: that late reply is skipped, not returned as the answer."""
    release_late = asyncio.Event()
    late_skipped = log_events.watch(f"ignored 91 (reply, READ) from {METER}")

    async def meter(frame: Frame) -> Frame | None:
        di = frame.data[:4]
        if di == ENERGY:
            await release_late.wait()
            return reply(METER, ENERGY, "11110000")
        release_late.set()  # the late reply goes out now, before this one
        async with asyncio.timeout(5):
            await late_skipped.wait()
        return reply(METER, di, "22220000")

    async with link.open(meter, timeout=0.3) as (client, _):
        with pytest.raises(ResponseTimeoutError, match=f"{METER} within 0.3 s"):
            await client.request(read(METER, ENERGY))
        answer = await client.request(read(METER, REVERSE_ENERGY), timeout=5)
        stats = client.stats
    assert answer == reply(METER, REVERSE_ENERGY, "22220000")
    assert (stats.timeouts, stats.replies, stats.ignored_frames) == (1, 1, 1)


async def test_unknown_address_times_out_within_the_timeout(link: Link) -> None:
    async def meter(frame: Frame) -> Frame | None:
        return reply(frame.address) if frame.address == METER else None

    async with link.open(meter, timeout=0.25) as (client, server):
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ResponseTimeoutError, match=f"no reply from meter {UNKNOWN}"):
            await client.request(read(UNKNOWN))
        waited = loop.time() - start
        assert await client.request(read(METER)) == reply(METER)  # the link is still good
    assert 0.25 <= waited < 0.25 + 0.3
    assert server.stats.silent == 1


async def test_meter_that_never_answers_does_not_hold_up_the_next(link: Link) -> None:
    """Its request times out; the next meter's request is answered at once."""
    stuck = asyncio.Event()

    async def meters(frame: Frame) -> Frame | None:
        if frame.address == METER:
            stuck.set()
            await asyncio.Event().wait()  # acts on the request, never answers
        return reply(frame.address)

    async with link.open(meters, timeout=0.25) as (client, _):
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ResponseTimeoutError):
            await client.request(read(METER))
        assert stuck.is_set()
        assert loop.time() - start < 0.25 + 0.3
        assert await client.request(read(OTHER), timeout=2) == reply(OTHER)
