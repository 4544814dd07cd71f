"""A rig for head-end tests: real simulated meters on real TCP gateways, and their archive.

Each gateway serves a :class:`~meter_sim.fleet.Fleet` of real meters (built by
:func:`meter_sim.factory.build_meter`) on a loopback port. Between the socket and
the fleet sits a handler the test controls: :attr:`Gateway.silenced` meters hear
nothing (as if their link were cut), :attr:`Gateway.tamper` rewrites a meter's
replies, and :attr:`Gateway.peak` records the most
requests the gateway ever had in progress at once (overall and per meter), with
``latency`` real seconds of meter answer time so that overlaps can happen.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Engine

from headend.archive import import_archive
from meter_sim.config import MeterConfig
from meter_sim.fleet import Fleet
from meter_sim.scenario import FleetSpec
from protocol import SteppedClock
from protocol.frame import Frame
from protocol.transport import TcpFrameServer

START = datetime(2026, 3, 1, 8, 0)
"""The rig's clock starts here (meters take a daily freeze at each 00:00 after it)."""
KEY = bytes(16)


@dataclass
class Gateway:
    """One TCP gateway of the rig (a DTU with meters behind it)."""

    name: str
    fleet: Fleet
    latency: float = 0.0
    silenced: set[str] = field(default_factory=set)
    server: TcpFrameServer | None = None
    active: int = 0
    peak: int = 0
    per_meter: Counter[str] = field(default_factory=Counter)
    peak_per_meter: int = 0
    handled: Counter[str] = field(default_factory=Counter)
    tamper: dict[str, Callable[[Frame], Frame]] = field(default_factory=dict)
    """Meters whose replies are rewritten on the way out (a faulty meter or DTU)."""

    async def handle(self, frame: Frame) -> Frame | bytes | None:
        if frame.address in self.silenced:
            return None
        self.handled[frame.address] += 1
        self.active += 1
        self.per_meter[frame.address] += 1
        self.peak = max(self.peak, self.active)
        self.peak_per_meter = max(self.peak_per_meter, self.per_meter[frame.address])
        try:
            if self.latency:
                await asyncio.sleep(self.latency)  # the meter's answer time
            reply = await self.fleet.handle(frame)
            tamper = self.tamper.get(frame.address)
            if tamper is not None and isinstance(reply, Frame):
                reply = tamper(reply)
            return reply
        finally:
            self.active -= 1
            self.per_meter[frame.address] -= 1

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def addresses(self) -> list[str]:
        return [str(a) for a in self.fleet.addresses]


class Rig:
    """Gateways on loopback sharing one stepped clock; close with :meth:`aclose`."""

    def __init__(self, start: datetime = START) -> None:
        self.clock = SteppedClock(start)
        self.gateways: list[Gateway] = []

    async def gateway(
        self,
        name: str,
        first_address: int,
        count: int,
        *,
        latency: float = 0.0,
        configs: Sequence[MeterConfig] | None = None,
    ) -> Gateway:
        if configs is None:
            configs = FleetSpec(first_address=first_address, count=count, seed=7).configs()
        fleet = Fleet(configs, self.clock, master_key=KEY)
        gateway = Gateway(name, fleet, latency)
        gateway.server = TcpFrameServer(gateway.handle, "127.0.0.1", 0)
        await gateway.server.start()
        self.gateways.append(gateway)
        return gateway

    def archive_csv(
        self,
        *,
        concurrency: int = 4,
        units: dict[str, tuple[str, str]] | None = None,
        inactive: Sequence[str] = (),
    ) -> str:
        """The archive of every gateway's meters; ``units``: address → (supply unit, segment)."""
        lines = [
            "record,name,kind,host,port,concurrency,address,meter_number,channel,"
            "breaker_type,supply_unit,reading_segment,active"
        ]
        for g in self.gateways:
            lines.append(f"channel,{g.name},gateway,127.0.0.1,{g.port},{concurrency},,,,,,,")
        for g in self.gateways:
            for address in g.addresses:
                unit, segment = (units or {}).get(address, ("", ""))
                active = "false" if address in inactive else "true"
                lines.append(
                    f"meter,,remote,,,,{address},{address},{g.name},external,"
                    f"{unit},{segment},{active}"
                )
        return "\n".join(lines) + "\n"

    def load_archive(self, engine: Engine, **kw: object) -> None:
        report = import_archive(engine, io.StringIO(self.archive_csv(**kw)))  # type: ignore[arg-type]
        assert not report.errors, report.errors

    async def aclose(self) -> None:
        for g in self.gateways:
            if g.server is not None:
                await g.server.stop()
