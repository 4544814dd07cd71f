"""TcpTransport and TcpFrameServer over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from protocol.address import Address
from protocol.errors import ResponseTimeoutError, TransportError
from protocol.frame import Frame
from protocol.parser import StreamParser
from protocol.transport import TcpFrameServer, TcpTransport

METER = Address("123456781012")
READ_REQUEST = bytes.fromhex("FE FE FE FE 68 12 10 78 56 34 12 68 11 04 33 33 33 33 E7 16")
REPLY_5050 = bytes.fromhex(
    "FE FE FE FE 68 12 10 78 56 34 12 68 91 08 33 33 33 33 83 83 33 33 D7 16"
)

MeterFactory = Callable[[dict[str, int]], Callable[[Frame], Awaitable[Frame | None]]]


def read(address: str) -> Frame:
    return Frame(Address(address), 0x11, bytes(4))


def reply(address: str, value: str = "50500000") -> Frame:
    return Frame(Address(address), 0x91, bytes(4) + bytes.fromhex(value))


async def test_request_reply_over_tcp(meters: MeterFactory) -> None:
    async with (
        TcpFrameServer(meters({METER: 5050}), "127.0.0.1", 0) as server,
        TcpTransport("127.0.0.1", server.port) as client,
    ):
        assert server.port != 0
        assert await client.request(read(METER)) == reply(METER)
        assert client.is_open
    assert server.stats.frames_received == 1
    assert server.stats.replies_sent == 1


async def test_client_bytes_match_the_standard_vectors() -> None:
    """Against a raw socket 'meter': the exact request bytes, and the reply decoded."""
    received = bytearray()

    async def raw_meter(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.extend(await reader.readexactly(len(READ_REQUEST)))
        writer.write(REPLY_5050)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(raw_meter, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, TcpTransport("127.0.0.1", port) as client:
        assert await client.request(read(METER)) == reply(METER)
    assert bytes(received) == READ_REQUEST


async def test_server_bytes_match_the_standard_vectors(meters: MeterFactory) -> None:
    async with TcpFrameServer(meters({METER: 5050})) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(READ_REQUEST)
        answer = await reader.readexactly(len(REPLY_5050))
        writer.close()
        await writer.wait_closed()
    assert answer == REPLY_5050


async def test_server_that_never_answers_times_out(meters: MeterFactory) -> None:
    async with (
        TcpFrameServer(meters({})) as server,
        TcpTransport("127.0.0.1", server.port, response_timeout=0.2) as client,
    ):
        with pytest.raises(ResponseTimeoutError, match=rf"{METER}.*0\.2 s"):
            await client.request(read(METER))
        assert client.stats.timeouts == 1
        assert server.stats.silent == 1


async def test_reconnects_after_the_server_restarts(meters: MeterFactory) -> None:
    server = TcpFrameServer(meters({METER: 5050}), "127.0.0.1", 0)
    await server.start()
    port = server.port
    client = TcpTransport(
        "127.0.0.1", port, connect_attempts=2, reconnect_delay=0.01, response_timeout=1
    )
    try:
        assert await client.request(read(METER)) == reply(METER)

        await server.stop()
        await client.wait_disconnected()
        with pytest.raises(TransportError, match=rf"127\.0\.0\.1:{port}.*2 attempts"):
            await client.request(read(METER))

        server = TcpFrameServer(meters({METER: 5050}), "127.0.0.1", port)
        await server.start()
        assert await client.request(read(METER)) == reply(METER)
    finally:
        await client.close()
        await server.stop()
    stats = client.stats
    assert (stats.connects, stats.connection_losses, stats.replies) == (2, 1, 2)


async def test_connection_lost_while_waiting_fails_fast() -> None:
    arrived = asyncio.Event()

    async def hang(frame: Frame) -> Frame | None:
        arrived.set()
        await asyncio.Event().wait()
        return None

    server = TcpFrameServer(hang)
    await server.start()
    async with TcpTransport("127.0.0.1", server.port, response_timeout=30) as client:
        pending = asyncio.create_task(client.request(read(METER)))
        await arrived.wait()
        await server.stop()
        with pytest.raises(TransportError, match="lost") as caught:
            await pending
        assert not isinstance(caught.value, ResponseTimeoutError)


async def test_server_serves_connections_concurrently(meters: MeterFactory) -> None:
    addresses = ["000000000001", "000000000002", "000000000003"]
    handler = meters(dict.fromkeys(addresses, 1))
    async with TcpFrameServer(handler) as server:
        clients = [TcpTransport("127.0.0.1", server.port) for _ in addresses]
        try:
            answers = await asyncio.gather(
                *(c.request(read(a)) for c, a in zip(clients, addresses, strict=True))
            )
            assert server.stats.active_connections == 3
        finally:
            await asyncio.gather(*(c.close() for c in clients))
    assert [a.address for a in answers] == addresses
    assert server.stats.connections == 3


async def test_each_server_connection_has_its_own_parser(meters: MeterFactory) -> None:
    """Half a frame on one connection must not mix with bytes on another."""
    async with TcpFrameServer(meters({METER: 5050})) as server:
        r1, w1 = await asyncio.open_connection("127.0.0.1", server.port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", server.port)
        w1.write(READ_REQUEST[:9])
        await w1.drain()
        w2.write(READ_REQUEST)
        assert await r2.readexactly(len(REPLY_5050)) == REPLY_5050
        w1.write(READ_REQUEST[9:])
        assert await r1.readexactly(len(REPLY_5050)) == REPLY_5050
        for w in (w1, w2):
            w.close()
            await w.wait_closed()


async def test_server_ignores_replies_and_survives_garbage(meters: MeterFactory) -> None:
    async with TcpFrameServer(meters({METER: 5050}), reply_preamble=2) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"\x00\xff\x68garbage" + REPLY_5050 + READ_REQUEST)
        parser = StreamParser()
        frames: list[Frame] = []
        while not frames:
            frames = parser.feed(await reader.read(100))
        writer.close()
        await writer.wait_closed()
    assert frames == [reply(METER)]
    assert server.stats.ignored_frames == 1  # the reply frame we sent it
    assert server.stats.noise_bytes > 0


def test_tcp_options_are_validated() -> None:
    with pytest.raises(TransportError, match="port"):
        TcpTransport("127.0.0.1", 0)
    with pytest.raises(TransportError, match="connect_attempts"):
        TcpTransport("127.0.0.1", 1, connect_attempts=0)
    with pytest.raises(TransportError, match="response_timeout"):
        TcpTransport("127.0.0.1", 1, response_timeout=0)
    with pytest.raises(TransportError, match="preamble"):
        TcpTransport("127.0.0.1", 1, preamble=5)
