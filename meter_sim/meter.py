"""The simulated smart meter core (智能电能表): everything both fee-control kinds share.

:class:`Meter` answers DL/T 645-2007 requests (:meth:`Meter.handle`), meters energy
from its seeded load profile, keeps its clock, freezes, records, parameters,
passwords and identity-auth session, and drives its relay or external breaker. The
kinds are subclasses: :class:`meter_sim.remote.RemoteMeter` (远程费控) and the local
(card) prepay meter in :mod:`meter_sim.local` (本地费控).

Nothing runs in the background. The meter is *touched* on every request, on control
actions and on its timers; a touch

1. accrues energy lazily from the last touch to now, from the profile, with the
   power-flow state known at the last touch, crossing every 00:00 on the way (daily
   freeze, settlement on the 1st, ESAM MAC-error reset);
2. fires what fell due (the permit-close after a trip, a delayed trip);
3. reads the breaker feedback (a manual close is noticed here and writes a 1E record);
4. re-arms the one short-lived timer task a meter may have (only while something is
   due: a permit-close pending after a trip, a delayed trip).

Energy is accrued before every relay change, so the time the breaker was open never
counts. Everything is sized for 10,000 meters in one process: ``__slots__``, integer
energy (1e-5 kWh), flat arrays for freezes, parameters stored only when not default.

Hooks for a subclass (the local prepay meter):

- :attr:`KIND`, :attr:`PARAMETERS` (extend the 14H-writable table);
- :meth:`read_value` (extra DIs; call ``super()`` for the rest);
- :meth:`_status1_bits`, :meth:`_status3_bits` (extra status bits);
- :meth:`_on_energy` (register steps of 0.01 kWh per tariff: money deduction);
- :meth:`_on_day` (00:00: extra freezes), :meth:`_on_relay_closed` (a close happened);
- :meth:`_after_touch` (async: e.g. trip when the money runs out, via
  :meth:`_relay_open` with :attr:`RelayReason.LOCAL <meter_sim.relay.RelayReason>`
  and operator ``FFFFFFFF``; re-close with :meth:`_relay_release`);
- :meth:`_next_due` / :meth:`_on_due` (own timed events on the shared clock);
- :meth:`_security` (extra 03H DIs such as 070101FF/070102FF), :meth:`_wallet`;
- :meth:`_state_extra` / :meth:`_restore_extra`; :meth:`press_button`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Final

from breaker_sim import BreakerLink
from protocol import (
    Address,
    ControlErrorWord,
    ErrorWord,
    ExecInfoWord,
    Frame,
    FunctionCode,
    Message,
    SecurityErrorWord,
    StatusWord1,
    StatusWord3,
)
from protocol.clock import Clock
from protocol.codes import BAUD_RATES, DIRECTION, FUNCTION_MASK, ControlCommand
from protocol.di import decode_value, encode_value, format_di
from protocol.errors import DataError, SecurityError
from protocol.messages import (
    AckReply,
    ChangeBaudReply,
    ChangeBaudRequest,
    ChangePasswordReply,
    ChangePasswordRequest,
    ClearDemandRequest,
    ClearEventsRequest,
    ClearMeterRequest,
    ControlRequest,
    ErrorReply,
    FreezeRequest,
    IdentityAuthRequest,
    MultiFunctionReply,
    MultiFunctionRequest,
    ReadAddressReply,
    ReadAddressRequest,
    ReadFollowUpReply,
    ReadFollowUpRequest,
    ReadReply,
    ReadRequest,
    SecureControlRequest,
    SecurityErrorReply,
    SecurityReply,
    SecurityRequest,
    TimeSyncRequest,
    WriteAddressRequest,
    WriteRequest,
)
from protocol.security import SimulatedEsam

from . import control, readout
from .auth import DEFAULT_VALIDITY_MIN, INVALIDATE_DI, IdentityAuth
from .config import BreakerKind, MeterConfig, MeterKind
from .errors import ControlRefused, MeterStateError, Refused
from .freeze import INSTANT_FREEZES_KEPT, FreezeStore
from .meter_clock import DAY, MeterClock, SyncRefused, from_seconds
from .parameters import PARAMETERS, Access, ParameterSpec, ParameterTable
from .passwords import Passwords
from .profile import Instant, LoadProfile
from .records import METER_OPERATOR, EventLog, EventRecord
from .registers import FORWARD, REVERSE, EnergyRegisters
from .relay import Relay, RelayReason
from .tou import DEFAULT_TOU, TouSchedule

__all__ = ["FOLLOW_UP_CHUNK", "PROGRAMMING_WINDOW_MIN", "STATE_VERSION", "Meter"]

_log = logging.getLogger(__name__)

FOLLOW_UP_CHUNK: Final = 170
"""Value bytes per read reply before follow-up frames are used ([FW-B])."""
PROGRAMMING_WINDOW_MIN: Final = 30
"""Minutes the programming key (编程键) keeps programming allowed."""
STATE_VERSION: Final = 1
SUPPORTED_BAUDS: Final = frozenset({0x04, 0x08, 0x10, 0x20})
"""Baud words a meter accepts with 17H: 1200, 2400, 4800, 9600."""
_MAX_EVENTS_PER_TOUCH: Final = 64
_REMOTE_CLOSABLE: Final = frozenset({BreakerKind.INTERNAL, BreakerKind.EXTERNAL_REMOTE_CLOSE})
_EXTERNAL: Final = frozenset({BreakerKind.EXTERNAL, BreakerKind.EXTERNAL_REMOTE_CLOSE})
_WILDCARD_OK: Final = frozenset(
    {
        FunctionCode.READ,
        FunctionCode.READ_FOLLOW_UP,
        FunctionCode.READ_ADDRESS,
        FunctionCode.WRITE_ADDRESS,
    }
)
"""Functions a meter answers when addressed with AA wildcard bytes ([FW-A])."""
_BROADCAST_OK: Final = frozenset({FunctionCode.BROADCAST_TIME, FunctionCode.FREEZE})
_DAILY_BLOCK: Final = 0x0506FF
"""DI3..DI1 of the daily-freeze data block (日冻结数据块) ``0506FFnn``."""
_CLEAR_METER_N2: Final = 0x1A
_CLEAR_EVENTS_N2: Final = 0x1B


class Meter:
    """A simulated fee-control smart meter; see the module doc. Use a subclass per kind."""

    KIND: ClassVar[MeterKind] = MeterKind.REMOTE
    PARAMETERS: ClassVar[Mapping[int, ParameterSpec]] = PARAMETERS

    __slots__ = (
        "_accrued_s",
        "_address",
        "_alarm",
        "_baud_word",
        "_clock",
        "_config",
        "_guaranteed",
        "_instant_freezes",
        "_lock",
        "_master_key",
        "_output_mode",
        "_pending_read",
        "_permit_due",
        "_programming_until",
        "_timer",
        "_timer_due",
        "_trip_due",
        "_trip_large_current_done",
        "_trip_operator",
        "auth",
        "clear_log",
        "clock",
        "close_log",
        "customer_number",
        "daily_freezes",
        "meter_number",
        "parameters",
        "passwords",
        "profile",
        "registers",
        "relay",
        "trip_log",
    )

    def __init__(
        self,
        config: MeterConfig,
        clock: Clock,
        breaker: BreakerLink,
        *,
        master_key: bytes,
        schedule: TouSchedule | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._address = Address(config.address)
        extra = config.extra
        self.meter_number: str = config.meter_number or config.address
        self.customer_number: str = config.customer_number
        self.clock = MeterClock(clock, config.faults.clock_drift_s_per_day)
        if schedule is None:
            tou = extra.get("tou")
            schedule = TouSchedule.parse(str(tou)) if tou else DEFAULT_TOU
        self.profile = LoadProfile(config.seed, config.mean_daily_kwh, schedule)
        self.registers = EnergyRegisters()
        self.daily_freezes = FreezeStore()
        self._instant_freezes: FreezeStore | None = None
        self.trip_log = EventLog()
        self.close_log = EventLog()
        self.clear_log = EventLog()
        self.parameters = ParameterTable(self.PARAMETERS)
        for key, value in dict(extra.get("parameters", {})).items():
            di = int(str(key), 16)
            self.parameters.set_raw(di, encode_value(di, value))
        self.passwords = Passwords(
            {int(k): str(v) for k, v in dict(extra.get("passwords", {})).items()}
        )
        self._master_key = master_key
        self.auth = IdentityAuth(
            self._new_esam(0), int(extra.get("auth_validity_min", DEFAULT_VALIDITY_MIN))
        )
        self.relay = Relay(breaker, f"meter {config.address}")
        self._accrued_s = int(self.clock.now_s())
        self._guaranteed = False
        self._alarm = False
        self._permit_due: float | None = None
        self._trip_due: float | None = None
        self._trip_operator = METER_OPERATOR
        self._trip_large_current_done = False
        self._programming_until: float | None = None
        self._baud_word = 0x08
        self._output_mode = 0
        self._pending_read: tuple[int, bytes] | None = None
        self._timer: asyncio.Task[None] | None = None
        self._timer_due: float | None = None
        self._lock = asyncio.Lock()

    def _new_esam(self, mac_errors: int) -> SimulatedEsam:
        return SimulatedEsam(
            self._master_key,
            self.meter_number,
            max_mac_errors=int(self._config.extra.get("max_mac_errors", 5)),
            mac_errors=mac_errors,
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self._address} ({self.KIND.value}, {self._config.breaker})>"
        )

    # ------------------------------------------------------------------ properties

    @property
    def address(self) -> Address:
        """The communication address (it changes with a 15H write)."""
        return self._address

    @property
    def config(self) -> MeterConfig:
        return self._config

    @property
    def instant_freezes(self) -> FreezeStore | None:
        """Freezes taken by 16H 99999999 (the last 3), or None before the first."""
        return self._instant_freezes

    @property
    def guaranteed(self) -> bool:
        """Power guarantee (保电) in force: no trip, neither remote nor for money."""
        return self._guaranteed

    @property
    def alarm(self) -> bool:
        """The remote alarm (2AH) is on."""
        return self._alarm

    @property
    def trip_pending(self) -> bool:
        """A delayed trip is counting down (pre-trip alarm)."""
        return self._trip_due is not None

    @property
    def permit_pending(self) -> bool:
        """The automatic permit-close after a trip (external breaker) is still to come."""
        return self._permit_due is not None

    @property
    def programming_allowed(self) -> bool:
        until = self._programming_until
        return until is not None and self.clock.now_s() < until

    @property
    def baud_rate(self) -> int:
        """The rate last set with 17H (the fleet's serial port decides the real one)."""
        return BAUD_RATES[self._baud_word]

    def instant(self) -> Instant:
        """Voltage, current, power, PF and frequency now."""
        now = int(self.clock.now_s())
        return self.profile.instant(now // DAY, now % DAY, self.relay.flowing)

    def status_word1(self) -> StatusWord1:
        """电表运行状态字1 (04000501)."""
        word = self._status1_bits()
        if self.relay.mismatch or not self.relay.link_ok:
            word |= StatusWord1.CONTROL_CIRCUIT_ERROR
        return StatusWord1(word)

    def status_word3(self) -> StatusWord3:
        """电表运行状态字3 (04000503): bit4 actual relay state, bit6 command, bit7 alarm."""
        word = self._status3_bits() | StatusWord3.PREPAY_MONEY
        relay = self.relay
        if self.programming_allowed:
            word |= StatusWord3.PROGRAMMING_ALLOWED
        if not relay.feedback_closed:
            word |= StatusWord3.RELAY_OPEN
        if relay.open_reasons or self._trip_due is not None:
            word |= StatusWord3.RELAY_COMMAND_TRIP
        if self._alarm or self._trip_due is not None:
            word |= StatusWord3.PRE_TRIP_ALARM
        if self._guaranteed:
            word |= StatusWord3.GUARANTEED
        if self.auth.valid(self.clock.shared_s()):
            word |= StatusWord3.AUTH_VALID
        return StatusWord3(word)

    # ------------------------------------------------------------------ hooks

    def _status1_bits(self) -> int:
        """Kind-specific bits of status word 1 (e.g. REMOTE_MODE, OVERDRAFT)."""
        return 0

    def _status3_bits(self) -> int:
        """Kind-specific bits of status word 3 (e.g. alarm levels of a local meter)."""
        return 0

    def _on_energy(self, steps: list[int], at_s: int) -> None:
        """Forward energy registered: ``steps`` of 0.01 kWh per tariff 1..4, at meter ``at_s``."""

    def _on_day(self, day: int) -> None:
        """Meter 00:00 of ``day`` (days since 2000-01-01), after the daily freeze."""

    def _on_relay_closed(self) -> None:
        """The switch was seen to close (after the 1E record; REMOTE already cleared)."""

    async def _after_touch(self) -> None:
        """End of every touch, under the meter's lock (e.g. evaluate the money)."""

    def _next_due(self) -> float | None:
        """The earliest shared-clock second something is due (extend with ``min``)."""
        permit = self._permit_due
        trip = self._trip_due
        if permit is None:
            return trip
        if trip is None:
            return permit
        return min(permit, trip)

    async def _on_due(self, shared_s: float) -> None:
        """Fire what is due at ``shared_s`` (energy is accrued to that time already)."""
        if self._trip_due is not None and self._trip_due <= shared_s:
            await self._fire_delayed_trip(shared_s)
        if self._permit_due is not None and self._permit_due <= shared_s:
            self._permit_due = None
            await self._relay_permit_by_meter()

    async def _security(self, request: SecurityRequest) -> Message:
        """Answer a 03H request other than identity authentication and 070002FF."""
        _log.info("%s: 03H DI %s is not supported", self._address, format_di(request.di))
        return SecurityErrorReply(SecurityErrorWord.OTHER)

    def _wallet(self) -> tuple[int, int]:
        """``(remaining fen, purchase count)`` for the 070002FF reply; none in a remote meter."""
        return 0, 0

    def _state_extra(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`_state_extra` saved."""

    # ------------------------------------------------------------------ requests

    async def handle(self, frame: Frame, message: Message) -> Message | None:
        """Answer one request (see :class:`meter_sim.config.SimulatedMeter`); never raises."""
        control = frame.control
        if control & DIRECTION:
            return None  # a reply, not a request
        target = frame.address
        function = control & FUNCTION_MASK
        broadcast = target.is_broadcast
        if broadcast:
            if function not in _BROADCAST_OK:
                return None
        elif target != self._address and (
            not target.matches(self._address) or function not in _WILDCARD_OK
        ):
            return None
        reply: Message | None
        try:
            async with self._lock:
                await self._touch()
                if type(message) is ReadRequest:  # the usual request, without a coroutine
                    reply = self._read(message)
                else:
                    reply = await self._dispatch(frame, message)
        except Refused as exc:
            _log.info("%s: %s refused: %s", self._address, frame.describe_control(), exc)
            reply = ErrorReply(function, exc.error)
        except Exception:
            _log.exception("%s: failed on %s", self._address, frame.describe_control())
            reply = ErrorReply(function, ErrorWord.OTHER)
        return None if broadcast else reply

    async def refresh(self) -> None:
        """Touch the meter now (accrue, fire what is due, read the breaker feedback)."""
        async with self._lock:
            await self._touch()

    async def _dispatch(self, frame: Frame, message: Message) -> Message | None:
        if isinstance(message, ReadRequest):
            return self._read(message)
        if isinstance(message, ReadFollowUpRequest):
            return self._read_follow_up(message)
        if isinstance(message, ReadAddressRequest):
            if frame.address.is_wildcard or frame.address == self._address:
                return ReadAddressReply(self._address)
            return None
        if isinstance(message, TimeSyncRequest):
            return self._time_sync(frame, message)
        if isinstance(message, WriteRequest):
            return self._write(message)
        if isinstance(message, WriteAddressRequest):
            return self._write_address(frame, message)
        if isinstance(message, IdentityAuthRequest):
            return self.auth.authenticate(message, self.clock.shared_s())
        if isinstance(message, SecurityRequest):
            return await self._security_request(message)
        if isinstance(message, ControlRequest | SecureControlRequest):
            return await control.handle(self, message)
        if isinstance(message, FreezeRequest):
            return self._freeze(message)
        if isinstance(message, ChangeBaudRequest):
            if message.word not in SUPPORTED_BAUDS:
                raise Refused(ErrorWord.BAUD_UNCHANGEABLE, f"baud word {message.word:02X}H")
            self._baud_word = message.word
            return ChangeBaudReply(message.word)
        if isinstance(message, ChangePasswordRequest):
            return self._change_password(message)
        if isinstance(message, ClearDemandRequest):
            self._require_password(message.level, message.password, programming=True)
            return AckReply(FunctionCode.CLEAR_DEMAND)  # no maximum demand is kept
        if isinstance(message, ClearMeterRequest):
            self._authorise_clear(message.level, message.password, message.extra, _CLEAR_METER_N2)
            self._clear_meter(message.operator)
            return AckReply(FunctionCode.CLEAR_METER)
        if isinstance(message, ClearEventsRequest):
            self._authorise_clear(message.level, message.password, message.extra, _CLEAR_EVENTS_N2)
            self._clear_events(message.di)
            return AckReply(FunctionCode.CLEAR_EVENTS)
        if isinstance(message, MultiFunctionRequest):
            if message.mode not in (0, 1, 2):
                raise Refused(ErrorWord.OTHER, f"multi-function output mode {message.mode:02X}")
            self._output_mode = message.mode
            return MultiFunctionReply(message.mode)
        raise Refused(ErrorWord.OTHER, f"function {frame.function:02X}H is not supported")

    # -- reads

    def read_value(self, di: int) -> bytes:
        """The value bytes of ``di``; raises :class:`Refused` (ERR 02 unknown, ERR 04 secret)."""
        if di >> 8 == _DAILY_BLOCK:
            return self._daily_block(di & 0xFF)
        return readout.value(self, di)

    def _daily_block(self, n: int) -> bytes:
        """日冻结数据块 ``0506FFnn`` (see :func:`meter_sim.freeze.daily_block`).

        A meter configured with ``extra = {freeze_block = false}`` does not know
        the block (ERR 02), as older firmware that answers only the single items.
        """
        di = _DAILY_BLOCK << 8 | n
        if not self._config.extra.get("freeze_block", True):
            raise Refused(ErrorWord.NO_DATA, f"{di:08X}: the daily-freeze block is not supported")
        if n <= self._config.faults.missing_freeze_days:
            raise Refused(ErrorWord.NO_DATA, f"{di:08X}: daily freeze {n} was not taken")
        block = self.daily_freezes.block(n)
        if block is None:
            raise Refused(ErrorWord.NO_DATA, f"{di:08X}: no such freeze")
        return block

    def _read(self, request: ReadRequest) -> Message:
        if request.since is not None:
            raise Refused(ErrorWord.NO_DATA, "load-profile records are not kept")
        value = self.read_value(request.di)
        if len(value) <= FOLLOW_UP_CHUNK:
            self._pending_read = None
            return ReadReply(request.di, value)
        self._pending_read = (request.di, value)
        return ReadReply(request.di, value[:FOLLOW_UP_CHUNK], follow_up=True)

    def _read_follow_up(self, request: ReadFollowUpRequest) -> Message:
        pending = self._pending_read
        value = pending[1] if pending and pending[0] == request.di else self.read_value(request.di)
        start = request.seq * FOLLOW_UP_CHUNK
        if request.seq < 1 or start >= len(value):
            raise Refused(ErrorWord.NO_DATA, f"no follow-up frame {request.seq}")
        end = start + FOLLOW_UP_CHUNK
        more = end < len(value)
        self._pending_read = (request.di, value) if more else None
        return ReadFollowUpReply(request.di, value[start:end], request.seq, follow_up=more)

    # -- time

    def _time_sync(self, frame: Frame, message: TimeSyncRequest) -> Message | None:
        try:
            self.clock.sync(message.when)
        except SyncRefused as exc:
            _log.info("%s: time sync to %s refused: %s", self._address, message.when, exc)
            if frame.address.is_broadcast:
                return None
            raise Refused(ErrorWord.UNAUTHORIZED, str(exc)) from None
        _log.info("%s: clock synced to %s", self._address, message.when)
        return None

    # -- writes

    def press_program_key(self, minutes: int = PROGRAMMING_WINDOW_MIN) -> None:
        """The programming key (编程键) is pressed: programming allowed for ``minutes``."""
        self._programming_until = self.clock.now_s() + minutes * 60

    def _require_password(self, level: int, password: str, *, programming: bool) -> None:
        if not self.passwords.check(level, password):
            raise Refused(ErrorWord.UNAUTHORIZED, f"wrong password for level {level:02X}")
        if programming and not (self._config.test_mode or self.programming_allowed):
            raise Refused(ErrorWord.UNAUTHORIZED, "programming key not pressed")

    def _write(self, request: WriteRequest) -> Message:
        di = request.di
        if request.level in (0x98, 0x99):
            raise Refused(
                ErrorWord.UNAUTHORIZED,
                "98/99-level parameter writes are not simulated; use test mode and a password",
            )
        if 0x04000C01 <= di <= 0x04000C0A:
            raise Refused(ErrorWord.UNAUTHORIZED, "passwords are changed with 18H")
        access = self._write_access(di)
        if access is None:
            raise Refused(ErrorWord.NO_DATA, f"{format_di(di)} is not writable here")
        if access is Access.FIXED:
            raise Refused(ErrorWord.UNAUTHORIZED, f"{format_di(di)} is write-protected")
        self._require_password(request.level, request.password, programming=True)
        if access is Access.SECURE and not self._config.test_mode:
            raise Refused(ErrorWord.UNAUTHORIZED, f"{format_di(di)} needs the 98 level")
        try:
            value = decode_value(di, request.value).value
        except DataError as exc:
            raise Refused(ErrorWord.OTHER, f"bad value for {format_di(di)}: {exc}") from None
        self._apply_write(di, request.value, value)
        _log.info("%s: %s written by operator %s", self._address, format_di(di), request.operator)
        return AckReply(FunctionCode.WRITE)

    def _write_access(self, di: int) -> Access | None:
        if di in self.parameters:
            return self.parameters.specs[di].access
        if di in (0x04000101, 0x04000102):
            return Access.PROGRAM
        if di == 0x0400040E:
            return Access.SECURE
        if di in (0x04000401, 0x04000402):
            return Access.FIXED
        return None

    def _apply_write(self, di: int, raw: bytes, value: Any) -> None:
        if di in self.parameters:
            self.parameters.set_raw(di, raw)
        elif di == 0x04000101:
            if value is None:  # 00-00-00: the format's "no date", not a day to set
                raise Refused(ErrorWord.OTHER, f"{format_di(di)}: 00-00-00 is not a date")
            now = self.clock.now()
            self.clock.set(datetime.combine(value, now.time()))
        elif di == 0x04000102:
            now = self.clock.now()
            self.clock.set(datetime.combine(now.date(), value))
        elif di == 0x0400040E:
            self.customer_number = str(value)

    def _write_address(self, frame: Frame, message: WriteAddressRequest) -> Message | None:
        if not (frame.address.is_wildcard or frame.address == self._address):
            return None
        new = Address(message.address)
        if not self.programming_allowed or new.is_broadcast or "A" in new:
            _log.info("%s: write address %s ignored (programming key?)", self._address, new)
            return None
        _log.info("%s: communication address changed to %s", self._address, new)
        self._address = new
        return AckReply(FunctionCode.WRITE_ADDRESS)

    def _change_password(self, message: ChangePasswordRequest) -> Message:
        old_level = message.level if message.old_level is None else message.old_level
        if old_level > message.level or not self.passwords.check(
            old_level, message.old_password, need=9
        ):
            raise Refused(
                ErrorWord.UNAUTHORIZED, f"cannot change the level-{message.level} password"
            )
        if not (self._config.test_mode or self.programming_allowed):
            raise Refused(ErrorWord.UNAUTHORIZED, "programming key not pressed")
        self.passwords.change(message.level, message.new_password)
        return ChangePasswordReply(message.level, message.new_password)

    # -- freeze and clear

    def _freeze(self, message: FreezeRequest) -> Message:
        kind = message.kind
        if kind == "instant":
            if self._instant_freezes is None:
                self._instant_freezes = FreezeStore(INSTANT_FREEZES_KEPT)
            self._take_freeze(self._instant_freezes, int(self.clock.now_s()) // 60)
        elif not (
            (kind == "daily" and message.hour == 0 and message.minute == 0)
            or (kind == "monthly" and (message.day, message.hour, message.minute) == (1, 0, 0))
        ):
            raise Refused(ErrorWord.OTHER, "freeze times are fixed: daily 00:00, monthly 1st 00:00")
        return AckReply(FunctionCode.FREEZE)

    def _take_freeze(self, store: FreezeStore, minute: int) -> None:
        store.take_row(minute, self.registers.frozen())

    def _authorise_clear(self, level: int, password: str, extra: bytes, n2: int) -> None:
        """1AH/1BH: level 98 with a control block (N1 = N2 = the function), or test mode."""
        if level == 0x98:
            shared = self.clock.shared_s()
            if not self.auth.valid(shared):
                raise Refused(ErrorWord.UNAUTHORIZED, "identity authentication needed")
            try:
                n1, got_n2, expiry = self.auth.esam.open_control_block(extra)
            except SecurityError as exc:
                raise Refused(ErrorWord.UNAUTHORIZED, str(exc)) from None
            if (n1, got_n2) != (n2, n2) or expiry < self.clock.now():
                raise Refused(ErrorWord.UNAUTHORIZED, "wrong or expired clear block")
            return
        if not self._config.test_mode:
            raise Refused(ErrorWord.UNAUTHORIZED, "plaintext clear needs test mode")
        self._require_password(level, password, programming=True)

    def _clear_meter(self, operator: str) -> None:
        """电表清零: energy, settlements, freezes and event records to zero; one 0330 record."""
        forward, reverse = self._totals()
        self.registers.clear()
        self.daily_freezes.clear()
        self._instant_freezes = None
        self.trip_log.clear()
        self.close_log.clear()
        self.clear_log.add(EventRecord(int(self.clock.now_s()), operator, forward, reverse))
        _log.warning("%s: meter cleared by operator %s", self._address, operator)

    def _clear_events(self, di: int) -> None:
        """事件清零: all event records (FFFFFFFF) or one family (1Dxxxxxx, 1Exxxxxx)."""
        family = di >> 24
        if di == 0xFFFFFFFF:
            self.trip_log.clear()
            self.close_log.clear()
        elif family == 0x1D:
            self.trip_log.clear()
        elif family == 0x1E:
            self.close_log.clear()
        else:
            raise Refused(ErrorWord.NO_DATA, f"no event records {format_di(di)}")

    # -- 03H

    async def _security_request(self, request: SecurityRequest) -> Message:
        if request.di == INVALIDATE_DI:
            self.auth.invalidate()
            remaining, count = self._wallet()
            payload = (
                bytes.fromhex(self.customer_number)[::-1]
                + remaining.to_bytes(4, "big")
                + count.to_bytes(4, "big")
                + bytes(4)
            )
            return SecurityReply(request.di, payload)
        return await self._security(request)

    # ------------------------------------------------------------------ control (1CH)

    async def execute(self, command: int, operator: str) -> ExecInfoWord:
        """Carry out an authenticated 1CH command (N1); raise :class:`ControlRefused`.

        Energy is accrued (the meter touched) before any relay change.
        """
        if command == ControlCommand.TRIP:
            return await self._command_trip(operator)
        if command == ControlCommand.CLOSE_PERMITTED:
            self._trip_due = None
            await self._relay_release(RelayReason.REMOTE, operator)
            return ExecInfoWord.CLOSE_PERMITTED
        if command == ControlCommand.DIRECT_CLOSE:
            if self._config.breaker not in _REMOTE_CLOSABLE:
                raise ControlRefused(
                    ControlErrorWord.UNAUTHORIZED,
                    f"direct close needs a remotely closable switch, not {self._config.breaker}",
                )
            self._trip_due = None
            await self._relay_direct_close(operator)
            return ExecInfoWord.DIRECT_CLOSE
        if command == ControlCommand.ALARM:
            self._alarm = True
            return ExecInfoWord.ALARM
        if command == ControlCommand.ALARM_RELEASE:
            self._alarm = False
            return ExecInfoWord.ALARM_RELEASE
        if command == ControlCommand.GUARANTEE:
            self._guaranteed = True
            self._trip_due = None
            return ExecInfoWord.GUARANTEE
        if command == ControlCommand.GUARANTEE_RELEASE:
            self._guaranteed = False
            return ExecInfoWord.GUARANTEE_RELEASE
        raise ControlRefused(ControlErrorWord.UNAUTHORIZED, f"command N1={command:02X}H")

    async def _command_trip(self, operator: str) -> ExecInfoWord:
        if self._guaranteed:
            raise ControlRefused(ControlErrorWord.GUARANTEED, "power guarantee in force")
        self._trip_operator = operator
        self._trip_large_current_done = False
        delay_min = self._param_int(0x04001401)
        if delay_min > 0:
            self._trip_due = self.clock.shared_s() + delay_min * 60
            self._arm()
            return ExecInfoWord.DELAYED_TRIP
        if self._postpone_for_large_current(self.clock.shared_s()):
            return ExecInfoWord.LARGE_CURRENT_DELAYED_TRIP
        self._trip_due = None
        await self._relay_open(RelayReason.REMOTE, operator)
        return ExecInfoWord.DIRECT_TRIP

    def _postpone_for_large_current(self, shared_s: float) -> bool:
        """Above the current threshold (04001402) the trip waits 04001403 minutes, once."""
        if self._trip_large_current_done:
            return False
        threshold_ma = int(readout.decimal_param(self, 0x04001402) * 1000)
        wait_min = self._param_int(0x04001403)
        if threshold_ma <= 0 or wait_min <= 0 or self.instant().current_ma <= threshold_ma:
            return False
        self._trip_large_current_done = True
        self._trip_due = shared_s + wait_min * 60
        self._arm()
        _log.info("%s: current above the trip threshold: trip in %d min", self._address, wait_min)
        return True

    async def _fire_delayed_trip(self, shared_s: float) -> None:
        self._trip_due = None
        if self._guaranteed:
            return
        if self._postpone_for_large_current(shared_s):
            return
        await self._relay_open(RelayReason.REMOTE, self._trip_operator)

    def _param_int(self, di: int) -> int:
        value = decode_value(di, self.parameters.raw(di)).value
        return int(value)

    # -- relay sequencing (the meter is touched: energy accrued to now)

    async def _relay_open(
        self, reason: RelayReason, operator: str, *, auto_permit: bool | None = None
    ) -> None:
        """Open the switch for ``reason``: trip signal, 1D record, and on an external
        breaker the automatic permit-close after ``permit_close_delay_s`` (SPEC S1)."""
        relay = self.relay
        was_open = relay.open_reasons
        relay.open_reasons |= reason
        relay.close_allowed = False
        self._permit_due = None
        await relay.trip()
        if not was_open:
            forward, reverse = self._totals()
            record = EventRecord(int(self.clock.now_s()), operator, forward, reverse)
            self.trip_log.add(record)
            _log.info("%s: tripped (operator %s)", self._address, operator)
        if auto_permit is None:
            auto_permit = self._config.breaker in _EXTERNAL
        if auto_permit:
            self._permit_due = self.clock.shared_s() + self._config.permit_close_delay_s
        await self._observe()
        self._arm()

    async def _relay_permit_by_meter(self) -> None:
        """The meter's own permit-close (the lever is free; the command state stays trip)."""
        relay = self.relay
        if not relay.open_reasons:
            return
        await relay.permit(True)
        relay.close_allowed = True
        relay.close_operator = METER_OPERATOR
        await self._observe()

    async def _relay_release(self, reason: RelayReason, operator: str) -> None:
        """Clear ``reason``; with no reason left, permit a close (合闸允许)."""
        relay = self.relay
        relay.open_reasons &= ~reason
        if relay.open_reasons:
            return
        self._permit_due = None
        if not relay.feedback_closed:
            await relay.permit(True)
            relay.close_allowed = True
            relay.close_operator = operator
        await self._observe()
        self._arm()

    async def _relay_direct_close(self, operator: str) -> None:
        relay = self.relay
        relay.open_reasons &= ~RelayReason.REMOTE
        if relay.open_reasons:
            return
        self._permit_due = None
        relay.close_allowed = True
        relay.close_operator = operator
        if not relay.feedback_closed:
            await relay.permit(True)
            await relay.close()
        await self._observe()
        self._arm()

    async def press_button(self) -> bool:
        """The customer presses the meter's button (≥ 3 s): a built-in relay that has been
        permitted to close (1BH) closes. Returns whether the switch is closed afterwards."""
        async with self._lock:
            await self._touch()
            relay = self.relay
            if (
                self._config.breaker is BreakerKind.INTERNAL
                and relay.close_allowed
                and not relay.feedback_closed
            ):
                await relay.manual_close()
                await self._observe()
            return relay.feedback_closed

    async def _observe(self) -> None:
        """Read the feedback; a close seen after a release writes the 1E record."""
        relay = self.relay
        was_closed = relay.feedback_closed
        closed = await relay.read_feedback()
        relay.feedback_closed = closed
        if closed and not was_closed:
            operator = relay.close_operator if relay.close_allowed else METER_OPERATOR
            forward, reverse = self._totals()
            self.close_log.add(EventRecord(int(self.clock.now_s()), operator, forward, reverse))
            _log.info("%s: switch closed (operator %s)", self._address, operator)
            if relay.close_allowed:
                relay.open_reasons &= ~RelayReason.REMOTE
                relay.close_allowed = False
                self._permit_due = None
            self._on_relay_closed()
        elif closed and not relay.open_reasons:
            relay.close_allowed = False
        await relay.evaluate()

    # ------------------------------------------------------------------ time passing

    async def _touch(self) -> None:
        clock = self.clock
        shared = clock.shared_s()
        due = self._next_due()
        if due is not None and due <= shared:  # something fell due since the last touch
            for _ in range(_MAX_EVENTS_PER_TOUCH):
                due = self._next_due()
                if due is None or due > shared:
                    break
                self._advance(int(clock.at(due)))
                await self._on_due(due)
        self._advance(int(clock.at(shared)))
        self.auth.expire(shared)
        await self._observe()
        self._arm()
        if type(self)._after_touch is not _NO_AFTER_TOUCH:  # (the base hook does nothing)
            await self._after_touch()

    def _advance(self, to_s: int) -> None:
        """Accrue energy up to meter second ``to_s``, taking every 00:00 on the way."""
        start = self._accrued_s
        if to_s <= start:
            return
        day = start // DAY
        last_day = to_s // DAY
        second = start - day * DAY
        while day < last_day:
            self._accrue(day, second, DAY)
            day += 1
            second = 0
            self._accrued_s = day * DAY
            self._midnight(day)
        self._accrue(day, second, to_s - day * DAY)
        self._accrued_s = to_s

    def _accrue(self, day: int, start: int, end: int) -> None:
        if end <= start or not self.relay.flowing:
            return
        profile = self.profile
        # From 00:00 the energy is what the day used before ``end`` (none before 00:00).
        energy = profile.cumulative(day, end) if start == 0 else profile.energy(day, start, end)
        steps = self.registers.add_forward(energy)
        if any(steps):
            self._on_energy(steps, day * DAY + end)

    def _midnight(self, day: int) -> None:
        """00:00: daily freeze (日冻结), monthly settlement (结算) on the 1st, ESAM reset."""
        self._take_freeze(self.daily_freezes, day * (DAY // 60))
        if _first_of_month(day):
            self.registers.settle()
        if self.auth.esam.mac_errors:
            self.auth.esam.reset_mac_errors()
        self._on_day(day)

    def _totals(self) -> tuple[int, int]:
        forward = self.registers.block(FORWARD)
        reverse = self.registers.block(REVERSE)
        assert forward is not None and reverse is not None
        return forward[0], reverse[0]

    # ------------------------------------------------------------------ the timer

    def _arm(self) -> None:
        """Keep one timer task sleeping until the next due event (none when nothing is due)."""
        due = self._next_due()
        timer = self._timer
        if timer is not None and not timer.done():
            if due == self._timer_due:
                return
            if timer is not asyncio.current_task():
                timer.cancel()
        self._timer = None
        self._timer_due = None
        if due is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # armed again on the next touch
        self._timer_due = due
        self._timer = loop.create_task(self._wake(due), name=f"meter {self._address} timer")

    async def _wake(self, due: float) -> None:
        await self._clock.sleep(max(0.0, due - self.clock.shared_s()))
        if self._timer is asyncio.current_task():
            self._timer = None
            self._timer_due = None
        async with self._lock:
            await self._touch()

    def cancel_timers(self) -> None:
        """Cancel the timer task (shutting down); :meth:`refresh` re-arms it."""
        timer, self._timer = self._timer, None
        self._timer_due = None
        if timer is not None:
            timer.cancel()

    async def aclose(self) -> None:
        timer = self._timer
        self.cancel_timers()
        if timer is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await timer

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """Everything that must survive a restart, JSON-serialisable."""
        relay = self.relay
        return {
            "version": STATE_VERSION,
            "kind": self.KIND.value,
            "address": str(self._address),
            "meter_number": self.meter_number,
            "customer_number": self.customer_number,
            "clock": self.clock.to_state(),
            "accrued_s": self._accrued_s,
            "energy": self.registers.to_state(),
            "daily_freezes": self.daily_freezes.to_state(),
            "instant_freezes": (
                None if self._instant_freezes is None else self._instant_freezes.to_state()
            ),
            "records": {
                "trip": self.trip_log.to_state(),
                "close": self.close_log.to_state(),
                "clear": self.clear_log.to_state(),
            },
            "parameters": self.parameters.to_state(),
            "passwords": self.passwords.to_state(),
            "relay": {
                "open_reasons": int(relay.open_reasons),
                "close_allowed": relay.close_allowed,
                "close_operator": relay.close_operator,
                "feedback_closed": relay.feedback_closed,
                "flowing": relay.flowing,
                "mismatch": relay.mismatch,
            },
            "control": {
                "guaranteed": self._guaranteed,
                "alarm": self._alarm,
                "permit_due_s": self._permit_due,
                "trip_due_s": self._trip_due,
                "trip_operator": self._trip_operator,
                "trip_large_current_done": self._trip_large_current_done,
            },
            "auth": self.auth.to_state(),
            "programming_until_s": self._programming_until,
            "baud_word": self._baud_word,
            "output_mode": self._output_mode,
            "extra": self._state_extra(),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        """The inverse of :meth:`to_state`; :class:`MeterStateError` for a state it cannot use."""
        try:
            self._restore(state)
        except MeterStateError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, SecurityError) as exc:
            raise MeterStateError(
                f"meter {self._config.address}: state is malformed ({exc!r}); "
                "restore a state written by to_state() of the same meter"
            ) from None
        self._arm()

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise MeterStateError(
                f"meter {self._config.address}: state version {state.get('version')!r} is not "
                f"{STATE_VERSION}"
            )
        if state["kind"] != self.KIND.value or state["meter_number"] != self.meter_number:
            raise MeterStateError(
                f"state of a {state['kind']} meter {state['meter_number']} cannot be restored "
                f"into {self.KIND.value} meter {self.meter_number}"
            )
        self._address = Address(state["address"])
        self.customer_number = str(state["customer_number"])
        self.clock.restore_state(state["clock"])
        self._accrued_s = int(state["accrued_s"])
        self.registers.restore_state(state["energy"])
        self.daily_freezes.restore_state(state["daily_freezes"])
        instant = state.get("instant_freezes")
        self._instant_freezes = None
        if instant is not None:
            self._instant_freezes = FreezeStore(INSTANT_FREEZES_KEPT)
            self._instant_freezes.restore_state(instant)
        records = state["records"]
        self.trip_log.restore_state(records["trip"])
        self.close_log.restore_state(records["close"])
        self.clear_log.restore_state(records["clear"])
        self.parameters.restore_state(state["parameters"])
        self.passwords.restore_state(list(state["passwords"]))
        relay_state = state["relay"]
        relay = self.relay
        relay.open_reasons = int(relay_state["open_reasons"])
        relay.close_allowed = bool(relay_state["close_allowed"])
        relay.close_operator = str(relay_state["close_operator"])
        relay.feedback_closed = bool(relay_state["feedback_closed"])
        relay.flowing = bool(relay_state["flowing"])
        relay.mismatch = bool(relay_state["mismatch"])
        ctl = state["control"]
        self._guaranteed = bool(ctl["guaranteed"])
        self._alarm = bool(ctl["alarm"])
        self._permit_due = _opt_float(ctl["permit_due_s"])
        self._trip_due = _opt_float(ctl["trip_due_s"])
        self._trip_operator = str(ctl["trip_operator"])
        self._trip_large_current_done = bool(ctl["trip_large_current_done"])
        auth_state = state["auth"]
        esam = self._new_esam(int(auth_state["mac_errors"]))
        esam.restore_session(auth_state["session"])
        self.auth.esam = esam
        self.auth.until_s = _opt_float(auth_state["until_s"])
        if self.auth.until_s is None:
            esam.invalidate_session()
        self._programming_until = _opt_float(state["programming_until_s"])
        self._baud_word = int(state["baud_word"])
        self._output_mode = int(state["output_mode"])
        self._pending_read = None
        self._restore_extra(state.get("extra", {}))


_NO_AFTER_TOUCH: Final = Meter._after_touch


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


_FIRST_OF_MONTH: dict[int, bool] = {}
"""Day number (days since 2000-01-01) → whether it is the 1st of a month."""


def _first_of_month(day: int) -> bool:
    first = _FIRST_OF_MONTH.get(day)
    if first is None:
        if len(_FIRST_OF_MONTH) > 4096:
            _FIRST_OF_MONTH.clear()
        first = _FIRST_OF_MONTH[day] = from_seconds(day * DAY).day == 1
    return first
