"""SerialTransport and SerialFrameServer through real pseudo-terminals.

This kernel's pty driver rejects even parity (EINVAL), so these tests run 8N1;
8E1 stays the default for real RS-485 ports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import pytest

from protocol.address import Address
from protocol.errors import ResponseTimeoutError, TransportError
from protocol.frame import Frame, encode_frame
from protocol.parser import StreamParser
from protocol.transport import SerialFrameServer, SerialSettings, SerialTransport

BUS = {"123456781012": 5050, "123456781013": 12345, "000000000042": 7}
UNKNOWN = Address("999999999998")

if TYPE_CHECKING:
    from .conftest import LogEvents, Pty, PtyNullModem

MeterFactory = Callable[[dict[str, int]], Callable[[Frame], Awaitable[Frame | None]]]


def read(address: str) -> Frame:
    return Frame(Address(address), 0x11, bytes(4))


def reply(address: str, value: str) -> Frame:
    return Frame(Address(address), 0x91, bytes(4) + bytes.fromhex(value))


async def test_rs485_bus_of_three_meters(null_modem: PtyNullModem, meters: MeterFactory) -> None:
    bus = SerialFrameServer(meters(BUS), null_modem.b, parity="N")
    master = SerialTransport(null_modem.a, parity="N", response_timeout=0.3, inter_frame_gap=0.01)
    async with bus, master:
        answers = [await master.request(read(address)) for address in BUS]
        with pytest.raises(ResponseTimeoutError, match=UNKNOWN):
            await master.request(read(UNKNOWN))
        # The bus is still usable after a timeout.
        assert await master.request(read("123456781013")) == reply("123456781013", "45230100")
    assert answers == [
        reply("123456781012", "50500000"),
        reply("123456781013", "45230100"),
        reply("000000000042", "07000000"),
    ]
    assert bus.stats.frames_received == 5
    assert bus.stats.replies_sent == 4
    assert bus.stats.silent == 1
    assert master.stats.timeouts == 1


async def test_request_bytes_and_reply_through_a_pty(pty: Pty) -> None:
    """The master end against raw bytes: 2400 baud framing, exact request bytes."""
    request_bytes = bytes.fromhex("FE FE FE FE 68 12 10 78 56 34 12 68 11 04 33 33 33 33 E7 16")
    reply_bytes = bytes.fromhex(
        "FE FE FE FE 68 12 10 78 56 34 12 68 91 08 33 33 33 33 83 83 33 33 D7 16"
    )
    async with SerialTransport(pty.path, parity="N") as master:
        pending = asyncio.create_task(master.request(read("123456781012")))
        received = b""
        while len(received) < len(request_bytes):
            received += await pty.read()
        assert received == request_bytes
        pty.write(reply_bytes)
        assert await pending == reply("123456781012", "50500000")


async def test_inter_byte_stall_drops_a_partial_frame(pty: Pty, log_events: LogEvents) -> None:
    stalled = log_events.watch("dropped a partial frame")
    first = encode_frame(reply("123456781012", "11110000"))
    second = encode_frame(reply("123456781012", "22220000"))
    master = SerialTransport(pty.path, parity="N", response_timeout=2.0, inter_byte_timeout=0.1)
    async with master:
        pending = asyncio.create_task(master.request(read("123456781012")))
        parser = StreamParser()
        while not parser.feed(await pty.read()):
            pass
        pty.write(first[:12])
        await stalled.wait()  # the master gave up on the stalled frame...
        pty.write(first[12:] + second)  # ...so its tail is noise, not the rest of a reply
        answer = await pending
    assert answer == reply("123456781012", "22220000")
    assert master.stats.partial_frames_dropped == 1
    assert master.stats.noise_bytes > 0


async def test_server_drops_a_stalled_request(
    pty: Pty, log_events: LogEvents, meters: MeterFactory
) -> None:
    stalled = log_events.watch("dropped a partial frame")
    request = encode_frame(read("123456781012"))
    async with SerialFrameServer(meters(BUS), pty.path, parity="N", inter_byte_timeout=0.1) as bus:
        pty.write(request[:8])
        await stalled.wait()
        pty.write(request[8:] + request)
        parser = StreamParser()
        frames: list[Frame] = []
        while not frames:
            frames = parser.feed(await pty.read())
    assert frames == [reply("123456781012", "50500000")]
    assert bus.stats.partial_frames_dropped == 1
    assert bus.stats.replies_sent == 1


async def test_echo_on_a_two_wire_bus_is_ignored(pty: Pty) -> None:
    async with SerialTransport(pty.path, parity="N") as master:
        pending = asyncio.create_task(master.request(read("123456781012")))
        echo = await pty.read()
        pty.write(echo)  # a 2-wire RS-485 adapter hears its own request
        pty.write(encode_frame(reply("123456781012", "50500000")))
        assert await pending == reply("123456781012", "50500000")
    assert master.stats.ignored_frames == 1


async def test_missing_port_gives_a_clear_error() -> None:
    master = SerialTransport("/dev/does-not-exist-645", parity="N")
    with pytest.raises(TransportError, match=r"/dev/does-not-exist-645.*no such device"):
        await master.request(read("123456781012"))


def test_default_line_is_2400_8E1() -> None:
    master = SerialTransport("/dev/ttyUSB0")
    assert master.settings == SerialSettings(2400, "E", 8, 1)
    assert str(master.settings) == "2400 8E1"
    assert master.url == "serial:///dev/ttyUSB0?baud=2400&parity=E"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"baudrate": 2401}, "baud rate 2401 is not supported"),
        ({"parity": "X"}, "parity 'X' is not valid"),
        ({"bytesize": 9}, "bytesize"),
        ({"stopbits": 3}, "stopbits"),
    ],
)
def test_line_settings_are_validated(options: dict[str, object], message: str) -> None:
    with pytest.raises(TransportError, match=message):
        SerialTransport("/dev/ttyUSB0", **options)  # type: ignore[arg-type]


def test_parity_names_are_accepted() -> None:
    assert SerialSettings(parity="even").parity == "E"
    assert SerialSettings(parity="n").parity == "N"
    assert SerialSettings(9600, stopbits=1.5).transfer_time(10) == pytest.approx(10 * 11.5 / 9600)
