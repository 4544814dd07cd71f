"""DL/T 645 frames over MQTT (DTU-style meters, 4G modules): topics per meter, via aiomqtt.

Each meter has two topics under a prefix (default ``feikong/meters``)::

    {prefix}/{address}/down    master → meter (request frames)
    {prefix}/{address}/up      meter → master (reply frames)

One MQTT message carries one frame (no ``FE`` wake-up bytes by default: they
are for serial lines). ``address`` is the 12-digit address of the frame inside:
a request goes to the down topic of the address it is sent to (wildcard and
broadcast requests to ``AAAAAAAAAAAA`` and ``999999999999``), and a reply comes
up on the topic of the meter that sent it. QoS 0: a lost message is a timeout,
and retries are the caller's business, as on any other link.

:class:`MqttTransport` (master) subscribes ``{prefix}/+/up`` once and may have
requests to many meters in flight at the same time; :class:`MqttFrameServer`
(meters) subscribes ``{prefix}/+/down``, hands each frame to its handler and
publishes the reply. Both reconnect with backoff when the broker goes away.
aiomqtt (and paho-mqtt under it) is imported on first connection, not with
this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from ..address import Address
from ..errors import ProtocolError, TransportError
from ..frame import Frame
from ._client import Transport
from ._receiver import FrameReceiver
from ._server import FrameHandler, FrameServer, ReplyDelay

if TYPE_CHECKING:
    import aiomqtt

__all__ = ["DEFAULT_PREFIX", "MQTT_PORT", "MqttFrameServer", "MqttTransport", "meter_topic"]

logger = logging.getLogger(__name__)

DEFAULT_PREFIX: Final = "feikong/meters"
"""The topic prefix of ``mqtt://HOST:PORT`` URLs without a path."""
MQTT_PORT: Final = 1883
_PENDING_CALLS_WARNING: Final = 100_000


def meter_topic(prefix: str, address: str, direction: str) -> str:
    """``{prefix}/{address}/{direction}``, direction ``down`` (to the meter) or ``up``."""
    return f"{prefix}/{address}/{direction}"


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix:
        raise TransportError("MQTT topic prefix must not be empty (e.g. feikong/meters)")
    if any(c in prefix for c in "+#\0"):
        raise TransportError(
            f"MQTT topic prefix {prefix!r} must not contain the wildcards + or # (or NUL)"
        )
    if prefix.startswith("/") or prefix.endswith("/") or "//" in prefix:
        raise TransportError(
            f"MQTT topic prefix {prefix!r} must not start or end with / nor have empty "
            "levels; write it like feikong/meters"
        )
    return prefix


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise TransportError(f"MQTT broker port must be an integer 1..65535, got {port!r}")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class _Broker:
    """Where and how to connect (shared by the transport and the server)."""

    host: str
    port: int
    username: str | None
    password: str | None
    client_id: str | None
    keepalive: int
    connect_timeout: float
    connect_attempts: int
    reconnect_delay: float
    max_reconnect_delay: float

    def __post_init__(self) -> None:
        if not self.host:
            raise TransportError("MQTT broker host must not be empty")
        _check_port(self.port)
        if not self.connect_timeout > 0:
            raise TransportError(f"connect_timeout must be > 0 s, got {self.connect_timeout}")
        if self.connect_attempts < 1:
            raise TransportError(f"connect_attempts must be >= 1, got {self.connect_attempts}")
        if not 0 <= self.reconnect_delay <= self.max_reconnect_delay:
            raise TransportError(
                "reconnect delays must satisfy 0 <= reconnect_delay <= max_reconnect_delay, "
                f"got {self.reconnect_delay} and {self.max_reconnect_delay}"
            )
        if not 5 <= self.keepalive <= 65535:
            raise TransportError(f"keepalive must be 5..65535 s, got {self.keepalive}")

    @property
    def where(self) -> str:
        return _host_port(self.host, self.port)

    async def connect_once(self, subscription: str) -> _Connection:
        """Connect and subscribe once; raise :class:`TransportError` with the reason."""
        import aiomqtt

        stack = contextlib.AsyncExitStack()
        try:
            async with asyncio.timeout(self.connect_timeout):
                client = aiomqtt.Client(
                    self.host,
                    self.port,
                    username=self.username,
                    password=self.password,
                    identifier=self.client_id,
                    keepalive=self.keepalive,
                    timeout=self.connect_timeout,
                )
                # Many publishes awaiting their turn is our normal load, not a warning.
                client.pending_calls_threshold = _PENDING_CALLS_WARNING
                await stack.enter_async_context(client)
                await client.subscribe(subscription, qos=0)
        except TimeoutError:
            await _close_quietly(stack)
            raise TransportError(f"no answer within {self.connect_timeout:g} s") from None
        except aiomqtt.MqttError as exc:
            await _close_quietly(stack)
            raise TransportError(str(exc) or type(exc).__name__) from exc
        except OSError as exc:
            await _close_quietly(stack)
            raise TransportError(exc.strerror or str(exc)) from exc
        return _Connection(client, stack)

    async def connect(self, subscription: str, url: str) -> _Connection:
        """Connect with retries and backoff; the final error names ``url``."""
        delay = self.reconnect_delay
        reason = ""
        for attempt in range(1, self.connect_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.max_reconnect_delay)
            try:
                return await self.connect_once(subscription)
            except TransportError as exc:
                reason = str(exc)
            logger.info(
                "%s: connect attempt %d/%d to the broker failed: %s",
                url,
                attempt,
                self.connect_attempts,
                reason,
            )
        tries = "1 attempt" if self.connect_attempts == 1 else f"{self.connect_attempts} attempts"
        raise TransportError(
            f"cannot connect to the MQTT broker at {self.where} for {url} ({tries}; last "
            f"error: {reason}); check that the broker (e.g. mosquitto) is running and reachable"
        )


