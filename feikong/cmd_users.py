"""``feikong users …`` (operators and roles) and ``feikong audit …`` (the audit log)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from .cmd_settings import db_option, login, open_db
from .output import console, err_console, fail, print_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from prepaid.audit import AuditLog
    from prepaid.users import Operator, Users

users_app = typer.Typer(help="Operators (操作员) and their roles.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The audit log (审计日志): list, export, verify the hash chain.",
    invoke_without_command=True,
)

NEW_PASSWORD_ENV = "FEIKONG_NEW_PASSWORD"


def _users(engine: Engine) -> Users:
    from prepaid.users import Users
    from protocol.clock import RealClock

    return Users(engine, clock=RealClock())


def _new_password(login_name: str) -> str:
    password = os.environ.get(NEW_PASSWORD_ENV)
    if password is None:
        password = typer.prompt(
            f"new password for {login_name}", hide_input=True, confirmation_prompt=True
        )
    return password


def _run(action: Any) -> Any:
    from prepaid.users import AuthenticationError, PermissionDeniedError, UserError

    try:
        return action()
    except PermissionDeniedError as exc:
        fail(f"refused: {exc}", 1)
    except AuthenticationError as exc:
        fail(str(exc), 1)
    except UserError as exc:
        fail(str(exc), 2)


def _print_operator(operator: Operator, verb: str, as_json: bool) -> None:
    if as_json:
        print_json(operator.to_dict())
        return
    unit = operator.supply_unit or "every unit"
    state = "disabled" if operator.disabled else "enabled"
    console.print(
        f"{verb} {operator.login} ({operator.display_name}): {operator.role_text}; {unit}; {state}",
        highlight=False,
    )


def _json_option() -> Any:
    return typer.Option(False, "--json", help="Machine-readable output.")


def _admin_option() -> Any:
    return typer.Option(None, "--user", help="Your login (an admin); the change is audited.")


@users_app.command("add")
def add_command(
    login_name: str = typer.Argument(..., metavar="LOGIN", help="Login name, e.g. zhang.wei"),
    name: str = typer.Option(..., "--name", help="Display name, e.g. 张伟."),
    roles: list[str] = typer.Option(
        ...,
        "--role",
        help="A role (repeat for several): operator, approver-l1, approver-l2, "
        "fault-handler, customer-service, admin, auditor.",
    ),
    unit: str | None = typer.Option(None, "--unit", help="Supply unit code (default: all units)."),
    user: str | None = _admin_option(),
    db: str | None = db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Add an operator (password from $FEIKONG_NEW_PASSWORD or a prompt).

    The first operator of a database needs no --user and must be an admin.
    """
    from prepaid.users import parse_role

    engine = open_db(db)
    users = _users(engine)
    parsed = _run(lambda: [parse_role(r) for r in roles])
    by = login(users, user) if user or users.count() else None
    password = _new_password(login_name)
    operator = _run(
        lambda: users.add(
            login_name,
            display_name=name,
            password=password,
            roles=parsed,
            supply_unit=unit,
            by=by,
        )
    )
    _print_operator(operator, "added", as_json)


