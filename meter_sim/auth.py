"""Identity authentication (身份认证, 03H DI 070000FF) and its validity period.

The meter's :class:`~protocol.security.SimulatedEsam` checks the head-end's
challenge and holds the session key; :class:`IdentityAuth` adds what the meter
decides: the session is valid for a period (default 5 minutes, readable in minutes
at DI 02800022) on the shared clock, then expires; ``070002FF`` ends it early.

Refusals of 03H are abnormal replies ``C3`` with the 2-byte SERR word:

=====================================  ==========================
ESAM outcome                           SERR
=====================================  ==========================
wrong factor / ciphertext1 (key)       ``AUTH_FAILED`` (bit3)
suspended after repeated MAC errors    ``SUSPENDED`` (bit8)
anything else                          ``OTHER`` (bit0)
=====================================  ==========================

Every failed authentication counts as a MAC error in the ESAM; at its maximum the
ESAM is suspended (挂起) until the meter's next day (the meter resets the counter at
00:00).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Final

from protocol import SecurityErrorWord
from protocol.errors import SecurityError
from protocol.messages import IdentityAuthReply, IdentityAuthRequest, Message, SecurityErrorReply
from protocol.security import AuthenticationFailed, SimulatedEsam, SuspendedError

__all__ = ["DEFAULT_VALIDITY_MIN", "INVALIDATE_DI", "IdentityAuth"]

_log = logging.getLogger(__name__)

DEFAULT_VALIDITY_MIN: Final = 5
INVALIDATE_DI: Final = 0x070002FF
"""03H DI that ends the identity-authenticated session early (身份认证失效)."""


class IdentityAuth:
    """The identity-authenticated session of one meter (see the module doc)."""

    __slots__ = ("esam", "until_s", "validity_s")

    def __init__(self, esam: SimulatedEsam, validity_min: int = DEFAULT_VALIDITY_MIN) -> None:
        if validity_min < 1:
            raise ValueError(f"identity-auth validity must be >= 1 minute, got {validity_min}")
        self.esam = esam
        self.validity_s = validity_min * 60
        self.until_s: float | None = None
        """Shared-clock second when the session expires; None: no session."""

    def expire(self, shared_s: float) -> None:
        """End the session if its period is over (called whenever the meter is touched)."""
        if self.until_s is not None and shared_s >= self.until_s:
            _log.debug("ESAM %s: identity authentication expired", self.esam.meter_number)
            self.invalidate()

    def valid(self, shared_s: float) -> bool:
        self.expire(shared_s)
        return self.until_s is not None and self.esam.has_session

    def remaining_minutes(self, shared_s: float) -> int:
        """Remaining validity in whole minutes, rounded up (DI 02800022)."""
        if not self.valid(shared_s):
            return 0
        assert self.until_s is not None
        return math.ceil((self.until_s - shared_s) / 60)

    def invalidate(self) -> None:
        self.until_s = None
        self.esam.invalidate_session()

    def authenticate(self, request: IdentityAuthRequest, shared_s: float) -> Message:
        """Answer an identity-authentication request."""
        self.until_s = None
        try:
            random2, serial = self.esam.identity_auth(
                request.cipher1, request.random1, request.factor
            )
        except SuspendedError as exc:
            _log.warning("identity authentication refused: %s", exc)
            return SecurityErrorReply(SecurityErrorWord.SUSPENDED)
        except AuthenticationFailed as exc:
            _log.warning("identity authentication failed: %s", exc)
            return SecurityErrorReply(SecurityErrorWord.AUTH_FAILED)
        except SecurityError as exc:
            _log.warning("identity authentication refused: %s", exc)
            return SecurityErrorReply(SecurityErrorWord.OTHER)
        self.until_s = shared_s + self.validity_s
        return IdentityAuthReply(random2, serial)

    def to_state(self) -> dict[str, Any]:
        return {
            "session": self.esam.session_state(),
            "until_s": self.until_s,
            "mac_errors": self.esam.mac_errors,
        }
