"""Head-end events (事件) and the bus they travel on, in-process and over MQTT.

The head-end tells the rest of the system what happened through events, never
through DL/T 645: a reading was collected or is missing, a command succeeded or
failed, a meter raised an alarm, a job was queued or started. Every event is a
frozen dataclass with the meter address, the job id where there is one, and a
timestamp ``at`` taken from the shared :class:`~protocol.clock.Clock`;
:meth:`Event.to_json` and :func:`event_from_json` carry it across processes.

:class:`EventBus` is the in-process bus (事件总线). Publishing never blocks and
never fails: each subscriber has a bounded queue, and when a slow subscriber's
queue is full the event is dropped *for that subscriber only* and counted in its
``dropped`` (and the bus's). Subscribe by event type, or to everything::

    async with bus.subscribe(CommandFailed) as failures:
        async for event in failures:
            ...

    bus.on(lambda e: log.info("%s", e), ReadingCollected)   # a sync callback

:class:`MqttEventPublisher` copies the bus to MQTT topics
``feikong/events/{kind}`` (JSON payloads, QoS 1); :class:`MqttEventSubscriber`
turns those messages back into events on another process's bus, so the prepaid
platform can consume them. Events that arrived from MQTT are marked remote and
are not published again, so a process may run both without an echo loop.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import enum
import json
import logging
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Final, Self
from urllib.parse import unquote, urlsplit

from protocol.clock import Clock, RealClock

from .errors import EventFormatError, MqttURLError

__all__ = [
    "DEFAULT_QUEUE_SIZE",
    "EVENT_TYPES",
    "TOPIC_PREFIX",
    "CommandFailed",
    "CommandSucceeded",
    "Event",
    "EventBus",
    "EventKind",
    "JobQueued",
    "JobStarted",
    "MeterAlarm",
    "MqttEventPublisher",
    "MqttEventSubscriber",
    "MqttSettings",
    "ReadingCollected",
    "ReadingMissing",
    "Subscription",
    "event_from_dict",
    "event_from_json",
]

log = logging.getLogger(__name__)

TOPIC_PREFIX: Final = "feikong/events"
"""Events go to ``{TOPIC_PREFIX}/{kind}``, e.g. ``feikong/events/command-failed``."""
DEFAULT_QUEUE_SIZE: Final = 10_000
"""Events a subscriber may fall behind by before the newest ones are dropped for it."""


class EventKind(enum.StrEnum):
    """The kind of an event; also the last level of its MQTT topic."""

    READING_COLLECTED = "reading-collected"
    READING_MISSING = "reading-missing"
    COMMAND_SUCCEEDED = "command-succeeded"
    COMMAND_FAILED = "command-failed"
    METER_ALARM = "meter-alarm"
    JOB_QUEUED = "job-queued"
    JOB_STARTED = "job-started"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """What every event carries: the meter address and the clock time it happened."""

    kind: ClassVar[EventKind]
    address: str
    """The meter's 12-digit communication address."""
    at: datetime
    """When it happened, by the head-end's clock (naive local time, like the meters)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``kind`` plus every field (times as ISO 8601 text)."""
        data: dict[str, Any] = {"kind": self.kind.value}
        for f in dataclasses.fields(self):
            data[f.name] = _jsonable(getattr(self, f.name))
        return data

    def to_json(self) -> str:
        """The event as one line of JSON (what goes on MQTT)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingCollected(Event):
    """A value was read from a meter (采集成功) and stored.

    ``di`` is the data identifier as 8 hex digits (e.g. ``"05060101"``);
    ``quantity`` names it for readers who do not speak DL/T 645
    (e.g. ``"forward-active-energy"``). ``value`` is the exact decimal text (or
    hex for raw data); ``energy_ckwh`` is an energy register in 0.01 kWh.
    ``freeze_date`` is the day of frozen data, ``None`` for a current value.
    """

    kind: ClassVar[EventKind] = EventKind.READING_COLLECTED
    di: str
    value: str
    quantity: str | None = None
    unit: str | None = None
    freeze_date: date | None = None
    energy_ckwh: int | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingMissing(Event):
    """A value could not be collected (采集失败); ``reason`` says why."""

    kind: ClassVar[EventKind] = EventKind.READING_MISSING
    di: str
    reason: str
    quantity: str | None = None
    freeze_date: date | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSucceeded(Event):
    """A control command (trip, permit-close, close, guarantee on/off) was carried out.

    ``command`` is the job kind (``"trip"``, ``"permit-close"``, …); ``relay`` is
    the relay state the meter confirmed in status word 3 (``"open"``/``"closed"``)
    when the command moves the relay; ``energy_ckwh`` is the forward active
    energy read at the moment of a trip (for final settlement, 结算);
    ``reason`` is the caller's reason (e.g. arrears); ``attempts`` counts the tries.
    """

    kind: ClassVar[EventKind] = EventKind.COMMAND_SUCCEEDED
    job_id: str
    command: str
    attempts: int
    relay: str | None = None
    guarantee: bool | None = None
    energy_ckwh: int | None = None
    reason: str | None = None
    info: tuple[str, ...] = ()
    """The meter's execution-information bits, when it sent them (``9C 02``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandFailed(Event):
    """A command (or read job) gave up; ``reason`` says why and what to do.

    ``expired`` is set when the job's deadline passed before it could succeed.
    ``error`` is the short name of the last error (e.g. ``"mac-error"``,
    ``"no-reply"``, ``"relay-not-open"``).
    """

    kind: ClassVar[EventKind] = EventKind.COMMAND_FAILED
    job_id: str
    command: str
    reason: str
    attempts: int
    error: str | None = None
    expired: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterAlarm(Event):
    """Something about a meter needs a person: e.g. a suspended ESAM (挂起) or a relay
    that does not follow commands. ``alarm`` is a short name, ``detail`` the text."""

    kind: ClassVar[EventKind] = EventKind.METER_ALARM
    alarm: str
    detail: str = ""
    job_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobQueued(Event):
    """A job was accepted (任务入队)."""

    kind: ClassVar[EventKind] = EventKind.JOB_QUEUED
    job_id: str
    command: str
    priority: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class JobStarted(Event):
    """An attempt at a job began (``attempt`` counts from 1)."""

    kind: ClassVar[EventKind] = EventKind.JOB_STARTED
    job_id: str
    command: str
    attempt: int


