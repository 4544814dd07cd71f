"""SMS gateways (短信平台接口): the interface, a file / stream sink and an HTTP adapter.

The outbox's dispatcher hands each queued message to an :class:`SmsGateway` and stores
what came back. Two implementations ship:

- :class:`FileSink` / :class:`StreamSink` — the working built-in: each message is
  appended to a file (or written to a stream) as one JSON line; written is delivered.
- :class:`HttpGateway` — POSTs JSON to an SMS platform's URL with a timeout and maps
  the response: ``200``/``201`` → delivered (or what the body's ``"status"`` says),
  ``202`` → sent (accepted; a delivery receipt comes later), another ``4xx`` → failed
  at once; ``408``, ``429``, ``5xx``, a timeout or a refused connection are retried
  ``retries`` times, then failed.

:func:`open_gateway` builds one from a spec: ``file:PATH``, ``console`` or an
``http://`` / ``https://`` URL.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol, runtime_checkable
from urllib.parse import urlsplit

from protocol.clock import Clock, RealClock

from ._errors import GatewayError

__all__ = [
    "DeliveryOutcome",
    "FileSink",
    "HttpGateway",
    "OutgoingSms",
    "SendResult",
    "SmsGateway",
    "StreamSink",
    "Try",
    "open_gateway",
]

log = logging.getLogger(__name__)


class DeliveryOutcome(enum.StrEnum):
    SENT = "sent"  # accepted by the gateway; delivery not yet confirmed
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """What a gateway gets: the message id (to match receipts), number and text."""

    message_id: int
    phone: str  # 11 normalised digits
    text: str
    episode_key: str
    kind: str
    segments: int


@dataclass(frozen=True, slots=True)
class Try:
    """One try at handing a message over (an HTTP request, a file write)."""

    outcome: DeliveryOutcome
    error: str | None = None
    http_status: int | None = None


@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of :meth:`SmsGateway.send`: the final one and every try on the way."""

    outcome: DeliveryOutcome
    tries: tuple[Try, ...]
    gateway_ref: str | None = None  # the gateway's own id for the message, if it gave one
    error: str | None = None


@runtime_checkable
class SmsGateway(Protocol):
    """Something that sends one SMS and says what happened; it never raises for a send."""

    @property
    def name(self) -> str:
        """A short name stored with each attempt (``file``, ``http``)."""
        ...

    def send(self, sms: OutgoingSms) -> SendResult: ...


def _failed(error: str) -> SendResult:
    return SendResult(DeliveryOutcome.FAILED, (Try(DeliveryOutcome.FAILED, error),), None, error)


def _line(sms: OutgoingSms, at: str) -> str:
    record = {
        "at": at,
        "id": sms.message_id,
        "to": sms.phone,
        "kind": sms.kind,
        "episode": sms.episode_key,
        "segments": sms.segments,
        "text": sms.text,
    }
    return json.dumps(record, ensure_ascii=False) + "\n"


class StreamSink:
    """Writes each SMS as a JSON line to a text stream (the console, a pipe)."""

    def __init__(self, stream: IO[str], *, clock: Clock | None = None, name: str = "console"):
        self._stream = stream
        self._clock = clock or RealClock()
        self._name = name
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    def send(self, sms: OutgoingSms) -> SendResult:
        try:
            with self._lock:
                self._stream.write(_line(sms, self._clock.now().isoformat(timespec="seconds")))
                self._stream.flush()
        except (OSError, ValueError) as exc:
            error = f"cannot write to {self._name}: {exc}"
            return _failed(error)
        done = Try(DeliveryOutcome.DELIVERED)
        return SendResult(DeliveryOutcome.DELIVERED, (done,))


class FileSink:
    """Appends each SMS as a JSON line to a file (UTF-8); the built-in gateway."""

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self._clock = clock or RealClock()
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            raise GatewayError(
                f"cannot append to the SMS sink file {self.path}: {exc.strerror or exc}; "
                "choose a writable path with --sink file:PATH"
            ) from exc

    @property
    def name(self) -> str:
        return "file"

    def send(self, sms: OutgoingSms) -> SendResult:
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as handle:
                handle.write(_line(sms, self._clock.now().isoformat(timespec="seconds")))
        except OSError as exc:
            error = f"cannot append to {self.path}: {exc.strerror or exc}"
            return _failed(error)
        return SendResult(DeliveryOutcome.DELIVERED, (Try(DeliveryOutcome.DELIVERED),))


_TRANSIENT_STATUS = frozenset({408, 429})
_BODY_STATUS = {
    "delivered": DeliveryOutcome.DELIVERED,
    "ok": DeliveryOutcome.DELIVERED,
    "sent": DeliveryOutcome.SENT,
    "accepted": DeliveryOutcome.SENT,
    "queued": DeliveryOutcome.SENT,
    "failed": DeliveryOutcome.FAILED,
    "rejected": DeliveryOutcome.FAILED,
}


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes = b""
    error: str | None = None  # a transport error (timeout, refused): no HTTP status


