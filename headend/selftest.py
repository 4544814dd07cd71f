"""Meter self-test (表计一致性自检): exercise one connected meter and report conformance.

:func:`run_selftest` talks to one meter over any head-end transport (a serial
RS-485 port, a TCP meter or TCP/serial gateway, …) with the DL/T 645 codec of
:mod:`protocol`, and returns a :class:`SelftestReport` with one
:class:`CheckResult` per check:

=====================  ==========================================================  =========
check                  what is asked                                               mandatory
=====================  ==========================================================  =========
``read-address``       13H read address to ``AA…AA`` answers with ``--address``    yes [1]_
``address-di``         04000401 communication address equals ``--address``        no
``foreign-address``    a read addressed to another meter gets no reply             yes [1]_
``energy-combined``    00000000 combined active total energy                       yes
``energy-forward``     00010000 forward active total energy                        yes
``energy-reverse``     00020000 reverse active total energy                        yes
``energy-block``       0001FF00 forward active block (total + T1..T4)              no
``status-word-1..3``   04000501 / 04000502 / 04000503 run status words             yes
``clock-date``         04000101 date and week (the weekday must match the date)   yes
``clock-time``         04000102 time                                               yes
``clock-offset``       the meter clock against the head-end clock                  no
``freeze-time``        05060001 time of the last daily freeze                      yes
``freeze-forward``     05060101 forward active energy block of that freeze         yes
``freeze-reverse``     05060201 reverse active energy block of that freeze         yes
``unknown-di``         a DI no meter has is refused with an abnormal reply (D1H)   yes
``identity-auth``      03H identity authentication (only with an encryption        no
                       machine; simulation crypto, not SGCC-compatible)
=====================  ==========================================================  =========

.. [1] skipped with ``shared_line=True`` (several meters behind the link: a
   wildcard read would collide, and "another meter" may exist).

Each check ends ``pass``, ``fail`` (a wrong or undecodable answer, a value that
contradicts another), ``not-supported`` (the meter refused with an abnormal reply:
its error word and bits are kept), ``timeout`` (no reply within the response
timeout) or ``skipped``. The report is ``ok`` only if every mandatory check
passed. Every check carries its time (request to reply) and, with
``capture_frames``, the frames sent and received as hex.

Errors: :class:`SelftestError` when the test cannot run at all — a bad address,
a link that cannot be opened (no such serial port, connection refused). A meter
that does not answer is not an error: its checks time out.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from time import perf_counter
from typing import Any, Final

from protocol.address import WILDCARD, Address
from protocol.clock import Clock, RealClock
from protocol.codes import names
from protocol.di import DataValue, decode_value, format_di, lookup
from protocol.errors import (
    DataError,
    ProtocolError,
    ResponseTimeoutError,
    TransportError,
)
from protocol.frame import Frame, encode_frame
from protocol.messages import (
    ErrorReply,
    IdentityAuthReply,
    IdentityAuthRequest,
    Message,
    ReadAddressReply,
    ReadAddressRequest,
    ReadFollowUpReply,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    SecurityErrorReply,
    decode_message,
    to_frame,
)
from protocol.security import EncryptionMachine
from protocol.transport import Transport

from .errors import HeadendError

__all__ = [
    "UNKNOWN_DI",
    "CheckResult",
    "CheckStatus",
    "RawFrame",
    "SelftestError",
    "SelftestReport",
    "run_selftest",
]

log = logging.getLogger(__name__)

UNKNOWN_DI: Final = 0x0EEEEEEE
"""A DI outside every class of DL/T 645-2007 (DI3 = 0EH is unassigned): must be refused."""
_BIT_MEANINGS: Final = {
    "OTHER": "other error",
    "NO_DATA": "no requested data",
    "UNAUTHORIZED": "password error / unauthorized",
    "AUTH_FAILED": "identity authentication failed",
    "ESAM_VERIFY_FAILED": "ESAM verification (MAC) failed",
}
_MAX_FOLLOW_UPS: Final = 16
_MAX_FOLLOW_UPS_TEXT: Final = "more follow-up frames than a 13-block read needs"


class SelftestError(HeadendError):
    """The self-test cannot run at all (bad address, the link cannot be opened)."""


class CheckStatus(enum.StrEnum):
    """How one check ended."""

    PASS = "pass"
    FAIL = "fail"
    NOT_SUPPORTED = "not-supported"
    """The meter refused with an abnormal reply (its error word says why)."""
    TIMEOUT = "timeout"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One frame on the wire, as hex: ``TX`` (with its FE wake-up bytes) or ``RX``.

    Received frames are shown from their first ``68`` (any FE preamble the meter
    sent is not kept by the parser).
    """

    direction: str
    hex: str


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check (see the module doc for the list)."""

    key: str
    title: str
    mandatory: bool
    status: CheckStatus
    detail: str
    """The value read (with unit) or why the check did not pass."""
    di: str | None = None
    value: Any = None
    """The decoded value in JSON-friendly form (str / number / list), if any."""
    error_word: int | None = None
    """ERR (or SERR) of an abnormal reply."""
    error_bits: tuple[str, ...] = ()
    elapsed_ms: float | None = None
    """Request to reply (to the timeout, for a timeout); ``None`` when nothing was sent."""
    frames: tuple[RawFrame, ...] = ()

    @property
    def passed(self) -> bool:
        return self.status is CheckStatus.PASS

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "title": self.title,
            "mandatory": self.mandatory,
            "status": self.status.value,
            "detail": self.detail,
            "di": self.di,
            "value": self.value,
            "elapsed_ms": self.elapsed_ms,
        }
        if self.error_word is not None:
            out["error_word"] = f"{self.error_word:02X}"
            out["error_bits"] = list(self.error_bits)
        if self.frames:
            out["frames"] = [{"direction": f.direction, "hex": f.hex} for f in self.frames]
        return out


@dataclass(frozen=True, slots=True)
class SelftestReport:
    """Every check of one run against one meter."""

    address: str
    link: str
    started_at: datetime
    checks: tuple[CheckResult, ...]
    elapsed_s: float

    @property
    def ok(self) -> bool:
        """True if every mandatory check passed."""
        return all(c.passed for c in self.checks if c.mandatory)

    @property
    def failed_mandatory(self) -> list[CheckResult]:
        return [c for c in self.checks if c.mandatory and not c.passed]

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status (every status listed)."""
        out = {s.value: 0 for s in CheckStatus}
        for check in self.checks:
            out[check.status.value] += 1
        return out

    def check(self, key: str) -> CheckResult:
        """The check called ``key`` (``KeyError`` if the run has none)."""
        for c in self.checks:
            if c.key == key:
                return c
        raise KeyError(key)

    @property
    def answered_as(self) -> str | None:
        """The address the meter gave to the wildcard 13H, when it is not ``address``."""
        found = next((c for c in self.checks if c.key == "read-address"), None)
        if found is None or found.status is not CheckStatus.FAIL or not found.value:
            return None
        return str(found.value) if str(found.value) != self.address else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "link": self.link,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "elapsed_s": round(self.elapsed_s, 3),
            "ok": self.ok,
            "counts": self.counts(),
            "failed_mandatory": [c.key for c in self.failed_mandatory],
            "checks": [c.to_dict() for c in self.checks],
        }


