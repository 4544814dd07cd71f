"""Operators (操作员), roles (角色) and permissions (权限): who may do what, for which supply unit.

An operator has a login name, a display name, a password (scrypt with a random
salt, compared in constant time), a supply-unit scope (``None``: every unit) and one
or more :class:`Role`. :data:`PERMISSIONS` says which roles may take each
:class:`Action`; :func:`require` checks it (and the supply unit) before anything
changes, and the console uses :func:`may` to hide what a user may not do.

Separation of duties: ``admin`` manages operators and settings but does not approve,
trip or close work orders; two approvals of one disconnection come from two people
(the workflows check that the requester and the level-1 approver do not approve
again).

Every change (add, disable, enable, grant, revoke, password) and every login,
accepted or refused, is written to the audit log in the same transaction.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Concatenate, Final, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from protocol.clock import Clock

from .audit import AuditLog

__all__ = [
    "DEFAULT_WORK_FACTOR",
    "PERMISSIONS",
    "AccountDisabledError",
    "Action",
    "AuthenticationError",
    "InvalidUserError",
    "Operator",
    "PermissionDeniedError",
    "Role",
    "UnknownUserError",
    "UserError",
    "UserExistsError",
    "Users",
    "WrongPasswordError",
    "hash_password",
    "may",
    "needs_rehash",
    "operator_role_table",
    "operator_table",
    "parse_action",
    "parse_role",
    "require",
    "verify_password",
]

log = logging.getLogger(__name__)

DEFAULT_WORK_FACTOR: Final = 2**17
"""scrypt's cost ``n`` for new hashes: 2^17 with r = 8, p = 1 (128 MiB, ~0.5 s on one core),
the minimum OWASP's password storage guidance gives for scrypt. Stored in each hash, so it
can be raised: a hash made with less is replaced at the operator's next login."""
_R: Final = 8
_P: Final = 1
_SALT_BYTES: Final = 16
_KEY_BYTES: Final = 32
MIN_PASSWORD: Final = 8
_LOGIN = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")


# -- errors ---------------------------------------------------------------------------


class UserError(Exception):
    """Base class of every error raised on purpose by :mod:`prepaid.users`."""


class InvalidUserError(UserError, ValueError):
    """Operator data that cannot be stored (login, name, password, role, unit)."""


class UserExistsError(InvalidUserError):
    """An operator with that login exists already."""


class AuthenticationError(UserError):
    """A login refused; ``reason`` is ``unknown-user``, ``wrong-password`` or ``disabled``."""

    reason = "refused"


class UnknownUserError(AuthenticationError, LookupError):
    reason = "unknown-user"


class WrongPasswordError(AuthenticationError):
    reason = "wrong-password"


class AccountDisabledError(AuthenticationError):
    reason = "disabled"


class PermissionDeniedError(UserError, PermissionError):
    """An operator who may not take an action (role, supply unit, or disabled)."""


# -- roles and actions ----------------------------------------------------------------


class Role(enum.StrEnum):
    """What an operator is for; an operator may hold several roles."""

    OPERATOR = "operator"
    """操作员: runs fee control: dunning, disconnection requests, trips, settings."""
    APPROVER_L1 = "approver-l1"
    """一级审批: approves disconnection requests first."""
    APPROVER_L2 = "approver-l2"
    """二级审批: approves disconnection requests second."""
    FAULT_HANDLER = "fault-handler"
    """故障处理人员 (field technician): on-site disconnection / reconnection, anomalies."""
    CUSTOMER_SERVICE = "customer-service"
    """客服: messages to customers, custom SMS, vending, reconnection on request."""
    ADMIN = "admin"
    """系统管理员: operators, roles and settings."""
    AUDITOR = "auditor"
    """审计员: reads and verifies the audit log; changes nothing."""


