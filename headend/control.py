"""Remote control (远程控制): the authenticated trip / close / guarantee sequence of a job.

One attempt of a control job (:mod:`headend.jobs` retries it) is:

1. **identity authentication** (身份认证, 03H ``070000FF``) with the meter's key:
   the master key named by the meter's ``key_ref`` in the archive (:class:`KeyRing`),
   dispersed by the meter number (表号) inside the encryption machine
   (:mod:`protocol.security`; simulation crypto, not SGCC-compatible);
2. the **98-level 1CH** command — trip 1AH, permit-close 1BH, direct close 1CH,
   power guarantee 3AH, guarantee release 3BH — with an expiry
   (:attr:`ControlSettings.validity_s` from now by the clock);
3. for trip and direct close, a **settle delay** on the clock, then **status
   word 3** (04000503) is read for the *actual* relay state (bit4); for
   permit-close the command state (bit6) and for the guarantee bit12 are checked;
4. success — for a trip, the forward active energy (00010000) is read at once
   and kept in the job result, as the final-settlement reading (结算读数); or a
   :class:`~headend.errors.JobFailure` whose ``code`` names what went wrong.

Both success forms are accepted (``9C 00``, and ``9C 02`` + execution-info word)
and both refusal forms (``DC 01`` + ERR, and the 2013 ``DC 02`` + control-error
word). Refusals map to reasons by the names of the error bits; those that
retrying cannot cure — a key that does not match, a MAC error (each one counts
towards suspending the ESAM, 挂起), a meter under power guarantee — end the job
at once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from protocol.client import MasterClient, SecureSession
from protocol.codes import (
    ControlCommand,
    ControlErrorWord,
    ErrorWord,
    ExecInfoWord,
    SecurityErrorWord,
    StatusWord1,
    StatusWord3,
    names,
)
from protocol.errors import AbnormalReplyError, ResponseTimeoutError, SecurityError
from protocol.messages import ControlErrorReply, ErrorReply, SecurityErrorReply
from protocol.security import (
    EncryptionMachine,
    SimulatedEncryptionMachine,
    check_sm4_support,
    load_master_key,
)

from .errors import JobFailure, KeyRingError
from .jobs import Handler, JobContext, JobOutcome, MeterInfo
from .models import JobKind

__all__ = [
    "COMMANDS",
    "DI_ENERGY",
    "DI_STATUS1",
    "DI_STATUS3",
    "ControlSettings",
    "KeyRing",
    "control_handler",
    "control_handlers",
]

log = logging.getLogger(__name__)

DI_ENERGY: Final = 0x00010000
"""Forward active energy, total (正向有功总电能), 0.01 kWh."""
DI_STATUS1: Final = 0x04000501
DI_STATUS3: Final = 0x04000503

COMMANDS: Final[Mapping[JobKind, ControlCommand]] = {
    JobKind.TRIP: ControlCommand.TRIP,
    JobKind.PERMIT_CLOSE: ControlCommand.CLOSE_PERMITTED,
    JobKind.CLOSE: ControlCommand.DIRECT_CLOSE,
    JobKind.GUARANTEE_ON: ControlCommand.GUARANTEE,
    JobKind.GUARANTEE_OFF: ControlCommand.GUARANTEE_RELEASE,
}
_SETTLES: Final = frozenset({JobKind.TRIP, JobKind.CLOSE})


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """Timings and identity of the control sequence (clock seconds)."""

    settle_s: float = 3.0
    """Wait after a trip / direct close before reading the relay state."""
    validity_s: float = 600.0
    """The 1CH command expires this long after it is sent (the meter refuses it later)."""
    operator: str = "00000000"
    """Operator code C0..C3 (操作者代码), 8 hex digits."""

    def __post_init__(self) -> None:
        if self.settle_s < 0 or self.validity_s <= 0:
            raise ValueError(
                f"settle_s must be >= 0 and validity_s > 0, got {self.settle_s}, {self.validity_s}"
            )
        op = self.operator.upper()
        if len(op) != 8 or any(c not in "0123456789ABCDEF" for c in op):
            raise ValueError(f"operator must be 8 hex digits, got {self.operator!r}")


class KeyRing:
    """The master keys of the head-end, by key reference (密钥索引).

    A meter's ``key_ref`` in the archive names its master key; a meter without
    one uses the default key. :meth:`from_dir` reads ``<key_ref>.key`` files
    (32 hex digits, see :func:`protocol.security.load_master_key`) from a key
    directory, and ``default.key`` as the default. Without a default key the lab
    test key is used and :attr:`uses_test_key` is set, so callers can warn.
    Per-meter keys are dispersed from the master key by the meter number inside
    the encryption machine.
    """

    def __init__(self, default: bytes | None = None, keys: Mapping[str, bytes] | None = None):
        if default is None:
            default, self.uses_test_key = load_master_key(None)
        else:
            self.uses_test_key = False
        self._default = default
        self._keys = dict(keys or {})
        self._machines: dict[str | None, EncryptionMachine] = {}
        self.directory: Path | None = None

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> KeyRing:
        """Keys from ``directory``: ``default.key`` and one ``<key_ref>.key`` per reference."""
        path = Path(directory)
        if not path.is_dir():
            raise KeyRingError(
                f"key directory {str(path)!r} does not exist; create it with default.key "
                "and one <key_ref>.key file (32 hex digits) per key reference"
            )
        keys: dict[str, bytes] = {}
        default: bytes | None = None
        try:
            for file in sorted(path.glob("*.key")):
                key, _ = load_master_key(file)
                if file.stem == "default":
                    default = key
                else:
                    keys[file.stem] = key
        except SecurityError as exc:
            raise KeyRingError(str(exc)) from None
        ring = cls(default, keys)
        ring.directory = path
        return ring

    @property
    def refs(self) -> list[str]:
        return sorted(self._keys)

    def machine(self, meter: MeterInfo) -> EncryptionMachine:
        """The encryption machine holding the master key of ``meter``."""
        ref = meter.key_ref or None
        machine = self._machines.get(ref)
        if machine is not None:
            return machine
        if ref is None:
            key = self._default
        elif ref in self._keys:
            key = self._keys[ref]
        else:
            where = f" in {self.directory}" if self.directory else ""
            raise KeyRingError(
                f"meter {meter.address} uses key reference {ref!r}, which this head-end does "
                f"not have{where}; add {ref}.key to the key directory"
            )
        try:
            check_sm4_support()
            machine = SimulatedEncryptionMachine(key)
        except SecurityError as exc:
            raise KeyRingError(str(exc)) from None
        self._machines[ref] = machine
        return machine


# --------------------------------------------------------------------------- refusals


def _key_hint(meter: MeterInfo) -> str:
    which = f"key reference {meter.key_ref!r}" if meter.key_ref else "the default key"
    return (
        f"the head-end's key for this meter ({which}) does not match the meter's ESAM, or "
        f"its meter number (表号) {meter.meter_number} in the archive is wrong; check both"
    )


def _auth_refused(meter: MeterInfo, exc: AbnormalReplyError) -> JobFailure:
    reply = exc.reply
    if isinstance(reply, SecurityErrorReply):
        word = reply.error
        bits = ", ".join(names(word)) or "no bits"
        if word & SecurityErrorWord.SUSPENDED:
            return JobFailure(
                "esam-suspended",
                f"meter {meter.address} is suspended (挂起, SERR {bits}) after too many MAC "
                "errors; it needs on-site service before it accepts remote commands",
                retryable=False,
                alarm="esam-suspended",
            )
        if word & SecurityErrorWord.AUTH_FAILED:
            return JobFailure(
                "auth-refused",
                f"meter {meter.address} refused identity authentication (SERR {bits}): "
                f"{_key_hint(meter)}",
                retryable=False,
            )
        return JobFailure(
            "auth-refused",
            f"meter {meter.address} refused identity authentication (SERR {bits})",
            retryable=bool(word & SecurityErrorWord.OTHER),
        )
    return JobFailure(
        "auth-refused",
        f"meter {meter.address} refused identity authentication: {exc}; it may not support "
        "03H security (a meter in factory mode, or not a fee-control meter)",
        retryable=False,
    )


# (bit, code, retryable, what to say, alarm)
_CONTROL_ERRORS: Final = (
    (
        ControlErrorWord.SUSPENDED,
        "esam-suspended",
        False,
        "the meter is suspended (挂起) after too many MAC errors; it needs on-site service",
        "esam-suspended",
    ),
    (
        ControlErrorWord.MAC_ERROR,
        "mac-error",
        False,
        "the command's MAC did not verify: the key does not match (not retried: every MAC "
        "error counts towards suspending the meter)",
        None,
    ),
    (
        ControlErrorWord.GUARANTEED,
        "guaranteed",
        False,
        "the meter is under power guarantee (保电); release the guarantee first",
        None,
    ),
    (
        ControlErrorWord.UNAUTHORIZED,
        "unauthorized",
        False,
        "the meter does not allow this command (e.g. a direct close on a breaker that "
        "cannot be closed remotely: use permit-close)",
        None,
    ),
    (
        ControlErrorWord.EXPIRED,
        "command-expired",
        True,
        "the meter found the command expired; its clock may be ahead (check it)",
        None,
    ),
    (
        ControlErrorWord.AUTH_INVALID,
        "auth-expired",
        True,
        "the identity authentication was no longer valid",
        None,
    ),
)


def _control_refused(meter: MeterInfo, kind: JobKind, exc: AbnormalReplyError) -> JobFailure:
    reply = exc.reply
    what = f"meter {meter.address} refused the {kind.value}"
    if isinstance(reply, ControlErrorReply):
        word = reply.error
        bits = ", ".join(names(word)) or "no bits"
        for bit, code, retryable, text, alarm in _CONTROL_ERRORS:
            if word & bit:
                return JobFailure(
                    code,
                    f"{what} (control-error word {int(word):04X}: {bits}): {text}",
                    retryable=retryable,
                    alarm=alarm,
                )
        return JobFailure("refused", f"{what} (control-error word {int(word):04X}: {bits})")
    if isinstance(reply, ErrorReply):
        word_err = reply.error
        bits = ", ".join(names(word_err)) or "no bits"
        if word_err & ErrorWord.UNAUTHORIZED:
            return JobFailure(
                "unauthorized",
                f"{what} (ERR {int(word_err):02X}: {bits}): older meters answer this for a "
                "wrong key or MAC, an expired command, or a power guarantee; check the key, "
                "the meter clock and the guarantee state",
                retryable=False,
            )
        return JobFailure("refused", f"{what} (ERR {int(word_err):02X}: {bits})")
    return JobFailure("refused", f"{what}: {exc}", retryable=False)


# --------------------------------------------------------------------------- the sequence


def _relay(word: StatusWord3) -> str:
    return "open" if word & StatusWord3.RELAY_OPEN else "closed"


async def _status3(client: MasterClient, address: str) -> StatusWord3:
    value = (await client.read(address, DI_STATUS3)).value
    return StatusWord3(int(value))


async def _circuit_note(client: MasterClient, address: str) -> str:
    """A note on status word 1's control-circuit error bit (relay feedback mismatch)."""
    try:
        word = StatusWord1(int((await client.read(address, DI_STATUS1)).value))
    except (AbnormalReplyError, ResponseTimeoutError, ValueError, TypeError):
        return ""
    if word & StatusWord1.CONTROL_CIRCUIT_ERROR:
        return "; status word 1 reports a control-circuit error (the breaker does not follow)"
    return ""


