"""``feikong control`` against a minimal ESAM-backed meter on a real TCP socket (in a thread).

The meter here is a stand-in (a SimulatedEsam and a guarantee flag), so the CLI is
tested on its own; the full meter is tested in tests/meter_sim.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from feikong import cmd_control
from protocol import (
    ControlCommand,
    ControlErrorReply,
    ControlErrorWord,
    ControlReply,
    ExecInfoWord,
    Frame,
    IdentityAuthReply,
    IdentityAuthRequest,
    SecureControlRequest,
    SecurityError,
    SecurityErrorReply,
    SecurityErrorWord,
    decode_message,
    to_frame,
)
from protocol.security import TEST_MASTER_KEY, SimulatedEsam, format_key_file
from protocol.transport import TcpFrameServer

METER = "123456781012"
_INFO = {
    ControlCommand.TRIP: ExecInfoWord.DIRECT_TRIP,
    ControlCommand.CLOSE_PERMITTED: ExecInfoWord.CLOSE_PERMITTED,
    ControlCommand.GUARANTEE: ExecInfoWord.GUARANTEE,
}

app = typer.Typer()


@app.callback()
def _root() -> None:
    """Test app with the control command only."""


cmd_control.register(app)
runner = CliRunner()


class _StandIn:
    def __init__(self) -> None:
        self.esam = SimulatedEsam(TEST_MASTER_KEY, METER)
        self.guaranteed = False

    async def handle(self, frame: Frame) -> Frame | None:
        if frame.address != METER:
            return None
        msg = decode_message(frame)
        if isinstance(msg, IdentityAuthRequest):
            try:
                random2, serial = self.esam.identity_auth(msg.cipher1, msg.random1, msg.factor)
            except SecurityError:
                return to_frame(METER, SecurityErrorReply(SecurityErrorWord.AUTH_FAILED))
            return to_frame(METER, IdentityAuthReply(random2, serial))
        assert isinstance(msg, SecureControlRequest)
        try:
            command, _, _ = self.esam.open_control_block(msg.block)
        except SecurityError:
            return to_frame(METER, ControlErrorReply(ControlErrorWord.MAC_ERROR))
        if command == ControlCommand.TRIP and self.guaranteed:
            return to_frame(METER, ControlErrorReply(ControlErrorWord.GUARANTEED))
        return to_frame(METER, ControlReply(_INFO[ControlCommand(command)]))


@pytest.fixture
def meter() -> Iterator[tuple[_StandIn, int]]:
    stand_in = _StandIn()
    loop = asyncio.new_event_loop()
    server = TcpFrameServer(stand_in.handle, "127.0.0.1", 0)
    loop.run_until_complete(server.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield stand_in, server.port
    asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _args(port: int, *extra: str) -> list[str]:
    return ["control", "--tcp", f"127.0.0.1:{port}", "--address", METER, *extra]


def test_trip_prints_exec_info_and_warns_about_the_test_key(
    meter: tuple[_StandIn, int],
) -> None:
    result = runner.invoke(app, [*_args(meter[1]), "trip"])
    assert result.exit_code == 0, result.output
    assert "DIRECT_TRIP" in result.output
    assert "test key" in result.output


def test_json_output(meter: tuple[_StandIn, int]) -> None:
    result = runner.invoke(app, [*_args(meter[1], "--json"), "guarantee"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    assert data["result"] == "done"
    assert data["exec_info_bits"] == ["GUARANTEE"]


def test_refusal_names_control_error_bits(meter: tuple[_StandIn, int]) -> None:
    meter[0].guaranteed = True
    result = runner.invoke(app, [*_args(meter[1], "--operator", "12345678"), "trip"])
    assert result.exit_code == 1
    assert "GUARANTEED" in result.output


def test_wrong_key_is_an_auth_failure(meter: tuple[_StandIn, int], tmp_path: Path) -> None:
    key_file = tmp_path / "lab.key"
    key_file.write_text(format_key_file(bytes(range(16))))
    result = runner.invoke(app, [*_args(meter[1], "--key-file", str(key_file)), "trip"])
    assert result.exit_code == 1
    assert "AUTH_FAILED" in result.output
    assert "test key" not in result.output


def test_timeout_exits_1(meter: tuple[_StandIn, int]) -> None:
    args = ["control", "--tcp", f"127.0.0.1:{meter[1]}", "-a", "000000000001", "--timeout", "0.3"]
    result = runner.invoke(app, [*args, "trip"])
    assert result.exit_code == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--address", "12345", "--tcp", "127.0.0.1:1", "trip"],
        ["--address", METER, "trip"],
        ["--address", METER, "--tcp", "127.0.0.1:1", "--operator", "XYZ", "trip"],
        ["--address", METER, "--tcp", "127.0.0.1:1", "--expiry-min", "0", "trip"],
        ["--address", METER, "--tcp", "127.0.0.1:1", "--key-file", "/nonexistent/key", "trip"],
        ["--address", METER, "--tcp", "127.0.0.1:1", "explode"],
    ],
)
def test_bad_options_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, ["control", *args])
    assert result.exit_code == 2, result.output
