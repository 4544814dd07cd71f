"""The codec benchmark behind ``feikong bench codec``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from .di import decode_value
from .frame import decode_frame, encode_frame
from .messages import ReadReply, decode_message, to_frame

__all__ = ["CodecBenchResult", "run_codec_bench"]


@dataclass(frozen=True, slots=True)
class CodecBenchResult:
    encode_per_s: float
    decode_per_s: float


def _replies(n: int) -> list[ReadReply]:
    """A mix of read replies, as a collection round sees them."""
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            out.append(ReadReply.for_value(0x00010000, Decimal(i) / 100))
        elif kind == 1:
            out.append(ReadReply.for_value(0x00900200, Decimal(i % 100000) / 100))
        elif kind == 2:
            out.append(ReadReply.for_value(0x02020100, Decimal(-(i % 1000)) / 1000))
        else:
            out.append(ReadReply.for_value(0x02010100, Decimal(2200 + i % 100) / 10))
    return out


def run_codec_bench(seconds: float = 3.0, batch: int = 1000) -> CodecBenchResult:
    addresses = [f"{i:012d}" for i in range(1, 101)]
    replies = _replies(batch)
    pairs = [(addresses[i % 100], r) for i, r in enumerate(replies)]

    count = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for address, reply in pairs:
            encode_frame(to_frame(address, reply))
        count += batch
    encode_rate = count / (time.perf_counter() - t0)

    wires = [encode_frame(to_frame(a, r)) for a, r in pairs]
    count = 0
    t0 = time.perf_counter()
    deadline = t0 + seconds
    while time.perf_counter() < deadline:
        for wire in wires:
            frame, _ = decode_frame(wire)
            message = decode_message(frame)
            assert isinstance(message, ReadReply)
            decode_value(message.di, message.raw)
        count += batch
    decode_rate = count / (time.perf_counter() - t0)
    return CodecBenchResult(encode_rate, decode_rate)