def _unconfirmed(
    kind: JobKind, address: str, word: StatusWord3, info: ExecInfoWord | None, note: str
) -> JobFailure | None:
    bits = ", ".join(names(word)) or "no bits"
    seen = f"status word 3 is {int(word):04X} ({bits})"
    if kind is JobKind.TRIP and not word & StatusWord3.RELAY_OPEN:
        delayed = info is not None and info & (
            ExecInfoWord.DELAYED_TRIP | ExecInfoWord.LARGE_CURRENT_DELAYED_TRIP
        )
        why = " (the meter delays the trip)" if delayed else ""
        return JobFailure(
            "relay-not-open",
            f"meter {address} accepted the trip but the relay is still closed{why}: {seen}{note}",
        )
    if kind is JobKind.CLOSE and word & StatusWord3.RELAY_OPEN:
        return JobFailure(
            "relay-not-closed",
            f"meter {address} accepted the close but the relay is still open: {seen}{note}",
        )
    if kind is JobKind.PERMIT_CLOSE and word & StatusWord3.RELAY_COMMAND_TRIP:
        return JobFailure(
            "still-trip-command",
            f"meter {address} accepted the permit-close but still holds a trip command: {seen}",
        )
    if kind is JobKind.GUARANTEE_ON and not word & StatusWord3.GUARANTEED:
        return JobFailure(
            "guarantee-not-set",
            f"meter {address} accepted the power guarantee but does not show it: {seen}",
        )
    if kind is JobKind.GUARANTEE_OFF and word & StatusWord3.GUARANTEED:
        return JobFailure(
            "guarantee-not-released",
            f"meter {address} accepted the guarantee release but still shows it: {seen}",
        )
    return None