async def _close_quietly(stack: contextlib.AsyncExitStack) -> None:
    with contextlib.suppress(Exception):
        await stack.aclose()


def _errors(receiver: FrameReceiver) -> int:
    stats = receiver.parser.stats
    return stats.checksum_errors + stats.framing_errors


def _end_of_message(receiver: FrameReceiver, errors_before: int, url: str, topic: str) -> None:
    """A message is whole: bytes left over are a truncated frame (or remains of a bad one)."""
    pending = receiver.pending
    if not pending:
        return
    if _errors(receiver) == errors_before:
        receiver.counters.partial_frames_dropped += 1
        logger.info("%s: dropped a truncated frame of %d bytes on %s", url, pending, topic)
    receiver.reset()


@dataclass(slots=True)
class _Connection:
    client: aiomqtt.Client
    stack: contextlib.AsyncExitStack

    async def close(self) -> None:
        await _close_quietly(self.stack)


class MqttTransport(Transport):
    """The master on an MQTT broker: ``request()`` publishes on the meter's down topic
    and awaits its reply on the meter's up topic.

    ``prefix`` is the topic prefix (see the module doc). Requests to different
    meters may be in flight at the same time, up to ``max_in_flight``; those to
    one meter go one after the other. The connection opens lazily; when the
    broker goes away, the requests waiting fail with :class:`TransportError` and
    the next request reconnects (``connect_attempts`` tries with a doubling
    delay from ``reconnect_delay`` up to ``max_reconnect_delay``), then raises
    :class:`TransportError` naming the URL. ``preamble`` defaults to 0 ``FE``.
    """

    def __init__(
        self,
        host: str,
        port: int = MQTT_PORT,
        prefix: str = DEFAULT_PREFIX,
        *,
        response_timeout: float = 2.0,
        max_in_flight: int = 64,
        preamble: int = 0,
        connect_timeout: float = 3.0,
        connect_attempts: int = 3,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
    ) -> None:
        self.prefix = _check_prefix(prefix)
        self._broker = _Broker(
            host,
            port,
            username,
            password,
            client_id,
            keepalive,
            connect_timeout,
            connect_attempts,
            reconnect_delay,
            max_reconnect_delay,
        )
        self._connection: _Connection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._topic_address = ""
        self._closing: set[asyncio.Task[None]] = set()
        super().__init__(
            response_timeout=response_timeout,
            inter_byte_timeout=None,  # a message is whole or absent
            inter_frame_gap=0.0,
            preamble=preamble,
            max_in_flight=max_in_flight,
        )

    @property
    def host(self) -> str:
        return self._broker.host

    @property
    def port(self) -> int:
        return self._broker.port

    @property
    def url(self) -> str:
        return f"mqtt://{self._broker.where}/{self.prefix}"

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    async def _connect(self) -> None:
        connection = await self._broker.connect(meter_topic(self.prefix, "+", "up"), self.url)
        self._connection = connection
        self._reader = asyncio.create_task(self._read(connection), name=f"{self.url} reader")

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.cancel()
            await asyncio.wait((reader,))
        if connection is not None:
            await connection.close()
        if self._closing:
            await asyncio.wait(self._closing)

    async def _write(self, data: bytes) -> None:
        raise TransportError(f"{self.url}: frames go to a meter's topic (use request or send)")

    async def _send(self, frame: Frame, data: bytes) -> None:
        import aiomqtt

        connection = self._connection
        if connection is None:
            raise TransportError(f"{self.url}: not connected")
        topic = meter_topic(self.prefix, frame.address, "down")
        try:
            await connection.client.publish(topic, data, qos=0)
        except aiomqtt.MqttError as exc:
            self._drop(connection, exc)
            raise TransportError(f"{self.url}: publishing on {topic} failed: {exc}") from exc

    async def _read(self, connection: _Connection) -> None:
        import aiomqtt

        error: BaseException = TransportError("the broker closed the connection")
        first = len(self.prefix) + 1
        try:
            async for message in connection.client.messages:
                topic = message.topic.value
                payload = message.payload
                if not topic.endswith("/up") or not isinstance(payload, bytes | bytearray):
                    continue
                self._topic_address = topic[first:-3]
                errors = _errors(self._receiver)
                self._data_received(bytes(payload))
                _end_of_message(self._receiver, errors, self.url, topic)
        except aiomqtt.MqttError as exc:
            error = exc
        self._drop(connection, error)

    def _on_frame(self, frame: Frame) -> None:
        # Routed by the meter address of the topic, then checked like any reply.
        self._route(frame, self._topic_address)

    def _drop(self, connection: _Connection, exc: BaseException) -> None:
        if self._connection is not connection:
            return
        self._connection = None
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        closing = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        self._connection_lost(exc)


