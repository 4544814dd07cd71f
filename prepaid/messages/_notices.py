"""Paper notices (纸质通知单): a batch rendered as printable files.

A batch (e.g. the dunning notices of one transformer area, 台区) becomes one HTML file —
one notice per printed page (CSS ``@page`` A5 or A4, a page break after each notice) —
and a plain-text file for line printers, the notices separated by form feeds (``\\f``).
Each notice shows the batch number and its place in the batch, the customer number,
name, address and area, the message text, and the amounts and times as written in
the SMS (balance, amount due, planned disconnection time, …).
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ._errors import NoticeError, TemplateError
from ._format import Lang, format_date
from ._outbox import Message
from ._recipient import Recipient
from ._templates import RenderedMessage, TemplateSet, default_templates

__all__ = [
    "Notice",
    "NoticeBatch",
    "NoticeFiles",
    "PageSize",
    "notices_of",
    "render_html",
    "render_text",
    "write_batch",
]

#: placeholders already shown in the notice's header or body, not repeated in its table
_SHOWN = frozenset({"name", "customer_no", "address", "text", "summary"})
_BATCH_NO = re.compile(r"[\w.\-]{1,64}")

_WORDS = {
    Lang.ZH: {
        "batch": "批次号",
        "copy": "第 {i} / {n} 份",
        "customer_no": "户号",
        "name": "客户名称",
        "address": "用电地址",
        "area": "台区",
        "date": "日期",
        "issuer": "签发单位",
    },
    Lang.EN: {
        "batch": "Batch",
        "copy": "notice {i} of {n}",
        "customer_no": "Account no.",
        "name": "Customer",
        "address": "Address",
        "area": "Transformer area",
        "date": "Date",
        "issuer": "Issued by",
    },
}


class PageSize(enum.StrEnum):
    A5 = "A5"
    A4 = "A4"


@dataclass(frozen=True, slots=True)
class Notice:
    """One printed notice: who it is for, its text, and its amounts and times."""

    customer_no: str
    name: str
    address: str
    area: str
    lang: Lang
    title: str
    body: str
    details: tuple[tuple[str, str], ...]  # (label, value as written in the message)
    message_id: int | None = None

    @staticmethod
    def _details(
        fields: Mapping[str, str], labels: Mapping[str, str]
    ) -> tuple[tuple[str, str], ...]:
        return tuple((labels.get(k, k), v) for k, v in fields.items() if k not in _SHOWN)

    @classmethod
    def from_rendered(cls, recipient: Recipient, rendered: RenderedMessage) -> Notice:
        return cls(
            recipient.customer_no,
            recipient.name,
            recipient.address,
            recipient.area,
            rendered.lang,
            rendered.title,
            rendered.body,
            cls._details(rendered.fields, rendered.labels),
        )

    @classmethod
    def from_message(cls, message: Message, templates: TemplateSet | None = None) -> Notice:
        """The notice of a stored message (e.g. from :meth:`Outbox.manual_list`)."""
        labels: Mapping[str, str] = {}
        try:
            labels = (templates or default_templates()).get(message.kind, message.lang).labels
        except TemplateError:  # a kind of another template set: show the placeholder names
            labels = {}
        return cls(
            message.customer_no,
            message.name,
            message.address,
            message.area,
            message.lang,
            message.title,
            message.body,
            cls._details(message.fields, labels),
            message.id,
        )


@dataclass(frozen=True, slots=True)
class NoticeBatch:
    """Notices printed together under one batch number (批次号)."""

    batch_no: str
    issued_at: datetime
    notices: tuple[Notice, ...]
    issuer: str = ""

    @classmethod
    def of(
        cls, batch_no: str, issued_at: datetime, notices: Iterable[Notice], issuer: str = ""
    ) -> NoticeBatch:
        items = tuple(notices)
        if not _BATCH_NO.fullmatch(batch_no):
            raise NoticeError(
                f"batch number {batch_no!r} must be 1–64 letters, digits, '.', '-' or '_' "
                "(it names the files), e.g. A0012-dunning-20260305"
            )
        if not items:
            raise NoticeError(f"batch {batch_no} has no notices to print")
        return cls(batch_no, issued_at, items, issuer)


@dataclass(frozen=True, slots=True)
class NoticeFiles:
    html: Path
    text: Path
    count: int


_CSS = """\
@page {{ size: {page} portrait; margin: 12mm; }}
body {{ font-family: "Noto Serif CJK SC", "Source Han Serif SC", SimSun, serif;
        font-size: {font}; color: #000; margin: 0; }}
.notice {{ break-after: page; page-break-after: always; padding: 0; }}
.notice:last-child {{ break-after: auto; page-break-after: auto; }}
.notice header {{ display: flex; justify-content: space-between; font-size: 0.85em; }}
.notice h1 {{ text-align: center; font-size: 1.6em; margin: 0.6em 0; letter-spacing: 0.2em; }}
.notice table {{ border-collapse: collapse; width: 100%; margin: 0.5em 0; }}
.notice th, .notice td {{ border: 1px solid #000; padding: 0.25em 0.5em; text-align: left; }}
.notice th {{ width: 35%; font-weight: normal; background: #f0f0f0; }}
.notice .body {{ line-height: 1.8; text-indent: 2em; margin: 1em 0; }}
.notice footer {{ text-align: right; margin-top: 2em; }}
@media screen {{ .notice {{ border-bottom: 2px dashed #999; padding: 1em; }} }}
"""


def _words(lang: Lang) -> Mapping[str, str]:
    return _WORDS[lang]


def render_html(batch: NoticeBatch, page: PageSize = PageSize.A5) -> str:
    """The batch as one HTML document: a notice per page, ready to print."""
    e = html.escape
    lang = batch.notices[0].lang
    font = "10.5pt" if page is PageSize.A5 else "12pt"
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="{"zh-CN" if lang is Lang.ZH else "en"}">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{e(batch.batch_no)}</title>",
        f"<style>\n{_CSS.format(page=page.value, font=font)}</style>",
        "</head>",
        "<body>",
    ]
    total = len(batch.notices)
    for i, notice in enumerate(batch.notices, start=1):
        w = _words(notice.lang)
        who = [
            (w["customer_no"], notice.customer_no),
            (w["name"], notice.name),
            (w["address"], notice.address),
            (w["area"], notice.area),
        ]
        rows = "".join(
            f"<tr><th>{e(label)}</th><td>{e(value)}</td></tr>"
            for label, value in [*who, *notice.details]
        )
        issued = format_date(batch.issued_at, notice.lang)
        colon = "：" if notice.lang is Lang.ZH else ": "
        footer = f"{e(w['issuer'])}{colon}{e(batch.issuer)}<br>" if batch.issuer else ""
        parts += [
            f'<section class="notice" data-customer="{e(notice.customer_no)}">',
            f"<header><span>{e(w['batch'])}{colon}{e(batch.batch_no)}</span>"
            f"<span>{e(w['copy'].format(i=i, n=total))}</span></header>",
            f"<h1>{e(notice.title)}</h1>",
            f'<p class="body">{e(notice.body)}</p>',
            f"<table>{rows}</table>",
            f"<footer>{footer}{e(w['date'])}{colon}{e(issued)}</footer>",
            "</section>",
        ]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _wrap(text: str, width: int) -> list[str]:
    """Lines of at most ``width`` display columns (a CJK character takes two)."""
    lines: list[str] = []
    current, used = "", 0
    for ch in text:
        size = 2 if ord(ch) > 0x2E7F else 1
        if used + size > width:
            lines.append(current.rstrip())
            current, used = "", 0
        if not current and ch == " ":
            continue  # no leading space on a continuation line
        current += ch
        used += size
    if current:
        lines.append(current)
    return lines


def render_text(batch: NoticeBatch, width: int = 64) -> str:
    """The batch as plain text: a notice per page, separated by form feeds (``\\f``)."""
    pages: list[str] = []
    total = len(batch.notices)
    for i, notice in enumerate(batch.notices, start=1):
        w = _words(notice.lang)
        lines = [
            f"{w['batch']}: {batch.batch_no}    {w['copy'].format(i=i, n=total)}",
            "",
            notice.title,
            "=" * width,
            f"{w['customer_no']}: {notice.customer_no}",
            f"{w['name']}: {notice.name}",
            f"{w['address']}: {notice.address}",
            f"{w['area']}: {notice.area}",
            "-" * width,
            *_wrap(notice.body, width),
            "-" * width,
            *(f"{label}: {value}" for label, value in notice.details),
            "",
        ]
        if batch.issuer:
            lines.append(f"{w['issuer']}: {batch.issuer}")
        lines.append(f"{w['date']}: {format_date(batch.issued_at, notice.lang)}")
        pages.append("\n".join(lines) + "\n")
    return "\f".join(pages)


def write_batch(
    batch: NoticeBatch, directory: Path, *, page: PageSize = PageSize.A5
) -> NoticeFiles:
    """Write ``<batch_no>.html`` and ``<batch_no>.txt`` into ``directory``."""
    html_path = directory / f"{batch.batch_no}.html"
    text_path = directory / f"{batch.batch_no}.txt"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_html(batch, page), encoding="utf-8")
        text_path.write_text(render_text(batch), encoding="utf-8")
    except OSError as exc:
        raise NoticeError(
            f"cannot write the notices of batch {batch.batch_no} to {directory}: {exc}"
        ) from exc
    return NoticeFiles(html_path, text_path, len(batch.notices))


def notices_of(messages: Sequence[Message], templates: TemplateSet | None = None) -> list[Notice]:
    """Notices for stored messages, in order."""
    return [Notice.from_message(m, templates) for m in messages]