EVENT_TYPES: Final[dict[EventKind, type[Event]]] = {
    t.kind: t
    for t in (
        ReadingCollected,
        ReadingMissing,
        CommandSucceeded,
        CommandFailed,
        MeterAlarm,
        JobQueued,
        JobStarted,
    )
}


# --------------------------------------------------------------------------- JSON


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


_HINTS: dict[type[Event], dict[str, Any]] = {}


def _hints(cls: type[Event]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINTS[cls] = hints
    return hints


def _convert(name: str, hint: Any, value: Any, kind: str) -> Any:
    """``value`` from JSON as the field's type; raises ValueError/TypeError if it is not."""
    args = typing.get_args(hint)
    optional = isinstance(hint, types.UnionType) and type(None) in args
    if value is None:
        if optional:
            return None
        raise TypeError(f"{name} may not be null")
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    origin = typing.get_origin(base)
    if base is datetime:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be an ISO 8601 time")
        return datetime.fromisoformat(value)
    if base is date:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be an ISO 8601 date")
        return date.fromisoformat(value)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"{name} must be a list of strings")
        return tuple(value)
    if base is bool:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be true or false")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an integer")
        return value
    if base is str:
        if not isinstance(value, str):
            raise TypeError(f"{name} must be text")
        return value
    raise TypeError(f"{name} has an unsupported type in a {kind} event")  # pragma: no cover


