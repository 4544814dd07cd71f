"""The exceptions of the breaker_sim package.

Every error that ``breaker_sim`` raises derives from :class:`BreakerError`. The
messages name the breaker (``host:port`` or serial port, and the Modbus unit) and
say what to check.
"""

from __future__ import annotations

__all__ = [
    "BreakerConfigError",
    "BreakerConnectionError",
    "BreakerError",
    "BreakerRefusedError",
    "BreakerServerError",
]


class BreakerError(Exception):
    """Base class of every error raised by ``breaker_sim``."""


class BreakerConfigError(BreakerError, ValueError):
    """A bad option: an unknown fault mode, a bad address, no or two transports."""


class BreakerConnectionError(BreakerError):
    """The breaker could not be reached, or did not answer in time."""


class BreakerRefusedError(BreakerError):
    """The breaker answered with a Modbus exception (it refused the request).

    ``exception_code`` is the Modbus exception code (2 illegal address, 3 illegal value, …).
    """

    def __init__(self, message: str, exception_code: int) -> None:
        super().__init__(message)
        self.exception_code = exception_code


class BreakerServerError(BreakerError):
    """The Modbus server could not start (port in use, serial port missing, …)."""
