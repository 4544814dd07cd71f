"""Mainland China mobile numbers (手机号码): normalising, checking, and the invalid-number list.

A valid number is 11 digits starting ``13``–``19`` (``1[3-9]``). Before checking, the
input is normalised: full-width digits become ASCII (NFKC), separators (spaces, ``-``,
``.``, ``/``, brackets) are dropped, and a country prefix ``+86``, ``0086`` or ``86``
is removed (a bare ``86`` only in front of 11 digits). An invalid number is classified with one
:class:`PhoneProblem` (SPEC S4.4-3: too short, letters, empty, …) and a sentence a
customer-service clerk can act on.
"""

from __future__ import annotations

import csv
import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._errors import MessageError
from ._recipient import Recipient

__all__ = [
    "PhoneCheck",
    "PhoneProblem",
    "check_phone",
    "export_invalid_csv",
    "invalid_numbers",
    "normalise_phone",
]

_SEPARATORS = re.compile(r"[\s\-./()\[\]（）]")
_MOBILE = re.compile(r"1[3-9]\d{9}")


class PhoneProblem(enum.StrEnum):
    """Why a phone number cannot receive an SMS."""

    EMPTY = "empty"  # 号码为空
    LETTERS = "letters"  # 含字母
    BAD_CHARACTERS = "bad-characters"  # 含其他符号
    TOO_SHORT = "too-short"  # 位数不足
    TOO_LONG = "too-long"  # 位数过多
    BAD_PREFIX = "bad-prefix"  # 号段错误 (not 1[3-9]: a landline, a typo)


@dataclass(frozen=True, slots=True)
class PhoneCheck:
    """The result of checking one number: ``number`` when valid, else ``problem``."""

    raw: str
    number: str | None  # the 11 normalised digits
    problem: PhoneProblem | None
    detail: str

    @property
    def valid(self) -> bool:
        return self.problem is None


def check_phone(raw: str | None) -> PhoneCheck:
    """Normalise and check one number (never raises).

    >>> check_phone("+86 138-0013-8000").number
    '13800138000'
    >>> check_phone("1380013800").problem
    <PhoneProblem.TOO_SHORT: 'too-short'>
    """
    text = "" if raw is None else str(raw)
    compact = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    if not compact:
        return PhoneCheck(text, None, PhoneProblem.EMPTY, "no phone number")
    international = compact.startswith(("+", "00"))
    digits = compact[1:] if compact.startswith("+") else compact
    if any(ch.isalpha() for ch in digits):
        letters = "".join(sorted({ch for ch in digits if ch.isalpha()}))
        return PhoneCheck(
            text, None, PhoneProblem.LETTERS, f"contains letters ({letters}); use digits only"
        )
    if not digits.isascii() or not digits.isdigit():
        bad = "".join(sorted({ch for ch in digits if not (ch.isascii() and ch.isdigit())}))
        return PhoneCheck(
            text, None, PhoneProblem.BAD_CHARACTERS, f"contains {bad!r}; a mobile has digits only"
        )
    if international and digits.startswith(("86", "0086")):
        digits = digits.removeprefix("00").removeprefix("86")  # +86 / 0086: always the country
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]  # a bare 86 only in front of 11 digits
    if digits.startswith("0"):
        return PhoneCheck(
            text,
            None,
            PhoneProblem.BAD_PREFIX,
            "starts with 0 (a landline?); an SMS needs a mobile starting 13–19",
        )
    if len(digits) < 11:
        return PhoneCheck(
            text, None, PhoneProblem.TOO_SHORT, f"{len(digits)} digits; a mobile has 11"
        )
    if len(digits) > 11:
        detail = f"{len(digits)} digits; a mobile has 11"
        return PhoneCheck(text, None, PhoneProblem.TOO_LONG, detail)
    if not _MOBILE.fullmatch(digits):
        return PhoneCheck(
            text,
            None,
            PhoneProblem.BAD_PREFIX,
            f"starts {digits[:2]}; a mainland mobile starts 13–19",
        )
    return PhoneCheck(text, digits, None, "valid")


def normalise_phone(raw: str | None) -> str | None:
    """The 11 digits of a valid mobile number, ``None`` when it is not one."""
    return check_phone(raw).number


def invalid_numbers(recipients: Iterable[Recipient]) -> list[tuple[Recipient, PhoneCheck]]:
    """Every recipient whose phone cannot receive an SMS, with the reason (S4.4-3)."""
    out: list[tuple[Recipient, PhoneCheck]] = []
    for recipient in recipients:
        check = check_phone(recipient.phone)
        if not check.valid:
            out.append((recipient, check))
    return out


INVALID_CSV_HEADER = ("customer_no", "name", "phone", "problem", "detail", "address", "area")


def export_invalid_csv(rows: Iterable[tuple[Recipient, PhoneCheck]], path: Path) -> int:
    """Write the invalid-number list as CSV (UTF-8 with BOM, so Excel shows the Chinese).

    Returns the number of rows written.
    """
    count = 0
    try:
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(INVALID_CSV_HEADER)
            for recipient, check in rows:
                writer.writerow(
                    (
                        recipient.customer_no,
                        recipient.name,
                        check.raw,
                        check.problem.value if check.problem else "",
                        check.detail,
                        recipient.address,
                        recipient.area,
                    )
                )
                count += 1
    except OSError as exc:
        raise MessageError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return count