def event_from_dict(data: Any) -> Event:
    """The event a :meth:`Event.to_dict` made; raises :class:`EventFormatError` if malformed."""
    if not isinstance(data, dict):
        raise EventFormatError(f"an event must be a JSON object, got {type(data).__name__}")
    kind_text = str(data.get("kind"))
    try:
        cls = EVENT_TYPES[EventKind(kind_text)]
    except ValueError:
        known = ", ".join(k.value for k in EventKind)
        raise EventFormatError(f"unknown event kind {kind_text!r}; known kinds: {known}") from None
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise EventFormatError(f"{kind_text} event lacks the field {f.name!r}")
            continue
        try:
            values[f.name] = _convert(f.name, hints[f.name], data[f.name], kind_text)
        except (TypeError, ValueError) as exc:
            raise EventFormatError(f"{kind_text} event: {exc}") from None
    return cls(**values)


def event_from_json(text: str | bytes) -> Event:
    """The event :meth:`Event.to_json` wrote; raises :class:`EventFormatError` if malformed."""
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EventFormatError(f"an event must be JSON: {exc}") from None
    return event_from_dict(data)


# --------------------------------------------------------------------------- bus

EventTypes = type[Event] | Iterable[type[Event]] | None
_CLOSED: Final = object()


def _type_set(types_: EventTypes) -> tuple[type[Event], ...] | None:
    if types_ is None:
        return None
    if isinstance(types_, type):
        return (types_,)
    return tuple(types_)


class Subscription:
    """A subscriber's bounded queue of events; iterate it with ``async for``.

    Iteration ends when the subscription (or its bus) is closed. ``dropped``
    counts the events this subscriber missed because its queue was full.
    """

    def __init__(
        self,
        bus: EventBus,
        types_: tuple[type[Event], ...] | None,
        maxsize: int,
        include_remote: bool,
    ) -> None:
        self._bus = bus
        self.types = types_
        self.include_remote = include_remote
        self.maxsize = maxsize
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.dropped = 0
        self.closed = False

    def wants(self, event: Event, remote: bool) -> bool:
        if remote and not self.include_remote:
            return False
        return self.types is None or isinstance(event, self.types)

    def _offer(self, event: Event) -> bool:
        if self.closed:
            return True
        if self._queue.qsize() >= self.maxsize:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning(
                    "an event subscriber is %d events behind; %d event(s) dropped for it",
                    self.maxsize,
                    self.dropped,
                )
            return False
        self._queue.put_nowait(event)
        return True

    @property
    def pending(self) -> int:
        """Events waiting in the queue."""
        return self._queue.qsize() - (1 if self.closed and not self._queue.empty() else 0)

    async def get(self) -> Event:
        """The next event; raises :class:`StopAsyncIteration` once closed and drained."""
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # later get()s end too
            raise StopAsyncIteration
        event: Event = item
        return event

    def get_nowait(self) -> Event | None:
        """The next event if one is waiting, else ``None``."""
        try:
            item = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)
            return None
        event: Event = item
        return event

    def close(self) -> None:
        """Stop receiving; iteration ends after the events already queued."""
        if not self.closed:
            self.closed = True
            self._queue.put_nowait(_CLOSED)
            self._bus._remove(self)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()