class MqttFrameServer(FrameServer):
    """Meters on an MQTT broker: every frame on ``{prefix}/+/down`` goes to the handler.

    The reply is published on ``{prefix}/{address}/up``, ``address`` being the
    reply frame's own, so the answer to a wildcard (``AA…AA``) request comes up
    on the meter's topic. Raw ``bytes`` from the handler go up on the topic of the
    request (or, for a wildcard one, of the address in the bytes). A frame
    whose address is not the one in its topic is ignored (counted in
    ``ignored_frames``). If the broker goes away the server keeps reconnecting
    (backoff up to ``max_reconnect_delay``) and subscribes again.
    """

    def __init__(
        self,
        handler: FrameHandler,
        host: str = "127.0.0.1",
        port: int = MQTT_PORT,
        prefix: str = DEFAULT_PREFIX,
        *,
        reply_preamble: int = 0,
        reply_delay: ReplyDelay = 0.0,
        connect_timeout: float = 3.0,
        connect_attempts: int = 3,
        reconnect_delay: float = 0.1,
        max_reconnect_delay: float = 5.0,
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(
            handler,
            reply_preamble=reply_preamble,
            reply_delay=reply_delay,
            inter_byte_timeout=None,
        )
        self.prefix = _check_prefix(prefix)
        self._broker = _Broker(
            host,
            port,
            username,
            password,
            client_id,
            keepalive,
            connect_timeout,
            connect_attempts,
            reconnect_delay,
            max_reconnect_delay,
        )
        self._connection: _Connection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._receiver = FrameReceiver(
            self._on_frame,
            inter_byte_timeout=None,
            label=self.url,
            parser_stats=self._parser_stats,
            counters=self._link_counters,
        )
        self._topic_address = ""
        self._connected = asyncio.Event()

    @property
    def host(self) -> str:
        return self._broker.host

    @property
    def port(self) -> int:
        return self._broker.port

    @property
    def url(self) -> str:
        return f"mqtt://{self._broker.where}/{self.prefix}"

    @property
    def is_connected(self) -> bool:
        """True while connected to the broker and subscribed."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Return once connected and subscribed (at once if already)."""
        await self._connected.wait()

    async def start(self) -> None:
        if self._runner is not None:
            return
        connection = await self._broker.connect(meter_topic(self.prefix, "+", "down"), self.url)
        self._counters.connections += 1
        self._connection = connection
        self._connected.set()
        self._runner = asyncio.create_task(self._run(connection), name=f"{self.url} server")
        self._mark_serving(True)
        logger.info("%s: serving topics %s", self.url, meter_topic(self.prefix, "+", "down"))

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        runner.cancel()
        await asyncio.wait((runner,))
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        connection, self._connection = self._connection, None
        self._connected.clear()
        if connection is not None:
            await connection.close()
        self._mark_serving(False)
        logger.info("%s: stopped", self.url)

    def _active_connections(self) -> int:
        return 1 if self._connected.is_set() else 0

    async def _run(self, connection: _Connection) -> None:
        """Serve, and when the broker goes away, reconnect until it is back (or stop)."""
        broker = self._broker
        subscription = meter_topic(self.prefix, "+", "down")
        while True:
            error = await self._consume(connection)
            self._connected.clear()
            self._connection = None
            await connection.close()
            logger.warning("%s: lost the broker (%s); reconnecting", self.url, error)
            delay = broker.reconnect_delay
            while True:
                await asyncio.sleep(delay)
                try:
                    connection = await broker.connect_once(subscription)
                except TransportError as exc:
                    logger.info("%s: broker still unreachable: %s", self.url, exc)
                    delay = min(max(2 * delay, 0.05), broker.max_reconnect_delay)
                    continue
                break
            self._counters.connections += 1
            self._connection = connection
            self._connected.set()
            logger.warning("%s: reconnected to the broker", self.url)

    async def _consume(self, connection: _Connection) -> BaseException:
        import aiomqtt

        first = len(self.prefix) + 1
        try:
            async for message in connection.client.messages:
                topic = message.topic.value
                payload = message.payload
                if not topic.endswith("/down") or not isinstance(payload, bytes | bytearray):
                    continue
                self._topic_address = topic[first:-5]
                errors = _errors(self._receiver)
                self._receiver.feed(bytes(payload))
                _end_of_message(self._receiver, errors, self.url, topic)
        except aiomqtt.MqttError as exc:
            return exc
        return TransportError("the broker ended the subscription")

    def _on_frame(self, frame: Frame) -> None:
        topic_address = self._topic_address
        if frame.address != topic_address:
            self._counters.ignored_frames += 1
            logger.info(
                "%s: ignored a frame for %s that came on the topic of %s",
                self.url,
                frame.address,
                topic_address,
            )
            return
        task = asyncio.get_running_loop().create_task(self._answer(frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, frame: Frame) -> None:
        import aiomqtt

        answer = await self._reply(frame, self.url)
        if answer is None:
            return
        data, reply_address = answer
        address = reply_address or self._raw_reply_address(frame, data)
        if address is None:
            self._counters.handler_errors += 1
            logger.error(
                "%s: raw reply bytes to %s name no meter address; not published",
                self.url,
                frame.address,
            )
            return
        connection = self._connection
        topic = meter_topic(self.prefix, address, "up")
        if connection is None:
            logger.info("%s: no broker connection; the reply on %s is lost", self.url, topic)
            return
        try:
            await connection.client.publish(topic, data, qos=0)
        except aiomqtt.MqttError as exc:
            logger.info("%s: could not publish the reply on %s: %s", self.url, topic, exc)
            return
        self._counters.replies_sent += 1

    @staticmethod
    def _raw_reply_address(request: Frame, data: bytes) -> str | None:
        """The topic address for raw reply bytes: the request's, else the one in the bytes."""
        if "A" not in request.address and not request.address.is_broadcast:
            return request.address
        start = data.find(0x68)
        if start < 0 or len(data) < start + 7:
            return None
        try:
            return Address.from_wire(data[start + 1 : start + 7])
        except ProtocolError:  # not BCD: no address
            return None
