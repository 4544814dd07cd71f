"""``feikong meter-sim``: serve a fleet of simulated DL/T 645 meters.

A thin layer over :mod:`meter_sim` (:class:`~meter_sim.fleet.Fleet`,
:class:`~meter_sim.runner.FleetServers`, :class:`~meter_sim.state.StateKeeper`):
it parses the options, prints one line saying what it serves, and runs until
Ctrl-C or SIGTERM, saving the state (``--state``) on the way out. Option
mistakes print one error line and exit with code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from breaker_sim import BreakerLink, ModbusBreakerLink
from meter_sim.config import (
    BreakerTargetError,
    MeterConfig,
    MeterKind,
    SimulatedMeter,
    parse_breaker_target,
)
from meter_sim.fleet import INPROC, Fleet, FleetError, MeterFactory, parse_breakers
from meter_sim.runner import (
    FleetServers,
    Listen,
    SerialBus,
    TcpGateway,
    TcpPerMeter,
    listen_from_url,
)
from meter_sim.scenario import (
    FleetSpec,
    Scenario,
    ScenarioError,
    load_scenario,
    parse_address_number,
)
from meter_sim.state import StateFileError, StateKeeper
from protocol.clock import AcceleratedClock, Clock, RealClock
from protocol.errors import SecurityError, TransportError
from protocol.security import load_master_key
from protocol.transport import SerialSettings

from ._gc import serving_gc
from .output import console, fail, parse_host_port

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``meter-sim`` command to ``app``."""
    app.command("meter-sim")(meter_sim_command)