class Action(enum.StrEnum):
    """Something an operator does; :data:`PERMISSIONS` says which roles may."""

    VIEW = "view"
    READ_METER = "read-meter"
    EDIT_SETTINGS = "edit-settings"
    GUARANTEE = "guarantee"
    CREATE_DUNNING = "create-dunning"
    REQUEST_DISCONNECTION = "request-disconnection"
    APPROVE_L1 = "approve-l1"
    APPROVE_L2 = "approve-l2"
    CANCEL_DISCONNECTION = "cancel-disconnection"
    TRIP = "trip"
    PERMIT_CLOSE = "permit-close"
    RECONNECT = "reconnect"
    ASSIGN_WORK_ORDER = "assign-work-order"
    RECORD_WORK_ORDER = "record-work-order"
    SEND_CUSTOM_SMS = "send-custom-sms"
    VEND = "vend"
    MANAGE_USERS = "manage-users"
    VIEW_AUDIT = "view-audit"


_R_ = Role
PERMISSIONS: Final[Mapping[Action, frozenset[Role]]] = {
    Action.VIEW: frozenset(Role),
    Action.READ_METER: frozenset(
        {_R_.OPERATOR, _R_.FAULT_HANDLER, _R_.CUSTOMER_SERVICE, _R_.ADMIN}
    ),
    Action.EDIT_SETTINGS: frozenset({_R_.OPERATOR, _R_.ADMIN}),
    Action.GUARANTEE: frozenset({_R_.OPERATOR, _R_.ADMIN}),
    Action.CREATE_DUNNING: frozenset({_R_.OPERATOR, _R_.CUSTOMER_SERVICE}),
    Action.REQUEST_DISCONNECTION: frozenset({_R_.OPERATOR}),
    Action.APPROVE_L1: frozenset({_R_.APPROVER_L1}),
    Action.APPROVE_L2: frozenset({_R_.APPROVER_L2}),
    Action.CANCEL_DISCONNECTION: frozenset({_R_.OPERATOR, _R_.APPROVER_L1, _R_.APPROVER_L2}),
    Action.TRIP: frozenset({_R_.OPERATOR}),
    Action.PERMIT_CLOSE: frozenset({_R_.OPERATOR, _R_.FAULT_HANDLER, _R_.CUSTOMER_SERVICE}),
    Action.RECONNECT: frozenset({_R_.OPERATOR, _R_.CUSTOMER_SERVICE}),
    Action.ASSIGN_WORK_ORDER: frozenset({_R_.OPERATOR}),
    Action.RECORD_WORK_ORDER: frozenset({_R_.FAULT_HANDLER}),
    Action.SEND_CUSTOM_SMS: frozenset({_R_.CUSTOMER_SERVICE}),
    Action.VEND: frozenset({_R_.CUSTOMER_SERVICE, _R_.OPERATOR}),
    Action.MANAGE_USERS: frozenset({_R_.ADMIN}),
    Action.VIEW_AUDIT: frozenset({_R_.ADMIN, _R_.AUDITOR}),
}
"""Action → the roles that may take it (any one of them suffices)."""


def parse_role(text: str) -> Role:
    """``"approver-l1"`` (or ``approver_l1``) → :class:`Role`; the roles are listed if not."""
    try:
        return Role(text.strip().lower().replace("_", "-"))
    except ValueError:
        raise InvalidUserError(
            f"unknown role {text!r}: the roles are {', '.join(r.value for r in Role)}"
        ) from None


def parse_action(text: str) -> Action:
    try:
        return Action(text.strip().lower().replace("_", "-"))
    except ValueError:
        raise UserError(
            f"unknown action {text!r}: the actions are {', '.join(a.value for a in Action)}"
        ) from None


# -- the operator ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operator:
    """An operator (操作员) as stored: no password, only whether it is enabled."""

    login: str
    display_name: str
    roles: frozenset[Role]
    supply_unit: str | None = None
    """The supply unit (供电单位) code the operator works for; ``None``: every unit."""
    disabled: bool = False
    created_at: datetime | None = field(default=None, compare=False)
    last_login_at: datetime | None = field(default=None, compare=False)

    def has(self, role: Role) -> bool:
        return role in self.roles

    @property
    def role_text(self) -> str:
        return ", ".join(r.value for r in Role if r in self.roles) or "no role"

    def to_dict(self) -> dict[str, object]:
        return {
            "login": self.login,
            "display_name": self.display_name,
            "roles": [r.value for r in Role if r in self.roles],
            "supply_unit": self.supply_unit,
            "disabled": self.disabled,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None,
        }