@users_app.command("list")
def list_command(
    db: str | None = db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Every operator with roles, supply unit, status and last login."""
    operators = _users(open_db(db)).list()
    if as_json:
        print_json([o.to_dict() for o in operators])
        return
    table = Table(title=f"{len(operators)} operator(s)", title_justify="left")
    for column in ("login", "name", "roles", "supply unit", "status", "last login"):
        table.add_column(column)
    for o in operators:
        table.add_row(
            o.login,
            o.display_name,
            o.role_text,
            o.supply_unit or "all",
            "[red]disabled[/]" if o.disabled else "enabled",
            f"{o.last_login_at:%Y-%m-%d %H:%M}" if o.last_login_at else "-",
        )
    console.print(table)


@users_app.command("disable")
def disable_command(
    login_name: str = typer.Argument(..., metavar="LOGIN"),
    reason: str = typer.Option("", "--reason", help="Why (kept in the audit log)."),
    user: str | None = _admin_option(),
    db: str | None = db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Disable an operator: no more logins or actions (the last admin stays)."""
    users = _users(open_db(db))
    by = login(users, user)
    _print_operator(
        _run(lambda: users.disable(login_name, by=by, reason=reason)), "disabled", as_json
    )


@users_app.command("enable")
def enable_command(
    login_name: str = typer.Argument(..., metavar="LOGIN"),
    user: str | None = _admin_option(),
    db: str | None = db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Enable a disabled operator again."""
    users = _users(open_db(db))
    by = login(users, user)
    _print_operator(_run(lambda: users.enable(login_name, by=by)), "enabled", as_json)


@users_app.command("grant")
def grant_command(
    login_name: str = typer.Argument(..., metavar="LOGIN"),
    role: str = typer.Argument(..., help="The role to give."),
    user: str | None = _admin_option(),
    db: str | None = db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Give an operator a role."""
    users = _users(open_db(db))
    by = login(users, user)
    _print_operator(_run(lambda: users.grant(login_name, role, by=by)), "now", as_json)


@users_app.command("revoke")
def revoke_command(
    login_name: str = typer.Argument(..., metavar="LOGIN"),
    role: str = typer.Argument(..., help="The role to take away."),
    user: str | None = _admin_option(),
    db: str | None = db_option(),
    as_json: bool = _json_option(),
) -> None:
    """Take a role from an operator (its last role, and the last admin, stay)."""
    users = _users(open_db(db))
    by = login(users, user)
    _print_operator(_run(lambda: users.revoke(login_name, role, by=by)), "now", as_json)


@users_app.command("passwd")
def passwd_command(
    login_name: str = typer.Argument(..., metavar="LOGIN"),
    user: str | None = typer.Option(None, "--user", help="Your login (yourself, or an admin)."),
    db: str | None = db_option(),
) -> None:
    """Set a new password ($FEIKONG_NEW_PASSWORD or a prompt)."""
    users = _users(open_db(db))
    by = login(users, user or login_name)
    password = _new_password(login_name)
    _run(lambda: users.set_password(login_name, password, by=by))
    console.print(f"password of {login_name} changed", highlight=False)


# -- audit ------------------------------------------------------------------------------


def _moment(text: str | None, option: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option} wants a date or time like 2026-03-01 or 2026-03-01T09:30, got {text!r}", 2)


def _log(engine: Engine) -> AuditLog:
    from prepaid.audit import AuditLog
    from protocol.clock import RealClock

    return AuditLog(engine, RealClock())


def _filters(
    user: str | None, action: str | None, target: str | None, since: str | None, until: str | None
) -> dict[str, Any]:
    return {
        "actor": user,
        "action": action,
        "target": target,
        "since": _moment(since, "--since"),
        "until": _moment(until, "--until"),
    }


def _details(details: Mapping[str, Any]) -> str:
    """``new=15.50, comment=winter``: the details people read (empty values left out)."""
    parts = []
    for key, value in details.items():
        if value is None or value == "" or value == []:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        parts.append(f"{key}={text}")
    return ", ".join(parts)


_USER_HELP = "Only entries by this login."
_ACTION_HELP = "Only this action (a trailing * matches a prefix: settings.*)."
_TARGET_HELP = "Only this target (a trailing * matches a prefix: operator:*)."


@audit_app.callback()
def audit_list(
    ctx: typer.Context,
    user: str | None = typer.Option(None, "--user", help=_USER_HELP),
    action: str | None = typer.Option(None, "--action", help=_ACTION_HELP),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    since: str | None = typer.Option(None, "--since", help="From this date/time (inclusive)."),
    until: str | None = typer.Option(None, "--until", help="Before this date/time."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    db: str | None = db_option(),
    as_json: bool = _json_option(),
) -> None:
    """List audit entries, newest first (who, when, what, target, details)."""
    if ctx.invoked_subcommand is not None:
        return
    log = _log(open_db(db))
    entries = log.query(
        **_filters(user, action, target, since, until), limit=limit, newest_first=True
    )
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    table = Table(
        title=f"{len(entries)} audit entr{'y' if len(entries) == 1 else 'ies'}, newest first",
        title_justify="left",
    )
    for column in ("#", "when", "who", "action", "target", "details"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            str(e.id), f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, e.target, _details(e.details)
        )
    console.print(table)


@audit_app.command("export")
def audit_export(
    file: Path = typer.Argument(..., help="CSV file to write ('-': standard output)."),
    user: str | None = typer.Option(None, "--user", help=_USER_HELP),
    action: str | None = typer.Option(None, "--action", help=_ACTION_HELP),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    since: str | None = typer.Option(None, "--since", help="From this date/time (inclusive)."),
    until: str | None = typer.Option(None, "--until", help="Before this date/time."),
    db: str | None = db_option(),
) -> None:
    """Write matching entries, oldest first, as CSV (id, at, who, action, target, details, hash)."""
    log = _log(open_db(db))
    filters = _filters(user, action, target, since, until)
    if str(file) == "-":
        log.export_csv(sys.stdout, **filters)
        return
    try:
        with file.open("w", encoding="utf-8", newline="") as out:
            count = log.export_csv(out, **filters)
    except OSError as exc:
        fail(f"cannot write {file}: {exc.strerror or exc}", 2)
    err_console.print(
        f"exported {count} entr{'y' if count == 1 else 'ies'} to {file}", highlight=False
    )


def _anchor(text: str) -> tuple[int, str]:
    ident, sep, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if (
        not sep
        or not ident.strip().isdigit()
        or len(digest) != 64
        or any(c not in "0123456789abcdef" for c in digest)
    ):
        fail(
            f"--anchor {text!r} is not ENTRY:HASH (an entry number, a colon and the 64 hex "
            "digits of its SHA-256, as `feikong audit verify` prints after `anchor:`)",
            2,
        )
    return int(ident), digest


@audit_app.command("verify")
def audit_verify(
    db: str | None = db_option(),
    anchor: list[str] = typer.Option(
        [],
        "--anchor",
        metavar="ENTRY:HASH",
        help="An anchor noted down earlier from this command's output, kept outside the "
        "database: the entry must still have that hash (a log rewritten with new hashes "
        "is found). Repeatable.",
    ),
    as_json: bool = _json_option(),
) -> None:
    """Recompute the hash chain; exit 1 and name the first bad entry if it is broken.

    When intact it prints the head as `anchor: LAST:HASH`: keep that line outside the
    database (a ticket, a printout, another system) and pass it back with --anchor.
    """
    anchors = [_anchor(a) for a in anchor]
    log = _log(open_db(db))
    if console.is_terminal and not as_json:
        columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err_console, transient=True) as bar:
            task = bar.add_task("verify", total=None)
            report = log.verify(
                progress=lambda done, total: bar.update(task, completed=done, total=total),
                anchors=anchors,
            )
    else:
        report = log.verify(anchors=anchors)
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "last_id": report.last_id,
                "bad_id": report.bad_id,
                "problem": report.problem,
                "anchor": report.anchor if report.ok else None,
            }
        )
    else:
        console.print(str(report), highlight=False)
        if report.ok:
            console.print(f"anchor: {report.anchor}", highlight=False, soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(users_app, name="users")
    app.add_typer(audit_app, name="audit")