async def run_control(
    ctx: JobContext, keys: KeyRing, settings: ControlSettings | None = None
) -> JobOutcome:
    """One attempt of a control job (see the module doc); raises JobFailure."""
    settings = settings or ControlSettings()
    kind = ctx.job.kind
    command = COMMANDS.get(kind)
    meter = ctx.meter
    address = meter.address
    if command is None:
        raise JobFailure("no-handler", f"{kind.value} is not a control command", retryable=False)
    number = meter.meter_number
    if len(number) != 12 or not number.isdigit():
        raise JobFailure(
            "bad-meter-number",
            f"meter {address} has meter number {number!r} in the archive; identity "
            "authentication needs its 12-digit meter number (表号): fix the archive",
            retryable=False,
        )
    try:
        machine = keys.machine(meter)
    except KeyRingError as exc:
        raise JobFailure("no-key", str(exc), retryable=False) from None
    client = ctx.client
    operator = settings.operator.upper()
    try:
        session: SecureSession = await client.authenticate(
            address, machine, number, operator=operator
        )
    except AbnormalReplyError as exc:
        raise _auth_refused(meter, exc) from None
    expiry = (ctx.clock.now() + timedelta(seconds=settings.validity_s)).replace(microsecond=0)
    try:
        reply = await client.control_secure(session, machine, command, expiry, operator=operator)
    except AbnormalReplyError as exc:
        raise _control_refused(meter, kind, exc) from None
    info = reply.info
    sent_at = ctx.clock.now()
    if kind in _SETTLES and settings.settle_s > 0:
        await ctx.clock.sleep(settings.settle_s)
    word = await _status3(client, address)
    note = ""
    if kind in _SETTLES and (bool(word & StatusWord3.RELAY_OPEN) != (kind is JobKind.TRIP)):
        note = await _circuit_note(client, address)
    failure = _unconfirmed(kind, address, word, info, note)
    if failure is not None:
        raise failure
    confirmed_at = ctx.clock.now()
    result: dict[str, Any] = {
        "command": kind.value,
        "n1": f"{int(command):02X}",
        "sent_at": sent_at.isoformat(),
        "expiry": expiry.isoformat(),
        "confirmed_at": confirmed_at.isoformat(),
        "info_word": None if info is None else f"{int(info):04X}",
        "info": [] if info is None else names(info),
        "status_word3": f"{int(word):04X}",
        "status_bits": names(word),
        "relay": _relay(word),
        "guarantee": bool(word & StatusWord3.GUARANTEED),
        "energy_ckwh": None,
    }
    if kind is JobKind.TRIP:
        result.update(await _settlement_reading(client, address, ctx.clock.now()))
    log.info("meter %s: %s confirmed (%s)", address, kind.value, result["relay"])
    return JobOutcome(result)


async def _settlement_reading(client: MasterClient, address: str, at: datetime) -> dict[str, Any]:
    """Forward active energy at the trip; a failed read is noted, not fatal (the trip held)."""
    try:
        value = (await client.read(address, DI_ENERGY)).value
    except (AbnormalReplyError, ResponseTimeoutError) as exc:
        log.warning("meter %s: energy at trip not read: %s", address, exc)
        return {"energy_error": str(exc)}
    kwh = Decimal(value)
    return {
        "energy_ckwh": int(kwh * 100),
        "energy_kwh": str(kwh),
        "energy_at": at.isoformat(),
    }


def control_handler(keys: KeyRing, settings: ControlSettings | None = None) -> Handler:
    """The job handler for the control kinds."""

    async def handle(ctx: JobContext) -> JobOutcome:
        return await run_control(ctx, keys, settings)

    return handle


def control_handlers(
    keys: KeyRing, settings: ControlSettings | None = None
) -> dict[JobKind, Handler]:
    """``{kind: handler}`` for trip, permit-close, close, guarantee-on, guarantee-off."""
    handler = control_handler(keys, settings)
    return dict.fromkeys(COMMANDS, handler)
