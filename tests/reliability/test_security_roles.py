"""Security: every state-changing action is refused without its role — one case per action.

Each case builds a small platform of its own (a migrated SQLite copy: the head-end
archive with four meters, three remote accounts in arrears after re-rating and one
local card account, one operator per role, the workflows on a queued head-end
service), prepares what the action needs, and then:

1. every role that :data:`prepaid.users.PERMISSIONS` does not allow tries it →
   :class:`~prepaid.users.PermissionDeniedError` saying which role is needed,
   **nothing changed** (every table but the audit log is compared row by row, and no
   file is written), and the refusal is **recorded** in the audit log (an entry
   ``….refused`` by that operator, with the reason);
2. an allowed role does it → it happens (the case's own check) and is audited.

``ACTIONS`` lists every state-changing action that an operator takes; the actions run
by the platform itself (``system:…`` actors) are listed in ``SYSTEM_ACTIONS`` with
why no operator role applies. The command-line path is shown for a few actions at
the end (a refused step exits 1 with ``refused: …``).
"""

from __future__ import annotations

import atexit
import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from console.queries.meters import Command, MeterCommands
from feikong.cli import app
from headend.service import QueuedHeadendService
from prepaid.accounts import open_accounts
from prepaid.audit import AuditLog
from prepaid.balance import adopt_opening_balances
from prepaid.cis import LedgerCis
from prepaid.cis.payments import PaymentService
from prepaid.db import open_database
from prepaid.dunning import run_dunning
from prepaid.models import FeeControlMode
from prepaid.rating import rate_accounts
from prepaid.service import Selection
from prepaid.service.custom import send_custom_sms
from prepaid.users import PERMISSIONS, Action, Operator, PermissionDeniedError, Role, Users
from prepaid.vending import Vending
from prepaid.workflows import FeeControl, WorkflowConfig
from protocol.clock import SteppedClock
from protocol.security import SimulatedEncryptionMachine

from ..prepaid.rating_helpers import account, add_meters
from ..prepaid.security_helpers import PASSWORD, add_staff, make_users, url_of
from ..prepaid.workflows_rig import (
    CUSTOMERS,
    METERS,
    MONDAY,
    _reading,
    _template_file,
    add_accounts,
)

runner = CliRunner()
LOCAL = "3300000004"
"""The card (local fee control) customer; meter 000000000004."""
TARGET = "target.user"
"""An operator the user-management actions act on (nobody else's account)."""


@dataclasses.dataclass
class World:
    folder: Path
    engine: Engine
    clock: SteppedClock
    users: Users
    staff: dict[str, Operator]
    fc: FeeControl
    payments: PaymentService
    vending: Vending
    meters: MeterCommands
    accounts: list[int]

    def who(self, role: Role) -> Operator:
        return self.staff["admin" if role is Role.ADMIN else role.value]

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.engine, self.clock)


_world_template: Path | None = None


def _build(database: Path) -> None:
    """The world's database: accounts rated, meters in the archive, the staff."""
    shutil.copyfile(_template_file(), database)
    engine = open_database(f"sqlite:///{database}")
    clock = SteppedClock(MONDAY)
    ids = add_accounts(engine)
    with engine.begin() as conn:
        unit = conn.execute(sa.text("SELECT id FROM prepaid_supply_unit")).scalar_one()
        open_accounts(conn, [account(4, unit, fee_control_mode=FeeControlMode.LOCAL)])
    add_meters(engine, [1, 2, 3, 4])
    yesterday = clock.now().date() - timedelta(days=1)
    for meter in METERS:
        _reading(engine, meter, yesterday, "1000.00")
    rate_accounts(engine, ids, yesterday, clock=clock)
    adopt_opening_balances(engine, LedgerCis(engine, clock=clock))
    for meter in METERS:
        _reading(engine, meter, clock.now().date(), "1020.00")
    users = make_users(engine, clock)
    staff = add_staff(users)
    users.add(
        TARGET, display_name="target", password=PASSWORD, roles=[Role.AUDITOR], by=staff["admin"]
    )
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()