def _refusal(user: Operator, action: Action, supply_unit: str | None) -> str | None:
    if user.disabled:
        return f"{user.login} is disabled and may not {action.value}; an admin can enable it"
    allowed = PERMISSIONS[action]
    if not user.roles & allowed:
        need = " or ".join(r.value for r in Role if r in allowed)
        return (
            f"{user.login} ({user.role_text}) may not {action.value}: that needs the role "
            f"{need}; an admin can grant it (feikong users grant {user.login} "
            f"{next(r.value for r in Role if r in allowed)})"
        )
    if supply_unit is not None and user.supply_unit is not None and supply_unit != user.supply_unit:
        return (
            f"{user.login} works for supply unit {user.supply_unit} and may not "
            f"{action.value} for supply unit {supply_unit}"
        )
    return None


def may(user: Operator, action: Action | str, *, supply_unit: str | None = None) -> bool:
    """Whether ``user`` may take ``action`` (for supply unit ``supply_unit``, if given)."""
    act = action if isinstance(action, Action) else parse_action(action)
    return _refusal(user, act, supply_unit) is None


def require(user: Operator, action: Action | str, *, supply_unit: str | None = None) -> None:
    """Raise :class:`PermissionDeniedError` (saying what is missing) unless ``user`` may."""
    act = action if isinstance(action, Action) else parse_action(action)
    problem = _refusal(user, act, supply_unit)
    if problem is not None:
        raise PermissionDeniedError(problem)


# -- passwords ------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=_KEY_BYTES,
        maxmem=2 * 128 * n * r * p + (1 << 20),
    )


def hash_password(password: str, *, work_factor: int = DEFAULT_WORK_FACTOR) -> str:
    """``scrypt$n$r$p$salt$key`` (base64) of ``password`` with a fresh random salt."""
    if work_factor < 2**10 or work_factor & (work_factor - 1):
        raise InvalidUserError(f"scrypt work factor {work_factor}: expected a power of 2 ≥ 1024")
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password, salt, work_factor, _R, _P)
    return f"scrypt${work_factor}${_R}${_P}${_b64(salt)}${_b64(key)}"