class EventBus:
    """The in-process event bus: non-blocking publish, bounded per-subscriber queues.

    Call :meth:`publish` from the event loop's thread (every head-end component
    runs on it). Sync callbacks (:meth:`on`) run inside :meth:`publish`; an
    exception in one is logged and does not reach the publisher.
    """

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self._subscriptions: list[Subscription] = []
        self._callbacks: list[tuple[Callable[[Event], None], tuple[type[Event], ...] | None]] = []
        self.published = 0
        """Events published (local and remote)."""
        self.callback_errors = 0
        self._dropped_closed = 0

    @property
    def dropped(self) -> int:
        """Events dropped for slow subscribers, over all subscribers (closed ones too)."""
        return self._dropped_closed + sum(s.dropped for s in self._subscriptions)

    def subscribe(
        self,
        types_: EventTypes = None,
        *,
        maxsize: int | None = None,
        include_remote: bool = True,
    ) -> Subscription:
        """A queue of the events of ``types_`` (one type, several, or ``None`` for all).

        ``include_remote=False`` leaves out events that arrived from MQTT.
        """
        sub = Subscription(self, _type_set(types_), maxsize or self.queue_size, include_remote)
        self._subscriptions.append(sub)
        return sub

    def on(
        self, callback: Callable[[Event], None], types_: EventTypes = None
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for each event of ``types_``; returns an unsubscribe."""
        entry = (callback, _type_set(types_))
        self._callbacks.append(entry)

        def off() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(entry)

        return off

    def publish(self, event: Event, *, remote: bool = False) -> None:
        """Deliver ``event`` to every interested subscriber and callback; never blocks.

        ``remote=True`` marks an event that came from another process (MQTT).
        """
        self.published += 1
        for sub in self._subscriptions:
            if sub.wants(event, remote):
                sub._offer(event)
        for callback, types_ in self._callbacks:
            if types_ is not None and not isinstance(event, types_):
                continue
            try:
                callback(event)
            except Exception:
                self.callback_errors += 1
                log.exception("event callback %r failed on %s", callback, event.kind.value)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.remove(sub)
            self._dropped_closed += sub.dropped

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions) + len(self._callbacks)

    def close(self) -> None:
        """Close every subscription (their iterations end)."""
        for sub in list(self._subscriptions):
            sub.close()
        self._callbacks.clear()


# --------------------------------------------------------------------------- MQTT bridge


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Where the event bridge connects: ``mqtt://[user[:password]@]host[:port][/prefix]``."""

    host: str
    port: int = 1883
    prefix: str = TOPIC_PREFIX
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_url(cls, url: str) -> MqttSettings:
        """Parse an ``mqtt://`` URL; the path, if any, replaces ``feikong/events``."""
        parts = urlsplit(url.strip())
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme.lower() != "mqtt" or not parts.hostname or port == -1 or port == 0:
            raise MqttURLError(
                f"not an MQTT URL: {url!r}; use mqtt://HOST[:PORT][/topic-prefix], "
                "e.g. mqtt://127.0.0.1:1883"
            )
        prefix = parts.path.strip("/") or TOPIC_PREFIX
        if "+" in prefix or "#" in url:
            raise MqttURLError(f"the topic prefix in {url!r} must not contain + or #")
        return cls(
            host=parts.hostname,
            port=port or 1883,
            prefix=prefix,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def topic(self, kind: EventKind) -> str:
        return f"{self.prefix}/{kind.value}"

    def client(self, role: str) -> Any:
        """A new (unconnected) aiomqtt client; call inside the running event loop."""
        import aiomqtt

        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=f"feikong-{role}-{uuid.uuid4().hex[:12]}",
            timeout=10,
        )


class _Bridge(abc.ABC):
    """Shared life cycle: ``async with`` runs the bridge as a task; reconnects with backoff."""

    role = "bridge"

    def __init__(
        self,
        bus: EventBus,
        settings: MqttSettings | str,
        *,
        clock: Clock | None = None,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self.settings = MqttSettings.from_url(settings) if isinstance(settings, str) else settings
        self.clock: Clock = clock or RealClock()
        self.max_backoff_s = max_backoff_s
        self.connected = asyncio.Event()
        """Set while connected to the broker (and, for a subscriber, subscribed)."""
        self.connects = 0
        self.disconnects = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._down = asyncio.Event()

    @abc.abstractmethod
    async def _session(self, client: Any) -> None:
        """What the bridge does with a connected client until it disconnects."""

    def _prepare(self) -> None:  # noqa: B027 - a hook; most bridges need nothing here
        """Runs once when the bridge starts (before it connects)."""

    async def run(self) -> None:
        """Connect and bridge until cancelled, reconnecting after broker failures."""
        import aiomqtt

        self._prepare()
        backoff = 0.5
        while True:
            try:
                async with self.settings.client(self.role) as client:
                    self.connects += 1
                    backoff = 0.5
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                self.last_error = str(exc)
                self.disconnects += 1
                self._down.set()
                log.warning(
                    "MQTT %s %s:%d: %s; reconnecting in %.1f s",
                    self.role,
                    self.settings.host,
                    self.settings.port,
                    exc,
                    backoff,
                )
                await self.clock.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
            finally:
                self.connected.clear()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait (real time) until connected; raises TimeoutError with the last error."""
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the MQTT {self.role} did not reach {self.settings.host}:{self.settings.port} "
                f"within {timeout:.0f} s (last error: {self.last_error}); is the broker running?"
            ) from None

    async def wait_disconnected(self, timeout: float = 10.0) -> None:
        """Wait (real time) until the bridge has lost (or failed to make) a connection."""
        await asyncio.wait_for(self._down.wait(), timeout)
        self._down.clear()

    def start(self) -> asyncio.Task[None]:
        """Run the bridge as a task; a publisher sees every event published from now on."""
        if self._task is None:
            self._prepare()
            self._task = asyncio.create_task(self.run(), name=f"mqtt-{self.role}")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


class MqttEventPublisher(_Bridge):
    """Publishes every local event of ``bus`` on ``{prefix}/{kind}`` (JSON, QoS 1).

    Events published while the broker is unreachable wait in a bounded queue
    (the bus drops and counts what overflows) and go out after reconnecting.
    Events that came from MQTT (remote) are not published again.
    """

    role = "publisher"

    def __init__(
        self,
        bus: EventBus,
        settings: MqttSettings | str,
        *,
        clock: Clock | None = None,
        max_backoff_s: float = 30.0,
    ) -> None:
        super().__init__(bus, settings, clock=clock, max_backoff_s=max_backoff_s)
        self.sent = 0
        self._pending: Event | None = None
        self._sub: Subscription | None = None

    def _prepare(self) -> None:
        if self._sub is None:
            self._sub = self.bus.subscribe(include_remote=False)

    async def _session(self, client: Any) -> None:
        self.connected.set()
        # aiomqtt notices a lost connection in its message iterator: watch it while
        # sending, so the bridge reconnects at once instead of at the next publish.
        sender = asyncio.create_task(self._send(client))
        watchdog = asyncio.create_task(_watch(client))
        try:
            done, _ = await asyncio.wait({sender, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in (sender, watchdog):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _send(self, client: Any) -> None:
        assert self._sub is not None
        while True:
            if self._pending is None:
                self._pending = await self._sub.get()
            event = self._pending
            await client.publish(self.settings.topic(event.kind), event.to_json(), qos=1)
            self._pending = None  # an event cut off by a disconnect is sent again (QoS 1)
            self.sent += 1

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait (real time) until every event published so far has gone to the broker."""

        async def empty() -> None:
            while self._sub is None or self._sub.pending or self._pending is not None:
                await asyncio.sleep(0.005)

        await asyncio.wait_for(empty(), timeout)

    async def stop(self) -> None:
        await super().stop()
        if self._sub is not None:
            self._sub.close()
            self._sub = None


async def _watch(client: Any) -> None:
    """Return only by raising MqttError when the client's connection is lost."""
    import aiomqtt

    async for _ in client.messages:
        pass
    raise aiomqtt.MqttError("the connection to the broker ended")


class MqttEventSubscriber(_Bridge):
    """Receives events from ``{prefix}/#`` and publishes them on ``bus`` as remote events.

    A message that is not a valid event is logged and counted in ``rejected``.
    """

    role = "subscriber"

    def __init__(
        self,
        bus: EventBus,
        settings: MqttSettings | str,
        *,
        clock: Clock | None = None,
        max_backoff_s: float = 30.0,
    ) -> None:
        super().__init__(bus, settings, clock=clock, max_backoff_s=max_backoff_s)
        self.received = 0
        self.rejected = 0

    async def _session(self, client: Any) -> None:
        await client.subscribe(f"{self.settings.prefix}/#", qos=1)
        self.connected.set()
        async for message in client.messages:
            payload = message.payload
            try:
                if not isinstance(payload, bytes | bytearray | str):
                    raise EventFormatError("the MQTT message has no JSON payload")
                event = event_from_json(bytes(payload) if not isinstance(payload, str) else payload)
            except EventFormatError as exc:
                self.rejected += 1
                log.warning("ignored a message on %s: %s", message.topic, exc)
                continue
            self.received += 1
            self.bus.publish(event, remote=True)