def _world(folder: Path) -> World:
    """A copy of the world's database (built once per run) and the services over it."""
    global _world_template
    if _world_template is None:
        home = Path(tempfile.mkdtemp(prefix="feikong-roles-"))
        atexit.register(shutil.rmtree, home, True)
        _build(home / "world.db")
        _world_template = home / "world.db"
    database = folder / "feikong.db"
    shutil.copyfile(_world_template, database)
    engine = open_database(f"sqlite:///{database}")
    clock = SteppedClock(MONDAY)
    users = make_users(engine, clock)
    staff = {("admin" if o.login == "root" else o.login.replace(".", "-")): o for o in users.list()}
    with engine.connect() as conn:
        ids = [
            int(r[0]) for r in conn.execute(sa.text("SELECT id FROM prepaid_account ORDER BY id"))
        ]
    fc = FeeControl(
        engine,
        QueuedHeadendService(engine),
        clock=clock,
        config=WorkflowConfig(require_dunning=False),
    )
    payments = PaymentService(engine, LedgerCis(engine, clock=clock), clock=clock)
    vending = Vending(engine, payments, SimulatedEncryptionMachine(bytes(range(16))), clock=clock)
    meters = MeterCommands(engine, clock)
    return World(folder, engine, clock, users, staff, fc, payments, vending, meters, ids[:3])


_NOT_STATE = frozenset({"prepaid_audit", "prepaid_audit_head"})


def _state(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the audit log's (which records the refusals)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name not in _NOT_STATE:
                rows = conn.exec_driver_sql(f'SELECT * FROM "{name}"')
                out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def _files(folder: Path) -> set[str]:
    return {
        str(p.relative_to(folder)) for p in folder.rglob("*") if not p.name.startswith("feikong.db")
    }


# -- the actions ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One state-changing action: how to prepare it, take it, and see that it happened."""

    name: str
    action: Action
    act: Callable[[World, Operator, Any], Any]
    done: Callable[[World, Any, Any], bool]
    prepare: Callable[[World], Any] = lambda w: None
    roles: frozenset[Role] | None = None
    """Who may (default: ``PERMISSIONS[action]``), where the action is wider than one."""


def _request(w: World, customer: str = CUSTOMERS[0]) -> str:
    return w.fc.disconnection.request(customer, by=w.staff["operator"]).number


def _approved_l1(w: World) -> str:
    number = _request(w)
    w.fc.disconnection.approve_l1(number, by=w.staff["approver-l1"])
    return number


def _approved_paid(w: World) -> str:
    number = _approved_l1(w)
    w.fc.disconnection.approve_l2(number, by=w.staff["approver-l2"])
    w.payments.pay(CUSTOMERS[0], 5000, "pay-1")
    return number


def _rated_today(w: World) -> None:
    """Rate today's reading: every remote customer is 5.40 yuan in arrears."""
    rate_accounts(w.engine, w.accounts, w.clock.now().date(), clock=w.clock)


def _state_of(w: World, number: str) -> str:
    return w.fc.disconnection.get(number).state.value


def _work_order(w: World, assigned: bool = False, result: bool = False) -> str:
    order = w.fc.workorders.create(
        "other", summary="check the meter box", by=w.staff["operator"], customer_no=CUSTOMERS[0]
    )
    if assigned or result:
        w.fc.workorders.assign(order.number, "fault.handler", by=w.staff["operator"])
    if result:
        w.fc.workorders.record_result(
            order.number, outcome="done", result="box sealed", by=w.staff["fault-handler"]
        )
    return order.number


def _order_state(w: World, number: str) -> str:
    return w.fc.workorders.get(number).state.value


def _setting(w: World, name: str, level: str, key: str) -> str | None:
    with w.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT value FROM prepaid_setting WHERE name = :n AND level = :l AND key = :k"
            ),
            {"n": name, "l": level, "k": key},
        ).first()
    return None if row is None else str(row[0])


def _jobs(w: World, kind: str) -> int:
    with w.engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM headend_job WHERE kind = :k"), {"k": kind}
            ).scalar_one()
        )


def _sold(w: World, sale_id: str) -> bool:
    try:
        w.vending.get(sale_id)
    except Exception:
        return False
    return True


