"""Transports and frame servers chosen by URL (as ``can.Bus`` picks a backend).

==============================================================  ===========================
``tcp://HOST:PORT``                                             :class:`TcpTransport`
``tcp://HOST:PORT?pipeline=64``                                 the same, 64 requests in flight
``serial:///dev/ttyUSB0?baud=2400&parity=E&timeout=2``          :class:`SerialTransport`
``mqtt://[USER[:PASSWORD]@]HOST[:PORT][/PREFIX]``               :class:`MqttTransport`
``mem://NAME``                                                  :class:`MemoryTransport`
==============================================================  ===========================

Query parameters set options; keyword arguments given to :func:`open_transport`
(or :func:`open_frame_server`) override them. Every parameter is listed in
:data:`URL_PARAMETERS`. ``pipeline=N`` (``max_in_flight``) lets a TCP or MQTT
client have N requests to distinct meters outstanding at once; a serial line is
half duplex and refuses it. An MQTT URL's path is the topic prefix (default
``feikong/meters``; port 1883 by default): frames go to
``{prefix}/{address}/down`` and come back on ``{prefix}/{address}/up``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from ..errors import TransportError
from ._client import Transport
from ._memory import MemoryFrameServer, MemoryTransport
from ._mqtt import DEFAULT_PREFIX, MQTT_PORT, MqttFrameServer, MqttTransport
from ._serial import SerialFrameServer, SerialTransport
from ._server import FrameHandler, FrameServer
from ._tcp import TcpFrameServer, TcpTransport

__all__ = ["URL_FORMS", "URL_PARAMETERS", "open_frame_server", "open_transport"]

URL_FORMS: Final = (
    "tcp://HOST:PORT",
    "tcp://HOST:PORT?pipeline=N",
    "serial:///dev/ttyUSB0?baud=2400&parity=E&timeout=2",
    "mqtt://HOST[:PORT][/PREFIX]",
    "mem://NAME",
)

_Converter = Callable[[str], object]


def _float(text: str) -> object:
    return float(text)


def _optional_float(text: str) -> object:
    return None if text.lower() in ("none", "off", "") else float(text)


def _int(text: str) -> object:
    return int(text)


def _str(text: str) -> object:
    return text


def _stopbits(text: str) -> object:
    value = float(text)
    return int(value) if value.is_integer() else value


_Params = Mapping[str, tuple[str, _Converter]]

_CLIENT: Final[_Params] = {
    "timeout": ("response_timeout", _float),
    "response_timeout": ("response_timeout", _float),
    "inter_byte_timeout": ("inter_byte_timeout", _optional_float),
    "gap": ("inter_frame_gap", _float),
    "inter_frame_gap": ("inter_frame_gap", _float),
    "preamble": ("preamble", _int),
}
_PIPELINE: Final[_Params] = {
    "pipeline": ("max_in_flight", _int),
    "max_in_flight": ("max_in_flight", _int),
}
_TCP_CLIENT: Final[_Params] = {
    **_CLIENT,
    **_PIPELINE,
    "connect_timeout": ("connect_timeout", _float),
    "connect_attempts": ("connect_attempts", _int),
    "reconnect_delay": ("reconnect_delay", _float),
    "max_reconnect_delay": ("max_reconnect_delay", _float),
}
_LINE: Final[_Params] = {
    "baud": ("baudrate", _int),
    "baudrate": ("baudrate", _int),
    "parity": ("parity", _str),
    "bytesize": ("bytesize", _int),
    "databits": ("bytesize", _int),
    "stopbits": ("stopbits", _stopbits),
}
_SERVER: Final[_Params] = {
    "reply_preamble": ("reply_preamble", _int),
    "reply_delay": ("reply_delay", _float),
    "inter_byte_timeout": ("inter_byte_timeout", _optional_float),
}
_BROKER: Final[_Params] = {
    "connect_timeout": ("connect_timeout", _float),
    "connect_attempts": ("connect_attempts", _int),
    "reconnect_delay": ("reconnect_delay", _float),
    "max_reconnect_delay": ("max_reconnect_delay", _float),
    "keepalive": ("keepalive", _int),
    "client_id": ("client_id", _str),
}
_MQTT_CLIENT: Final[_Params] = {
    "timeout": ("response_timeout", _float),
    "response_timeout": ("response_timeout", _float),
    "preamble": ("preamble", _int),
    **_PIPELINE,
    **_BROKER,
}
_MQTT_SERVER: Final[_Params] = {
    "reply_preamble": ("reply_preamble", _int),
    "reply_delay": ("reply_delay", _float),
    **_BROKER,
}

URL_PARAMETERS: Final[Mapping[str, Mapping[str, _Params]]] = {
    "client": {
        "tcp": _TCP_CLIENT,
        "serial": {**_CLIENT, **_LINE},
        "mqtt": _MQTT_CLIENT,
        "mem": {**_CLIENT, **_PIPELINE},
    },
    "server": {
        "tcp": _SERVER,
        "serial": {**_SERVER, **_LINE},
        "mqtt": _MQTT_SERVER,
        "mem": _SERVER,
    },
}
"""Query parameters by role and scheme: name → (option, converter)."""


def _forms() -> str:
    return ", ".join(URL_FORMS)


def _split(url: str, role: str) -> tuple[SplitResult, dict[str, Any]]:
    if not isinstance(url, str) or "://" not in url:
        raise TransportError(f"not a transport URL: {url!r}; use one of {_forms()}")
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise TransportError(f"malformed transport URL {url!r}: {exc}; use {_forms()}") from exc
    table = URL_PARAMETERS[role].get(parts.scheme)
    if table is None:
        raise TransportError(
            f"unknown transport scheme {parts.scheme!r} in {url!r}; use one of {_forms()}"
        )
    if parts.fragment:
        raise TransportError(f"transport URL {url!r} must not have a #fragment")
    options: dict[str, Any] = {}
    seen: set[str] = set()
    for key, text in query:
        if parts.scheme == "serial" and key in _PIPELINE:
            raise TransportError(
                f"{key}= in {url!r}: a serial line is half duplex (one transaction at a "
                "time); pipelining is for tcp:// gateways and mqtt://"
            )
        if key not in table:
            raise TransportError(
                f"unknown parameter {key!r} in {url!r}; {parts.scheme} URLs accept "
                f"{', '.join(sorted(table))}"
            )
        name, convert = table[key]
        if name in seen:
            raise TransportError(f"parameter {key!r} is given twice in {url!r}")
        seen.add(name)
        try:
            options[name] = convert(text)
        except ValueError:
            raise TransportError(f"bad value {key}={text!r} in {url!r}") from None
    return parts, options


def _tcp_address(parts: SplitResult, url: str, *, server: bool) -> tuple[str, int]:
    try:
        port = parts.port
    except ValueError as exc:
        raise TransportError(f"bad TCP port in {url!r}: {exc}; use tcp://HOST:PORT") from None
    host = parts.hostname
    if not host or port is None:
        raise TransportError(f"{url!r} needs a host and a port: tcp://HOST:PORT")
    if parts.path not in ("", "/") or parts.username or parts.password:
        raise TransportError(f"{url!r} must be just tcp://HOST:PORT (plus ?parameters)")
    if port == 0 and not server:
        raise TransportError(f"{url!r}: port 0 only makes sense for a server")
    return host, port


def _serial_port(parts: SplitResult, url: str) -> str:
    port = parts.netloc + parts.path
    if not port:
        raise TransportError(f"{url!r} names no port; use serial:///dev/ttyUSB0 or serial://COM3")
    return port


def _mqtt_address(parts: SplitResult, url: str) -> tuple[str, int, str, dict[str, Any]]:
    """Host, port, topic prefix and credentials of an ``mqtt://`` URL."""
    form = "mqtt://[USER[:PASSWORD]@]HOST[:PORT][/PREFIX]"
    try:
        port = parts.port
    except ValueError as exc:
        raise TransportError(f"bad MQTT port in {url!r}: {exc}; use {form}") from None
    host = parts.hostname
    if not host:
        raise TransportError(f"{url!r} names no broker host; use {form}")
    if port == 0:
        raise TransportError(f"{url!r}: port 0 is not a broker port; use {form}")
    path = unquote(parts.path).strip("/")
    credentials: dict[str, Any] = {}
    if parts.username:
        credentials["username"] = unquote(parts.username)
    if parts.password:
        credentials["password"] = unquote(parts.password)
    return host, port or MQTT_PORT, path or DEFAULT_PREFIX, credentials


