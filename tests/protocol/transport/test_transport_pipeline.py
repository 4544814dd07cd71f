"""Pipelining on TCP: many requests to distinct meters in flight on one gateway connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from protocol.address import Address
from protocol.errors import ResponseTimeoutError, TransportError
from protocol.frame import Frame, encode_frame
from protocol.parser import StreamParser
from protocol.transport import TcpFrameServer, TcpTransport, open_transport

from .conftest import LogEvents

ENERGY = bytes(4)  # DI 00000000, combined active energy
DAILY_FREEZE = bytes.fromhex("01010605")  # DI 05060101 as sent (low byte first)
METERS = [Address(f"0000000000{n:02d}") for n in range(1, 9)]

Handler = Callable[[Frame], Awaitable[Frame | bytes | None]]


def read(address: str, di: bytes = ENERGY) -> Frame:
    return Frame(Address(address), 0x11, di)


def reply(address: str, value: int, di: bytes = ENERGY) -> Frame:
    """A normal read reply: the DI, then a 4-byte BCD value (hundredths of kWh)."""
    return Frame(Address(address), 0x91, di + bytes.fromhex(f"{value:08d}")[::-1])


def value_of(address: str) -> int:
    """Each meter's own reading, so a reply given to the wrong request shows."""
    return int(address) * 111