def _meter_case(command: Command) -> Case:
    def act(w: World, user: Operator, _: object) -> Any:
        return w.meters.send(user, command, METERS[0], reason="bench", supply_unit=None)

    return Case(f"meter.{command.value}", command.action, act, lambda w, _, r: len(r) >= 1)


CASES: list[Case] = [
    # -- operators (users admin)
    Case(
        "users.add",
        Action.MANAGE_USERS,
        lambda w, u, _: w.users.add(
            "newcomer", display_name="n", password=PASSWORD, roles=["operator"], by=u
        ),
        lambda w, _, r: w.users.find("newcomer") is not None,
    ),
    Case(
        "users.disable",
        Action.MANAGE_USERS,
        lambda w, u, _: w.users.disable(TARGET, by=u, reason="left"),
        lambda w, _, r: w.users.get(TARGET).disabled,
    ),
    Case(
        "users.enable",
        Action.MANAGE_USERS,
        lambda w, u, _: w.users.enable(TARGET, by=u),
        lambda w, _, r: not w.users.get(TARGET).disabled,
        prepare=lambda w: w.users.disable(TARGET, by=w.staff["admin"]),
    ),
    Case(
        "users.grant",
        Action.MANAGE_USERS,
        lambda w, u, _: w.users.grant(TARGET, Role.OPERATOR, by=u),
        lambda w, _, r: w.users.get(TARGET).has(Role.OPERATOR),
    ),
    Case(
        "users.revoke",
        Action.MANAGE_USERS,
        lambda w, u, _: w.users.revoke(TARGET, Role.OPERATOR, by=u),
        lambda w, _, r: not w.users.get(TARGET).has(Role.OPERATOR),
        prepare=lambda w: w.users.grant(TARGET, Role.OPERATOR, by=w.staff["admin"]),
    ),
    Case(
        "users.password",
        Action.MANAGE_USERS,
        lambda w, u, _: w.users.set_password(TARGET, "a-new-password-1", by=u),
        lambda w, _, r: w.users.authenticate(TARGET, "a-new-password-1").login == TARGET,
    ),
    # -- settings and power guarantee
    Case(
        "settings.set",
        Action.EDIT_SETTINGS,
        lambda w, u, _: w.fc.ctx.settings.set(
            "reminder_amount", "30.00", level="line", key="L1", user=u
        ),
        lambda w, _, r: r.changed and r.new == 3000,
    ),
    Case(
        "settings.unset",
        Action.EDIT_SETTINGS,
        lambda w, u, _: w.fc.ctx.settings.unset("reminder_amount", level="line", key="L1", user=u),
        lambda w, _, r: r.changed and r.old == 3000,
        prepare=lambda w: w.fc.ctx.settings.set(
            "reminder_amount", "30.00", level="line", key="L1", user=w.staff["admin"]
        ),
    ),
    Case(
        "settings.power_guarantee",
        Action.GUARANTEE,
        lambda w, u, _: w.fc.ctx.settings.set(
            "power_guarantee", "true", level="customer", key=CUSTOMERS[2], user=u
        ),
        lambda w, _, r: w.fc.guarantee.status(CUSTOMERS[2]).guaranteed,
    ),
    Case(
        "guarantee.sync",
        Action.GUARANTEE,
        lambda w, u, _: w.fc.guarantee.sync(by=u),
        lambda w, _, r: _jobs(w, "guarantee-on") == 1,
        prepare=lambda w: w.fc.ctx.settings.set_many(
            {"power_guarantee": "true", "guarantee_send_3ah": "true"},
            level="customer",
            key=CUSTOMERS[2],
            user=w.staff["admin"],
        ),
    ),
    # -- dunning and customer messages
    Case(
        "dunning.run",
        Action.CREATE_DUNNING,
        lambda w, u, _: run_dunning(
            w.engine, clock=w.clock, by=u, settings=w.fc.ctx.settings, auto=False
        ),
        lambda w, _, r: r.records >= 1,
        prepare=lambda w: _rated_today(w),
    ),
    Case(
        "sms.custom",
        Action.SEND_CUSTOM_SMS,
        lambda w, u, _: send_custom_sms(
            w.engine,
            "停电检修通知",
            by=u,
            clock=w.clock,
            selection=Selection.of(customers=[CUSTOMERS[0]]),
        ),
        lambda w, _, r: r.recipients >= 1,
    ),
    # -- disconnection (request, approvals, rejection, cancellation) and reconnection
    Case(
        "disconnection.request",
        Action.REQUEST_DISCONNECTION,
        lambda w, u, _: w.fc.disconnection.request(CUSTOMERS[0], by=u),
        lambda w, _, r: _state_of(w, r.number) == "requested",
    ),
    Case(
        "disconnection.select",
        Action.REQUEST_DISCONNECTION,
        lambda w, u, _: w.fc.disconnection.select(by=u),
        lambda w, _, r: len(r.requested) == 3,
        prepare=lambda w: _rated_today(w),
    ),
    Case(
        "disconnection.approve-l1",
        Action.APPROVE_L1,
        lambda w, u, n: w.fc.disconnection.approve_l1(n, by=u),
        lambda w, n, r: _state_of(w, n) == "approved-l1",
        prepare=_request,
    ),
    Case(
        "disconnection.approve-l2",
        Action.APPROVE_L2,
        lambda w, u, n: w.fc.disconnection.approve_l2(n, by=u),
        lambda w, n, r: _state_of(w, n) not in ("requested", "approved-l1"),
        prepare=_approved_l1,
    ),
    Case(
        "disconnection.reject",
        Action.APPROVE_L1,
        lambda w, u, n: w.fc.disconnection.reject(n, by=u, reason="paid at the counter"),
        lambda w, n, r: _state_of(w, n) == "rejected",
        prepare=_request,
    ),
    Case(
        "disconnection.cancel",
        Action.CANCEL_DISCONNECTION,
        lambda w, u, n: w.fc.disconnection.cancel(n, by=u, reason="a payment plan agreed"),
        lambda w, n, r: _state_of(w, n) == "cancelled",
        prepare=_request,
    ),
    Case(
        "reconnection.reconnect",
        Action.RECONNECT,
        lambda w, u, n: w.fc.reconnection.reconnect(CUSTOMERS[0], by=u, reason="paid"),
        lambda w, n, r: w.fc.reconnection.list(customer_no=CUSTOMERS[0]) != [],
        prepare=_approved_paid,
    ),
    # -- work orders
    Case(
        "workorders.create",
        Action.ASSIGN_WORK_ORDER,
        lambda w, u, _: w.fc.workorders.create(
            "other", summary="check the seal", by=u, customer_no=CUSTOMERS[1]
        ),
        lambda w, _, r: _order_state(w, r.number) == "open",
    ),
    Case(
        "workorders.assign",
        Action.ASSIGN_WORK_ORDER,
        lambda w, u, n: w.fc.workorders.assign(n, "fault.handler", by=u),
        lambda w, n, r: _order_state(w, n) == "assigned",
        prepare=_work_order,
    ),
    Case(
        "workorders.record",
        Action.RECORD_WORK_ORDER,
        lambda w, u, n: w.fc.workorders.record_result(
            n, outcome="done", result="meter box resealed", by=u
        ),
        lambda w, n, r: w.fc.workorders.get(n).result == "meter box resealed",
        prepare=lambda w: _work_order(w, assigned=True),
    ),
    Case(
        "workorders.close",
        Action.ASSIGN_WORK_ORDER,
        lambda w, u, n: w.fc.workorders.close(n, by=u, comment="checked"),
        lambda w, n, r: _order_state(w, n) == "closed",
        prepare=lambda w: _work_order(w, result=True),
        roles=PERMISSIONS[Action.ASSIGN_WORK_ORDER] | PERMISSIONS[Action.RECORD_WORK_ORDER],
    ),
    Case(
        "workorders.cancel",
        Action.ASSIGN_WORK_ORDER,
        lambda w, u, n: w.fc.workorders.cancel(n, by=u, reason="raised twice"),
        lambda w, n, r: _order_state(w, n) == "cancelled",
        prepare=_work_order,
    ),
    Case(
        "workorders.handler-phone",
        Action.ASSIGN_WORK_ORDER,
        lambda w, u, _: w.fc.ctx.set_handler_phone("fault.handler", "13800138000", by=u),
        lambda w, _, r: w.fc.ctx.handler_phone("fault.handler") == "13800138000",
    ),
    # -- vending (local fee control)
    Case(
        "vend.sell",
        Action.VEND,
        lambda w, u, _: w.vending.sell(LOCAL, 5000, "S-1", by=u, card_path=w.folder / "card.json"),
        lambda w, _, r: _sold(w, "S-1") and (w.folder / "card.json").exists(),
    ),
    Case(
        "vend.reissue",
        Action.VEND,
        lambda w, u, _: w.vending.reissue("S-0", by=u, card_path=w.folder / "again.json"),
        lambda w, _, r: (w.folder / "again.json").exists(),
        prepare=lambda w: w.vending.sell(LOCAL, 2000, "S-0", by=w.staff["customer-service"]),
    ),
    # -- meter commands from the console (queued head-end jobs)
    *(_meter_case(command) for command in Command),
]

