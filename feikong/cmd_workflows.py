"""``feikong disconnect | reconnect | guarantee | workorders``: the fee-control workflows.

The commands work on the database; head-end commands (trip, permit-close, close,
3AH) are queued as jobs that a running ``feikong headend run`` carries out, and
``feikong disconnect tick`` (run it every minute, or ``disconnect run``) picks up
their outcomes and does what is due: notices, trips outside protected hours,
relay checks for repeated trips, reconnections of customers who paid.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from .cmd_settings import db_option, login, open_db
from .output import console, fail, print_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from prepaid.users import Operator
    from prepaid.workflows import Disconnection, FeeControl
    from prepaid.workorders import WorkOrder

disconnect_app = typer.Typer(
    help="Disconnection (停电): request, two approvals, notice, trips, failures.",
    no_args_is_help=True,
)
reconnect_app = typer.Typer(help="Reconnection (复电) after payment.", no_args_is_help=True)
guarantee_app = typer.Typer(
    help="Power guarantee (保电) and the 3AH command.", no_args_is_help=True
)
workorders_app = typer.Typer(
    help="Work orders (工单): field work for fault handlers.", no_args_is_help=True
)

_USER: Any = typer.Option(None, "--user", help="Your login (the step is audited).")
_JSON: Any = typer.Option(False, "--json", help="Machine-readable output.")
_T = TypeVar("_T")


_LIMIT_ENV = {1: "FEIKONG_APPROVAL_L1_LIMIT", 2: "FEIKONG_APPROVAL_L2_LIMIT"}
_UNITS = {"d": 86_400, "h": 3_600, "m": 60}


def parse_duration(text: str, option: str) -> timedelta:
    """``90m``, ``24h``, ``2d``, ``1d12h`` → a duration; exit 2 with a clear line otherwise."""
    import re

    compact = text.strip().lower().replace(" ", "")
    parts = re.findall(r"(\d+)([dhm])", compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        fail(f"{option} wants a duration such as 90m, 24h, 2d or 1d12h, got {text!r}", 2)
    value = timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))
    if value <= timedelta(0):
        fail(f"{option} must be longer than 0, got {text!r}", 2)
    return value


def _limits() -> dict[str, timedelta]:
    """The approval time limits from $FEIKONG_APPROVAL_L1_LIMIT / _L2_LIMIT, if set."""
    import os

    out = {}
    for level, env in _LIMIT_ENV.items():
        if os.environ.get(env):
            out[f"approval_l{level}_limit"] = parse_duration(os.environ[env], f"${env}")
    return out


def _fee_control(engine: Engine, **limits: timedelta) -> FeeControl:
    from headend.service import QueuedHeadendService
    from prepaid.workflows import FeeControl, WorkflowConfig
    from protocol.clock import RealClock

    # no events reach a CLI process: every tick reads the outcomes of finished jobs
    merged = {**_limits(), **limits}
    default = WorkflowConfig()
    config = dataclasses.replace(
        default,
        stuck_after=timedelta(0),
        approval_l1_limit=merged.get("approval_l1_limit", default.approval_l1_limit),
        approval_l2_limit=merged.get("approval_l2_limit", default.approval_l2_limit),
    )
    return FeeControl(engine, QueuedHeadendService(engine), clock=RealClock(), config=config)


def _operator(fc: FeeControl, user: str | None) -> Operator:
    from prepaid.users import Users

    return login(Users(fc.ctx.engine, clock=fc.clock, audit=fc.ctx.audit), user)


def _run(step: Callable[[], _T]) -> _T:
    """Run a workflow step; refusals become one clear line (exit 1), bad input exit 2."""
    from prepaid.users import PermissionDeniedError
    from prepaid.workflows import NotFoundError, WorkflowError
    from prepaid.workorders import WorkOrderError, WorkOrderNotFoundError

    try:
        return step()
    except (NotFoundError, WorkOrderNotFoundError) as exc:
        fail(escape(str(exc)), 2)
    except (WorkflowError, WorkOrderError, PermissionDeniedError) as exc:
        fail(f"refused: {escape(str(exc))}", 1)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def _episodes_table(episodes: list[Disconnection], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("number", "customer", "state"):
        table.add_column(column, no_wrap=True)
    for column in ("balance", "approvals", "planned", "trips"):
        table.add_column(column)
    table.add_column("next")
    for e in episodes:
        approvals = " / ".join(x for x in (e.l1_by, e.l2_by) if x) or "-"
        nxt = f"{e.next_action.value} {_when(e.due_at)}" if e.next_action else "-"
        if e.job_id:
            nxt = f"{e.job_kind} job running"
        table.add_row(
            e.number,
            e.customer_no,
            e.state.value,
            e.to_dict()["balance"],
            approvals,
            _when(e.planned_at),
            str(e.trips),
            nxt,
        )
    return table


# -- disconnect ------------------------------------------------------------------------


@disconnect_app.command("select")
def select_command(
    user: str | None = typer.Option(
        None,
        "--user",
        help="An operator raising every candidate (default: the system, "
        "only in areas with auto_disconnection_request).",
    ),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Select customers in arrears after dunning, re-rate them, raise requests."""
    fc = _fee_control(open_db(db))
    by: Any = _operator(fc, user) if user else "system:disconnection"
    report = _run(lambda: fc.disconnection.select(by=by))
    if as_json:
        print_json(report.to_dict())
        return
    console.print(
        f"selected {report.selected}, re-rated {report.rerated}, requested "
        f"{len(report.requested)}, awaiting an operator {len(report.awaiting_operator)}, "
        f"refused {len(report.refused)}, no longer in arrears {len(report.recovered)}",
        highlight=False,
    )
    if report.rating_error:
        console.print(f"re-rating failed: {report.rating_error}", highlight=False, markup=False)
    for episode in report.requested:
        console.print(f"  requested {episode.number} for {episode.customer_no}", highlight=False)
    for candidate in report.awaiting_operator:
        console.print(
            f"  {candidate.customer_no} ({candidate.area or '-'}): balance "
            f"{candidate.to_dict()['balance']} — feikong disconnect request "
            f"{candidate.customer_no} --user LOGIN",
            highlight=False,
        )
    for customer, reason in report.refused:
        console.print(f"  refused {customer}: {reason}", highlight=False, markup=False)


