"""How many SMS segments (短信条数) a text costs.

A text made only of GSM 03.38 characters is sent in the 7-bit alphabet: 160 characters
in one SMS, 153 per segment of a long (concatenated) SMS, the extension characters
``^{}\\[~]|€`` counting twice. Anything else — every Chinese text — is sent as UCS-2:
**70 characters in one SMS, 67 per segment** of a long SMS (the operators bill per
segment), characters outside the BMP (emoji) counting twice.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["SmsEncoding", "SmsLength", "sms_length"]

_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


class SmsEncoding(enum.StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class SmsLength:
    """The size of a text as an SMS: its encoding, length in units, and segments."""

    encoding: SmsEncoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    single_limit: int  # 160 or 70
    segment_limit: int  # 153 or 67

    @property
    def fits_one(self) -> bool:
        return self.segments == 1

    def describe(self) -> str:
        """``"75 chars, UCS-2, 2 segments (70 per SMS, 67 per segment)"``."""
        plural = "s" if self.segments != 1 else ""
        return (
            f"{self.units} chars, {self.encoding.value}, {self.segments} segment{plural} "
            f"({self.single_limit} per SMS, {self.segment_limit} per segment when longer)"
        )


def _split(sizes: list[int], limit: int) -> int:
    """Segments needed when no character (an escape pair, a surrogate pair) is split."""
    segments, used = 1, 0
    for size in sizes:
        if used + size > limit:
            segments, used = segments + 1, 0
        used += size
    return segments


def sms_length(text: str) -> SmsLength:
    """The encoding, size and number of segments of ``text`` as one SMS message."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in text):
        sizes = [2 if ch in _GSM_EXTENSION else 1 for ch in text]
        encoding, single, part = SmsEncoding.GSM7, 160, 153
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        encoding, single, part = SmsEncoding.UCS2, 70, 67
    units = sum(sizes)
    segments = 1 if units <= single else _split(sizes, part)
    return SmsLength(encoding, units, segments, single, part)