SYSTEM_ACTIONS = {
    "rating (feikong rate, timely rating)": "the platform rates every account; no operator",
    "reminders (auto)": "system:reminders; the manual run needs create-dunning (CLI)",
    "monthly bills, tier reminders": "system:service after rating; nothing an operator decides",
    "payments, refunds (feikong cis)": "the CIS (营销系统) side: its own operators and records",
    "selection, notice, trips on the due time": "system:workflows after two approvals",
    "anomaly orders (open)": "system:anomalies; record/close are work-order steps above",
    "head-end jobs (feikong headend command) on a bench database": "no operators there; "
    "on a database with operators it needs --user and the role (CLI cases below)",
    "tariffs": "TOML files read by rating; no command changes a stored tariff",
    "feikong generate": "a synthetic population for benches, into an empty database",
    "messages send-queued": "system: delivers what was queued; queueing needs send-custom-sms",
}


def test_every_action_that_changes_something_has_a_case() -> None:
    """A new Action without a case here fails: write its case."""
    read_only = {Action.VIEW, Action.VIEW_AUDIT}
    covered = {c.action for c in CASES}
    assert set(Action) - read_only - covered == set()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_refused_without_the_role_and_allowed_with_it(tmp_path: Path, case: Case) -> None:
    w = _world(tmp_path)
    allowed = case.roles if case.roles is not None else PERMISSIONS[case.action]
    context = case.prepare(w)
    before, files = _state(w.engine), _files(tmp_path)
    for role in Role:
        if role in allowed:
            continue
        user = w.who(role)
        last = w.audit.query(limit=1, newest_first=True)[0].id
        with pytest.raises(PermissionDeniedError) as refused:
            case.act(w, user, context)
        message = str(refused.value)
        assert message.startswith(f"{user.login} ({role.value}) may not "), message
        assert "that needs the role" in message and "an admin can grant it" in message
        assert _state(w.engine) == before, f"{case.name} by {role.value} changed something"
        assert _files(tmp_path) == files
        recorded = [e for e in w.audit.query() if e.id > last]
        assert [(e.actor, e.action.endswith(".refused")) for e in recorded] == [
            (user.login, True)
        ], f"{case.name} refused for {role.value} but recorded {[e.action for e in recorded]}"
        assert recorded[0].details["reason"] == message
    doer = w.who(sorted(allowed)[0])
    last = w.audit.query(limit=1, newest_first=True)[0].id
    result = case.act(w, doer, context)
    assert case.done(w, context, result), f"{case.name} by {doer.login} did not happen"
    done = [e for e in w.audit.query() if e.id > last]
    assert done and any(e.actor == doer.login and not e.action.endswith(".refused") for e in done)