def _mem_name(parts: SplitResult, url: str) -> str:
    if not parts.netloc or parts.path not in ("", "/"):
        raise TransportError(f"{url!r}: use mem://NAME, NAME being a registered server's name")
    return parts.netloc


def _apply(
    url: str,
    factory: Callable[..., Any],
    args: tuple[object, ...],
    options: dict[str, Any],
    overrides: dict[str, Any],
) -> Any:
    accepted = {
        p.name
        for p in inspect.signature(factory).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(overrides) - accepted)
    if unknown:
        raise TransportError(
            f"{factory.__name__} has no option {', '.join(unknown)}; "
            f"its options are {', '.join(sorted(accepted))}"
        )
    try:
        return factory(*args, **{**options, **overrides})
    except TransportError as exc:
        raise TransportError(f"{url}: {exc}") from exc


def open_transport(url: str, **overrides: Any) -> Transport:
    """The client transport for ``url`` (not yet open: it opens on first use).

    ``tcp://HOST:PORT`` (``?pipeline=N`` for N requests in flight),
    ``serial:///dev/ttyUSB0?baud=2400&parity=E&timeout=2`` (also
    ``serial://COM3``), ``mqtt://HOST[:PORT][/PREFIX]`` or ``mem://NAME``.
    Keyword arguments are options of the transport class and win over the
    URL's query parameters.
    Raises :class:`TransportError` for a URL it does not understand.
    """
    parts, options = _split(url, "client")
    transport: Transport
    if parts.scheme == "tcp":
        host, port = _tcp_address(parts, url, server=False)
        transport = _apply(url, TcpTransport, (host, port), options, overrides)
    elif parts.scheme == "serial":
        port_name = _serial_port(parts, url)
        transport = _apply(url, SerialTransport, (port_name,), options, overrides)
    elif parts.scheme == "mqtt":
        host, port, prefix, credentials = _mqtt_address(parts, url)
        options.update(credentials)
        transport = _apply(url, MqttTransport, (host, port, prefix), options, overrides)
    else:
        name = _mem_name(parts, url)
        transport = _apply(url, MemoryTransport, (name,), options, overrides)
    return transport


def open_frame_server(url: str, handler: FrameHandler, **overrides: Any) -> FrameServer:
    """The frame server for ``url`` (not yet started), answering with ``handler``.

    The same forms as :func:`open_transport` (without ``pipeline``: a server
    answers whatever arrives); ``tcp://0.0.0.0:0`` picks a free port, and
    ``mqtt://…`` serves every meter topic under the prefix on that broker.
    """
    parts, options = _split(url, "server")
    server: FrameServer
    if parts.scheme == "tcp":
        host, port = _tcp_address(parts, url, server=True)
        server = _apply(url, TcpFrameServer, (handler, host, port), options, overrides)
    elif parts.scheme == "serial":
        port_name = _serial_port(parts, url)
        server = _apply(url, SerialFrameServer, (handler, port_name), options, overrides)
    elif parts.scheme == "mqtt":
        host, port, prefix, credentials = _mqtt_address(parts, url)
        options.update(credentials)
        server = _apply(url, MqttFrameServer, (handler, host, port, prefix), options, overrides)
    else:
        name = _mem_name(parts, url)
        server = _apply(url, MemoryFrameServer, (handler, name), options, overrides)
    return server
