"""``feikong selftest``: exercise one connected meter and print a conformance report.

A thin layer over :func:`headend.selftest.run_selftest`: it builds the link
(``--serial DEV`` at 2400 8E1 by default, ``--tcp HOST:PORT`` for a TCP meter or
a TCP/serial gateway, or any transport ``--url``), runs the checks and prints a
table (or ``--json``); ``--verbose`` adds the frames of every check.

Exit codes: 0 every mandatory check passed; 1 a mandatory check did not pass
(fail, not supported, timeout); 2 bad options or a link that cannot be opened.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from headend.selftest import CheckResult, CheckStatus, SelftestError, SelftestReport, run_selftest
from protocol.errors import SecurityError, TransportError
from protocol.security import SimulatedEncryptionMachine, check_sm4_support, load_master_key
from protocol.transport import SerialTransport, TcpTransport, Transport, open_transport

from .output import console, err_console, fail, parse_host_port, print_json

__all__ = ["register"]

_STYLE = {
    CheckStatus.PASS: "green",
    CheckStatus.FAIL: "bold red",
    CheckStatus.NOT_SUPPORTED: "yellow",
    CheckStatus.TIMEOUT: "red",
    CheckStatus.SKIPPED: "dim",
}


def register(app: typer.Typer) -> None:
    """Add the ``selftest`` command to ``app``."""
    app.command("selftest")(selftest_command)


def selftest_command(
    address: Annotated[
        str, typer.Option("--address", "-a", metavar="NNNNNNNNNNNN", help="Meter address.")
    ],
    serial_port: Annotated[
        str | None,
        typer.Option("--serial", metavar="DEV", help="Serial port (RS-485 adapter)."),
    ] = None,
    tcp: Annotated[
        str | None,
        typer.Option("--tcp", metavar="HOST:PORT", help="TCP meter or TCP/serial gateway."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", metavar="URL", help="Any transport URL (tcp://, serial://, mqtt://)."
        ),
    ] = None,
    baud: Annotated[int, typer.Option("--baud", metavar="B", help="Serial baud rate.")] = 2400,
    parity: Annotated[
        str, typer.Option("--parity", metavar="P", help="Serial parity: E, N or O.")
    ] = "E",
    bytesize: Annotated[int, typer.Option("--bytesize", metavar="N", help="Data bits.")] = 8,
    stopbits: Annotated[float, typer.Option("--stopbits", metavar="N", help="Stop bits.")] = 1,
    preamble: Annotated[
        int, typer.Option("--preamble", metavar="N", help="FE wake-up bytes before each frame.")
    ] = 4,
    timeout: Annotated[
        float, typer.Option("--timeout", metavar="S", help="Response timeout per request.")
    ] = 2.0,
    shared_line: Annotated[
        bool,
        typer.Option(
            "--shared-line",
            help="Several meters on the line/gateway: skip the wildcard 13H and the "
            "foreign-address checks.",
        ),
    ] = False,
    max_clock_offset: Annotated[
        float,
        typer.Option(
            "--max-clock-offset", metavar="S", help="Meter clock offset that fails clock-offset."
        ),
    ] = 300.0,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth", help="Also try identity authentication (03H) with the lab key (simulation)."
        ),
    ] = False,
    key_file: Annotated[
        str | None,
        typer.Option(
            "--key-file", metavar="F", help="Lab master key for --auth (default: the lab test key)."
        ),
    ] = None,
    meter_number: Annotated[
        str | None,
        typer.Option(
            "--meter-number", metavar="N", help="Meter number for --auth (default: the address)."
        ),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Show the frames of every check (hex).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Exercise a connected meter (address, energies, status words, clock, freeze) and report."""
    if not (address.isascii() and address.isdigit() and len(address) == 12):
        fail(
            f"--address wants the meter's 12-digit address (e.g. 123456781012), got {address!r}",
            2,
        )
    if not timeout > 0:
        fail(f"--timeout must be > 0 s, got {timeout:g}", 2)
    if not max_clock_offset >= 0:
        fail(f"--max-clock-offset must be >= 0 s, got {max_clock_offset:g}", 2)
    transport = _transport(
        serial_port, tcp, url, baud, parity, bytesize, stopbits, preamble, timeout
    )
    machine = None
    if auth:
        try:
            check_sm4_support()
            key, _ = load_master_key(key_file)
        except SecurityError as exc:
            fail(f"--auth: {escape(str(exc))}", 2)
        machine = SimulatedEncryptionMachine(key)
    elif key_file is not None or meter_number is not None:
        fail("--key-file and --meter-number go with --auth", 2)

    live = console.is_terminal and not as_json

    async def run() -> SelftestReport:
        status = console.status("selftest: opening the link…", spinner="dots") if live else None
        done = 0

        def progress(result: CheckResult) -> None:
            nonlocal done
            done += 1
            if status is not None:
                status.update(f"selftest: {done} checks done, last {result.key}: {result.status}")

        if status is not None:
            status.start()
        try:
            return await run_selftest(
                transport,
                address,
                timeout=timeout,
                shared_line=shared_line,
                capture_frames=verbose or as_json,
                max_clock_offset_s=max_clock_offset,
                machine=machine,
                meter_number=meter_number,
                on_check=progress,
            )
        finally:
            if status is not None:
                status.stop()
            await transport.close()

    try:
        report = asyncio.run(run())
    except SelftestError as exc:
        fail(escape(str(exc)), 2)
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report, verbose)
    if not report.ok:
        raise typer.Exit(1)