def test_a_selection_by_an_operator_of_another_unit_raises_no_request(tmp_path: Path) -> None:
    """``select`` raises requests for every customer in arrears: each one is checked
    against the operator's supply unit (as ``request`` checks one)."""
    w = _world(tmp_path)
    _rated_today(w)
    other = w.users.add(
        "op.elsewhere",
        display_name="o",
        password=PASSWORD,
        roles=[Role.OPERATOR],
        supply_unit="9999",
        by=w.staff["admin"],
    )
    report = w.fc.disconnection.select(by=other)
    assert report.requested == [] and len(report.refused) == 3
    assert all("works for supply unit 9999" in why for _, why in report.refused)
    assert w.fc.disconnection.list() == []


# -- the command line ----------------------------------------------------------------------


CLI_CASES = [
    (
        "settings set",
        ["settings", "set", "reminder_amount", "30.00", "--level", "line", "--key", "L1"],
        "auditor",
    ),
    ("users grant", ["users", "grant", TARGET, "operator"], "operator"),
    ("disconnect request", ["disconnect", "request", CUSTOMERS[0]], "customer.service"),
    ("vend sell", ["vend", "sell", LOCAL, "50.00", "--sale-id", "S-9"], "auditor"),
    ("reminders run --manual", ["reminders", "run", "--manual"], "fault.handler"),
    ("headend command trip", ["headend", "command", METERS[0], "trip"], "customer.service"),
    ("headend command guarantee", ["headend", "command", METERS[0], "guarantee"], "auditor"),
    ("headend command close", ["headend", "command", METERS[0], "close"], "auditor"),
]


