"""``feikong messages …``: templates, the SMS outbox, paper notices and phone checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .output import console, err_console, fail, print_json

if TYPE_CHECKING:  # the database stack is imported only by the commands that use it
    from prepaid.messages import Message, Outbox, TemplateSet

messages_app = typer.Typer(
    help="Messages (消息): SMS templates, the outbox, paper notices, phone checks.",
    no_args_is_help=True,
)

_DB_HELP = (
    "Database URL: sqlite:///FILE or postgresql+psycopg://user:pass@host/db "
    "(default: $FEIKONG_DATA/feikong.db, ./data/feikong.db)."
)


def _db_option() -> Any:
    return typer.Option(None, "--db", envvar="FEIKONG_DB", help=_DB_HELP)


_TEMPLATES = typer.Option(
    None,
    "--templates",
    help="Template directory (kinds.toml, zh.toml, en.toml); "
    "default: the shipped prepaid/templates.",
)


def _json_option() -> Any:
    return typer.Option(False, "--json", help="Machine-readable output.")


def _template_set(directory: Path | None) -> TemplateSet:
    from prepaid.messages import TemplateError, TemplateSet, default_templates

    try:
        return default_templates() if directory is None else TemplateSet.load(directory)
    except TemplateError as exc:
        fail(str(exc), 2)


def _outbox(db: str | None, templates: Path | None = None) -> Outbox:
    from prepaid.db import PrepaidDatabaseError, migrate, open_database
    from prepaid.messages import Outbox

    try:
        engine = open_database(db)
        migrate(engine)
    except PrepaidDatabaseError as exc:
        fail(str(exc), 2)
    return Outbox(engine, templates=_template_set(templates))


def _pairs(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            fail(f"--set wants KEY=VALUE (e.g. balance=-12.30), got {item!r}", 2)
        if key in out:
            fail(f"--set gives {key!r} twice", 2)
        out[key] = value
    return out


# -- templates ------------------------------------------------------------------------


def templates_command(
    templates: Path | None = _TEMPLATES,
    as_json: bool = _json_option(),
) -> None:
    """List the message kinds, their titles and placeholders (with the value types)."""
    tset = _template_set(templates)
    kinds = [(kind, tset.get(kind)) for kind in tset.kinds()]
    if as_json:
        print_json(
            [
                {
                    "kind": kind,
                    "title": zh.title,
                    "placeholders": {name: t.value for name, t in zh.params.items()},
                }
                for kind, zh in kinds
            ]
        )
        return
    languages = ", ".join(lang.value for lang in tset.languages())
    table = Table(title=f"message templates ({tset.source}; languages: {languages})")
    table.add_column("kind")
    table.add_column("title (zh)")
    table.add_column("placeholders")
    for kind, zh in kinds:
        params = ", ".join(f"{n}:{t.value}" for n, t in zh.params.items())
        table.add_row(kind, zh.title, params)
    console.print(table)


def render_command(
    kind: str = typer.Argument(..., help="Message kind, e.g. dunning (see `messages templates`)."),
    lang: str = typer.Option("zh", "--lang", help="zh (default) or en."),
    values: list[str] | None = typer.Option(
        None, "--set", help="A placeholder: KEY=VALUE; money in yuan, times 2026-03-05T09:00."
    ),
    signature: str | None = typer.Option(None, "--signature", help="Replace the signature."),
    templates: Path | None = _TEMPLATES,
    as_json: bool = _json_option(),
) -> None:
    """Preview a message: its title, text and SMS length (segments)."""
    from prepaid.messages import TemplateError

    tset = _template_set(templates)
    try:
        params = tset.parse_params(kind, _pairs(values))
        rendered = tset.render(kind, params, lang, signature=signature)
    except TemplateError as exc:
        fail(str(exc), 2)
    length = rendered.length
    if as_json:
        print_json(
            {
                "kind": rendered.kind,
                "lang": rendered.lang.value,
                "title": rendered.title,
                "text": rendered.text,
                "fields": dict(rendered.fields),
                "chars": length.units,
                "encoding": length.encoding.value,
                "segments": length.segments,
            }
        )
        return
    console.print(f"[bold]{rendered.title}[/]", highlight=False)
    console.print(rendered.text, highlight=False, markup=False, soft_wrap=True)
    console.print(f"[dim]{length.describe()}[/]", highlight=False)


# -- the outbox -----------------------------------------------------------------------


def outbox_command(
    status: list[str] | None = typer.Option(
        None,
        "--status",
        help="Only these statuses (queued, sent, delivered, failed, "
        "invalid-number, paper, printed); repeatable.",
    ),
    kind: str | None = typer.Option(None, "--kind", help="Only this message kind."),
    area: str | None = typer.Option(None, "--area", help="Only this transformer area (台区)."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many messages."),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """The stored messages, oldest first, with their delivery status and a count per status."""
    from prepaid.messages import MessageStatus, OutboxError

    wanted: list[MessageStatus] | None = None
    if status:
        try:
            wanted = [MessageStatus(s.strip()) for s in status]
        except ValueError:
            allowed = ", ".join(s.value for s in MessageStatus)
            fail(f"--status wants one of {allowed}; got {', '.join(status)}", 2)
    outbox = _outbox(db)
    try:
        messages = outbox.messages(status=wanted, kind=kind, area=area, limit=limit)
        counts = outbox.counts()
    except OutboxError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json({"counts": counts, "messages": [m.to_dict() for m in messages]})
        return
    _print_messages(messages)
    summary = ", ".join(f"{s} {n}" for s, n in sorted(counts.items())) or "empty"
    console.print(f"outbox: {summary}", highlight=False)


_STATUS_STYLE = {
    "delivered": "green",
    "sent": "cyan",
    "queued": "yellow",
    "failed": "red",
    "invalid-number": "magenta",
    "paper": "blue",
}


def _print_messages(messages: list[Message]) -> None:
    wide = console.width >= 110  # on a narrow terminal: no phone and text columns
    table = Table()
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("customer", no_wrap=True, overflow="ellipsis", max_width=20)
    if wide:
        table.add_column("phone", no_wrap=True, min_width=11)
    table.add_column("kind", no_wrap=True)
    table.add_column("status", no_wrap=True, min_width=14 if wide else 9)
    table.add_column("tries", justify="right", no_wrap=True)
    # rich shrinks the other columns first when one is long: cap the text to what is left
    text_width = max(20, console.width - 90) if wide else max(12, console.width - 68)
    table.add_column(
        "text / error" if wide else "error", overflow="ellipsis", no_wrap=True, max_width=text_width
    )
    for m in messages:
        style = _STATUS_STYLE.get(m.status.value, "")
        row = [str(m.id), f"{m.created_at:%m-%d %H:%M}", f"{m.customer_no} {m.name}"]
        if wide:
            row.append(m.phone or (m.phone_raw or ""))
        row += [
            m.kind,
            f"[{style}]{m.status.value}[/]" if style else m.status.value,
            str(m.attempts),
            m.error or (m.body if wide else ""),
        ]
        table.add_row(*row)
    console.print(table)


def send_queued_command(
    sink: str | None = typer.Option(
        None,
        "--sink",
        help="file:PATH (append JSON lines) or console; default file:$FEIKONG_DATA/sms.jsonl.",
    ),
    http: str | None = typer.Option(None, "--http", help="POST each SMS as JSON to this URL."),
    timeout: float = typer.Option(5.0, "--timeout", help="HTTP timeout per try, seconds."),
    retries: int = typer.Option(2, "--retries", min=0, help="HTTP retries after a 5xx/timeout."),
    retry_failed: bool = typer.Option(
        False, "--retry-failed", help="Also re-send failed messages (up to 3 attempts)."
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many."),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Send the queued messages through a gateway and record each one's status.

    Exit status 1 when any message failed.
    """
    import sys

    from prepaid.messages import GatewayError, open_gateway

    if sink and http:
        fail("choose one gateway: --sink file:PATH or --http URL", 2)
    spec = http or sink or f"file:{Path(os.environ.get('FEIKONG_DATA') or 'data') / 'sms.jsonl'}"
    if http and not http.startswith(("http://", "https://")):
        fail(f"--http wants an http:// or https:// URL, got {http!r}", 2)
    outbox = _outbox(db)
    try:
        gateway = open_gateway(
            spec, clock=outbox.clock, console=sys.stdout, timeout_s=timeout, retries=retries
        )
    except GatewayError as exc:
        fail(str(exc), 2)
    if console.is_terminal and not as_json and spec != "console":
        columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("send", total=None)

            def update(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = outbox.dispatch(
                gateway, limit=limit, retry_failed=retry_failed, progress=update
            )
    else:
        report = outbox.dispatch(gateway, limit=limit, retry_failed=retry_failed)
    if as_json:
        print_json({**report.to_dict(), "via": spec})
    else:
        counts = ", ".join(f"{s} {n}" for s, n in sorted(report.counts.items())) or "nothing queued"
        console.print(f"sent {report.total} message(s) via {spec}: {counts}", highlight=False)
        if report.requeued:
            console.print(
                f"{report.requeued} message(s) left sending by a stopped run were requeued"
            )
    if report.counts.get("failed"):
        raise typer.Exit(1)


def enqueue_command(
    kind: str = typer.Argument(..., help="Message kind (see `messages templates`)."),
    to: Path = typer.Option(
        ..., "--to", help="Recipients CSV: customer_no,name,phone,address,area."
    ),
    episode: str = typer.Option(
        ..., "--episode", help="Episode id: one message per customer and episode (e.g. 2026-03)."
    ),
    lang: str = typer.Option("zh", "--lang", help="zh (default) or en."),
    values: list[str] | None = typer.Option(
        None,
        "--set",
        help="A placeholder for every recipient: KEY=VALUE (name etc. come from the CSV).",
    ),
    user: str | None = typer.Option(
        None, "--user", help="Your login (the send-custom-sms role; the queueing is audited)."
    ),
    db: str | None = _db_option(),
    templates: Path | None = _TEMPLATES,
    as_json: bool = _json_option(),
) -> None:
    """Queue one message per recipient of a CSV (e.g. a custom SMS to a chosen set).

    Run again with the same episode and nothing new is queued. Invalid numbers are
    stored as invalid-number and listed for paper notices. Needs a login with the
    send-custom-sms role (customer service); a refusal is in the audit log too.
    """
    from prepaid.audit import AuditLog
    from prepaid.messages import MessageError, read_recipients_csv
    from prepaid.users import Action, PermissionDeniedError, Users, require
    from protocol.clock import RealClock

    from .cmd_settings import login

    outbox = _outbox(db, templates)
    clock = RealClock()
    operator = login(Users(outbox.engine, clock=clock), user)
    audit = AuditLog(outbox.engine, clock)
    target = f"episode:{episode}"
    try:
        require(operator, Action.SEND_CUSTOM_SMS)
    except PermissionDeniedError as exc:
        audit.record(
            operator, "messages.enqueue.refused", target, {"kind": kind, "reason": str(exc)}
        )
        fail(f"refused: {exc}", 1)
    try:
        recipients, problems = read_recipients_csv(to)
        params = outbox.templates.parse_params(kind, _pairs(values))
        outbox.templates.get(kind, lang)
    except MessageError as exc:
        fail(str(exc), 2)
    created = existing = 0
    by_status: dict[str, int] = {}
    for recipient in recipients:
        try:
            done = outbox.enqueue(recipient, kind, params, episode=episode, lang=lang)
        except MessageError as exc:
            fail(f"{recipient.customer_no}: {exc}", 2)
        created += done.created
        existing += not done.created
        status = done.message.status.value
        by_status[status] = by_status.get(status, 0) + 1
    result = {
        "created": created,
        "existing": existing,
        "statuses": by_status,
        "bad_rows": [{"line": p.line, "detail": p.detail} for p in problems],
    }
    audit.record(operator, "messages.enqueue", target, {"kind": kind, "file": str(to), **result})
    if as_json:
        print_json(result)
        return
    statuses = ", ".join(f"{s} {n}" for s, n in sorted(by_status.items()))
    console.print(
        f"{created} new message(s), {existing} already queued for episode {episode!r} "
        f"({statuses or 'none'}); {len(problems)} bad row(s)",
        highlight=False,
        soft_wrap=True,
    )
    for problem in problems:
        console.print(
            f"{to}:{problem.line}: {problem.detail}", highlight=False, markup=False, soft_wrap=True
        )


def print_notices_command(
    out: Path = typer.Option(..., "--out", help="Directory for BATCH.html and BATCH.txt."),
    area: str | None = typer.Option(None, "--area", help="Transformer area (台区) to print."),
    kind: str | None = typer.Option(None, "--kind", help="Only this message kind."),
    batch: str | None = typer.Option(
        None, "--batch", help="Batch number (default: AREA-KIND-YYYYMMDDHHMM)."
    ),
    page: str = typer.Option("A5", "--page", help="Page size: A5 or A4."),
    issuer: str = typer.Option("", "--issuer", help="Issuing office printed on each notice."),
    keep: bool = typer.Option(False, "--keep", help="Do not mark the notices printed (a preview)."),
    db: str | None = _db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Print the manual list (invalid numbers, paper customers) as one notice batch."""
    from prepaid.messages import MessageError, NoticeBatch, PageSize, notices_of, write_batch

    try:
        size = PageSize(page.upper())
    except ValueError:
        fail(f"--page wants A5 or A4, got {page!r}", 2)
    outbox = _outbox(db)
    messages = outbox.manual_list(area=area, kind=kind)
    if not messages:
        fail(
            "nothing to print: no invalid-number or paper messages"
            + (f" in area {area}" if area else "")
            + (f" of kind {kind}" if kind else ""),
            1,
        )
    now = outbox.clock.now()
    number = batch or "-".join(p for p in (area, kind, f"{now:%Y%m%d%H%M}") if p)
    try:
        files = write_batch(
            NoticeBatch.of(number, now, notices_of(messages, outbox.templates), issuer),
            out,
            page=size,
        )
    except MessageError as exc:
        fail(str(exc), 2)
    marked = 0 if keep else outbox.mark_printed([m.id for m in messages], number)
    if as_json:
        print_json(
            {
                "batch": number,
                "notices": files.count,
                "html": str(files.html),
                "text": str(files.text),
                "marked_printed": marked,
            }
        )
        return
    console.print(
        f"batch {number}: {files.count} notice(s) → {files.html} and {files.text}"
        + ("" if keep else f"; {marked} marked printed"),
        highlight=False,
        soft_wrap=True,
    )


# -- phones ---------------------------------------------------------------------------


def check_phones_command(
    file: Path = typer.Argument(..., help="CSV with customer_no,name,phone[,address,area]."),
    export: Path | None = typer.Option(None, "--export", help="Write the invalid ones here (CSV)."),
    as_json: bool = _json_option(),
) -> None:
    """List the phone numbers that cannot receive an SMS, with the reason (S4.4-3)."""
    from prepaid.messages import (
        MessageError,
        export_invalid_csv,
        invalid_numbers,
        read_recipients_csv,
    )

    try:
        recipients, problems = read_recipients_csv(file)
    except MessageError as exc:
        fail(str(exc), 2)
    bad = invalid_numbers(recipients)
    if export is not None:
        try:
            export_invalid_csv(bad, export)
        except MessageError as exc:
            fail(str(exc), 2)
    by_problem: dict[str, int] = {}
    for _recipient, check in bad:
        assert check.problem is not None
        by_problem[check.problem.value] = by_problem.get(check.problem.value, 0) + 1
    if as_json:
        print_json(
            {
                "checked": len(recipients),
                "invalid": len(bad),
                "by_problem": by_problem,
                "numbers": [
                    {
                        "customer_no": r.customer_no,
                        "name": r.name,
                        "phone": c.raw,
                        "problem": c.problem.value if c.problem else None,
                        "detail": c.detail,
                        "area": r.area,
                    }
                    for r, c in bad
                ],
                "bad_rows": [{"line": p.line, "detail": p.detail} for p in problems],
            }
        )
        return
    if bad:
        table = Table(title="invalid phone numbers (无效号码)")
        for column in ("customer", "name", "phone", "problem", "detail", "area"):
            table.add_column(column)
        for r, c in bad:
            reason = c.problem.value if c.problem else ""
            table.add_row(r.customer_no, r.name, repr(c.raw), reason, c.detail, r.area)
        console.print(table)
    kinds = ", ".join(f"{p} {n}" for p, n in sorted(by_problem.items()))
    console.print(
        f"{len(bad)} of {len(recipients)} number(s) invalid" + (f" ({kinds})" if kinds else ""),
        highlight=False,
        soft_wrap=True,
    )
    if export is not None:
        console.print(f"exported {len(bad)} row(s) to {export}", highlight=False)
    for row in problems:
        console.print(
            f"{file}:{row.line}: {row.detail}", highlight=False, markup=False, soft_wrap=True
        )


messages_app.command("templates")(templates_command)
messages_app.command("render")(render_command)
messages_app.command("outbox")(outbox_command)
messages_app.command("enqueue")(enqueue_command)
messages_app.command("send-queued")(send_queued_command)
messages_app.command("print-notices")(print_notices_command)
messages_app.command("check-phones")(check_phones_command)


def register(app: typer.Typer) -> None:
    app.add_typer(messages_app, name="messages")