@disconnect_app.command("request")
def request_command(
    customer: str = typer.Argument(..., help="Customer number (户号)."),
    reason: str = typer.Option("arrears", "--reason", help="Why (kept in the history)."),
    not_before: datetime | None = typer.Option(
        None, "--not-before", help="Trip no earlier than this (YYYY-MM-DD HH:MM:SS)."
    ),
    user: str | None = _USER,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Raise a disconnection request (the account is re-rated first)."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    episode = _run(
        lambda: fc.disconnection.request(
            customer, by=operator, reason=reason, planned_at=not_before
        )
    )
    if as_json:
        print_json(episode.to_dict())
        return
    console.print(
        f"{episode.number}: {episode.customer_no} {episode.state.value}, balance "
        f"{episode.to_dict()['balance']} yuan; next: level-1 approval",
        highlight=False,
    )


@disconnect_app.command("approve")
def approve_command(
    number: str = typer.Argument(..., help="Disconnection number (TD…)."),
    comment: str = typer.Option("", "--comment"),
    user: str | None = _USER,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Approve at the level awaiting approval (level 1, then level 2 and the notice)."""
    from prepaid.workflows import DisconnectionState

    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    current = _run(lambda: fc.disconnection.get(number))
    if current.state is DisconnectionState.REQUESTED:
        episode = _run(lambda: fc.disconnection.approve_l1(number, by=operator, comment=comment))
    else:
        episode = _run(lambda: fc.disconnection.approve_l2(number, by=operator, comment=comment))
    if as_json:
        print_json(episode.to_dict())
        return
    text = f"{episode.number}: {episode.state.value}"
    if episode.planned_at:
        text += f"; the customer is told the trip is planned for {_when(episode.planned_at)}"
    console.print(text, highlight=False)


@disconnect_app.command("reject")
def reject_command(
    number: str = typer.Argument(..., help="Disconnection number (TD…)."),
    reason: str = typer.Option(..., "--reason", help="Why it is refused."),
    user: str | None = _USER,
    db: str | None = db_option(),
) -> None:
    """Refuse a request awaiting your approval (it ends)."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    episode = _run(lambda: fc.disconnection.reject(number, by=operator, reason=reason))
    console.print(f"{episode.number}: rejected ({reason})", highlight=False, markup=False)


@disconnect_app.command("cancel")
def cancel_command(
    number: str = typer.Argument(..., help="Disconnection number (TD…)."),
    reason: str = typer.Option(..., "--reason", help="Why it is cancelled."),
    user: str | None = _USER,
    db: str | None = db_option(),
) -> None:
    """Cancel a disconnection before any trip."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    episode = _run(lambda: fc.disconnection.cancel(number, by=operator, reason=reason))
    console.print(f"{episode.number}: cancelled ({reason})", highlight=False, markup=False)


@disconnect_app.command("list")
def list_command(
    state: str | None = typer.Option(None, "--state", help="Only this state."),
    customer: str | None = typer.Option(None, "--customer", help="Only this customer."),
    active: bool = typer.Option(False, "--active", help="Only episodes still running."),
    limit: int = typer.Option(200, "--limit", min=1),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Disconnection episodes, oldest first."""
    from prepaid.workflows import DisconnectionState

    fc = _fee_control(open_db(db))
    try:
        wanted = DisconnectionState(state) if state else None
    except ValueError:
        fail(f"unknown state {state!r}: {', '.join(s.value for s in DisconnectionState)}", 2)
    episodes = fc.disconnection.list(state=wanted, customer_no=customer, active=active, limit=limit)
    if as_json:
        print_json([e.to_dict() for e in episodes])
        return
    console.print(_episodes_table(episodes, f"{len(episodes)} disconnection(s)"))


@disconnect_app.command("show")
def show_command(
    number: str = typer.Argument(..., help="Disconnection number (TD…)."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """One episode and its history (who, when, what)."""
    fc = _fee_control(open_db(db))
    episode = _run(lambda: fc.disconnection.get(number))
    history = fc.disconnection.history(number)
    if as_json:
        print_json({**episode.to_dict(), "history": [h.to_dict() for h in history]})
        return
    console.print(_episodes_table([episode], fc.disconnection.summary(episode)))
    table = Table(title="history", title_justify="left")
    for column in ("at", "who", "what", "state", "comment"):
        table.add_column(column)
    for h in history:
        table.add_row(
            f"{h.at:%Y-%m-%d %H:%M:%S}", h.actor, h.action, h.to_state.value, escape(h.comment)
        )
    console.print(table)


@disconnect_app.command("overdue")
def overdue_command(
    pending: bool = typer.Option(
        False, "--pending", help="Every request waiting for an approval, not only overdue ones."
    ),
    l1_limit: str | None = typer.Option(
        None,
        "--l1-limit",
        help="Level-1 approval time limit, e.g. 24h (default: $FEIKONG_APPROVAL_L1_LIMIT or 24h).",
    ),
    l2_limit: str | None = typer.Option(
        None,
        "--l2-limit",
        help="Level-2 approval time limit, e.g. 8h (default: $FEIKONG_APPROVAL_L2_LIMIT or 24h).",
    ),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Requests whose approval is overdue (审批超时), most overdue first, with who may
    approve them now. Escalation (a line in the history) is done by `disconnect tick`."""
    limits = {}
    if l1_limit:
        limits["approval_l1_limit"] = parse_duration(l1_limit, "--l1-limit")
    if l2_limit:
        limits["approval_l2_limit"] = parse_duration(l2_limit, "--l2-limit")
    fc = _fee_control(open_db(db), **limits)
    waits = fc.sla.pending() if pending else fc.sla.overdue()
    if as_json:
        print_json([w.to_dict() for w in waits])
        return
    what = "waiting for approval" if pending else "overdue approvals"
    table = Table(title=f"{len(waits)} {what}", title_justify="left")
    for column in ("number", "customer", "unit", "waits for", "since", "deadline", "overdue by"):
        table.add_column(column, no_wrap=True)
    table.add_column("escalated")
    table.add_column("may approve")
    for w in waits:
        late = w.to_dict()["overdue_by"] if w.overdue else "-"
        table.add_row(
            w.number,
            w.customer_no,
            w.supply_unit or "-",
            f"level {w.level}",
            _when(w.since),
            _when(w.deadline),
            f"[red]{late}[/]" if w.overdue else late,
            _when(w.escalated_at),
            ", ".join(w.approvers) or "[red]nobody: grant the role[/]",
        )
    console.print(table)


@disconnect_app.command("tick")
def tick_command(db: str | None = db_option(), as_json: bool = _JSON) -> None:
    """Do what is due now: outcomes of finished jobs, notices, trips, relay checks."""
    fc = _fee_control(open_db(db))
    report = fc.step()
    if as_json:
        print_json(report.to_dict())
        return
    console.print(
        f"{report.at:%Y-%m-%d %H:%M:%S}: notices {len(report.notices)}, trips "
        f"{len(report.trips)}, relay checks {len(report.checks)}, waiting (protected hours) "
        f"{len(report.waiting)}, cancelled/reconnected {len(report.cancelled)}, outcomes "
        f"read {len(report.recovered)}, approvals overdue {len(report.escalated)}",
        highlight=False,
    )


@disconnect_app.command("run")
def run_command(
    every: float = typer.Option(60.0, "--every", min=1.0, help="Seconds between ticks."),
    db: str | None = db_option(),
) -> None:
    """Tick every N seconds until interrupted (next to `feikong headend run`)."""
    fc = _fee_control(open_db(db))
    console.print(f"fee-control workflows: a tick every {every:g} s (Ctrl-C stops)")
    try:
        while True:
            report = fc.step()
            if report.total or report.recovered:
                console.print(
                    f"{report.at:%H:%M:%S} trips {report.trips} checks {report.checks} "
                    f"notices {report.notices} outcomes {report.recovered}",
                    highlight=False,
                    markup=False,
                )
            time.sleep(every)
    except KeyboardInterrupt:
        console.print("stopped")


# -- reconnect -------------------------------------------------------------------------


@reconnect_app.command("issue")
def reconnect_command(
    customer: str = typer.Argument(..., help="Customer number (户号)."),
    reason: str = typer.Option("", "--reason", help="E.g. the payment receipt."),
    user: str | None = _USER,
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Issue the reconnect instruction (the balance must be above zero)."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    recon = _run(lambda: fc.reconnection.reconnect(customer, by=operator, reason=reason))
    if as_json:
        print_json(recon.to_dict())
        return
    console.print(
        f"{recon.number}: {recon.customer_no} {recon.state.value} ({recon.method.value})"
        + (f", work order {recon.work_order}" if recon.work_order else ""),
        highlight=False,
    )


@reconnect_app.command("list")
def reconnect_list_command(
    customer: str | None = typer.Option(None, "--customer"),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Reconnections, oldest first."""
    fc = _fee_control(open_db(db))
    items = fc.reconnection.list(customer_no=customer)
    if as_json:
        print_json([r.to_dict() for r in items])
        return
    table = Table(title=f"{len(items)} reconnection(s)", title_justify="left")
    for column in ("number", "customer", "state"):
        table.add_column(column, no_wrap=True)
    for column in ("method", "trigger", "balance", "work order"):
        table.add_column(column)
    for r in items:
        table.add_row(
            r.number,
            r.customer_no,
            r.state.value,
            r.method.value,
            r.trigger,
            r.to_dict()["balance"],
            r.work_order or "-",
        )
    console.print(table)


# -- guarantee -------------------------------------------------------------------------


@guarantee_app.command("status")
def guarantee_status_command(
    customer: str = typer.Argument(..., help="Customer number (户号)."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Whether a customer is under power guarantee, why, and what its meter was sent."""
    fc = _fee_control(open_db(db))
    status = _run(lambda: fc.guarantee.status(customer))
    if as_json:
        print_json(status.to_dict())
        return
    if not status.guaranteed:
        console.print(f"{customer}: not under power guarantee", highlight=False)
        return
    console.print(status.reason or "", highlight=False, markup=False)
    console.print(
        f"3AH to the meter: {'yes' if status.send_3ah else 'no'}; meter: "
        f"{status.meter_state or 'nothing sent'}",
        highlight=False,
    )


@guarantee_app.command("sync")
def guarantee_sync_command(
    user: str | None = _USER, db: str | None = db_option(), as_json: bool = _JSON
) -> None:
    """Send 3AH to guaranteed meters that lack it, 3BH where the guarantee was lifted."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    report = _run(lambda: fc.guarantee.sync(by=operator))
    if as_json:
        print_json(report.to_dict())
        return
    console.print(
        f"{report.accounts} account(s), {report.guaranteed} guaranteed: 3AH queued for "
        f"{len(report.sent_on)}, 3BH for {len(report.sent_off)}, unchanged {report.unchanged}, "
        f"errors {len(report.errors)}",
        highlight=False,
    )


# -- work orders -----------------------------------------------------------------------


def _orders_table(orders: list[WorkOrder], title: str, now: datetime) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("number", "kind", "state"):
        table.add_column(column, no_wrap=True)
    for column in ("customer", "assignee", "due", "summary"):
        table.add_column(column)
    for o in orders:
        due = _when(o.due_at) + (" LATE" if o.overdue(now) else "")
        table.add_row(
            o.number,
            o.kind.value,
            o.state.value,
            o.customer_no or "-",
            o.assignee or "-",
            due,
            escape(o.summary),
        )
    return table


@workorders_app.command("list")
def workorders_list_command(
    kind: str | None = typer.Option(None, "--kind", help="disconnection-failure, …"),
    state: str | None = typer.Option(None, "--state", help="open, assigned, …"),
    assignee: str | None = typer.Option(None, "--assignee", help="A handler's login."),
    open_only: bool = typer.Option(False, "--open", help="Only unfinished ones."),
    overdue: bool = typer.Option(False, "--overdue", help="Only those past their due time."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """Work orders, oldest first."""
    from prepaid.workorders import WorkOrderError, parse_kind, parse_state

    try:
        wanted_kind = parse_kind(kind) if kind else None
        wanted_state = parse_state(state) if state else None
    except WorkOrderError as exc:
        fail(escape(str(exc)), 2)
    fc = _fee_control(open_db(db))
    now = fc.clock.now()
    orders = fc.workorders.query(
        kind=wanted_kind,
        state=wanted_state,
        assignee=assignee,
        unfinished=open_only,
        overdue_at=now if overdue else None,
    )
    if as_json:
        print_json([o.to_dict() for o in orders])
        return
    console.print(_orders_table(orders, f"{len(orders)} work order(s)", now))


@workorders_app.command("show")
def workorders_show_command(
    number: str = typer.Argument(..., help="Work-order number (GD…)."),
    db: str | None = db_option(),
    as_json: bool = _JSON,
) -> None:
    """One work order and its history."""
    fc = _fee_control(open_db(db))
    order = _run(lambda: fc.workorders.get(number))
    history = fc.workorders.history(number)
    if as_json:
        print_json({**order.to_dict(), "history": [h.to_dict() for h in history]})
        return
    console.print(_orders_table([order], order.number, fc.clock.now()))
    if order.result:
        console.print(f"result: {order.outcome} — {order.result}", highlight=False, markup=False)
    for h in history:
        console.print(
            f"  {h.at:%Y-%m-%d %H:%M:%S} {h.actor}: {h.action} → {h.to_state.value} {h.comment}",
            highlight=False,
            markup=False,
        )


@workorders_app.command("create")
def workorders_create_command(
    kind: str = typer.Option("other", "--kind"),
    customer: str | None = typer.Option(None, "--customer", help="Customer number (户号)."),
    summary: str = typer.Option(..., "--summary", help="What is to be done."),
    assignee: str | None = typer.Option(None, "--assignee", help="A fault handler's login."),
    user: str | None = _USER,
    db: str | None = db_option(),
) -> None:
    """Open a work order by hand."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    order = _run(
        lambda: fc.workorders.create(
            kind, summary=summary, customer_no=customer, assignee=assignee, by=operator
        )
    )
    console.print(f"{order.number}: {order.kind.value} {order.state.value}", highlight=False)


@workorders_app.command("assign")
def workorders_assign_command(
    number: str = typer.Argument(...),
    assignee: str = typer.Argument(..., help="A fault handler's login."),
    user: str | None = _USER,
    db: str | None = db_option(),
) -> None:
    """Give a work order to a fault handler (again: reassign)."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    order = _run(lambda: fc.workorders.assign(number, assignee, by=operator))
    console.print(f"{order.number}: assigned to {order.assignee}", highlight=False)


@workorders_app.command("record")
def workorders_record_command(
    number: str = typer.Argument(...),
    outcome: str = typer.Option(..., "--outcome", help="done, not-done or not-needed."),
    result: str = typer.Option(..., "--result", help="What was done on site."),
    user: str | None = _USER,
    db: str | None = db_option(),
) -> None:
    """Record the on-site result (the assignee)."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    order = _run(
        lambda: fc.workorders.record_result(number, outcome=outcome, result=result, by=operator)
    )
    fc.reconnection.flush_messages()
    console.print(f"{order.number}: result recorded ({outcome})", highlight=False)


@workorders_app.command("close")
def workorders_close_command(
    number: str = typer.Argument(...),
    comment: str = typer.Option("", "--comment"),
    user: str | None = _USER,
    db: str | None = db_option(),
) -> None:
    """Close a work order whose result is recorded."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    order = _run(lambda: fc.workorders.close(number, by=operator, comment=comment))
    console.print(f"{order.number}: closed", highlight=False)


@workorders_app.command("cancel")
def workorders_cancel_command(
    number: str = typer.Argument(...),
    reason: str = typer.Option(..., "--reason"),
    user: str | None = _USER,
    db: str | None = db_option(),
) -> None:
    """Cancel a work order that is no longer needed."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    order = _run(lambda: fc.workorders.cancel(number, by=operator, reason=reason))
    console.print(f"{order.number}: cancelled", highlight=False)


@workorders_app.command("handler-phone")
def handler_phone_command(
    handler: str = typer.Argument(..., help="The fault handler's login."),
    phone: str = typer.Argument(..., help="Mobile number for work-order SMS."),
    user: str | None = _USER,
    db: str | None = db_option(),
) -> None:
    """Record the phone a fault handler gets work-order SMS on."""
    fc = _fee_control(open_db(db))
    operator = _operator(fc, user)
    _run(lambda: fc.ctx.set_handler_phone(handler, phone, by=operator))
    console.print(f"{handler}: work-order SMS go to {phone}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(disconnect_app, name="disconnect")
    app.add_typer(reconnect_app, name="reconnect")
    app.add_typer(guarantee_app, name="guarantee")
    app.add_typer(workorders_app, name="workorders")
