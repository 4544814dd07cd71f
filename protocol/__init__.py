"""feikong.protocol — a sans-IO DL/T 645-2007 stack.

Bytes in, frames out: :func:`decode_frame` / :func:`encode_frame` for one frame,
:class:`StreamParser` for a byte stream, :func:`decode_message` / :func:`to_frame`
for the typed messages of every function code, and the data-identifier registry
(:func:`decode_value`, :func:`encode_value`). Transports (asyncio) live in
:mod:`protocol.transport`, security primitives in :mod:`protocol.security`.
"""

from .address import BROADCAST, WILDCARD, Address
from .clock import AcceleratedClock, Clock, RealClock, SteppedClock
from .codes import (
    ControlCommand,
    ControlErrorWord,
    ErrorWord,
    ExecInfoWord,
    FunctionCode,
    PasswordLevel,
    SecurityErrorWord,
    StatusWord1,
    StatusWord3,
    names,
)
from .di import DataItem, DataValue, decode_value, encode_value, format_di, lookup, parse_di
from .errors import (
    AbnormalReplyError,
    ChecksumError,
    DataError,
    FrameError,
    IncompleteFrameError,
    ProtocolError,
    ResponseTimeoutError,
    SecurityError,
    TransportError,
)
from .frame import Frame, decode_frame, encode_frame
from .messages import (
    AckReply,
    ControlErrorReply,
    ControlReply,
    ControlRequest,
    ErrorReply,
    IdentityAuthReply,
    IdentityAuthRequest,
    Message,
    ReadReply,
    ReadRequest,
    SecureControlRequest,
    SecurityErrorReply,
    decode_message,
    to_frame,
)
from .parser import StreamParser

__all__ = [
    "BROADCAST",
    "WILDCARD",
    "AbnormalReplyError",
    "AcceleratedClock",
    "AckReply",
    "Address",
    "ChecksumError",
    "Clock",
    "ControlCommand",
    "ControlErrorReply",
    "ControlErrorWord",
    "ControlReply",
    "ControlRequest",
    "DataError",
    "DataItem",
    "DataValue",
    "ErrorReply",
    "ErrorWord",
    "ExecInfoWord",
    "Frame",
    "FrameError",
    "FunctionCode",
    "IdentityAuthReply",
    "IdentityAuthRequest",
    "IncompleteFrameError",
    "Message",
    "PasswordLevel",
    "ProtocolError",
    "ReadReply",
    "ReadRequest",
    "RealClock",
    "ResponseTimeoutError",
    "SecureControlRequest",
    "SecurityError",
    "SecurityErrorReply",
    "SecurityErrorWord",
    "StatusWord1",
    "StatusWord3",
    "SteppedClock",
    "StreamParser",
    "TransportError",
    "decode_frame",
    "decode_message",
    "decode_value",
    "encode_frame",
    "encode_value",
    "format_di",
    "lookup",
    "names",
    "parse_di",
    "to_frame",
]
