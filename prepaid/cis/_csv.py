"""CSV import of payments (缴费记录导入), e.g. a day's payments exported by the CIS or a bank.

Columns (header required, any order; Chinese headers accepted as shown):

    ``payment_id``  (缴费流水号, 流水号)   the CIS serial number; credited once (required)
    ``account_no``  (户号, 账户号, 用户编号) the account paid into (required)
    ``amount``      (金额, 缴费金额)        yuan, > 0, at most 2 decimals, e.g. 100.00 (required)
    ``paid_at``     (缴费时间)             ``YYYY-MM-DD[ HH:MM[:SS]]`` (default: now)
    ``source``      (缴费渠道, 渠道)        where it was paid (counter, bank, app…)

Other columns are ignored (and listed in the report). UTF-8 (with or without BOM) or
GB 18030 text; blank lines and lines starting with ``#`` are skipped.

A bad row is reported with its line number (the header is line 1) and the reason, and
recorded as a rejection; every good row still loads. Importing the same file again
credits nothing twice: each payment id is credited once (the rows count as duplicates).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

from ._adapter import CisAdapter, PaymentOrder, Rejection
from ._errors import CisError, CsvFormatError
from ._model import Receipt, check_account_no, check_operation_id, format_fen, parse_yuan

__all__ = ["PAYMENT_COLUMNS", "PaymentImportReport", "RowError", "import_payments"]

log = logging.getLogger(__name__)

PAYMENT_COLUMNS: Final = ("payment_id", "account_no", "amount", "paid_at", "source")
_REQUIRED: Final = ("payment_id", "account_no", "amount")
_ALIASES: Final = {
    "缴费流水号": "payment_id",
    "流水号": "payment_id",
    "户号": "account_no",
    "账户号": "account_no",
    "用户编号": "account_no",
    "金额": "amount",
    "缴费金额": "amount",
    "缴费时间": "paid_at",
    "缴费渠道": "source",
    "渠道": "source",
}
_BATCH: Final = 500
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
"""Control characters: never part of a value (PostgreSQL refuses NUL in text)."""

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while rows are credited."""

KnownAccounts = Callable[[list[str]], set[str]]
"""Given account numbers, returns those the platform knows (the others are bad rows)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row: its line number in the file (the header is line 1) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class PaymentImportReport:
    """What an import did: rows read, payments credited now, duplicates, bad rows."""

    rows: int = 0
    credited: int = 0
    credited_fen: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    receipts: list[Receipt] = field(default_factory=list)

    @property
    def accounts(self) -> list[str]:
        """Accounts credited by this import (new payments only), in file order."""
        return list(dict.fromkeys(r.account_no for r in self.receipts if not r.duplicate))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "credited": self.credited,
            "credited_amount": format_fen(self.credited_fen),
            "duplicates": self.duplicates,
            "accounts": len(self.accounts),
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
            "ignored_columns": self.ignored_columns,
        }


def _read_text(source: Path | str | TextIO) -> tuple[TextIO, str]:
    if not isinstance(source, (Path, str)):
        return source, getattr(source, "name", "<stream>")
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CsvFormatError(
            f"cannot read payments file {str(path)!r}: {exc.strerror or exc}"
        ) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise CsvFormatError(
                f"{str(path)!r} is neither UTF-8 nor GB 18030 text; save it as UTF-8 CSV"
            ) from None
    return io.StringIO(text, newline=""), path.name


def _rows(stream: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each non-blank, non-comment row."""
    reader = csv.reader(stream)
    previous = 0
    try:
        for cells in reader:
            line = previous + 1
            previous = reader.line_num
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            yield line, cells
    except csv.Error as exc:
        raise CsvFormatError(f"line {reader.line_num}: not valid CSV: {exc}") from exc


def _header(cells: list[str], line: int) -> tuple[list[str | None], list[str]]:
    names: list[str | None] = []
    ignored: list[str] = []
    for cell in cells:
        raw = cell.strip().lstrip("\ufeff").strip()
        name = _ALIASES.get(raw, raw.lower())
        if name in PAYMENT_COLUMNS:
            if name in names:
                raise CsvFormatError(f"line {line}: column {name!r} is given twice")
            names.append(name)
        else:
            names.append(None)
            ignored.append(raw)
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise CsvFormatError(
            f"line {line}: the header needs the column(s) {', '.join(missing)}; "
            f"a payments file has {', '.join(PAYMENT_COLUMNS)} (paid_at and source optional)"
        )
    return names, ignored