def meter_sim_command(
    tcp: Annotated[
        str | None,
        typer.Option(
            "--tcp",
            metavar="HOST:PORT",
            help="Serve on TCP: one gateway port for all meters (port 0 picks a free one).",
        ),
    ] = None,
    serial_port: Annotated[
        str | None,
        typer.Option("--serial", metavar="DEV", help="Serve an RS-485 bus on this serial port."),
    ] = None,
    listen_url: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="URL",
            help="Serve on a URL: tcp://…, serial://… or mqtt://HOST:PORT/PREFIX "
            "(MQTT topics PREFIX/ADDRESS/down and /up).",
        ),
    ] = None,
    first_address: Annotated[
        str | None,
        typer.Option(
            "--first-address", metavar="N", help="Address of the first meter (then N+1, …)."
        ),
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", metavar="N", help="Number of meters.")
    ] = None,
    kind: Annotated[
        MeterKind | None,
        typer.Option("--kind", case_sensitive=False, help="Fee-control kind [default: remote]."),
    ] = None,
    per_meter_ports: Annotated[
        bool,
        typer.Option(
            "--per-meter-ports", help="With --tcp HOST:P: meter i listens on P+i instead."
        ),
    ] = False,
    breaker: Annotated[
        str,
        typer.Option(
            "--breaker",
            metavar="inproc|modbus://HOST:PORT[?unit=N]|modbus-rtu://DEV[?baud=&parity=&unit=N]",
            help="In-process breakers; Modbus TCP units 1..247 per port from PORT on; with "
            "?unit=N the meters take units N, N+1, … on that port; modbus-rtu:///dev/ttyUSB1 "
            "drives breakers on an RS-485 Modbus RTU line (default 9600 8N1).",
        ),
    ] = INPROC,
    permit_close_delay: Annotated[
        float | None,
        typer.Option(
            "--permit-close-delay",
            metavar="S",
            help="Seconds from a trip to permit-close [default: 60].",
        ),
    ] = None,
    speed: Annotated[
        float,
        typer.Option("--speed", metavar="X", help="Simulated time runs X times faster."),
    ] = 1.0,
    scenario: Annotated[
        str | None,
        typer.Option("--scenario", metavar="FILE", help="Fleet scenario (TOML)."),
    ] = None,
    state: Annotated[
        str | None,
        typer.Option("--state", metavar="FILE", help="Load meter state here; save it back."),
    ] = None,
    state_interval: Annotated[
        float,
        typer.Option("--state-interval", metavar="S", help="Real seconds between state saves."),
    ] = 30.0,
    key_file: Annotated[
        str | None,
        typer.Option("--key-file", metavar="F", help="Lab master key [default: the test key]."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", metavar="N", help="Meter i gets seed N+i [default: 0]."),
    ] = None,
    test_mode: Annotated[
        bool | None,
        typer.Option("--test-mode", help="Factory mode: plaintext 1CH is accepted."),
    ] = None,
    baud: Annotated[int, typer.Option("--baud", metavar="B", help="Serial baud rate.")] = 2400,
    parity: Annotated[
        str, typer.Option("--parity", metavar="P", help="Serial parity (N, E, O).")
    ] = "E",
) -> None:
    """Simulate a fleet of DL/T 645 fee-control meters (表计群) on TCP, RS-485 or MQTT."""
    listen = _listen(tcp, serial_port, listen_url, per_meter_ports, baud, parity)
    spec, loaded = _spec(scenario, first_address, count, kind, permit_close_delay, seed, test_mode)
    try:
        configs = loaded.configs(spec) if loaded is not None else spec.configs()
    except ScenarioError as exc:
        fail(escape(str(exc)), 2)
    try:
        target = parse_breaker_target(breaker)
        if target is not None and target.needs_own_links:
            target.units(len(configs))  # the meters must fit on the line's units
        else:
            parse_breakers(breaker)
    except (BreakerTargetError, FleetError) as exc:
        fail(f"--breaker: {escape(str(exc))}", 2)
    own_links = target is not None and target.needs_own_links
    if not speed > 0:
        fail(f"--speed must be > 0, got {speed:g}", 2)
    if not state_interval > 0:
        fail(f"--state-interval must be > 0 s, got {state_interval:g}", 2)
    try:
        master_key, is_test_key = load_master_key(key_file)
    except SecurityError as exc:
        fail(f"--key-file: {escape(str(exc))}", 2)
    clock: Clock = RealClock() if speed == 1 else AcceleratedClock(speed=speed)

    async def run() -> None:
        links: list[ModbusBreakerLink] = []
        try:
            if own_links:
                assert target is not None
                links = target.links(len(configs))
                fleet = Fleet(
                    configs,
                    clock,
                    master_key=master_key,
                    meter_factory=_modbus_factory(configs, links),
                )
            else:
                fleet = Fleet(configs, clock, master_key=master_key, breakers=breaker)
        except (FleetError, ValueError) as exc:
            fail(escape(str(exc)), 2)
        keeper = None if state is None else StateKeeper(fleet, state, state_interval)
        if keeper is not None:
            try:
                keeper.load()
            except StateFileError as exc:
                fail(escape(str(exc)))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                loop.add_signal_handler(signum, stop.set)
        servers = FleetServers(fleet, listen)
        try:
            await servers.start()
        except TransportError as exc:
            await fleet.aclose()
            if links:
                await links[0].aclose()
            fail(escape(str(exc)))
        try:
            if keeper is not None:
                keeper.start()
            console.print(
                _serving_line(
                    servers,
                    configs,
                    str(target) if own_links else breaker,
                    speed,
                    state,
                    is_test_key,
                ),
                soft_wrap=True,
                highlight=False,
            )
            await stop.wait()
        finally:
            await servers.stop()
            try:
                if keeper is not None:
                    await keeper.stop()
            finally:
                await fleet.aclose()
                if links:
                    await links[0].aclose()  # one Modbus connection shared by every link

    try:
        with serving_gc():
            asyncio.run(run())
    except KeyboardInterrupt:
        return
    except OSError as exc:
        fail(escape(f"cannot save the state: {exc}"))


def _modbus_factory(configs: list[MeterConfig], links: list[ModbusBreakerLink]) -> MeterFactory:
    """Build each meter with its own Modbus breaker link (``--breaker …?unit=N`` / RTU)."""
    from meter_sim.factory import build_meter

    by_address = {c.address: link for c, link in zip(configs, links, strict=True)}

    def factory(
        config: MeterConfig, clock: Clock, breaker: BreakerLink, *, master_key: bytes
    ) -> SimulatedMeter:
        # ``breaker`` is the fleet's in-process stand-in, unused: this meter drives a
        # Modbus device on the bench instead.
        return build_meter(config, clock, by_address[config.address], master_key=master_key)

    return factory


