"""Operators, passwords, roles and permission checks; every change and login is audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from prepaid.audit import AuditLog
from prepaid.users import (
    DEFAULT_WORK_FACTOR,
    PERMISSIONS,
    AccountDisabledError,
    Action,
    InvalidUserError,
    Operator,
    PermissionDeniedError,
    Role,
    UnknownUserError,
    UserExistsError,
    Users,
    WrongPasswordError,
    hash_password,
    may,
    needs_rehash,
    parse_role,
    require,
    verify_password,
)
from protocol.clock import SteppedClock

from .security_helpers import (
    FAST_WORK_FACTOR,
    PASSWORD,
    START,
    add_staff,
    cli_app,
    fresh_engine,
    make_users,
    url_of,
)

runner = CliRunner()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return fresh_engine(tmp_path)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


@pytest.fixture
def users(engine: Engine, clock: SteppedClock) -> Users:
    return make_users(engine, clock)


@pytest.fixture
def staff(users: Users) -> dict[str, Operator]:
    return add_staff(users)


def audit(users: Users) -> list[tuple[str, str, str, dict[str, object]]]:
    return [(e.actor, e.action, e.target, dict(e.details)) for e in users.audit.query()]


# -- passwords -----------------------------------------------------------------------------


def test_password_hash_is_salted_scrypt_with_the_default_cost() -> None:
    first = hash_password("s3cret-enough")
    second = hash_password("s3cret-enough")
    assert first.startswith(f"scrypt${DEFAULT_WORK_FACTOR}$8$1$") and DEFAULT_WORK_FACTOR >= 2**17
    assert first != second  # a fresh salt each time
    assert verify_password("s3cret-enough", first) and verify_password("s3cret-enough", second)
    assert not verify_password("s3cret-enougH", first)
    assert not needs_rehash(first)
    assert needs_rehash(hash_password("x" * 8, work_factor=FAST_WORK_FACTOR))


def test_a_malformed_hash_never_matches() -> None:
    assert not verify_password("anything", "md5$abc")
    assert not verify_password("anything", "")
    with pytest.raises(InvalidUserError, match="power of 2"):
        hash_password("x" * 8, work_factor=1000)


# -- adding operators ----------------------------------------------------------------------


def test_the_first_operator_bootstraps_as_admin(users: Users) -> None:
    with pytest.raises(InvalidUserError, match="must be an admin"):
        users.add("zhang", display_name="张", password=PASSWORD, roles=["operator"], by=None)
    admin = users.add("zhang", display_name="张", password=PASSWORD, roles=["admin"], by=None)
    assert admin.roles == {Role.ADMIN} and admin.supply_unit is None
    with pytest.raises(PermissionDeniedError, match="needs an admin"):
        users.add("li", display_name="李", password=PASSWORD, roles=["admin"], by=None)
    assert [a[:3] for a in audit(users)] == [
        ("anonymous", "users.add.refused", "operator:zhang"),
        ("zhang", "users.add", "operator:zhang"),
        ("anonymous", "users.add.refused", "operator:li"),
    ]


def test_add_with_several_roles_and_a_unit(users: Users, staff: dict[str, Operator]) -> None:
    wang = users.add(
        "wang",
        display_name="王",
        password=PASSWORD,
        roles=["operator", "approver_l1"],
        supply_unit="3301",
        by=staff["admin"],
    )
    assert wang.roles == {Role.OPERATOR, Role.APPROVER_L1} and wang.supply_unit == "3301"
    assert users.get("wang") == wang
    assert [o.login for o in users.list()] == sorted([*(o.login for o in staff.values()), "wang"])
    assert audit(users)[-1] == (
        "root",
        "users.add",
        "operator:wang",
        {
            "bootstrap": False,
            "display_name": "王",
            "roles": ["approver-l1", "operator"],
            "supply_unit": "3301",
        },
    )


@pytest.mark.parametrize(
    ("login", "password", "roles", "error", "message"),
    [
        ("Zhang Wei", PASSWORD, ["operator"], InvalidUserError, "expected 2..32 characters"),
        ("wei", "short", ["operator"], InvalidUserError, "at least 8 characters"),
        ("weiweiwei", "weiweiwei", ["operator"], InvalidUserError, "must not be the login"),
        ("wei", PASSWORD, [], InvalidUserError, "at least one role"),
        ("wei", PASSWORD, ["boss"], InvalidUserError, "unknown role 'boss': the roles are"),
        ("operator", PASSWORD, ["operator"], UserExistsError, "exists already"),
    ],
)
def test_bad_operators_are_refused(
    users: Users,
    staff: dict[str, Operator],
    login: str,
    password: str,
    roles: list[str],
    error: type[Exception],
    message: str,
) -> None:
    before = len(audit(users))
    with pytest.raises(error, match=message) as caught:
        users.add(login, display_name="x", password=password, roles=roles, by=staff["admin"])
    assert audit(users)[before:] == [
        ("root", "users.add.refused", f"operator:{login}", {"reason": str(caught.value)})
    ]
    assert PASSWORD not in str(caught.value)


def test_only_an_admin_adds(users: Users, staff: dict[str, Operator]) -> None:
    with pytest.raises(PermissionDeniedError, match="manage-users"):
        users.add(
            "wei", display_name="x", password=PASSWORD, roles=["operator"], by=staff["operator"]
        )


# -- logging in ----------------------------------------------------------------------------


def test_authenticate_and_its_refusals_are_audited(
    users: Users, staff: dict[str, Operator], clock: SteppedClock
) -> None:
    operator = users.authenticate("operator", PASSWORD)
    assert operator.roles == {Role.OPERATOR} and operator.last_login_at == START
    with pytest.raises(UnknownUserError, match="no operator 'nobody'"):
        users.authenticate("nobody", PASSWORD)
    with pytest.raises(WrongPasswordError, match="wrong password for operator"):
        users.authenticate("operator", PASSWORD + "!")
    users.disable("operator", by=staff["admin"], reason="left the company")
    with pytest.raises(AccountDisabledError, match="operator is disabled"):
        users.authenticate("operator", PASSWORD)
    logins = [a for a in audit(users) if a[1].startswith("login")]
    assert logins == [
        ("operator", "login", "operator:operator", {}),
        ("nobody", "login.refused", "operator:nobody", {"reason": "unknown-user"}),
        ("operator", "login.refused", "operator:operator", {"reason": "wrong-password"}),
        ("operator", "login.refused", "operator:operator", {"reason": "disabled"}),
    ]


def test_a_weaker_hash_is_upgraded_at_login(engine: Engine, clock: SteppedClock) -> None:
    weak = make_users(engine, clock)
    weak.add("root", display_name="r", password=PASSWORD, roles=["admin"], by=None)
    stronger = Users(engine, clock=clock, work_factor=2 * FAST_WORK_FACTOR)
    stronger.authenticate("root", PASSWORD)
    assert audit(stronger)[-1][3] == {"rehashed": True}
    stronger.authenticate("root", PASSWORD)
    assert audit(stronger)[-1][3] == {}


# -- roles and permissions -----------------------------------------------------------------


def test_every_action_has_roles_and_every_role_can_view() -> None:
    assert set(PERMISSIONS) == set(Action)
    assert all(PERMISSIONS[a] for a in Action)
    assert PERMISSIONS[Action.VIEW] == set(Role)


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (
            Role.OPERATOR,
            {
                Action.VIEW,
                Action.READ_METER,
                Action.EDIT_SETTINGS,
                Action.GUARANTEE,
                Action.CREATE_DUNNING,
                Action.REQUEST_DISCONNECTION,
                Action.CANCEL_DISCONNECTION,
                Action.TRIP,
                Action.PERMIT_CLOSE,
                Action.RECONNECT,
                Action.ASSIGN_WORK_ORDER,
                Action.VEND,
            },
        ),
        (Role.APPROVER_L1, {Action.VIEW, Action.APPROVE_L1, Action.CANCEL_DISCONNECTION}),
        (Role.APPROVER_L2, {Action.VIEW, Action.APPROVE_L2, Action.CANCEL_DISCONNECTION}),
        (
            Role.FAULT_HANDLER,
            {Action.VIEW, Action.READ_METER, Action.PERMIT_CLOSE, Action.RECORD_WORK_ORDER},
        ),
        (
            Role.CUSTOMER_SERVICE,
            {
                Action.VIEW,
                Action.READ_METER,
                Action.CREATE_DUNNING,
                Action.PERMIT_CLOSE,
                Action.RECONNECT,
                Action.SEND_CUSTOM_SMS,
                Action.VEND,
            },
        ),
        (
            Role.ADMIN,
            {
                Action.VIEW,
                Action.READ_METER,
                Action.EDIT_SETTINGS,
                Action.GUARANTEE,
                Action.MANAGE_USERS,
                Action.VIEW_AUDIT,
            },
        ),
        (Role.AUDITOR, {Action.VIEW, Action.VIEW_AUDIT}),
    ],
)
def test_what_each_role_may_do(role: Role, allowed: set[Action]) -> None:
    user = Operator("someone", "x", frozenset({role}))
    assert {a for a in Action if may(user, a)} == allowed


def test_require_says_what_is_missing() -> None:
    admin = Operator("root", "r", frozenset({Role.ADMIN}))
    with pytest.raises(PermissionDeniedError) as caught:
        require(admin, "approve-l1")
    assert str(caught.value) == (
        "root (admin) may not approve-l1: that needs the role approver-l1; an admin can "
        "grant it (feikong users grant root approver-l1)"
    )
    with pytest.raises(PermissionDeniedError, match="trip"):
        require(admin, Action.TRIP)  # separation of duties: admin does not trip


def test_several_roles_add_up_and_a_disabled_operator_may_nothing() -> None:
    both = Operator("wang", "w", frozenset({Role.OPERATOR, Role.APPROVER_L1}))
    require(both, Action.REQUEST_DISCONNECTION)
    require(both, Action.APPROVE_L1)
    assert not may(both, Action.APPROVE_L2)
    off = Operator("wang", "w", frozenset(Role), disabled=True)
    assert not any(may(off, a) for a in Action)
    with pytest.raises(PermissionDeniedError, match="disabled"):
        require(off, Action.VIEW)


def test_supply_unit_scope() -> None:
    local = Operator("li", "l", frozenset({Role.OPERATOR}), supply_unit="3301")
    everywhere = Operator("wu", "w", frozenset({Role.OPERATOR}))
    require(local, Action.TRIP, supply_unit="3301")
    require(local, Action.TRIP)  # no unit named: nothing to check
    with pytest.raises(PermissionDeniedError, match="works for supply unit 3301 and may not trip"):
        require(local, Action.TRIP, supply_unit="3302")
    require(everywhere, Action.TRIP, supply_unit="3302")


def test_unknown_names() -> None:
    assert parse_role(" Approver_L2 ") is Role.APPROVER_L2
    with pytest.raises(Exception, match="unknown action 'fly'"):
        may(Operator("a", "a", frozenset({Role.ADMIN})), "fly")


# -- changing operators --------------------------------------------------------------------


def test_grant_revoke_disable_enable_are_audited(users: Users, staff: dict[str, Operator]) -> None:
    admin = staff["admin"]
    assert users.grant("operator", "approver-l2", by=admin).roles == {
        Role.OPERATOR,
        Role.APPROVER_L2,
    }
    users.grant("operator", "approver-l2", by=admin)  # no change, no entry
    assert users.revoke("operator", Role.OPERATOR, by=admin).roles == {Role.APPROVER_L2}
    with pytest.raises(InvalidUserError, match="only role"):
        users.revoke("operator", Role.APPROVER_L2, by=admin)
    assert users.disable("operator", by=admin, reason="holiday").disabled
    assert not users.enable("operator", by=admin).disabled
    changes = [a[1:] for a in audit(users) if a[2] == "operator:operator"][1:]
    assert changes == [
        ("users.grant", "operator:operator", {"role": "approver-l2"}),
        ("users.revoke", "operator:operator", {"role": "operator"}),
        (
            "users.revoke.refused",
            "operator:operator",
            {
                "reason": "approver-l2 is the only role of operator; grant another first, or "
                "disable operator"
            },
        ),
        ("users.disable", "operator:operator", {"reason": "holiday"}),
        ("users.enable", "operator:operator", {}),
    ]


def test_the_last_admin_stays(users: Users, staff: dict[str, Operator]) -> None:
    admin = staff["admin"]
    with pytest.raises(PermissionDeniedError, match="last enabled admin"):
        users.disable("root", by=admin)
    users.grant("auditor", "admin", by=admin)
    assert users.disable("root", by=admin).disabled
    with pytest.raises(PermissionDeniedError, match="disabled"):
        users.grant("operator", "admin", by=users.get("root"))


def test_only_admins_change_others(users: Users, staff: dict[str, Operator]) -> None:
    for change in (
        lambda: users.grant("operator", "admin", by=staff["operator"]),
        lambda: users.disable("auditor", by=staff["auditor"]),
        lambda: users.set_password("auditor", "a-new-password", by=staff["operator"]),
    ):
        with pytest.raises(PermissionDeniedError):
            change()
    with pytest.raises(UnknownUserError):
        users.grant("nobody", "admin", by=staff["admin"])


def test_passwords_change_by_self_or_admin(users: Users, staff: dict[str, Operator]) -> None:
    users.set_password("operator", "my own new one", by=staff["operator"])
    assert users.authenticate("operator", "my own new one").login == "operator"
    users.set_password("operator", "reset by admin", by=staff["admin"])
    with pytest.raises(WrongPasswordError):
        users.authenticate("operator", "my own new one")
    assert users.authenticate("operator", "reset by admin")
    with pytest.raises(InvalidUserError, match="too short"):
        users.set_password("operator", "short", by=staff["admin"])


# -- CLI -----------------------------------------------------------------------------------


def test_cli_bootstrap_add_list_grant_disable(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = cli_app()
    db = ["--db", url_of(engine)]
    monkeypatch.setenv("FEIKONG_NEW_PASSWORD", PASSWORD)
    result = runner.invoke(
        app, ["users", "add", "root", "--name", "管理员", "--role", "admin", *db]
    )
    assert result.exit_code == 0, result.output
    assert "added root (管理员): admin; every unit; enabled" in result.output
    # from now on the admin logs in (password from the environment or a prompt)
    result = runner.invoke(
        app, ["users", "add", "li", "--name", "李", "--role", "operator", "--unit", "3301", *db]
    )
    assert result.exit_code == 2 and "--user" in result.output
    monkeypatch.setenv("FEIKONG_PASSWORD", "wrong password")
    result = runner.invoke(
        app, ["users", "add", "li", "--name", "李", "--role", "operator", "--user", "root", *db]
    )
    assert result.exit_code == 1 and "login refused: wrong password for root" in result.output
    monkeypatch.delenv("FEIKONG_PASSWORD")
    args = ["users", "add", "li", "--name", "李", "--role", "operator", "--role", "approver-l1"]
    result = runner.invoke(
        app, [*args, "--unit", "3301", "--user", "root", *db], input=f"{PASSWORD}\n"
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["users", "grant", "li", "boss", "--user", "root", *db], input=f"{PASSWORD}\n"
    )
    assert result.exit_code == 2 and "unknown role 'boss'" in result.output
    monkeypatch.setenv("FEIKONG_PASSWORD", PASSWORD)
    result = runner.invoke(
        app, ["users", "disable", "li", "--reason", "moved", "--user", "root", *db]
    )
    assert result.exit_code == 0 and "disabled li" in result.output
    result = runner.invoke(app, ["users", "grant", "li", "auditor", "--user", "li", *db])
    assert result.exit_code == 1 and "li is disabled" in result.output
    result = runner.invoke(app, ["users", "list", "--json", *db])
    listed = {u["login"]: u for u in json.loads(result.output)}
    assert listed["li"]["roles"] == ["operator", "approver-l1"]
    assert listed["li"]["supply_unit"] == "3301" and listed["li"]["disabled"] is True
    result = runner.invoke(app, ["users", "list", *db])
    assert "li" in result.output and "disabled" in result.output
    actions = [e.action for e in AuditLog(engine, SteppedClock()).query()]
    assert actions == [
        "users.add",
        "login.refused",
        "login",
        "users.add",
        "login",
        "users.grant.refused",  # unknown role 'boss'
        "login",
        "users.disable",
        "login.refused",
    ]