def _transport(
    serial_port: str | None,
    tcp: str | None,
    url: str | None,
    baud: int,
    parity: str,
    bytesize: int,
    stopbits: float,
    preamble: int,
    timeout: float,
) -> Transport:
    if sum(x is not None for x in (serial_port, tcp, url)) != 1:
        fail("give exactly one of --serial DEV, --tcp HOST:PORT or --url URL", 2)
    try:
        if tcp is not None:
            host, port = parse_host_port(tcp, "--tcp")
            if port == 0:
                fail(f"--tcp {tcp}: port 0 is not a meter's port", 2)
            return TcpTransport(
                host, port, response_timeout=timeout, preamble=preamble, connect_attempts=2
            )
        if serial_port is not None:
            return SerialTransport(
                serial_port,
                baudrate=baud,
                parity=parity,
                bytesize=bytesize,
                stopbits=stopbits,
                response_timeout=timeout,
                preamble=preamble,
            )
        assert url is not None
        return open_transport(url, response_timeout=timeout, preamble=preamble)
    except TransportError as exc:
        fail(escape(str(exc)), 2)


def _print(report: SelftestReport, verbose: bool) -> None:
    table = Table(
        title=f"selftest of meter {report.address} on {report.link}",
        title_justify="left",
    )
    table.add_column("check", no_wrap=True)
    table.add_column("DI", style="cyan", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for c in report.checks:
        ms = "" if c.elapsed_ms is None else f"{c.elapsed_ms:.0f}"
        style = _STYLE[c.status]
        table.add_row(
            c.key if c.mandatory else f"[dim]{c.key} (opt.)[/]",
            c.di or "",
            f"[{style}]{c.status.value}[/]",
            ms,
            escape(c.detail),
        )
    console.print(table)
    if verbose:
        for c in report.checks:
            for f in c.frames:
                console.print(f"{c.key:<22} {f.direction} {f.hex}", highlight=False, soft_wrap=True)
    mandatory = [c for c in report.checks if c.mandatory]
    passed = sum(1 for c in mandatory if c.passed)
    optional = [
        f"{c.key} ({c.status.value})"
        for c in report.checks
        if not c.mandatory and c.status not in (CheckStatus.PASS, CheckStatus.SKIPPED)
    ]
    note = f"; optional checks not passed: {', '.join(optional)}" if optional else ""
    if report.ok:
        console.print(
            f"[bold green]PASS[/]: {passed} of {len(mandatory)} mandatory checks passed "
            f"in {report.elapsed_s:.1f} s{note}",
            highlight=False,
            soft_wrap=True,
        )
        return
    failed = ", ".join(f"{c.key} ({c.status.value})" for c in report.failed_mandatory)
    err_console.print(
        f"[bold red]FAIL[/]: {len(mandatory) - passed} of {len(mandatory)} mandatory checks "
        f"did not pass: {failed}{note}",
        highlight=False,
        soft_wrap=True,
    )
    if report.answered_as:
        err_console.print(
            f"hint: the meter on this link answers as {report.answered_as}; "
            f"rerun with --address {report.answered_as}",
            highlight=False,
        )
    elif not any(
        c.elapsed_ms is not None and c.status is not CheckStatus.TIMEOUT
        for c in mandatory
        if c.key != "foreign-address"
    ):
        err_console.print(
            "hint: the meter answered nothing: check the address, the wiring (RS-485 A to A, "
            "B to B), the line settings (2400 8E1) and --timeout",
            highlight=False,
        )
