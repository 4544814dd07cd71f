"""asyncio transports for DL/T 645-2007: the master's links and the meters' servers.

The codec in :mod:`protocol` does no I/O; this package moves its frames.

Client (master station, 主站) side — one request, one reply; one transaction at
a time by default (RS-485 is half duplex)::

    async with open_transport("tcp://10.0.0.5:8899") as link:
        reply = await link.request(Frame(Address("123456781012"), 0x11, di))

A gateway or concentrator with many meters behind one endpoint takes several
requests at once: ``tcp://10.0.0.5:8899?pipeline=64`` (``max_in_flight=64``)
keeps up to 64 requests to distinct meters outstanding on the connection, the
replies matched to them by meter address, from as many tasks calling
:meth:`Transport.request` concurrently. MQTT links do the same by default.

Server (meter, 从站) side — a handler answers each request frame, stays
silent by returning ``None``, or returns raw ``bytes`` written as they are (a
simulator's deliberately broken reply)::

    async with TcpFrameServer(handler, "0.0.0.0", 8645) as server:
        await server.serve_forever()

Backends: TCP (:class:`TcpTransport`, :class:`TcpFrameServer`), serial ports
(:class:`SerialTransport`, :class:`SerialFrameServer`, default 2400 8E1), MQTT
topics per meter through a broker (:class:`MqttTransport`,
:class:`MqttFrameServer`: ``{prefix}/{address}/down`` and ``/up``) and an
in-memory null modem for tests (:class:`MemoryTransport`,
:class:`MemoryFrameServer`, :func:`memory_pair`) whose *manipulator* hook
splits, garbles or drops the bytes written.
"""

from __future__ import annotations

from ..errors import ResponseTimeoutError, TransportError
from ._client import Transport, TransportStats, is_reply_to
from ._memory import Manipulator, MemoryFrameServer, MemoryTransport, memory_pair
from ._mqtt import DEFAULT_PREFIX, MqttFrameServer, MqttTransport, meter_topic
from ._serial import BAUDRATES, PARITIES, SerialFrameServer, SerialSettings, SerialTransport
from ._server import FrameHandler, FrameServer, ReplyDelay, ServerStats
from ._stream import StreamTransport
from ._tcp import TcpFrameServer, TcpTransport
from ._url import URL_FORMS, URL_PARAMETERS, open_frame_server, open_transport

__all__ = [
    "BAUDRATES",
    "DEFAULT_PREFIX",
    "PARITIES",
    "URL_FORMS",
    "URL_PARAMETERS",
    "FrameHandler",
    "FrameServer",
    "Manipulator",
    "MemoryFrameServer",
    "MemoryTransport",
    "MqttFrameServer",
    "MqttTransport",
    "ReplyDelay",
    "ResponseTimeoutError",
    "SerialFrameServer",
    "SerialSettings",
    "SerialTransport",
    "ServerStats",
    "StreamTransport",
    "TcpFrameServer",
    "TcpTransport",
    "Transport",
    "TransportError",
    "TransportStats",
    "is_reply_to",
    "memory_pair",
    "meter_topic",
    "open_frame_server",
    "open_transport",
]
