"""The CIS adapter (营销系统接口): balances, payments, refunds and settled charges.

The customer information system (CIS, an SG186-style marketing and billing system)
holds customers' money. The platform reaches it only through :class:`CisAdapter`;
:class:`LedgerCis` is the built-in implementation, a ledger in the platform's database
(a row per movement, so every balance is auditable). :func:`import_payments` loads a
payments CSV. Payment ids are credited once, whatever happens (retries, concurrent
twins, crashes); refunds never take more than there is.

Money is ``int`` fen throughout (:func:`parse_yuan` in, :func:`format_fen` out).
"""

from ._adapter import CisAdapter, PaymentOrder, Rejection
from ._csv import PAYMENT_COLUMNS, PaymentImportReport, RowError, import_payments
from ._errors import (
    AmountError,
    CisError,
    CsvFormatError,
    DuplicateMismatchError,
    RefundRefusedError,
    UnknownAccountError,
)
from ._ledger import AuditMismatch, LedgerCis, LedgerError
from ._model import (
    MAX_AMOUNT_FEN,
    Movement,
    MovementKind,
    Receipt,
    SettlementItem,
    SettlementReport,
    check_account_no,
    check_operation_id,
    format_fen,
    parse_yuan,
)
from .tables import metadata

__all__ = [
    "MAX_AMOUNT_FEN",
    "PAYMENT_COLUMNS",
    "AmountError",
    "AuditMismatch",
    "CisAdapter",
    "CisError",
    "CsvFormatError",
    "DuplicateMismatchError",
    "LedgerCis",
    "LedgerError",
    "Movement",
    "MovementKind",
    "PaymentImportReport",
    "PaymentOrder",
    "Receipt",
    "RefundRefusedError",
    "Rejection",
    "RowError",
    "SettlementItem",
    "SettlementReport",
    "UnknownAccountError",
    "check_account_no",
    "check_operation_id",
    "format_fen",
    "import_payments",
    "metadata",
    "parse_yuan",
]
