"""``feikong control``: send an authenticated remote-control command (远程控制) to a meter.

Identity authentication (03H, 身份认证) through a simulated encryption machine, then
the 98-level 1CH command (trip, permit close, direct close, alarm, power guarantee)
with the master's operator code and an expiry. Prints the execution-info bits the
meter answers with, or the bits of its refusal (exit code 1); bad options exit 2.

Without ``--key-file`` the well-known lab test key is used, with a warning: it is
simulation crypto and only for a lab.
"""

from __future__ import annotations

import asyncio
import enum
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from protocol import AbnormalReplyError, ControlCommand, ProtocolError, names
from protocol.address import Address
from protocol.client import MasterClient
from protocol.errors import SecurityError
from protocol.messages import (
    ControlErrorReply,
    ControlReply,
    ErrorReply,
    Message,
    SecurityErrorReply,
)
from protocol.security import SimulatedEncryptionMachine, check_sm4_support, load_master_key

from .cmd_protocol import cli_transport
from .output import console, err_console, fail, print_json

__all__ = ["register"]


class Command(enum.StrEnum):
    """What to send (N1 of the 1CH command)."""

    TRIP = "trip"
    PERMIT_CLOSE = "permit-close"
    CLOSE = "close"
    ALARM = "alarm"
    ALARM_OFF = "alarm-off"
    GUARANTEE = "guarantee"
    GUARANTEE_OFF = "guarantee-off"


_N1 = {
    Command.TRIP: ControlCommand.TRIP,
    Command.PERMIT_CLOSE: ControlCommand.CLOSE_PERMITTED,
    Command.CLOSE: ControlCommand.DIRECT_CLOSE,
    Command.ALARM: ControlCommand.ALARM,
    Command.ALARM_OFF: ControlCommand.ALARM_RELEASE,
    Command.GUARANTEE: ControlCommand.GUARANTEE,
    Command.GUARANTEE_OFF: ControlCommand.GUARANTEE_RELEASE,
}


def register(app: typer.Typer) -> None:
    """Add the ``control`` command to ``app``."""
    app.command("control")(control_command)


def control_command(
    command: Annotated[
        Command,
        typer.Argument(case_sensitive=False, help="What to do (1CH N1 = 1A/1B/1C/2A/2B/3A/3B)."),
    ],
    address: Annotated[str, typer.Option("--address", "-a", help="Meter address, 12 digits.")],
    tcp: Annotated[
        str | None, typer.Option("--tcp", metavar="HOST:PORT", help="Meter or gateway.")
    ] = None,
    serial: Annotated[
        str | None, typer.Option("--serial", metavar="DEV", help="Serial port, e.g. /dev/ttyUSB0.")
    ] = None,
    baud: Annotated[int, typer.Option("--baud", help="Serial baud rate.")] = 2400,
    parity: Annotated[str, typer.Option("--parity", help="Serial parity: E, N or O.")] = "E",
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="Lab master key (32 hex digits); default: the test key."),
    ] = None,
    meter_number: Annotated[
        str | None,
        typer.Option("--meter-number", help="表号 for the key dispersion (default: the address)."),
    ] = None,
    operator: Annotated[
        str, typer.Option("--operator", metavar="8HEX", help="Operator code C0..C3.")
    ] = "00000000",
    expiry_min: Annotated[
        float,
        typer.Option(
            "--expiry-min", help="The command expires this many minutes from now (this clock)."
        ),
    ] = 10.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Response timeout, seconds.")] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Authenticate, then send a 98-level remote-control command (trip, permit close, …)."""
    try:
        addr = Address(address)
    except ProtocolError as exc:
        fail(escape(str(exc)), 2)
    number = meter_number or str(addr)
    if len(number) != 12 or not number.isdigit():
        fail(f"--meter-number must be 12 digits (表号), got {number!r}", 2)
    op = operator.strip().upper()
    if len(op) != 8 or any(c not in "0123456789ABCDEF" for c in op):
        fail(f"--operator must be 8 hex digits (e.g. 12345678), got {operator!r}", 2)
    if not expiry_min > 0:
        fail(f"--expiry-min must be > 0, got {expiry_min}", 2)
    if not timeout > 0:
        fail(f"--timeout must be > 0 s, got {timeout}", 2)
    try:
        key, is_test_key = load_master_key(key_file)
    except SecurityError as exc:
        fail(escape(str(exc)), 2)
    if is_test_key:
        err_console.print(
            "[yellow]warning:[/] using the well-known lab test key (simulation crypto, "
            "not SGCC-compatible); give --key-file outside a lab",
            highlight=False,
        )
    try:
        check_sm4_support()
        machine = SimulatedEncryptionMachine(key)
    except SecurityError as exc:
        fail(escape(str(exc)))
    transport = cli_transport(tcp, serial, baud, parity.upper(), timeout)

    async def run() -> tuple[str, Message, datetime]:
        async with transport:
            client = MasterClient(transport)
            expiry = datetime.now().replace(microsecond=0) + timedelta(minutes=expiry_min)
            stage = "identity authentication"
            try:
                session = await client.authenticate(addr, machine, number, operator=op)
                stage = "control"
                reply: Message = await client.control_secure(
                    session, machine, _N1[command], expiry, operator=op
                )
            except AbnormalReplyError as exc:
                if not isinstance(exc.reply, Message):
                    raise
                reply = exc.reply
            return stage, reply, expiry

    try:
        stage, reply, expiry = asyncio.run(run())
    except ProtocolError as exc:
        fail(escape(str(exc)))
    _report(command, addr, stage, reply, expiry, as_json)


def _word(reply: Message) -> tuple[str, list[str]]:
    """The error word of an abnormal reply (ERR, SERR or control-error word) and its bits."""
    if isinstance(reply, ErrorReply):
        return f"{int(reply.error):02X}", names(reply.error)
    if isinstance(reply, SecurityErrorReply | ControlErrorReply):
        return f"{int(reply.error):04X}", names(reply.error)
    return "", []


def _report(
    command: Command,
    address: Address,
    stage: str,
    reply: Message,
    expiry: datetime,
    as_json: bool,
) -> None:
    data: dict[str, Any] = {
        "address": str(address),
        "command": command.value,
        "expiry": expiry.isoformat(sep=" "),
    }
    if isinstance(reply, ControlReply):
        info = reply.info
        bits = [] if info is None else names(info)
        data.update(
            result="done",
            exec_info_word=None if info is None else f"{int(info):04X}",
            exec_info_bits=bits,
        )
        if as_json:
            print_json(data)
            return
        text = ", ".join(bits) or "no bits set"
        if info is None:
            text = "no execution-info word (9C 00)"
        console.print(
            f"meter {address}: {command.value} done — {text}", highlight=False, soft_wrap=True
        )
        return
    word, bits = _word(reply)
    data.update(
        result="refused", stage=stage, reply=reply.describe(), error_word=word, error_bits=bits
    )
    if as_json:
        print_json(data)
        raise typer.Exit(1)
    fail(escape(f"meter {address} refused the {stage} for {command.value}: {reply.describe()}"))
