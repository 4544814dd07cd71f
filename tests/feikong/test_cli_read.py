"""``feikong read`` against a meter answering on a real TCP socket (in a thread)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from feikong.cli import app
from protocol import ErrorWord, Frame, decode_message, to_frame
from protocol.messages import (
    ErrorReply,
    ReadFollowUpReply,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
)
from protocol.transport import TcpFrameServer

runner = CliRunner()
METER = "123456781012"


async def _handler(frame: Frame) -> Frame | None:
    """A minimal meter: 00010000 = 1234.56 kWh, 0001FF00 in two frames, else ERR 02."""
    if frame.address != METER:
        return None
    msg = decode_message(frame)
    if isinstance(msg, ReadRequest) and msg.di == 0x00010000:
        return to_frame(METER, ReadReply.for_value(0x00010000, Decimal("1234.56")))
    if isinstance(msg, ReadRequest) and msg.di == 0x0001FF00:
        # total + T1 in the first frame, T2..T4 in a follow-up (B1 then 92)
        return to_frame(METER, ReadReply(0x0001FF00, bytes.fromhex("0010000000010000"), True))
    if isinstance(msg, ReadFollowUpRequest) and msg.di == 0x0001FF00:
        raw = bytes.fromhex("000200000003000000040000")
        return to_frame(METER, ReadFollowUpReply(0x0001FF00, raw, msg.seq))
    return to_frame(METER, ErrorReply(frame.function, ErrorWord.NO_DATA))


@pytest.fixture
def meter_port() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    server = TcpFrameServer(_handler, "127.0.0.1", 0)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.port
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def test_read_prints_value_with_unit(meter_port: int) -> None:
    args = ["read", "--tcp", f"127.0.0.1:{meter_port}", "--address", METER, "--di", "00010000"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1234.56 kWh" in result.output


def test_read_follows_up_and_prints_json(meter_port: int) -> None:
    args = ["read", "--tcp", f"127.0.0.1:{meter_port}", "-a", METER, "--di", "0001FF00", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    # 10.00 total, then tariffs 1..4 = 1.00 .. 4.00 kWh, joined from two frames
    assert data["value"] == ["10.00", "1.00", "2.00", "3.00", "4.00"]
    assert data["unit"] == "kWh"


def test_abnormal_reply_names_err_bits(meter_port: int) -> None:
    args = ["read", "--tcp", f"127.0.0.1:{meter_port}", "-a", METER, "--di", "04000501"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "NO_DATA" in result.output


def test_timeout_is_one_clear_line(meter_port: int) -> None:
    args = [
        "read",
        "--tcp",
        f"127.0.0.1:{meter_port}",
        "-a",
        "000000000001",
        "--di",
        "00010000",
        "--timeout",
        "0.3",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "no reply" in result.output and "000000000001" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--address", "12345", "--di", "00010000", "--tcp", "127.0.0.1:1"],
        ["--address", METER, "--di", "xyz", "--tcp", "127.0.0.1:1"],
        ["--address", METER, "--di", "00010000"],
        ["--address", METER, "--di", "00010000", "--tcp", "nohostport"],
    ],
)
def test_bad_options_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, ["read", *args])
    assert result.exit_code == 2, result.output


def test_connection_refused_is_clear() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = runner.invoke(
        app,
        ["read", "--tcp", f"127.0.0.1:{port}", "-a", METER, "--di", "00010000", "--timeout", "0.5"],
    )
    assert result.exit_code == 1
    assert f"127.0.0.1:{port}" in result.output