def _parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt, key = stored.split("$")
    if scheme != "scrypt":
        raise ValueError(f"unknown password scheme {scheme!r}")
    return int(n), int(r), int(p), _unb64(salt), _unb64(key)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time comparison)."""
    try:
        n, r, p, salt, key = _parse_hash(stored)
    except (ValueError, TypeError):
        log.error("a stored password hash is malformed; reset that operator's password")
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), key)


def needs_rehash(stored: str, *, work_factor: int = DEFAULT_WORK_FACTOR) -> bool:
    """True when ``stored`` was made with a lower cost than ``work_factor``."""
    try:
        n, r, p, _, _ = _parse_hash(stored)
    except (ValueError, TypeError):
        return True
    return n < work_factor or r != _R or p != _P


def _check_password(password: str, login: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidUserError(
            f"the password for {login} is too short: use at least {MIN_PASSWORD} characters"
        )
    if password.strip().lower() == login.lower():
        raise InvalidUserError(f"the password for {login} must not be the login name")


# -- tables ---------------------------------------------------------------------------

metadata = SQLModel.metadata

operator_table = sa.Table(
    "prepaid_operator",
    metadata,
    sa.Column("login", sa.String(32), primary_key=True),
    sa.Column("display_name", sa.String(64), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("supply_unit", sa.String(16), nullable=True),
    sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("last_login_at", sa.DateTime(), nullable=True),
)

operator_role_table = sa.Table(
    "prepaid_operator_role",
    metadata,
    sa.Column(
        "login",
        sa.String(32),
        sa.ForeignKey("prepaid_operator.login", name="fk_prepaid_operator_role_login"),
        primary_key=True,
    ),
    sa.Column("role", sa.String(24), primary_key=True),
    sa.CheckConstraint(
        "role IN (" + ", ".join(f"'{r.value}'" for r in Role) + ")",
        name="ck_prepaid_operator_role_role",
    ),
)


# -- the repository -------------------------------------------------------------------

_Params = ParamSpec("_Params")
_Result = TypeVar("_Result")


def _records_refusal(
    action: str,
) -> Callable[
    [Callable[Concatenate[Users, str, _Params], _Result]],
    Callable[Concatenate[Users, str, _Params], _Result],
]:
    """Write ``<action>.refused`` (who, whom, why) to the audit log when the change is refused."""

    def wrap(
        method: Callable[Concatenate[Users, str, _Params], _Result],
    ) -> Callable[Concatenate[Users, str, _Params], _Result]:
        @functools.wraps(method)
        def checked(
            self: Users, login: str, /, *args: _Params.args, **kwargs: _Params.kwargs
        ) -> _Result:
            try:
                return method(self, login, *args, **kwargs)
            except UserError as exc:
                by = kwargs.get("by")
                actor = by.login if isinstance(by, Operator) else "anonymous"
                target = f"operator:{login.strip()[:40] or '?'}"
                log.info("%s refused for %s: %s", action, actor, exc)
                try:
                    self.audit.record(actor, f"{action}.refused", target, {"reason": str(exc)})
                except Exception:  # never hide the refusal behind an audit problem
                    log.exception("could not audit a refused %s", action)
                raise

        return checked

    return wrap


class Users:
    """The operators of a prepaid database: add, change, authenticate; every change audited."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        audit: AuditLog | None = None,
        work_factor: int = DEFAULT_WORK_FACTOR,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.audit = audit or AuditLog(engine, clock)
        self.work_factor = work_factor
        self._dummy_hash: str | None = None

    # -- reading ---------------------------------------------------------------------

    def _load(self, conn: Connection, logins: Iterable[str] | None = None) -> list[Operator]:
        query = sa.select(operator_table).order_by(operator_table.c.login)
        roles_query = sa.select(operator_role_table)
        if logins is not None:
            wanted = list(logins)
            query = query.where(operator_table.c.login.in_(wanted))
            roles_query = roles_query.where(operator_role_table.c.login.in_(wanted))
        roles: dict[str, set[Role]] = {}
        for row in conn.execute(roles_query):
            roles.setdefault(row.login, set()).add(Role(row.role))
        return [
            Operator(
                login=row.login,
                display_name=row.display_name,
                roles=frozenset(roles.get(row.login, ())),
                supply_unit=row.supply_unit,
                disabled=bool(row.disabled),
                created_at=row.created_at,
                last_login_at=row.last_login_at,
            )
            for row in conn.execute(query)
        ]

    def find(self, login: str) -> Operator | None:
        with self.engine.connect() as conn:
            found = self._load(conn, [login])
        return found[0] if found else None

    def get(self, login: str) -> Operator:
        """The operator ``login``; :class:`UnknownUserError` if there is none."""
        found = self.find(login)
        if found is None:
            raise UnknownUserError(
                f"no operator {login!r}: check the login name (feikong users list)"
            )
        return found

    def list(self, *, include_disabled: bool = True) -> list[Operator]:
        with self.engine.connect() as conn:
            operators = self._load(conn)
        return [o for o in operators if include_disabled or not o.disabled]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(operator_table)).scalar_one()
            )

    # -- changing --------------------------------------------------------------------

    @_records_refusal("users.add")
    def add(
        self,
        login: str,
        *,
        display_name: str,
        password: str,
        roles: Iterable[Role | str],
        supply_unit: str | None = None,
        by: Operator | None,
    ) -> Operator:
        """Add an operator. ``by`` must be an admin, except for the very first operator of
        an empty database, which must itself be an admin (bootstrap)."""
        wanted = frozenset(r if isinstance(r, Role) else parse_role(r) for r in roles)
        login = login.strip()
        if not _LOGIN.match(login):
            raise InvalidUserError(
                f"login {login!r}: expected 2..32 characters, lower-case letters, digits, "
                "'.', '_' or '-', starting with a letter"
            )
        display_name = display_name.strip()
        if not display_name or len(display_name) > 64:
            raise InvalidUserError(f"display name for {login}: expected 1..64 characters")
        if not wanted:
            raise InvalidUserError(f"{login}: give at least one role ({', '.join(Role)})")
        if supply_unit is not None and not 0 < len(supply_unit.strip()) <= 16:
            raise InvalidUserError(f"supply unit for {login}: expected a code of 1..16 characters")
        _check_password(password, login)
        with self.engine.begin() as conn:
            first = not conn.execute(sa.select(operator_table.c.login).limit(1)).first()
            if by is None:
                if not first:
                    raise PermissionDeniedError(
                        f"adding {login} needs an admin: give the admin's login (--user)"
                    )
                if Role.ADMIN not in wanted:
                    raise InvalidUserError(
                        f"the first operator ({login}) must be an admin, so that someone can "
                        "manage the others: add --role admin"
                    )
                actor = login
            else:
                require(by, Action.MANAGE_USERS)
                actor = by.login
            if conn.execute(
                sa.select(operator_table.c.login).where(operator_table.c.login == login)
            ).first():
                raise UserExistsError(f"an operator {login!r} exists already")
            now = self.clock.now()
            conn.execute(
                sa.insert(operator_table).values(
                    login=login,
                    display_name=display_name,
                    password_hash=hash_password(password, work_factor=self.work_factor),
                    supply_unit=supply_unit.strip() if supply_unit else None,
                    disabled=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                sa.insert(operator_role_table),
                [{"login": login, "role": r.value} for r in sorted(wanted)],
            )
            self.audit.record(
                actor,
                "users.add",
                f"operator:{login}",
                {
                    "display_name": display_name,
                    "roles": sorted(r.value for r in wanted),
                    "supply_unit": supply_unit,
                    "bootstrap": by is None,
                },
                connection=conn,
            )
            return self._load(conn, [login])[0]

    def _existing(self, conn: Connection, login: str) -> Operator:
        found = self._load(conn, [login])
        if not found:
            raise UnknownUserError(
                f"no operator {login!r}: check the login name (feikong users list)"
            )
        return found[0]

    def _other_enabled_admins(self, conn: Connection, login: str) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(
                operator_table.join(
                    operator_role_table, operator_table.c.login == operator_role_table.c.login
                )
            )
            .where(
                operator_role_table.c.role == Role.ADMIN.value,
                operator_table.c.disabled == sa.false(),
                operator_table.c.login != login,
            )
        )
        return int(conn.execute(query).scalar_one())

    def _touch(self, conn: Connection, login: str, **values: object) -> None:
        conn.execute(
            sa.update(operator_table)
            .where(operator_table.c.login == login)
            .values(updated_at=self.clock.now(), **values)
        )

    @_records_refusal("users.disable")
    def disable(self, login: str, *, by: Operator, reason: str = "") -> Operator:
        """Disable ``login``: it can no longer log in or act. The last admin stays enabled."""
        require(by, Action.MANAGE_USERS)
        with self.engine.begin() as conn:
            target = self._existing(conn, login)
            if target.disabled:
                return target
            if target.has(Role.ADMIN) and not self._other_enabled_admins(conn, login):
                raise PermissionDeniedError(
                    f"{login} is the last enabled admin; enable or add another admin first"
                )
            self._touch(conn, login, disabled=True)
            self.audit.record(
                by, "users.disable", f"operator:{login}", {"reason": reason}, connection=conn
            )
            return self._existing(conn, login)

    @_records_refusal("users.enable")
    def enable(self, login: str, *, by: Operator) -> Operator:
        require(by, Action.MANAGE_USERS)
        with self.engine.begin() as conn:
            target = self._existing(conn, login)
            if not target.disabled:
                return target
            self._touch(conn, login, disabled=False)
            self.audit.record(by, "users.enable", f"operator:{login}", connection=conn)
            return self._existing(conn, login)

    @_records_refusal("users.grant")
    def grant(self, login: str, role: Role | str, *, by: Operator) -> Operator:
        """Give ``login`` the role ``role`` (no change if it has it)."""
        wanted = role if isinstance(role, Role) else parse_role(role)
        require(by, Action.MANAGE_USERS)
        with self.engine.begin() as conn:
            target = self._existing(conn, login)
            if wanted in target.roles:
                return target
            conn.execute(sa.insert(operator_role_table).values(login=login, role=wanted.value))
            self._touch(conn, login)
            self.audit.record(
                by, "users.grant", f"operator:{login}", {"role": wanted.value}, connection=conn
            )
            return self._existing(conn, login)

    @_records_refusal("users.revoke")
    def revoke(self, login: str, role: Role | str, *, by: Operator) -> Operator:
        """Take ``role`` from ``login``; its last role and the last admin stay."""
        wanted = role if isinstance(role, Role) else parse_role(role)
        require(by, Action.MANAGE_USERS)
        with self.engine.begin() as conn:
            target = self._existing(conn, login)
            if wanted not in target.roles:
                return target
            if target.roles == {wanted}:
                raise InvalidUserError(
                    f"{wanted.value} is the only role of {login}; grant another first, or "
                    f"disable {login}"
                )
            if (
                wanted is Role.ADMIN
                and not target.disabled
                and not self._other_enabled_admins(conn, login)
            ):
                raise PermissionDeniedError(
                    f"{login} is the last enabled admin; add another admin first"
                )
            conn.execute(
                sa.delete(operator_role_table).where(
                    operator_role_table.c.login == login,
                    operator_role_table.c.role == wanted.value,
                )
            )
            self._touch(conn, login)
            self.audit.record(
                by, "users.revoke", f"operator:{login}", {"role": wanted.value}, connection=conn
            )
            return self._existing(conn, login)

    @_records_refusal("users.password")
    def set_password(self, login: str, password: str, *, by: Operator) -> None:
        """A new password for ``login``, set by the operator itself or by an admin."""
        if by.login != login:
            require(by, Action.MANAGE_USERS)
        elif by.disabled:
            raise PermissionDeniedError(f"{login} is disabled; an admin can enable it")
        _check_password(password, login)
        with self.engine.begin() as conn:
            self._existing(conn, login)
            self._touch(
                conn, login, password_hash=hash_password(password, work_factor=self.work_factor)
            )
            self.audit.record(by, "users.password", f"operator:{login}", connection=conn)

    # -- logging in ------------------------------------------------------------------

    def _refuse(self, login: str, error: AuthenticationError) -> AuthenticationError:
        actor = login.strip()[:64] or "(empty)"
        log.warning("login refused for %r: %s", actor, error.reason)
        try:
            self.audit.record(
                actor, "login.refused", f"operator:{actor}"[:200], {"reason": error.reason}
            )
        except Exception:  # never hide the refusal behind an audit problem
            log.exception("could not audit a refused login")
        return error

    def authenticate(self, login: str, password: str) -> Operator:
        """The operator ``login`` if ``password`` is right and it is enabled.

        Refusals are :class:`UnknownUserError`, :class:`WrongPasswordError` and
        :class:`AccountDisabledError`; each is written to the audit log
        (``login.refused``), as is each success (``login``).
        """
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(operator_table.c.password_hash, operator_table.c.disabled).where(
                    operator_table.c.login == login
                )
            ).first()
        if row is None:
            if self._dummy_hash is None:
                self._dummy_hash = hash_password(secrets.token_hex(8), work_factor=self.work_factor)
            verify_password(password, self._dummy_hash)  # the same time as a real check
            raise self._refuse(
                login,
                UnknownUserError(f"no operator {login!r}: check the login name"),
            )
        if not verify_password(password, row.password_hash):
            raise self._refuse(
                login,
                WrongPasswordError(
                    f"wrong password for {login}: try again, or ask an admin to set a new one"
                ),
            )
        if row.disabled:
            raise self._refuse(
                login,
                AccountDisabledError(f"{login} is disabled: ask an admin to enable it"),
            )
        with self.engine.begin() as conn:
            values: dict[str, object] = {"last_login_at": self.clock.now()}
            if needs_rehash(row.password_hash, work_factor=self.work_factor):
                values["password_hash"] = hash_password(password, work_factor=self.work_factor)
            conn.execute(
                sa.update(operator_table).where(operator_table.c.login == login).values(**values)
            )
            self.audit.record(
                login,
                "login",
                f"operator:{login}",
                {"rehashed": True} if "password_hash" in values else {},
                connection=conn,
            )
            return self._load(conn, [login])[0]