def _listen(
    tcp: str | None,
    serial_port: str | None,
    listen_url: str | None,
    per_meter_ports: bool,
    baud: int,
    parity: str,
) -> Listen:
    if sum(given is not None for given in (tcp, serial_port, listen_url)) != 1:
        fail("give exactly one of --tcp HOST:PORT or --serial DEV (or --listen URL)", 2)
    if listen_url is not None:
        if per_meter_ports:
            fail("--per-meter-ports needs --tcp HOST:PORT (not --listen)", 2)
        try:
            return listen_from_url(listen_url)
        except TransportError as exc:
            fail(f"--listen: {escape(str(exc))}", 2)
    if tcp is not None:
        host, port = parse_host_port(tcp, "--tcp")
        return TcpPerMeter(host, port) if per_meter_ports else TcpGateway(host, port)
    assert serial_port is not None
    if per_meter_ports:
        fail("--per-meter-ports needs --tcp (a serial bus is one line for all meters)", 2)
    try:
        settings = SerialSettings(baud, parity)
    except TransportError as exc:
        fail(escape(str(exc)), 2)
    return SerialBus(serial_port, settings.baudrate, settings.parity)


def _spec(
    scenario: str | None,
    first_address: str | None,
    count: int | None,
    kind: MeterKind | None,
    permit_close_delay: float | None,
    seed: int | None,
    test_mode: bool | None,
) -> tuple[FleetSpec, Scenario | None]:
    loaded = None
    if scenario is not None:
        try:
            loaded = load_scenario(scenario)
        except ScenarioError as exc:
            fail(escape(str(exc)), 2)
    fleet = loaded.fleet if loaded is not None else {}
    first = None
    if first_address is not None:
        try:
            first = parse_address_number(first_address, "--first-address", "value")
        except ScenarioError:
            fail(
                escape(f"--first-address wants a meter address (12 digits), got {first_address!r}"),
                2,
            )
    if (first if first is not None else fleet.get("first_address")) is None or (
        count if count is not None else fleet.get("count")
    ) is None:
        fail(
            escape("give --first-address N and --count N (or set them in the --scenario [fleet])"),
            2,
        )
    if count is not None and count < 1:
        fail(f"--count must be at least 1, got {count}", 2)
    if permit_close_delay is not None and not permit_close_delay >= 0:
        fail(f"--permit-close-delay must be >= 0 s, got {permit_close_delay:g}", 2)
    if seed is not None and seed < 0:
        fail(f"--seed must be >= 0, got {seed}", 2)
    given = {
        "first_address": first,
        "count": count,
        "kind": kind,
        "permit_close_delay_s": permit_close_delay,
        "seed": seed,
        "test_mode": test_mode,
    }
    try:
        spec = (loaded or Scenario("options", {})).spec(**given)
    except ScenarioError as exc:
        fail(escape(str(exc)), 2)
    return spec, loaded


def _serving_line(
    servers: FleetServers,
    configs: list[MeterConfig],
    breaker: str,
    speed: float,
    state: str | None,
    is_test_key: bool,
) -> Text:
    kinds = Counter(c.kind.value for c in configs)
    what = " + ".join(f"{n} {k}" for k, n in kinds.items())
    plural = "s" if len(configs) != 1 else ""
    span = (
        configs[0].address if len(configs) == 1 else f"{configs[0].address}…{configs[-1].address}"
    )
    offline = sum(1 for c in configs if c.faults.offline)
    details = [
        "in-process breakers" if breaker == INPROC else f"breakers on {breaker}",
        "real time" if speed == 1 else f"time ×{speed:g}",
    ]
    if offline:
        details.append(f"{offline} offline")
    if state:
        details.append(f"state {state}")
    details.append("lab test key" if is_test_key else "key from file")
    return Text.assemble(
        ("meter-sim", "bold"),
        f": {what} meter{plural} ({span}) on {servers.describe()}",
        f" — {', '.join(details)}. Ctrl-C to stop.",
    )