@pytest.mark.parametrize(
    ("args", "login"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES]
)
def test_the_command_line_refuses_without_the_role(
    tmp_path: Path, args: list[str], login: str
) -> None:
    w = _world(tmp_path)
    before = _state(w.engine)
    last = w.audit.query(limit=1, newest_first=True)[0].id
    result = runner.invoke(
        app,
        [*args, "--user", login, "--db", url_of(w.engine)],
        env={"FEIKONG_PASSWORD": PASSWORD},
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{login} (" in result.output and "may not" in result.output
    after = _state(w.engine)
    after.pop("prepaid_operator", None)  # the login itself is stamped (last_login_at)
    before.pop("prepaid_operator", None)
    assert after == before
    actions = [e.action for e in w.audit.query() if e.id > last]
    assert actions[0] == "login" and actions[1].endswith(".refused"), actions


def test_queueing_a_custom_sms_on_the_command_line_needs_the_role(tmp_path: Path) -> None:
    w = _world(tmp_path)
    recipients = tmp_path / "to.csv"
    recipients.write_text(
        f"customer_no,name,phone,address,area\n{CUSTOMERS[0]},户1,13800138001,幸福路1号,A1\n",
        encoding="utf-8",
    )
    before = _state(w.engine)
    result = runner.invoke(
        app,
        [
            *("messages", "enqueue", "custom", "--to", str(recipients), "--episode", "e1"),
            *("--set", "text=电费优惠，请点击链接缴费", "--db", url_of(w.engine)),
        ],
    )
    assert result.exit_code != 0, result.output
    assert _state(w.engine) == before


def _queued_jobs(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            (str(kind), str(address))
            for kind, address in conn.execute(
                sa.text("SELECT kind, meter_address FROM headend_job")
            )
        ]


def test_a_head_end_command_on_a_database_with_operators_needs_a_login(tmp_path: Path) -> None:
    """`feikong headend command` on the platform's database: a trip needs the operator's
    login and role, and is audited with its job; without --user nothing is queued."""
    w = _world(tmp_path)
    db = ["--db", url_of(w.engine)]
    before = _queued_jobs(w.engine)
    anonymous = runner.invoke(app, ["headend", "command", METERS[0], "trip", *db])
    assert anonymous.exit_code == 2, anonymous.output
    assert "this database has operators: give your login with --user" in " ".join(
        anonymous.output.split()
    )
    assert _queued_jobs(w.engine) == before

    last = w.audit.query(limit=1, newest_first=True)[0].id
    done = runner.invoke(
        app,
        ["headend", "command", METERS[0], "trip", "--reason", "bench", "--user", "operator", *db],
        env={"FEIKONG_PASSWORD": PASSWORD},
    )
    assert done.exit_code == 0, done.output
    assert ("trip", METERS[0]) in _queued_jobs(w.engine)
    entries = [e for e in w.audit.query() if e.id > last]
    assert [e.action for e in entries] == ["login", "meter.trip"]
    assert entries[1].actor == "operator" and entries[1].target == f"meter:{METERS[0]}"
    assert entries[1].details["via"] == "feikong headend command"
