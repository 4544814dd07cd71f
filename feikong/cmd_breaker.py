"""``feikong breaker-sim``: serve simulated external micro breakers over Modbus.

A thin layer over :class:`breaker_sim.BreakerServer`: it parses the options,
prints one line saying what it serves, and runs until Ctrl-C or SIGTERM (``feikong -v
breaker-sim …`` logs every signal the breakers receive). The register map is
documented in :mod:`breaker_sim.modbus`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import signal
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from breaker_sim import (
    MAX_UNITS,
    Breaker,
    BreakerConfig,
    BreakerError,
    BreakerServer,
    parse_fault,
)
from protocol.clock import RealClock

from .output import console, fail, parse_host_port

__all__ = ["register"]


class FaultName(enum.StrEnum):
    NONE = "none"
    FAILS_TO_TRIP = "fails-to-trip"
    WELDED = "welded"
    NO_FEEDBACK = "no-feedback"


class Parity(enum.StrEnum):
    N = "N"
    E = "E"
    O = "O"  # noqa: E741 - the parity letter


def register(app: typer.Typer) -> None:
    """Add the ``breaker-sim`` command to ``app``."""
    app.command("breaker-sim")(breaker_sim_command)


def breaker_sim_command(
    modbus_tcp: Annotated[
        str | None,
        typer.Option(
            "--modbus-tcp",
            metavar="HOST:PORT",
            help="Serve Modbus TCP here (port 0 picks a free port).",
        ),
    ] = None,
    modbus_rtu: Annotated[
        str | None,
        typer.Option("--modbus-rtu", metavar="DEV", help="Serve Modbus RTU on this serial port."),
    ] = None,
    count: Annotated[
        int,
        typer.Option("--count", min=1, max=MAX_UNITS, help="Breakers to serve, as units 1..N."),
    ] = 1,
    remotely_closable: Annotated[
        bool,
        typer.Option("--remotely-closable", help='Obey a remote close (DL/T 645 "direct close").'),
    ] = False,
    trip_response: Annotated[
        float,
        typer.Option(
            "--trip-response", metavar="S", min=0.0, help="Seconds before the contacts open."
        ),
    ] = 0.0,
    fault: Annotated[
        FaultName,
        typer.Option(
            "--fault",
            case_sensitive=False,
            help="Fault of every unit at start (per unit at run time: holding register 0).",
        ),
    ] = FaultName.NONE,
    baud: Annotated[int, typer.Option("--baud", min=1, help="RTU baud rate.")] = 9600,
    parity: Annotated[
        Parity, typer.Option("--parity", case_sensitive=False, help="RTU parity.")
    ] = Parity.N,
) -> None:
    """Simulate external micro circuit breakers (外置微型断路器) on Modbus TCP or RTU."""
    if (modbus_tcp is None) == (modbus_rtu is None):
        fail("give exactly one of --modbus-tcp HOST:PORT or --modbus-rtu DEV", 2)
    tcp = None if modbus_tcp is None else parse_host_port(modbus_tcp, "--modbus-tcp")

    config = BreakerConfig(
        remotely_closable=remotely_closable,
        trip_response_s=trip_response,
        fault=parse_fault(fault.value),
    )
    clock = RealClock()
    breakers = [Breaker(clock, config, name=f"unit {u}") for u in range(1, count + 1)]
    server = BreakerServer(breakers, tcp=tcp, rtu=modbus_rtu, baudrate=baud, parity=parity.value)

    async def serve() -> None:
        with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.request_stop)
        await server.start()
        console.print(_serving_line(server, config, count), soft_wrap=True)
        await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return
    except BreakerError as exc:
        fail(escape(str(exc)))


def _serving_line(server: BreakerServer, config: BreakerConfig, count: int) -> Text:
    units = "unit 1" if count == 1 else f"units 1-{count}"
    closable = "remotely closable" if config.remotely_closable else "not remotely closable"
    trip = f"trip in {config.trip_response_s:g} s" if config.trip_response_s else "trips at once"
    fault = config.fault.name.lower().replace("_", "-")
    return Text.assemble(
        ("breaker-sim", "bold"),
        f": {count} breaker{'s' if count != 1 else ''} ({units}) on {server.where}",
        f" — {closable}, {trip}, fault {fault}. Ctrl-C to stop.",
    )