async def spin() -> None:
    """Let every task run as far as it can (no time passes)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_all_requests_are_out_before_any_reply_and_replies_come_back_reversed() -> None:
    arrived: list[str] = []
    all_in = asyncio.Event()
    answered: dict[str, asyncio.Event] = {a: asyncio.Event() for a in METERS}
    sent_order: list[str] = []

    async def gateway(frame: Frame) -> Frame | None:
        arrived.append(frame.address)
        if len(arrived) == len(METERS):
            all_in.set()
        await all_in.wait()  # with one request at a time this would never happen
        index = METERS.index(frame.address)
        if index + 1 < len(METERS):  # answer in reverse order: wait for the next meter
            await answered[METERS[index + 1]].wait()
        sent_order.append(frame.address)
        answered[frame.address].set()
        return reply(frame.address, value_of(frame.address))

    async with (
        TcpFrameServer(gateway) as server,
        TcpTransport("127.0.0.1", server.port, max_in_flight=8, response_timeout=5) as client,
    ):
        answers = await asyncio.gather(*(client.request(read(a)) for a in METERS))
    assert sent_order == METERS[::-1]
    assert answers == [reply(a, value_of(a)) for a in METERS]
    stats = client.stats
    assert (stats.requests, stats.replies, stats.ignored_frames, stats.in_flight) == (8, 8, 0, 0)
    assert server.stats.replies_sent == 8


async def test_no_more_than_max_in_flight_requests_are_outstanding() -> None:
    outstanding = 0
    peak = 0
    release = asyncio.Event()
    full = asyncio.Event()

    async def gateway(frame: Frame) -> Frame | None:
        nonlocal outstanding, peak
        outstanding += 1
        peak = max(peak, outstanding)
        if outstanding == 3:
            full.set()
        await release.wait()
        outstanding -= 1
        return reply(frame.address, value_of(frame.address))

    addresses = [Address(f"0000000001{n:02d}") for n in range(12)]
    async with (
        TcpFrameServer(gateway) as server,
        open_transport(f"tcp://127.0.0.1:{server.port}?pipeline=3&timeout=5") as client,
    ):
        tasks = [asyncio.create_task(client.request(read(a))) for a in addresses]
        await full.wait()
        await spin()
        assert client.stats.in_flight == 3
        assert server.stats.frames_received == 3, "a 4th request went out with 3 in flight"
        release.set()
        answers = await asyncio.gather(*tasks)
    assert peak == 3
    assert [a.address for a in answers] == addresses


async def test_requests_to_one_meter_wait_for_each_other() -> None:
    seen: list[bytes] = []
    first_in = asyncio.Event()
    release = asyncio.Event()

    async def meter(frame: Frame) -> Frame | None:
        seen.append(frame.data[:4])
        first_in.set()
        await release.wait()
        return reply(frame.address, 1, frame.data[:4])

    async with (
        TcpFrameServer(meter) as server,
        TcpTransport("127.0.0.1", server.port, max_in_flight=8, response_timeout=5) as client,
    ):
        energy = asyncio.create_task(client.request(read(METERS[0], ENERGY)))
        freeze = asyncio.create_task(client.request(read(METERS[0], DAILY_FREEZE)))
        await first_in.wait()
        await spin()
        assert seen == [ENERGY], "the second request to the meter went out before the reply"
        release.set()
        assert (await energy).data[:4] == ENERGY
        assert (await freeze).data[:4] == DAILY_FREEZE
    assert seen == [ENERGY, DAILY_FREEZE]


async def test_late_reply_in_a_pipeline_is_counted_and_never_given_to_another_request(
    log_events: LogEvents,
) -> None:
    """Meter 1 answers after its request timed out, while requests to 2 and 3 are out."""
    late, m2, m3 = METERS[:3]
    release_late = asyncio.Event()
    late_dropped = log_events.watch(f"ignored 91 (reply, READ) from {late}")

    async def gateway(frame: Frame) -> Frame | None:
        if frame.address == late:
            await release_late.wait()
        elif frame.address == m2:
            release_late.set()  # the late reply goes out now, before ours
            async with asyncio.timeout(5):
                await late_dropped.wait()
        return reply(frame.address, value_of(frame.address))

    async with (
        TcpFrameServer(gateway) as server,
        TcpTransport("127.0.0.1", server.port, max_in_flight=4, response_timeout=0.3) as client,
    ):
        with pytest.raises(ResponseTimeoutError, match=f"no reply from meter {late} within 0.3 s"):
            await client.request(read(late))
        answers = await asyncio.gather(
            client.request(read(m2), timeout=5), client.request(read(m3), timeout=5)
        )
    assert list(answers) == [reply(m2, value_of(m2)), reply(m3, value_of(m3))]
    stats = client.stats
    assert (stats.timeouts, stats.replies, stats.ignored_frames) == (1, 2, 1)


async def test_reply_from_the_wrong_address_does_not_answer_that_meters_request() -> None:
    """Meter 1 answers in meter 2's name while meter 2's read of another DI is in flight."""
    m1, m2 = METERS[:2]
    impostor_sent = asyncio.Event()

    async def gateway(frame: Frame) -> Frame | None:
        if frame.address == m1:
            impostor_sent.set()
            return reply(m2, 999999, frame.data[:4])  # m2's address, m1's DI
        await impostor_sent.wait()
        return reply(m2, value_of(m2), frame.data[:4])

    async with (
        TcpFrameServer(gateway) as server,
        TcpTransport("127.0.0.1", server.port, max_in_flight=4, response_timeout=0.5) as client,
    ):
        m2_read = asyncio.create_task(client.request(read(m2, DAILY_FREEZE)))
        with pytest.raises(ResponseTimeoutError):
            await client.request(read(m1, ENERGY))
        assert await m2_read == reply(m2, value_of(m2), DAILY_FREEZE)
    assert client.stats.ignored_frames == 1


async def test_a_wildcard_request_has_the_link_to_itself() -> None:
    """Its reply address is unknown in advance, so nothing else may be in flight with it."""
    meter = Address("123456781012")
    arrived: list[str] = []
    outstanding = 0
    outstanding_at_wildcard: list[int] = []
    release = asyncio.Event()
    two_in = asyncio.Event()

    async def gateway(frame: Frame) -> Frame | None:
        nonlocal outstanding
        arrived.append(frame.address)
        if frame.function == 0x13:
            outstanding_at_wildcard.append(outstanding)
            return Frame(meter, 0x93, meter.wire)
        outstanding += 1
        if len(arrived) == 2:
            two_in.set()
        await release.wait()
        outstanding -= 1
        return reply(frame.address, 1)

    async with (
        TcpFrameServer(gateway) as server,
        TcpTransport("127.0.0.1", server.port, max_in_flight=8, response_timeout=5) as client,
    ):
        reads = [asyncio.create_task(client.request(read(a))) for a in METERS[:2]]
        await two_in.wait()
        who = asyncio.create_task(client.request(Frame(Address("AAAAAAAAAAAA"), 0x13)))
        await spin()
        assert arrived == METERS[:2], "the wildcard request went out while others were in flight"
        release.set()
        assert (await who).address == meter
        await asyncio.gather(*reads)
    assert outstanding_at_wildcard == [0]


async def test_connection_lost_fails_every_request_in_flight() -> None:
    arrived = 0
    all_in = asyncio.Event()

    async def hang(frame: Frame) -> Frame | None:
        nonlocal arrived
        arrived += 1
        if arrived == 5:
            all_in.set()
        await asyncio.Event().wait()
        return None

    server = TcpFrameServer(hang)
    await server.start()
    async with TcpTransport("127.0.0.1", server.port, max_in_flight=8, response_timeout=30) as t:
        tasks = [asyncio.create_task(t.request(read(a))) for a in METERS[:5]]
        await all_in.wait()
        await server.stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert t.stats.in_flight == 0
    for result in results:
        assert isinstance(result, TransportError) and "lost" in str(result)
        assert not isinstance(result, ResponseTimeoutError)


async def test_server_answers_every_frame_of_one_chunk() -> None:
    """A pipelining master writes many requests at once: all are answered."""

    async def meters(frame: Frame) -> Frame | None:
        return reply(frame.address, value_of(frame.address))

    async with TcpFrameServer(meters) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"".join(encode_frame(read(a)) for a in METERS))
        parser = StreamParser()
        frames: list[Frame] = []
        while len(frames) < len(METERS):
            frames += parser.feed(await reader.read(4096))
        writer.close()
        await writer.wait_closed()
    assert sorted(frames) == sorted(reply(a, value_of(a)) for a in METERS)


def test_pipelining_options_are_validated() -> None:
    with pytest.raises(TransportError, match="max_in_flight must be >= 1"):
        TcpTransport("127.0.0.1", 1, max_in_flight=0)
    with pytest.raises(TransportError, match="max_in_flight must be an integer"):
        TcpTransport("127.0.0.1", 1, max_in_flight=True)
    with pytest.raises(TransportError, match="inter_frame_gap is for a half-duplex line"):
        TcpTransport("127.0.0.1", 1, max_in_flight=4, inter_frame_gap=0.05)


class EagerMeters:
    """A handler object that says it may run at once, as a fleet of in-process meters does.

    Meter 01 answers only once ``release`` is set (its handler must wait, so the
    server finishes it in a task); the others answer without waiting.
    """

    answers_eagerly = True

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.waiting = 0

    async def handle(self, frame: Frame) -> Frame:
        if frame.address == METERS[0]:
            self.waiting += 1
            await self.release.wait()
        return reply(frame.address, value_of(frame.address))


async def test_an_eager_server_answers_at_once_and_a_waiting_meter_later() -> None:
    meters = EagerMeters()
    server = TcpFrameServer(meters.handle, "127.0.0.1", 0)
    assert server.eager  # the handler's object asked for it
    async with server, TcpTransport("127.0.0.1", server.port, max_in_flight=8) as link:
        slow = asyncio.create_task(link.request(read(METERS[0])))
        answers = await asyncio.gather(*(link.request(read(a)) for a in METERS[1:]))
        assert [r.data[4:] for r in answers] == [
            bytes.fromhex(f"{value_of(a):08d}")[::-1] for a in METERS[1:]
        ]
        assert not slow.done() and meters.waiting == 1
        meters.release.set()
        late = await asyncio.wait_for(slow, 5)
        assert (
            late.address == METERS[0]
            and late.data[4:] == bytes.fromhex(f"{value_of(METERS[0]):08d}")[::-1]
        )
        # a meter still waiting when the server stops: its answer is cancelled cleanly
        meters.release.clear()
        pending = asyncio.create_task(link.request(read(METERS[0]), timeout=5))
        while meters.waiting < 2:
            await asyncio.sleep(0.01)
    with pytest.raises(TransportError):
        await pending
    assert server.stats.handler_errors == 0
