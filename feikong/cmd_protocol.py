"""Bench-engineer commands: ``feikong frame`` and ``feikong read``."""

from __future__ import annotations

import asyncio

import typer
from rich.table import Table

from protocol import AbnormalReplyError, ProtocolError, parse_di
from protocol.address import Address
from protocol.client import MasterClient
from protocol.explain import explain, parse_hex, to_jsonable
from protocol.transport import SerialTransport, TcpTransport, Transport

from .output import console, fail, parse_host_port, print_json


def frame(
    hex_bytes: list[str] = typer.Argument(
        ..., metavar="HEX...", help="The frame as hex bytes (spaces allowed)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Decode and explain a DL/T 645 frame: every field, the DI, the value, error bits."""
    try:
        explanations = explain(parse_hex(" ".join(hex_bytes)))
    except ProtocolError as exc:
        fail(f"not a DL/T 645 frame: {exc}", 2)
    if as_json:
        print_json([e.to_dict() for e in explanations])
        return
    for exp in explanations:
        table = Table(title=exp.summary, title_justify="left", show_lines=False)
        table.add_column("field")
        table.add_column("bytes", style="cyan")
        table.add_column("meaning")
        for f in exp.fields:
            table.add_row(f.name, f.raw, f.meaning)
        console.print(table)
        if exp.error_bits is not None:
            console.print(f"error bits: {', '.join(exp.error_bits) or 'none set'}")
        if exp.problem:
            console.print(f"[yellow]data field: {exp.problem}[/]")


def cli_transport(
    tcp: str | None, serial: str | None, baud: int, parity: str, timeout: float
) -> Transport:
    if (tcp is None) == (serial is None):
        fail("give exactly one of --tcp HOST:PORT or --serial DEV", 2)
    try:
        if tcp is not None:
            host, port = parse_host_port(tcp, "--tcp")
            return TcpTransport(host, port, response_timeout=timeout)
        assert serial is not None
        return SerialTransport(serial, baudrate=baud, parity=parity, response_timeout=timeout)
    except ProtocolError as exc:
        fail(str(exc), 2)


def read(
    address: str = typer.Option(..., "--address", "-a", help="Meter address, 12 digits."),
    di: str = typer.Option(..., "--di", help="Data identifier, 8 hex digits (e.g. 00010000)."),
    tcp: str | None = typer.Option(None, "--tcp", help="Meter or gateway at HOST:PORT."),
    serial: str | None = typer.Option(None, "--serial", help="Serial port, e.g. /dev/ttyUSB0."),
    baud: int = typer.Option(2400, "--baud", help="Serial baud rate."),
    parity: str = typer.Option("E", "--parity", help="Serial parity: E, N or O."),
    timeout: float = typer.Option(2.0, "--timeout", help="Response timeout in seconds."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Read one data item from a meter and print its value with unit."""
    try:
        addr = Address(address)
        code = parse_di(di)
    except ProtocolError as exc:
        fail(str(exc), 2)
    transport = cli_transport(tcp, serial, baud, parity.upper(), timeout)

    async def run() -> object:
        async with transport:
            return await MasterClient(transport).read(addr, code)

    try:
        value = asyncio.run(run())
    except AbnormalReplyError as exc:
        fail(str(exc))
    except ProtocolError as exc:
        fail(str(exc))
    from protocol.di import DataValue, format_di

    assert isinstance(value, DataValue)
    name = value.item.name if value.item else "(unknown DI)"
    if as_json:
        print_json(
            {
                "address": str(addr),
                "di": format_di(code),
                "name": name,
                "value": to_jsonable(value.value),
                "unit": value.unit,
                "text": value.text(),
            }
        )
    else:
        console.print(f"{format_di(code)} {name} = [bold]{value.text()}[/]", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("frame")(frame)
    app.command("read")(read)
