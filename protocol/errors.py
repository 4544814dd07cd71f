"""The exceptions of the protocol package.

Every error that ``protocol`` raises derives from :class:`ProtocolError`; nothing
else escapes the codec or the stream parser, whatever bytes they are given.
"""

from __future__ import annotations

__all__ = [
    "AbnormalReplyError",
    "ChecksumError",
    "DataError",
    "FrameError",
    "IncompleteFrameError",
    "ProtocolError",
    "ResponseTimeoutError",
    "SecurityError",
    "TransportError",
]


class ProtocolError(Exception):
    """Base class of every error raised by ``protocol``."""


class FrameError(ProtocolError):
    """Bytes that are not a valid DL/T 645-2007 frame (bad start, length, end or address)."""


class IncompleteFrameError(FrameError):
    """The bytes end before the frame does; more input is needed."""


class ChecksumError(FrameError):
    """A frame whose CS byte does not match the sum of its bytes."""

    def __init__(self, message: str, expected: int, received: int) -> None:
        super().__init__(message)
        self.expected = expected
        self.received = received


class DataError(ProtocolError):
    """A data field that cannot be encoded or decoded (bad BCD, wrong length, bad value)."""


class SecurityError(ProtocolError):
    """A security operation failed: wrong key, bad MAC, expired or malformed command."""


class TransportError(ProtocolError):
    """A transport could not be opened, or failed while in use."""


class ResponseTimeoutError(TransportError):
    """The meter did not answer within the response timeout."""


class AbnormalReplyError(ProtocolError):
    """The meter answered with an abnormal reply (D6 set): it refused the request.

    ``reply`` is the decoded reply message; ``str(error)`` names the error bits.
    """

    def __init__(self, message: str, reply: object) -> None:
        super().__init__(message)
        self.reply = reply