class HttpGateway:
    """POSTs each SMS as JSON to ``url`` (see the module docstring for the mapping).

    The request body is ``{"id", "to", "text", "kind", "episode", "segments"}``; extra
    ``headers`` (e.g. an API key) are sent with it. A reply body that is JSON may carry
    ``"status"`` (delivered / sent / accepted / failed / rejected), ``"id"`` (the
    gateway's message id) and ``"error"``. ``retry_delay_s`` seconds pass between tries
    (``sleep`` is injectable); the dispatcher runs outside the event loop.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        retry_delay_s: float = 0.0,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "http",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GatewayError(
                f"not an SMS gateway URL: {url!r}; use http://host:port/path or https://…"
            )
        if timeout_s <= 0:
            raise GatewayError(f"the HTTP timeout must be > 0 seconds, got {timeout_s}")
        if retries < 0:
            raise GatewayError(f"retries must be ≥ 0, got {retries}")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self._headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        self._sleep = sleep
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def _post(self, body: bytes) -> _Reply:
        request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return _Reply(response.status, response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _Reply(exc.code, exc.read())
        except TimeoutError:
            return _Reply(0, error=f"no answer from {self.url} within {self.timeout_s:g} s")
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                return _Reply(0, error=f"no answer from {self.url} within {self.timeout_s:g} s")
            return _Reply(0, error=f"cannot reach {self.url}: {reason}")
        except OSError as exc:
            return _Reply(0, error=f"cannot reach {self.url}: {exc}")

    @staticmethod
    def _parse(reply: _Reply) -> tuple[DeliveryOutcome, bool, str | None, str | None]:
        """(outcome, transient, gateway_ref, error) of one reply."""
        if reply.error is not None:
            return DeliveryOutcome.FAILED, True, None, reply.error
        data: object = None
        try:
            data = json.loads(reply.body.decode("utf-8")) if reply.body.strip() else None
        except (UnicodeDecodeError, ValueError):
            data = None
        info = data if isinstance(data, dict) else {}
        ref = info.get("id")
        gateway_ref = str(ref) if ref is not None else None
        excerpt = reply.body[:200].decode("utf-8", "replace").strip()
        if 200 <= reply.status < 300:
            default = DeliveryOutcome.SENT if reply.status == 202 else DeliveryOutcome.DELIVERED
            said = str(info.get("status", "")).lower()
            outcome = _BODY_STATUS.get(said, default)
            error = None
            if outcome is DeliveryOutcome.FAILED:
                error = f"gateway refused the message: {info.get('error') or said}"
            return outcome, False, gateway_ref, error
        error = f"HTTP {reply.status}" + (f": {excerpt}" if excerpt else "")
        transient = reply.status >= 500 or reply.status in _TRANSIENT_STATUS
        return DeliveryOutcome.FAILED, transient, gateway_ref, error

    def send(self, sms: OutgoingSms) -> SendResult:
        payload = {
            "id": sms.message_id,
            "to": sms.phone,
            "text": sms.text,
            "kind": sms.kind,
            "episode": sms.episode_key,
            "segments": sms.segments,
        }
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        tries: list[Try] = []
        for number in range(self.retries + 1):
            if number and self.retry_delay_s > 0:
                self._sleep(self.retry_delay_s)
            reply = self._post(body)
            outcome, transient, ref, error = self._parse(reply)
            tries.append(Try(outcome, error, reply.status or None))
            if outcome is not DeliveryOutcome.FAILED or not transient:
                return SendResult(outcome, tuple(tries), ref, error)
            log.info("SMS %d via %s: try %d: %s", sms.message_id, self.url, number + 1, error)
        return SendResult(DeliveryOutcome.FAILED, tuple(tries), None, tries[-1].error)


def open_gateway(
    spec: str,
    *,
    clock: Clock | None = None,
    console: IO[str] | None = None,
    timeout_s: float = 5.0,
    retries: int = 2,
) -> SmsGateway:
    """A gateway from ``file:PATH``, ``console`` (needs ``console``) or an HTTP(S) URL."""
    text = spec.strip()
    if text.startswith("file:"):
        path = text[len("file:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise GatewayError("file: needs a path, e.g. file:outbox.jsonl")
        return FileSink(Path(path), clock=clock)
    if text == "console":
        if console is None:
            raise GatewayError("the console sink needs a stream to write to")
        return StreamSink(console, clock=clock)
    if text.startswith(("http://", "https://")):
        return HttpGateway(text, timeout_s=timeout_s, retries=retries)
    raise GatewayError(f"unknown SMS gateway {spec!r}; use file:PATH, console or an http(s):// URL")