# --------------------------------------------------------------------------- values


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, enum.IntFlag):
        return f"{int(value):04X}"
    return value


def _flags_text(value: Any) -> str:
    if isinstance(value, enum.IntFlag):
        bits = names(value)
        return f"{int(value):04X} ({', '.join(bits) if bits else 'no bit set'})"
    if isinstance(value, int):
        return f"{value:04X}"
    return str(value)


def _first_total(value: Any) -> Decimal | None:
    """The total of an energy value (a number, or the first entry of a block)."""
    if isinstance(value, tuple) and value:
        value = value[0]
    return value if isinstance(value, Decimal) else None


# --------------------------------------------------------------------------- the run


class _Failed(Exception):
    """A check that got an answer, but a wrong one (the message says what is wrong)."""


class _Refused(Exception):
    def __init__(self, word: int, bits: tuple[str, ...], text: str) -> None:
        super().__init__(text)
        self.word = word
        self.bits = bits


@dataclass(slots=True)
class _Exchange:
    """The frames and time of one check in progress."""

    capture: bool
    preamble: int
    frames: list[RawFrame] = field(default_factory=list)
    elapsed: float = 0.0
    sent: bool = False

    def tx(self, frame: Frame) -> None:
        self.sent = True
        if self.capture:
            self.frames.append(RawFrame("TX", encode_frame(frame, self.preamble).hex(" ").upper()))

    def rx(self, frame: Frame) -> None:
        if self.capture:
            self.frames.append(RawFrame("RX", encode_frame(frame, 0).hex(" ").upper()))


