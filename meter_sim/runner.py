"""Putting a :class:`~meter_sim.fleet.Fleet` on the wire: TCP gateway, port per meter,
RS-485, MQTT.

Ways to serve the same fleet (``feikong meter-sim`` picks one):

* :class:`TcpGateway` (default) — one TCP port for all meters, like a DTU or a
  concentrator's transparent channel: each request goes to the meter it is
  addressed to. Requests are answered as they come, each meter on its own, so
  a master may pipeline (many requests in flight on one connection) and a slow
  meter holds up no other.
* :class:`TcpPerMeter` — meter ``i`` (0-based, in fleet order) listens on
  ``first_port + i``, alone on its link. Offline meters get no port (connections
  are refused). ``first_port = 0`` picks free ports.
* :class:`SerialBus` — every meter on one serial RS-485 bus: all of them see
  every frame and only the addressed one answers.
* :class:`MqttBroker` — every meter on an MQTT broker, DTU style: requests on
  ``{prefix}/{address}/down``, replies on ``{prefix}/{address}/up``.

:func:`listen_from_url` turns a URL (``tcp://``, ``serial://``, ``mqtt://``) into
one of these.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeAlias
from urllib.parse import parse_qsl, urlsplit

from protocol.errors import TransportError
from protocol.transport import (
    FrameServer,
    MqttFrameServer,
    SerialFrameServer,
    TcpFrameServer,
    open_frame_server,
)

from .fleet import Fleet

__all__ = [
    "FleetServers",
    "Listen",
    "MqttBroker",
    "SerialBus",
    "TcpGateway",
    "TcpPerMeter",
    "listen_from_url",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TcpGateway:
    """All meters behind one TCP port."""

    host: str = "127.0.0.1"
    port: int = 0


@dataclass(frozen=True, slots=True)
class TcpPerMeter:
    """Meter ``i`` on TCP port ``first_port + i`` (0: free ports)."""

    host: str = "127.0.0.1"
    first_port: int = 0


@dataclass(frozen=True, slots=True)
class SerialBus:
    """All meters on one serial (RS-485) line."""

    port: str
    baudrate: int = 2400
    parity: str = "E"


@dataclass(frozen=True, slots=True)
class MqttBroker:
    """All meters on an MQTT broker: ``mqtt://[USER[:PASSWORD]@]HOST[:PORT][/PREFIX]``.

    The path is the topic prefix (default ``feikong/meters``); query parameters
    are those of :class:`~protocol.transport.MqttFrameServer` URLs.
    """

    url: str = "mqtt://127.0.0.1:1883/feikong/meters"


Listen: TypeAlias = TcpGateway | TcpPerMeter | SerialBus | MqttBroker


def listen_from_url(url: str) -> Listen:
    """``tcp://HOST:PORT`` → gateway, ``serial://DEV?baud=&parity=`` → bus, ``mqtt://…`` → broker.

    Raises :class:`~protocol.errors.TransportError` (saying what to write) for
    anything else, including URL parameters a fleet does not take.
    """

    async def never(_frame: object) -> None:  # only to validate the URL
        return None

    scheme = urlsplit(url).scheme if isinstance(url, str) else ""
    if scheme not in ("tcp", "serial", "mqtt"):
        raise TransportError(
            f"cannot serve a fleet on {url!r}; use tcp://HOST:PORT, "
            "serial:///dev/ttyUSB0?baud=2400&parity=E or mqtt://HOST[:PORT][/PREFIX]"
        )
    server = open_frame_server(url, never)
    if isinstance(server, MqttFrameServer):
        return MqttBroker(url)
    allowed = {"baud", "baudrate", "parity"} if scheme == "serial" else set()
    extra = sorted({key for key, _ in parse_qsl(urlsplit(url).query)} - allowed)
    if extra:
        takes = f"only {', '.join(sorted(allowed))}" if allowed else "no parameters"
        raise TransportError(
            f"{url!r}: a fleet's {scheme}:// endpoint takes {takes}, not {', '.join(extra)}"
        )
    if isinstance(server, TcpFrameServer):
        return TcpGateway(server.host, server.port)
    assert isinstance(server, SerialFrameServer)
    settings = server.settings
    return SerialBus(server.port, settings.baudrate, settings.parity)


class FleetServers:
    """The frame servers of a fleet; ``async with`` starts and stops them all.

    ``reply_preamble`` is the number of ``FE`` bytes before each reply; by
    default 4 on TCP and serial links and none on MQTT.
    """

    def __init__(self, fleet: Fleet, listen: Listen, *, reply_preamble: int | None = None) -> None:
        self.fleet = fleet
        self.listen = listen
        self.servers: list[FrameServer] = []
        """Gateway / bus / broker: one server. Per meter: one per online meter, in fleet order."""
        self.by_address: dict[str, FrameServer] = {}
        if reply_preamble is None:
            reply_preamble = 0 if isinstance(listen, MqttBroker) else 4
        fleet.reply_preamble = reply_preamble
        self._preamble = reply_preamble

    async def start(self) -> None:
        """Open every endpoint; on failure close those already open and re-raise."""
        listen = self.listen
        try:
            if isinstance(listen, TcpGateway):
                server: FrameServer = TcpFrameServer(
                    self.fleet.handle, listen.host, listen.port, reply_preamble=self._preamble
                )
                await server.start()
                self.servers.append(server)
            elif isinstance(listen, SerialBus):
                server = SerialFrameServer(
                    self.fleet.handle,
                    listen.port,
                    baudrate=listen.baudrate,
                    parity=listen.parity,
                    reply_preamble=self._preamble,
                )
                await server.start()
                self.servers.append(server)
            elif isinstance(listen, MqttBroker):
                server = open_frame_server(
                    listen.url, self.fleet.handle, reply_preamble=self._preamble
                )
                await server.start()
                self.servers.append(server)
            else:
                await self._start_per_meter(listen)
        except BaseException:
            await self.stop()
            raise

    async def _start_per_meter(self, listen: TcpPerMeter) -> None:
        online = set(self.fleet.online)
        for i, address in enumerate(self.fleet.addresses):
            if address not in online:
                continue
            port = listen.first_port + i if listen.first_port else 0
            server = TcpFrameServer(
                self.fleet.handler_for(address), listen.host, port, reply_preamble=self._preamble
            )
            await server.start()
            self.servers.append(server)
            self.by_address[address] = server

    async def stop(self) -> None:
        servers, self.servers = self.servers, []
        self.by_address = {}
        for server in servers:
            await server.stop()

    def describe(self) -> str:
        """Where the fleet is served, for people."""
        listen = self.listen
        if isinstance(listen, TcpPerMeter):
            ports = [s.port for s in self.servers if isinstance(s, TcpFrameServer)]
            if not ports:
                return "no port (every meter is offline)"
            if ports == list(range(ports[0], ports[0] + len(ports))):
                where = f"{ports[0]}-{ports[-1]}" if len(ports) > 1 else str(ports[0])
            else:
                where = f"{ports[0]}…{ports[-1]}"
            return f"one TCP port per meter on {listen.host}:{where}"
        if isinstance(listen, SerialBus):
            return f"RS-485 bus {self.servers[0].url if self.servers else listen.port}"
        if isinstance(listen, MqttBroker):
            url = self.servers[0].url if self.servers else listen.url
            return f"MQTT broker {url} (topics …/ADDRESS/down and /up)"
        return f"TCP gateway {self.servers[0].url if self.servers else listen.host}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