def _paid_at(text: str) -> datetime | None:
    text = text.strip().replace("/", "-")
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise CisError(
            f"paid_at {text!r} is not a date and time; write YYYY-MM-DD HH:MM:SS"
        ) from None


def _escaped(text: str) -> str:
    """``text`` stripped, control characters written as ``\\xNN`` (a refused id is kept)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text.strip())


def _order(values: dict[str, str], name: str, line: int) -> PaymentOrder:
    missing = [c for c in _REQUIRED if not values.get(c, "").strip()]
    if missing:
        raise CisError(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} empty")
    payment_id = check_operation_id(values["payment_id"])
    account_no = check_account_no(values["account_no"])
    amount = parse_yuan(values["amount"], what="amount")
    source = values.get("source", "").strip() or "csv"
    if _CONTROL.search(source):
        raise CisError(f"source {source!r} contains a control character; remove it")
    return PaymentOrder(
        payment_id,
        account_no,
        amount,
        _paid_at(values.get("paid_at", "")),
        f"{source} ({name}:{line})"[:128],
    )


def import_payments(
    cis: CisAdapter,
    source: Path | str | TextIO,
    *,
    known_accounts: KnownAccounts | None = None,
    progress: Progress | None = None,
) -> PaymentImportReport:
    """Credit every good row of a payments CSV (see the module doc); report the rest.

    ``known_accounts`` refuses rows for accounts the platform does not have (without it
    any well-formed account number is credited). Raises :class:`CsvFormatError` only
    when the file cannot be read at all (nothing is credited then).
    """
    stream, name = _read_text(source)
    rows = _rows(stream)
    first = next(rows, None)
    if first is None:
        raise CsvFormatError(
            f"{name} is empty; a payments file starts with the header {','.join(PAYMENT_COLUMNS)}"
        )
    names, ignored = _header(first[1], first[0])
    report = PaymentImportReport(ignored_columns=ignored)
    pending: list[tuple[int, PaymentOrder]] = []
    rejected: list[Rejection] = []
    for line, cells in rows:
        report.rows += 1
        if len(cells) > len(names) and any(c.strip() for c in cells[len(names) :]):
            reason = f"{len(cells)} cells but the header has {len(names)} columns"
            report.errors.append(RowError(line, reason))
            rejected.append(Rejection("csv-row", reason, source=f"{name}:{line}"))
            continue
        values = {n: c for n, c in zip(names, cells, strict=False) if n is not None}
        try:
            pending.append((line, _order(values, name, line)))
        except CisError as exc:
            report.errors.append(RowError(line, str(exc)))
            rejected.append(
                Rejection(
                    "csv-row",
                    str(exc),
                    operation_id=_escaped(values.get("payment_id", ""))[:64] or None,
                    account_no=_escaped(values.get("account_no", ""))[:32] or None,
                    source=f"{name}:{line}",
                )
            )
    if known_accounts is not None and pending:
        known = known_accounts(list(dict.fromkeys(o.account_no for _, o in pending)))
        kept: list[tuple[int, PaymentOrder]] = []
        for line, order in pending:
            if order.account_no in known:
                kept.append((line, order))
                continue
            reason = f"account {order.account_no} is not a platform account; check the number"
            report.errors.append(RowError(line, reason))
            rejected.append(
                Rejection(
                    "csv-row",
                    reason,
                    operation_id=order.payment_id,
                    account_no=order.account_no,
                    amount_fen=order.amount_fen,
                    source=f"{name}:{line}",
                )
            )
        pending = kept
    if rejected:
        cis.record_rejections(rejected)
    total = len(pending)
    if progress is not None:
        progress(0, total)
    for start in range(0, total, _BATCH):
        batch = pending[start : start + _BATCH]
        results = cis.pay_many([order for _, order in batch])
        for (line, _), result in zip(batch, results, strict=True):
            if isinstance(result, CisError):
                report.errors.append(RowError(line, str(result)))
            elif result.duplicate:
                report.duplicates += 1
                report.receipts.append(result)
            else:
                report.credited += 1
                report.credited_fen += result.amount_fen
                report.receipts.append(result)
        if progress is not None:
            progress(min(start + _BATCH, total), total)
    report.errors.sort(key=lambda e: e.line)
    log.info(
        "imported %s: %d credited (%s yuan), %d duplicate(s), %d bad row(s)",
        name,
        report.credited,
        format_fen(report.credited_fen),
        report.duplicates,
        len(report.errors),
    )
    return report