@dataclass(frozen=True, slots=True)
class _Spec:
    key: str
    title: str
    mandatory: bool
    di: int | None = None


class _Runner:
    def __init__(
        self,
        transport: Transport,
        address: Address,
        clock: Clock,
        timeout: float,
        capture: bool,
    ) -> None:
        self.transport = transport
        self.address = address
        self.clock = clock
        self.timeout = timeout
        self.capture = capture
        self.results: list[CheckResult] = []
        self.values: dict[str, Any] = {}
        self.on_check: Callable[[CheckResult], None] | None = None

    def record(self, result: CheckResult) -> None:
        log.info(
            "selftest %s %s: %s (%s)", self.address, result.key, result.status.value, result.detail
        )
        self.results.append(result)
        if self.on_check is not None:
            self.on_check(result)

    # -- one request ---------------------------------------------------------------------

    async def request(self, ex: _Exchange, frame: Frame) -> Message:
        ex.tx(frame)
        start = perf_counter()
        try:
            reply_frame = await self.transport.request(frame, timeout=self.timeout)
        finally:
            ex.elapsed += perf_counter() - start
        ex.rx(reply_frame)
        try:
            reply = decode_message(reply_frame)
        except ProtocolError as exc:
            raise _Failed(
                f"the reply {reply_frame.describe_control()} cannot be decoded: {exc}"
            ) from None
        if isinstance(reply, ErrorReply | SecurityErrorReply):
            word, bits = int(reply.error), tuple(names(reply.error))
            label = "ERR" if isinstance(reply, ErrorReply) else "SERR"
            width = 2 if isinstance(reply, ErrorReply) else 4
            meaning = ", ".join(_BIT_MEANINGS.get(b, b) for b in bits) or "no bit set"
            raise _Refused(
                word,
                bits,
                f"{reply_frame.control:02X}H, {label} {word:0{width}X}H ({meaning})",
            )
        return reply

    async def read_raw(self, ex: _Exchange, di: int) -> bytes:
        reply = await self.request(ex, to_frame(self.address, ReadRequest(di)))
        if not isinstance(reply, ReadReply):
            raise _Failed(f"a read of {format_di(di)} was answered with {reply.describe()}")
        if reply.di != di:
            raise _Failed(f"asked for {format_di(di)}, the reply carries {format_di(reply.di)}")
        raw, more, seq = reply.raw, reply.follow_up, 0
        while more:
            seq += 1
            if seq > _MAX_FOLLOW_UPS:
                raise _Failed(f"{format_di(di)}: {_MAX_FOLLOW_UPS_TEXT} ({_MAX_FOLLOW_UPS})")
            follow = await self.request(ex, to_frame(self.address, ReadFollowUpRequest(di, seq)))
            if not isinstance(follow, ReadFollowUpReply) or follow.seq != seq:
                raise _Failed(f"follow-up {seq} of {format_di(di)} answered with {follow}")
            raw += follow.raw
            more = follow.follow_up
        return raw

    async def read(self, ex: _Exchange, di: int) -> DataValue:
        raw = await self.read_raw(ex, di)
        try:
            return decode_value(di, raw)
        except DataError as exc:
            item = lookup(di)
            what = item.name if item else format_di(di)
            raise _Failed(
                f"{what}: value bytes {raw.hex(' ').upper() or '(none)'} are not valid: {exc}"
            ) from None

    # -- one check -------------------------------------------------------------------------

    async def check(
        self,
        spec: _Spec,
        body: Callable[[_Exchange], Awaitable[tuple[str, Any]]],
        *,
        silence_passes: str | None = None,
    ) -> CheckResult:
        """Run ``body`` (returning the detail text and value) and record how it ended.

        ``silence_passes``: a timeout is the expected outcome (its detail text).
        """
        ex = _Exchange(self.capture, self.transport.preamble)
        di = format_di(spec.di) if spec.di is not None else None
        common: dict[str, Any] = {"key": spec.key, "title": spec.title, "di": di}
        common["mandatory"] = spec.mandatory
        try:
            detail, value = await body(ex)
            status = CheckStatus.PASS
            extra: dict[str, Any] = {"value": _jsonable(value)}
        except ResponseTimeoutError:
            if silence_passes is not None:
                status, detail, extra = CheckStatus.PASS, silence_passes, {}
            else:
                status = CheckStatus.TIMEOUT
                detail = f"no reply within {self.timeout:g} s"
                extra = {}
        except _Refused as exc:
            status = CheckStatus.NOT_SUPPORTED
            detail = f"refused with {exc}"
            extra = {"error_word": exc.word, "error_bits": exc.bits}
        except _Failed as exc:
            status, detail, extra = CheckStatus.FAIL, str(exc), {}
            if exc.args[1:]:
                extra["value"] = _jsonable(exc.args[1])
        except TransportError as exc:
            status, detail, extra = CheckStatus.FAIL, f"link failed: {exc}", {}
        elapsed = round(ex.elapsed * 1000, 1) if ex.sent else None
        result = CheckResult(
            **common,
            status=status,
            detail=detail,
            elapsed_ms=elapsed,
            frames=tuple(ex.frames),
            **extra,
        )
        if not (spec.key == "unknown-di" and status is CheckStatus.NOT_SUPPORTED):
            self.record(result)  # (the refusal unknown-di expects is recorded by its check)
        return result

    def skip(self, spec: _Spec, why: str) -> None:
        di = format_di(spec.di) if spec.di is not None else None
        self.record(CheckResult(spec.key, spec.title, spec.mandatory, CheckStatus.SKIPPED, why, di))

    # -- the checks ------------------------------------------------------------------------

    async def read_address(self) -> None:
        async def body(ex: _Exchange) -> tuple[str, Any]:
            reply = await self.request(ex, to_frame(WILDCARD, ReadAddressRequest()))
            if not isinstance(reply, ReadAddressReply):
                raise _Failed(f"13H was answered with {reply.describe()}")
            got = reply.address
            if got != self.address:
                raise _Failed(
                    f"the meter on this link answers as {got}, not {self.address}: "
                    f"check --address (or the meter's nameplate)",
                    str(got),
                )
            return f"answers as {got}", str(got)

        await self.check(_Spec("read-address", "read address (13H, wildcard)", True), body)

    async def foreign_address(self) -> None:
        other = _other_address(self.address)

        async def body(ex: _Exchange) -> tuple[str, Any]:
            before = self.transport.stats.ignored_frames
            frame = to_frame(other, ReadRequest(0x00010000))
            try:
                reply = await self.request(ex, frame)
            except _Refused as exc:
                raise _Failed(f"the read addressed to {other} was refused: {exc}") from None
            except ResponseTimeoutError:
                if self.transport.stats.ignored_frames > before:
                    raise _Failed(
                        f"a frame came back to a read addressed to {other}: a meter must "
                        "ignore frames for another address"
                    ) from None
                raise
            raise _Failed(f"the read addressed to {other} was answered: {reply.describe()}")

        await self.check(
            _Spec("foreign-address", f"silent to a frame for {other}", True, 0x00010000),
            body,
            silence_passes=f"no reply to a read addressed to {other}, as required",
        )

    async def read_item(
        self,
        key: str,
        title: str,
        di: int,
        mandatory: bool = True,
        validate: Callable[[Any], str | None] | None = None,
        render: Callable[[DataValue], str] | None = None,
    ) -> None:
        async def body(ex: _Exchange) -> tuple[str, Any]:
            value = await self.read(ex, di)
            text = render(value) if render else value.text()
            if validate is not None:
                problem = validate(value.value)
                if problem:
                    raise _Failed(f"{text}: {problem}", value.value)
            self.values[key] = value.value
            return text, value.value

        await self.check(_Spec(key, title, mandatory, di), body)

    def clock_offset(self, max_offset_s: float) -> None:
        spec = _Spec("clock-offset", "meter clock against the head-end", False)
        day, moment = self.values.get("clock-date"), self.values.get("clock-time")
        if not isinstance(day, date) or not isinstance(moment, time):
            self.skip(spec, "the date or the time could not be read")
            return
        meter_now = datetime.combine(day, moment)
        offset = (meter_now - self.clock.now().replace(microsecond=0)).total_seconds()
        text = f"meter {meter_now:%Y-%m-%d %H:%M:%S}, offset {offset:+.0f} s"
        status = CheckStatus.PASS if abs(offset) <= max_offset_s else CheckStatus.FAIL
        if status is CheckStatus.FAIL:
            text += (
                f" (more than {max_offset_s:g} s: set the clock; a broadcast 08H time sync "
                "is refused beyond ±5 min)"
            )
        self.record(CheckResult(spec.key, spec.title, False, status, text, None, offset))

    async def unknown_di(self) -> None:
        async def body(ex: _Exchange) -> tuple[str, Any]:
            raw = await self.read_raw(ex, UNKNOWN_DI)
            raise _Failed(
                f"the meter answered a DI that does not exist with data "
                f"{raw.hex(' ').upper() or '(none)'}; it must refuse it (D1H, ERR 02)"
            )

        spec = _Spec("unknown-di", "unknown DI is refused (D1H)", True, UNKNOWN_DI)
        result = await self.check(spec, body)
        if result.status is CheckStatus.NOT_SUPPORTED:  # the expected refusal
            word = result.error_word or 0
            note = "" if word & 0x02 else " (ERR 02, no data, is the usual word)"
            self.record(
                dataclasses.replace(
                    result, status=CheckStatus.PASS, detail=f"{result.detail}{note}"
                )
            )

    async def identity_auth(self, machine: EncryptionMachine, meter_number: str) -> None:
        async def body(ex: _Exchange) -> tuple[str, Any]:
            try:
                challenge = machine.start_identity_auth(meter_number)
            except ProtocolError as exc:
                raise _Failed(f"the encryption machine refused: {exc}") from None
            request = IdentityAuthRequest(
                challenge.cipher1, challenge.random1, challenge.factor, "00000000"
            )
            reply = await self.request(ex, to_frame(self.address, request))
            if not isinstance(reply, IdentityAuthReply):
                raise _Failed(f"identity authentication answered with {reply.describe()}")
            try:
                machine.finish_identity_auth(challenge, reply.random2, reply.esam_serial)
            except ProtocolError as exc:
                raise _Failed(f"the meter's answer does not verify: {exc}") from None
            serial = reply.esam_serial.hex().upper()
            return f"session established (ESAM serial {serial})", serial

        await self.check(
            _Spec("identity-auth", "identity authentication (03H 070000FF)", False), body
        )


