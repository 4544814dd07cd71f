"""Who a message goes to: plain values, so any caller (the workflows, a CSV) can fill them."""

from __future__ import annotations

import csv
import enum
from dataclasses import dataclass
from pathlib import Path

from ._errors import MessageError

__all__ = ["Channel", "CsvRowProblem", "Recipient", "read_recipients_csv"]


class Channel(enum.StrEnum):
    """How a customer is notified (通知方式): by SMS or by a paper notice (纸质通知)."""

    SMS = "sms"
    PAPER = "paper"


@dataclass(frozen=True, slots=True)
class Recipient:
    """A customer (or a field handler) to notify.

    ``area`` is the transformer area (台区) a paper notice batch is printed for;
    ``channel`` is the customer's notification mode; an SMS to an invalid number
    falls back to paper.
    """

    customer_no: str
    name: str
    phone: str | None = None
    address: str = ""
    area: str = ""
    channel: Channel = Channel.SMS


@dataclass(frozen=True, slots=True)
class CsvRowProblem:
    line: int
    detail: str


# header → field; English names or the Chinese column titles of a CIS export
_COLUMNS = {
    "customer_no": "customer_no",
    "户号": "customer_no",
    "name": "name",
    "户名": "name",
    "客户名称": "name",
    "phone": "phone",
    "mobile": "phone",
    "手机": "phone",
    "手机号码": "phone",
    "address": "address",
    "地址": "address",
    "用电地址": "address",
    "area": "area",
    "台区": "area",
    "channel": "channel",
    "通知方式": "channel",
}


def read_recipients_csv(path: Path) -> tuple[list[Recipient], list[CsvRowProblem]]:
    """Recipients from a CSV file with a header row (``customer_no,name,phone,address,area``).

    Chinese headers (户号, 户名, 手机号码, 用电地址, 台区) work too. Bad rows are
    returned as problems and skipped; the good rows are kept. Raises
    :class:`MessageError` when the file cannot be read or has no usable header.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise MessageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise MessageError(f"{path} is not UTF-8 text; save the CSV as UTF-8") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        raise MessageError(f"{path} is empty; it needs a header row customer_no,name,phone,…")
    fields = [_COLUMNS.get(h.strip().lower(), _COLUMNS.get(h.strip(), "")) for h in header]
    if "customer_no" not in fields or "phone" not in fields:
        raise MessageError(
            f"{path}: the header {','.join(header)!r} needs customer_no and phone columns "
            "(also accepted: name, address, area, channel; or 户号, 手机号码, …)"
        )
    recipients: list[Recipient] = []
    problems: list[CsvRowProblem] = []
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        values = {f: cell.strip() for f, cell in zip(fields, row, strict=False) if f}
        if not values.get("customer_no"):
            problems.append(CsvRowProblem(line, "no customer number"))
            continue
        channel_text = values.get("channel", "").lower() or "sms"
        try:
            channel = Channel(channel_text)
        except ValueError:
            problems.append(CsvRowProblem(line, f"channel {channel_text!r} is not sms or paper"))
            continue
        recipients.append(
            Recipient(
                customer_no=values["customer_no"],
                name=values.get("name", ""),
                phone=values.get("phone", ""),
                address=values.get("address", ""),
                area=values.get("area", ""),
                channel=channel,
            )
        )
    return recipients, problems
