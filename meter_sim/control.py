"""Remote control requests (远程控制, 1CH): authenticate, check, then let the meter act.

Two forms reach a meter (PROTOCOL.md §3):

- **98 level** (:class:`~protocol.messages.SecureControlRequest`): the command and its
  expiry enciphered with the identity-auth session key, plus a MAC. Refusals are the
  2013 form, ``DC`` with the 2-byte control-error word (控制命令错误信息字):

  ====================================================  ==========================
  refusal                                               control-error word
  ====================================================  ==========================
  ESAM suspended (挂起)                                  ``SUSPENDED`` (bit0)
  no identity authentication, or it expired (5 min)     ``AUTH_INVALID`` (bit3)
  MAC does not verify (wrong key, altered block)        ``MAC_ERROR`` (bit1)
  the block was already accepted (replay)               ``MAC_ERROR`` (bit1) [#]_
  expiry before the *meter's* clock                     ``EXPIRED`` (bit4)
  trip under power guarantee                            ``GUARANTEED`` (bit5)
  direct close on a breaker that cannot close remotely  ``UNAUTHORIZED`` (bit2)
  trip auto-restore (1DH/1EH, not simulated), bad N1    ``UNAUTHORIZED`` (bit2)
  ====================================================  ==========================

  .. [#] As the ESAM documents: a replayed block is treated like a MAC error, but
     does not count towards suspension.

- **Plaintext** (:class:`~protocol.messages.ControlRequest`, ``PA P0P1P2 C0..C3 N1 N2
  expiry``): accepted only when :attr:`MeterConfig.test_mode
  <meter_sim.config.MeterConfig.test_mode>` is set and the level-00..04 password is
  right. Refusals are the [FW-A] form, ``DC 01`` with ERR ``04`` (UNAUTHORIZED) for
  every reason (not in test mode, wrong password, expired, guaranteed, …).

Success is ``9C 02`` with the execution-info word (执行信息字), e.g. ``DIRECT_TRIP``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from protocol import ControlErrorWord, ErrorWord, FunctionCode
from protocol.errors import SecurityError
from protocol.messages import (
    ControlErrorReply,
    ControlReply,
    ControlRequest,
    ErrorReply,
    Message,
    SecureControlRequest,
)
from protocol.security import MacError, NoSessionError, ReplayError, SuspendedError

from .errors import ControlRefused

if TYPE_CHECKING:
    from .meter import Meter

__all__ = ["handle"]

_log = logging.getLogger(__name__)


async def handle(meter: Meter, request: ControlRequest | SecureControlRequest) -> Message:
    """The reply to a 1CH request (see the module doc)."""
    if isinstance(request, SecureControlRequest):
        return await _secure(meter, request)
    return await _plaintext(meter, request)


def _refuse(meter: Meter, word: ControlErrorWord, why: str) -> Message:
    _log.warning("%s: control refused (%s): %s", meter.address, word.name, why)
    return ControlErrorReply(word)


async def _secure(meter: Meter, request: SecureControlRequest) -> Message:
    esam = meter.auth.esam
    if esam.suspended:
        return _refuse(meter, ControlErrorWord.SUSPENDED, "ESAM suspended")
    if not meter.auth.valid(meter.clock.shared_s()):
        return _refuse(meter, ControlErrorWord.AUTH_INVALID, "no valid identity authentication")
    try:
        command, _n2, expiry = esam.open_control_block(request.block)
    except SuspendedError as exc:
        return _refuse(meter, ControlErrorWord.SUSPENDED, str(exc))
    except NoSessionError as exc:
        return _refuse(meter, ControlErrorWord.AUTH_INVALID, str(exc))
    except ReplayError as exc:
        return _refuse(meter, ControlErrorWord.MAC_ERROR, str(exc))
    except MacError as exc:
        word = ControlErrorWord.MAC_ERROR
        if esam.suspended:
            word |= ControlErrorWord.SUSPENDED
        return _refuse(meter, word, str(exc))
    except SecurityError as exc:
        return _refuse(meter, ControlErrorWord.MAC_ERROR, str(exc))
    now = meter.clock.now()
    if expiry < now:
        return _refuse(meter, ControlErrorWord.EXPIRED, f"expired {expiry} (meter time {now})")
    try:
        info = await meter.execute(command, request.operator)
    except ControlRefused as exc:
        return _refuse(meter, exc.word, str(exc))
    _log.info("%s: control %02XH by %s: %s", meter.address, command, request.operator, info)
    return ControlReply(info)


async def _plaintext(meter: Meter, request: ControlRequest) -> Message:
    refused = ErrorReply(FunctionCode.CONTROL, ErrorWord.UNAUTHORIZED)
    if not meter.config.test_mode:
        _log.warning("%s: plaintext control refused: not in test mode", meter.address)
        return refused
    if not meter.passwords.check(request.level, request.password):
        _log.warning("%s: plaintext control refused: wrong password", meter.address)
        return refused
    if request.expiry < meter.clock.now():
        _log.warning("%s: plaintext control refused: expired %s", meter.address, request.expiry)
        return refused
    try:
        info = await meter.execute(request.command, request.operator)
    except ControlRefused as exc:
        _log.warning("%s: plaintext control refused: %s", meter.address, exc)
        return refused
    return ControlReply(info)