def _other_address(address: Address) -> Address:
    """An address that is not ``address`` (the last digit changed)."""
    last = int(address[-1])
    return Address(address[:-1] + str((last + 5) % 10))


def _energy_not_below(reference: str, values: dict[str, Any]) -> Callable[[Any], str | None]:
    def validate(value: Any) -> str | None:
        frozen, now = _first_total(value), _first_total(values.get(reference))
        if frozen is not None and now is not None and frozen > now:
            return f"the frozen total {frozen} kWh is above the current total {now} kWh"
        return None

    return validate


def _freeze_time_validator(values: dict[str, Any]) -> Callable[[Any], str | None]:
    def validate(value: Any) -> str | None:
        day = values.get("clock-date")
        if isinstance(value, datetime) and isinstance(day, date) and value.date() > day:
            return f"the last freeze ({value:%Y-%m-%d %H:%M}) is after the meter's date {day}"
        return None

    return validate


def _status_text(value: DataValue) -> str:
    return _flags_text(value.value)


async def run_selftest(
    transport: Transport,
    address: str,
    *,
    clock: Clock | None = None,
    timeout: float = 2.0,
    shared_line: bool = False,
    capture_frames: bool = False,
    max_clock_offset_s: float = 300.0,
    machine: EncryptionMachine | None = None,
    meter_number: str | None = None,
    on_check: Callable[[CheckResult], None] | None = None,
) -> SelftestReport:
    """Run every check against meter ``address`` on ``transport`` (see the module doc).

    ``clock`` is the head-end's time (the meter clock is compared with it);
    ``timeout`` the response timeout of each request; ``shared_line`` skips the
    checks that need the meter alone on the link; ``capture_frames`` keeps the
    frames of each check; ``machine`` (with ``meter_number``, default the address)
    adds identity authentication; ``on_check`` is called with each result as it
    comes (for progress). The transport is opened here and left open.

    Raises :class:`SelftestError` for a bad address or timeout, or when the link
    cannot be opened.
    """
    try:
        meter = Address(address)
    except ProtocolError:
        raise SelftestError(
            f"meter address {address!r} must be 12 decimal digits (as on the nameplate, "
            "e.g. 123456781012)"
        ) from None
    if "A" in meter or meter.is_broadcast:
        raise SelftestError(
            f"{address} is the broadcast or a wildcard address; give the meter's own 12 digits"
        )
    if not timeout > 0:
        raise SelftestError(f"the response timeout must be > 0 s, got {timeout:g}")
    clock = clock or RealClock()
    started = clock.now()
    begin = perf_counter()
    try:
        await transport.open()
    except TransportError as exc:
        raise SelftestError(f"cannot open the link to the meter: {exc}") from exc
    run = _Runner(transport, meter, clock, timeout, capture_frames)
    run.on_check = on_check
    log.info("selftest of %s on %s", meter, transport.url)

    alone = "shared line: skipped (needs the meter alone on the link)"
    if shared_line:
        run.skip(_Spec("read-address", "read address (13H, wildcard)", True), alone)
    else:
        await run.read_address()
    await run.read_item(
        "address-di",
        "communication address (04000401)",
        0x04000401,
        mandatory=False,
        validate=lambda v: None if v == str(meter) else f"differs from {meter}",
    )
    if shared_line:
        run.skip(_Spec("foreign-address", "silent to a frame for another meter", True), alone)
    else:
        await run.foreign_address()

    energies = (
        ("energy-combined", "combined active total energy", 0x00000000),
        ("energy-forward", "forward active total energy", 0x00010000),
        ("energy-reverse", "reverse active total energy", 0x00020000),
    )
    for key, title, di in energies:
        await run.read_item(key, title, di)
    await run.read_item(
        "energy-block", "forward active energy block (total + T1..T4)", 0x0001FF00, False
    )
    for n in (1, 2, 3):
        await run.read_item(
            f"status-word-{n}",
            f"run status word {n}",
            0x04000500 | n,
            render=_status_text,
        )
    await run.read_item("clock-date", "date and week", 0x04000101)
    await run.read_item("clock-time", "time", 0x04000102)
    run.clock_offset(max_clock_offset_s)
    await run.read_item(
        "freeze-time",
        "last daily freeze: time",
        0x05060001,
        validate=_freeze_time_validator(run.values),
    )
    await run.read_item(
        "freeze-forward",
        "last daily freeze: forward active block",
        0x05060101,
        validate=_energy_not_below("energy-forward", run.values),
    )
    await run.read_item(
        "freeze-reverse",
        "last daily freeze: reverse active block",
        0x05060201,
        validate=_energy_not_below("energy-reverse", run.values),
    )
    await run.unknown_di()
    if machine is not None:
        await run.identity_auth(machine, meter_number or str(meter))
    report = SelftestReport(
        address=str(meter),
        link=transport.url,
        started_at=started,
        checks=tuple(run.results),
        elapsed_s=perf_counter() - begin,
    )
    log.info("selftest of %s: %s, %s", meter, "ok" if report.ok else "FAILED", report.counts())
    return report
