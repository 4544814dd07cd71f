"""The exceptions of the CIS adapter (营销系统接口).

Everything :mod:`prepaid.cis` raises on purpose derives from :class:`CisError`; the
message names the payment, account or file and says what to do.
"""

from __future__ import annotations

__all__ = [
    "AmountError",
    "CisError",
    "CsvFormatError",
    "DuplicateMismatchError",
    "RefundRefusedError",
    "UnknownAccountError",
]


class CisError(Exception):
    """Base class of every error raised on purpose by :mod:`prepaid.cis`."""


class AmountError(CisError, ValueError):
    """An amount of money that is not a positive number of yuan with at most 2 decimals."""


class UnknownAccountError(CisError, LookupError):
    """An account number the platform (or the CIS) does not know."""


class DuplicateMismatchError(CisError):
    """A payment (or refund) id seen before, now with another account or amount.

    The first movement stands; nothing is credited. ``original`` is its result.
    """

    def __init__(self, message: str, original: object) -> None:
        super().__init__(message)
        self.original = original


class RefundRefusedError(CisError):
    """A refund larger than what the account holds; nothing was taken."""

    def __init__(self, message: str, *, available_fen: int) -> None:
        super().__init__(message)
        self.available_fen = available_fen


class CsvFormatError(CisError):
    """A payments CSV file that cannot be read at all (missing, undecodable, bad header).

    Bad *rows* are not exceptions: they are listed in the
    :class:`~prepaid.cis.PaymentImportReport` and the good rows still load.
    """
