"""Explain a frame field by field, for people (``feikong frame``) and machines (JSON)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from enum import IntFlag
from typing import Any

from .codes import FunctionCode, names
from .datatypes import LadderTable
from .di import decode_value, format_di, lookup
from .errors import DataError, FrameError, ProtocolError
from .frame import HEADER_SIZE, Frame, decode_frame, scramble
from .messages import (
    ControlErrorReply,
    ControlReply,
    ErrorReply,
    Message,
    ReadFollowUpReply,
    ReadReply,
    ReadRequest,
    SecurityErrorReply,
    WriteRequest,
    decode_message,
)

__all__ = ["Explanation", "Field", "explain", "parse_hex", "to_jsonable"]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a frame: its name, its bytes as sent, and what they mean."""

    name: str
    raw: str
    meaning: str


@dataclass(slots=True)
class Explanation:
    """A decoded frame: fields, the message, and the typed value if there is one."""

    frame: Frame
    message: Message | None
    fields: list[Field] = field(default_factory=list)
    summary: str = ""
    value: dict[str, Any] | None = None
    error_bits: list[str] | None = None
    problem: str | None = None
    """Why the data field could not be decoded (the frame itself is valid)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.frame.address),
            "control": self.frame.control,
            "function": self.frame.function,
            "data": self.frame.data.hex().upper(),
            "summary": self.summary,
            "fields": [{"name": f.name, "raw": f.raw, "meaning": f.meaning} for f in self.fields],
            "value": self.value,
            "error_bits": self.error_bits,
            "problem": self.problem,
        }


def parse_hex(text: str) -> bytes:
    """Bytes from hex as people paste it: spaces, ``0x`` prefixes, commas allowed."""
    cleaned = text.replace(",", " ").replace("0x", " ").replace("0X", " ")
    compact = "".join(cleaned.split())
    if not compact:
        raise FrameError("no bytes given: pass the frame as hex, e.g. 68 12 10 78 ... 16")
    if len(compact) % 2:
        raise FrameError(f"odd number of hex digits ({len(compact)}): a byte has two")
    try:
        return bytes.fromhex(compact)
    except ValueError:
        bad = next(c for c in compact if c not in "0123456789abcdefABCDEF")
        raise FrameError(f"{bad!r} is not a hex digit: pass the frame as hex bytes") from None


def to_jsonable(value: Any) -> Any:
    """A typed value as JSON-ready data (Decimal as text, to keep every digit)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, IntFlag):
        return {"value": int(value), "bits": names(value)}
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, LadderTable):
        return {
            "thresholds": to_jsonable(value.thresholds),
            "prices": to_jsonable(value.prices),
            "settlement_dates": list(value.settlement_dates),
        }
    return value


def _di_field(di: int) -> Field:
    return Field("DI", scramble(di.to_bytes(4, "little")).hex(" ").upper(), _di_meaning(di))


def _di_meaning(di: int) -> str:
    item = lookup(di)
    return (
        f"DI {format_di(di)}: {item.name} ({item.name_zh})"
        if item
        else f"DI {format_di(di)}: not in the registry"
    )


def explain(wire: bytes) -> list[Explanation]:
    """Every frame in ``wire``; :class:`ProtocolError` if something is not a frame."""
    out: list[Explanation] = []
    pos = 0
    while pos < len(wire):
        rest = wire[pos:]
        if not rest.strip(b"\xfe"):
            break
        frame, used = decode_frame(rest)
        out.append(_explain_one(frame, rest[:used]))
        pos += used
    if not out:
        raise FrameError("only wake-up bytes (FE): no frame")
    return out


def _explain_one(frame: Frame, wire: bytes) -> Explanation:
    pre = len(wire) - len(wire.lstrip(b"\xfe"))
    body = wire[pre:]
    length = body[9]
    fields: list[Field] = []
    if pre:
        fields.append(Field("preamble", wire[:pre].hex(" ").upper(), f"{pre} wake-up bytes"))
    addr = frame.address
    kind = (
        "broadcast"
        if addr.is_broadcast
        else "wildcard"
        if addr.is_wildcard
        else "abbreviated (AA = any)"
        if addr.is_abbreviated
        else "meter"
    )
    fields += [
        Field("start", "68", "frame start"),
        Field("address", body[1:7].hex(" ").upper(), f"{addr} ({kind}; low byte first)"),
        Field("start", "68", "second frame start"),
        Field("control", f"{frame.control:02X}", _control_meaning(frame)),
        Field("length", f"{length:02X}", f"{length} data bytes"),
    ]
    if length:
        fields.append(
            Field(
                "data",
                body[HEADER_SIZE : HEADER_SIZE + length].hex(" ").upper(),
                f"−33H → {frame.data.hex(' ').upper()}",
            )
        )
    fields += [
        Field("checksum", f"{body[HEADER_SIZE + length]:02X}", "sum of 68..data mod 256: OK"),
        Field("end", "16", "frame end"),
    ]
    exp = Explanation(frame, None, fields)
    try:
        message = decode_message(frame)
    except DataError as exc:
        exp.problem = str(exc)
        exp.summary = f"{frame.describe_control()}: data field not understood: {exc}"
        return exp
    exp.message = message
    exp.summary = message.describe()
    _explain_message(exp, message)
    return exp


def _control_meaning(frame: Frame) -> str:
    try:
        fname = f"{FunctionCode(frame.function).name} ({frame.function:02X}H)"
    except ValueError:
        fname = f"unknown function {frame.function:02X}H"
    bits = [
        "D7=1 reply" if frame.is_reply else "D7=0 request",
        ("D6=1 abnormal" if frame.control & 0x40 else "D6=0 normal"),
        ("D5=1 follow-up" if frame.has_follow_up else "D5=0 no follow-up"),
        fname,
    ]
    return ", ".join(bits)


def _explain_message(exp: Explanation, message: Message) -> None:
    if isinstance(message, ReadRequest | WriteRequest):
        exp.fields.append(_di_field(message.di))
    if isinstance(message, ReadReply | ReadFollowUpReply):
        exp.fields.append(_di_field(message.di))
        if isinstance(message, ReadReply) and not message.follow_up:
            try:
                value = decode_value(message.di, message.raw)
            except ProtocolError as exc:
                exp.problem = str(exc)
                return
            item = value.item
            exp.value = {
                "di": format_di(message.di),
                "name": item.name if item else None,
                "name_zh": item.name_zh if item else None,
                "value": to_jsonable(value.value),
                "unit": value.unit,
                "text": value.text(),
            }
            exp.summary = f"{format_di(message.di)} " + (
                f"{item.name} = {value.text()}" if item else f"(unknown DI) = {value.text()}"
            )
    if isinstance(message, ErrorReply | SecurityErrorReply | ControlErrorReply):
        exp.error_bits = names(message.error)
    if isinstance(message, ControlReply) and message.info is not None:
        exp.error_bits = None
        exp.value = {"exec_info": to_jsonable(message.info)}
