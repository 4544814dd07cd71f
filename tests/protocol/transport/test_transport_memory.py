"""The client transport's behaviour, over the in-memory null modem (with manipulators)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from protocol.address import Address
from protocol.errors import ResponseTimeoutError, TransportError
from protocol.frame import Frame, encode_frame
from protocol.transport import (
    MemoryFrameServer,
    MemoryTransport,
    memory_pair,
    open_transport,
)

METER = Address("123456781012")
READ_REQUEST = bytes.fromhex("FE FE FE FE 68 12 10 78 56 34 12 68 11 04 33 33 33 33 E7 16")
REPLY_5050 = bytes.fromhex(
    "FE FE FE FE 68 12 10 78 56 34 12 68 91 08 33 33 33 33 83 83 33 33 D7 16"
)
DI_TOTAL = bytes(4)  # 00000000: combined active energy, total

MeterFactory = Callable[[dict[str, int]], Callable[[Frame], Awaitable[Frame | None]]]


def read(address: str, di: bytes = DI_TOTAL) -> Frame:
    return Frame(Address(address), 0x11, di)


def reply(address: str, value: bytes = bytes.fromhex("50500000"), di: bytes = DI_TOTAL) -> Frame:
    return Frame(Address(address), 0x91, di + value)


async def test_request_returns_the_reply(meters: MeterFactory) -> None:
    client, server = await memory_pair(meters({METER: 5050}))
    async with server, client:
        answer = await client.request(read(METER))
    assert answer == reply(METER)
    assert encode_frame(answer) == REPLY_5050
    stats = client.stats
    assert (stats.requests, stats.replies, stats.timeouts) == (1, 1, 0)
    assert stats.bytes_sent == len(READ_REQUEST)
    assert stats.bytes_received == len(REPLY_5050)
    assert server.stats.replies_sent == 1


async def test_request_bytes_on_the_wire(meters: MeterFactory) -> None:
    written: list[bytes] = []

    def spy(data: bytes) -> list[bytes]:
        written.append(data)
        return [data]

    client, server = await memory_pair(meters({METER: 5050}), client_manipulator=spy)
    async with server, client:
        await client.request(read(METER))
    assert written == [READ_REQUEST]


async def test_reply_split_into_single_bytes_after_noise(meters: MeterFactory) -> None:
    def split_after_noise(data: bytes) -> list[bytes]:
        return [b"\x00\x68\x12junk\x16", *(data[i : i + 1] for i in range(len(data)))]

    client, server = await memory_pair(meters({METER: 5050}), server_manipulator=split_after_noise)
    async with server, client:
        assert await client.request(read(METER)) == reply(METER)
    assert client.stats.noise_bytes > 0
    assert client.stats.replies == 1


async def test_corrupted_reply_is_dropped_and_times_out(meters: MeterFactory) -> None:
    def corrupt(data: bytes) -> list[bytes]:
        garbled = bytearray(data)
        garbled[-4] ^= 0x01  # a data byte: the checksum no longer matches
        return [bytes(garbled)]

    client, server = await memory_pair(
        meters({METER: 5050}), server_manipulator=corrupt, response_timeout=0.2
    )
    async with server, client:
        with pytest.raises(ResponseTimeoutError, match=METER):
            await client.request(read(METER))
        assert client.stats.checksum_errors == 1
        assert client.stats.timeouts == 1
        # The link is still good: the next reply gets through.
        server.manipulator = None
        assert await client.request(read(METER)) == reply(METER)


async def test_silent_meter_times_out_naming_address_and_timeout(meters: MeterFactory) -> None:
    client, server = await memory_pair(meters({}), response_timeout=0.2)
    async with server, client:
        with pytest.raises(ResponseTimeoutError) as caught:
            await client.request(read(METER))
    assert METER in str(caught.value)
    assert "0.2 s" in str(caught.value)
    assert isinstance(caught.value, TransportError)


async def test_per_request_timeout_overrides_the_default(meters: MeterFactory) -> None:
    client, server = await memory_pair(meters({}), response_timeout=30)
    async with server, client:
        with pytest.raises(ResponseTimeoutError, match=r"0\.1 s"):
            await client.request(read(METER), timeout=0.1)


async def test_truncated_reply_stalls_and_times_out(meters: MeterFactory) -> None:
    """A reply that starts but never ends: dropped after the inter-byte timeout."""

    def truncate(data: bytes) -> list[bytes]:
        return [data[:12]]

    client, server = await memory_pair(
        meters({METER: 5050}),
        server_manipulator=truncate,
        response_timeout=0.1,
        inter_byte_timeout=0.1,
    )
    async with server, client:
        with pytest.raises(ResponseTimeoutError):
            await client.request(read(METER))
    assert client.stats.partial_frames_dropped == 1


async def test_echo_other_meters_and_stray_frames_are_ignored(meters: MeterFactory) -> None:
    other = "123456781013"
    noise: list[bytes] = [
        READ_REQUEST,  # echo of our own request (2-wire RS-485)
        encode_frame(reply(other)),  # another meter's reply
        encode_frame(Frame(METER, 0x94, b"")),  # a reply to another function
        encode_frame(reply(METER, di=bytes.fromhex("00FF0000"))),  # a late reply, other DI
    ]

    def with_noise(data: bytes) -> list[bytes]:
        return [*noise, data]

    client, server = await memory_pair(meters({METER: 5050}), server_manipulator=with_noise)
    async with server, client:
        assert await client.request(read(METER)) == reply(METER)
    assert client.stats.ignored_frames == 4
    assert client.stats.frames_received == 5


async def test_late_reply_to_an_earlier_read_is_skipped(
    meters: MeterFactory,
) -> None:
    handler = meters({METER: 5050})
    sent_late: list[bytes] = []

    def hold_first(data: bytes) -> list[bytes]:
        if not sent_late:  # swallow the first reply: it will "arrive late"
            sent_late.append(data)
            return []
        return [data]

    client, server = await memory_pair(handler, server_manipulator=hold_first, response_timeout=0.1)
    async with server, client:
        with pytest.raises(ResponseTimeoutError):
            await client.request(read(METER))
        server.manipulator = lambda data: [encode_frame(reply(METER, bytes(4))), data]
        answer = await client.request(read(METER, di=bytes.fromhex("00FF0000")))
    assert answer.data[:4] == bytes.fromhex("00FF0000")


async def test_wildcard_request_accepts_the_matching_meter(meters: MeterFactory) -> None:
    async def read_address(frame: Frame) -> Frame | None:
        if frame.function == 0x13 and frame.address.matches(METER):
            return Frame(METER, 0x93, Address(METER).wire)
        return None

    client, server = await memory_pair(read_address)
    async with server, client:
        answer = await client.request(Frame(Address("AAAAAAAAAAAA"), 0x13))
        assert answer.address == METER
        answer = await client.request(Frame(Address("AAAAAA781012"), 0x13))
        assert answer.address == METER


async def test_broadcast_is_sent_not_requested() -> None:
    seen: list[Frame] = []
    got_it = asyncio.Event()

    async def handler(frame: Frame) -> Frame | None:
        seen.append(frame)
        got_it.set()
        return None

    sync = Frame(Address("999999999999"), 0x08, bytes.fromhex("000030121126"))
    client, server = await memory_pair(handler)
    async with server, client:
        with pytest.raises(TransportError, match="send"):
            await client.request(sync)
        await client.send(sync)
        await got_it.wait()
    assert seen == [sync]
    assert client.stats.sent == 1


async def test_concurrent_requests_are_serialised() -> None:
    addresses = [f"12345678101{i}" for i in range(5)]
    received: list[str] = []
    first_in = asyncio.Event()
    gate = asyncio.Event()

    async def slow_first(frame: Frame) -> Frame | None:
        received.append(frame.address)
        if len(received) == 1:
            first_in.set()
            await gate.wait()
        return reply(frame.address)

    client, server = await memory_pair(slow_first)
    async with server, client:
        tasks = [asyncio.create_task(client.request(read(a))) for a in addresses]
        await first_in.wait()
        for _ in range(50):  # let every other task run as far as it can
            await asyncio.sleep(0)
        assert received == addresses[:1], "a second request went out before the first reply"
        gate.set()
        answers = await asyncio.gather(*tasks)
    assert [a.address for a in answers] == addresses
    assert received == addresses


async def test_server_stop_fails_the_waiting_request() -> None:
    arrived = asyncio.Event()

    async def never(frame: Frame) -> Frame | None:
        arrived.set()
        await asyncio.Event().wait()
        return None

    client, server = await memory_pair(never, response_timeout=30)
    async with client:
        pending = asyncio.create_task(client.request(read(METER)))
        await arrived.wait()
        await server.stop()
        with pytest.raises(TransportError, match="lost") as caught:
            await pending
        assert not isinstance(caught.value, ResponseTimeoutError)
        assert client.stats.connection_losses == 1
        await client.wait_disconnected()
        assert not client.is_open


async def test_reconnects_to_a_restarted_memory_server(meters: MeterFactory) -> None:
    server = MemoryFrameServer(meters({METER: 5050}), "restart-test")
    client = open_transport("mem://restart-test")
    assert isinstance(client, MemoryTransport)
    try:
        with pytest.raises(TransportError, match="no in-memory server"):
            await client.request(read(METER))
        async with server:
            assert await client.request(read(METER)) == reply(METER)
        await client.wait_disconnected()
        async with server:
            assert await client.request(read(METER)) == reply(METER)
    finally:
        await client.close()
    assert client.stats.connects == 2


async def test_a_name_is_served_once(meters: MeterFactory) -> None:
    async with MemoryFrameServer(meters({}), "taken"):
        with pytest.raises(TransportError, match="already served"):
            await MemoryFrameServer(meters({}), "taken").start()


async def test_handler_errors_are_logged_not_fatal() -> None:
    calls = 0

    async def flaky(frame: Frame) -> Frame | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return reply(frame.address)

    client, server = await memory_pair(flaky, response_timeout=0.1)
    async with server, client:
        with pytest.raises(ResponseTimeoutError):
            await client.request(read(METER))
        assert await client.request(read(METER)) == reply(METER)
    assert server.stats.handler_errors == 1


async def test_reply_preamble_and_delay_hook(meters: MeterFactory) -> None:
    delayed: list[Frame] = []
    received: list[bytes] = []

    async def note(frame: Frame) -> None:
        delayed.append(frame)

    def spy(data: bytes) -> list[bytes]:
        received.append(data)
        return [data]

    server = MemoryFrameServer(
        meters({METER: 5050}), reply_preamble=0, reply_delay=note, manipulator=spy
    )
    async with server, open_transport(server.url) as client:
        await client.request(read(METER))
    assert delayed == [read(METER)]
    assert received == [REPLY_5050[4:]]


async def test_closed_transport_reopens_on_next_request(meters: MeterFactory) -> None:
    client, server = await memory_pair(meters({METER: 5050}))
    async with server:
        await client.request(read(METER))
        await client.close()
        assert not client.is_open
        await client.request(read(METER))
        await client.close()
    assert client.stats.connects == 2
    assert client.stats.connection_losses == 0


async def test_request_rejects_a_reply_frame() -> None:
    client = MemoryTransport("unused")
    with pytest.raises(TransportError, match="D7"):
        await client.request(reply(METER))


async def test_close_fails_the_waiting_request() -> None:
    arrived = asyncio.Event()

    async def never(frame: Frame) -> Frame | None:
        arrived.set()
        return None

    client, server = await memory_pair(never, response_timeout=30)
    async with server:
        pending = asyncio.create_task(client.request(read(METER)))
        await arrived.wait()
        await client.close()
        with pytest.raises(TransportError, match="closed"):
            await pending


async def test_a_handler_may_return_raw_bytes_written_as_they_are() -> None:
    """Simulators send broken replies (a bad CS) by returning bytes instead of a frame."""
    bad_cs = bytearray(REPLY_5050)
    bad_cs[-2] ^= 0xFF
    replies = [bytes(bad_cs), REPLY_5050[4:]]  # the second without preamble: none is added

    async def raw(frame: Frame) -> bytes:
        return replies.pop(0)

    written: list[bytes] = []

    def record(data: bytes) -> list[bytes]:
        written.append(data)
        return [data]

    client, server = await memory_pair(raw, response_timeout=0.1)
    server.manipulator = record
    async with server, client:
        with pytest.raises(ResponseTimeoutError):
            await client.request(read(METER))
        assert client.stats.checksum_errors == 1
        assert await client.request(read(METER)) == reply(METER, bytes.fromhex("50500000"))
    assert written == [bytes(bad_cs), REPLY_5050[4:]]
    assert server.stats.replies_sent == 2 and server.stats.handler_errors == 0
