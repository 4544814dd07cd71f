"""Security: operator passwords are hashed (scrypt, OpenSSL's through ``hashlib``), never stored.

Operators are added and log in through ``feikong users`` (the password in
``$FEIKONG_PASSWORD``, as a script gives it); then every byte the database keeps —
the SQLite file and its write-ahead log — is searched for each password in UTF-8,
UTF-16 and hex. The stored hash verifies the right password, refuses a wrong one,
carries its own parameters (scrypt n ≥ 2^17, r 8, p 1, a 16-byte random salt, a
32-byte key) and a weaker hash is upgraded at the next login.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from feikong.cli import app
from prepaid import users as users_module
from prepaid.audit import AuditLog
from prepaid.users import (
    DEFAULT_WORK_FACTOR,
    UnknownUserError,
    Users,
    WrongPasswordError,
    hash_password,
    needs_rehash,
    operator_table,
    verify_password,
)
from protocol.clock import SteppedClock

from ..prepaid.security_helpers import START, fresh_engine, url_of

runner = CliRunner()

PASSWORDS = {"root": "Root-pass-4491!", "alice": "alice-正确-密码-7", "bob": "bob-pass-88123"}


def _stored_bytes(folder: Path) -> bytes:
    """Everything SQLite keeps for the database in ``folder`` (file, WAL, journal)."""
    return b"".join(p.read_bytes() for p in sorted(folder.glob("feikong.db*")))


def _forms(password: str) -> list[bytes]:
    raw = password.encode("utf-8")
    return [
        raw,
        password.encode("utf-16-le"),
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw).rstrip(b"="),
    ]


def test_cli_operators_leave_no_password_in_the_database(tmp_path: Path) -> None:
    engine = fresh_engine(tmp_path)
    db = ["--db", url_of(engine)]
    result = runner.invoke(
        app,
        ["users", "add", "root", "--name", "管理员", "--role", "admin", *db],
        env={"FEIKONG_NEW_PASSWORD": PASSWORDS["root"]},
    )
    assert result.exit_code == 0, result.output
    for login, role in (("alice", "operator"), ("bob", "customer-service")):
        env = {"FEIKONG_PASSWORD": PASSWORDS["root"], "FEIKONG_NEW_PASSWORD": PASSWORDS[login]}
        result = runner.invoke(
            app,
            ["users", "add", login, "--name", login, "--role", role, "--user", "root", *db],
            env=env,
        )
        assert result.exit_code == 0, result.output
    # each logs in (a settings change needs a login): right password accepted
    users = Users(engine, clock=SteppedClock(START))
    for login, password in PASSWORDS.items():
        assert users.authenticate(login, password).login == login
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        hashes = dict(
            conn.execute(sa.select(operator_table.c.login, operator_table.c.password_hash)).all()
        )
    engine.dispose()
    stored = _stored_bytes(tmp_path)
    assert stored, "the database files were found"
    for login, password in PASSWORDS.items():
        for form in _forms(password):
            assert form not in stored, f"{login}'s password is stored as {form[:12]!r}…"
        scheme, n, r, p, salt, key = hashes[login].split("$")
        assert (scheme, int(n), int(r), int(p)) == ("scrypt", DEFAULT_WORK_FACTOR, 8, 1)
        assert len(base64.b64decode(salt + "==")) == 16 and len(base64.b64decode(key + "==")) == 32
    assert len({h.split("$")[4] for h in hashes.values()}) == len(hashes), "salts are unique"


def test_a_wrong_password_is_refused_on_the_command_line_and_audited(tmp_path: Path) -> None:
    engine = fresh_engine(tmp_path)
    db = ["--db", url_of(engine)]
    env = {"FEIKONG_NEW_PASSWORD": PASSWORDS["root"]}
    added = runner.invoke(
        app, ["users", "add", "root", "--name", "r", "--role", "admin", *db], env=env
    )
    assert added.exit_code == 0, added.output
    result = runner.invoke(
        app,
        ["users", "disable", "root", "--user", "root", *db],
        env={"FEIKONG_PASSWORD": PASSWORDS["root"] + "x"},
    )
    assert result.exit_code == 1, result.output
    assert "login refused: wrong password for root" in result.output
    assert "Traceback" not in result.output
    refused = AuditLog(engine, SteppedClock(START)).query(action="login.refused")
    assert [(e.actor, e.details["reason"]) for e in refused] == [("root", "wrong-password")]
    assert Users(engine, clock=SteppedClock(START)).get("root").disabled is False


def test_the_hash_verifies_refuses_and_is_upgraded(tmp_path: Path) -> None:
    stored = hash_password("s3cret-enough")
    assert verify_password("s3cret-enough", stored)
    for wrong in ("s3cret-enougH", "s3cret-enough ", "", "s3cret"):
        assert not verify_password(wrong, stored)
    assert hash_password("s3cret-enough") != stored  # a fresh salt each time
    assert not needs_rehash(stored)
    weak = hash_password("s3cret-enough", work_factor=2**10)
    assert needs_rehash(weak) and verify_password("s3cret-enough", weak)

    engine = fresh_engine(tmp_path)
    clock = SteppedClock(START)
    Users(engine, clock=clock, work_factor=2**10).add(
        "root", display_name="r", password="s3cret-enough", roles=["admin"], by=None
    )
    users = Users(engine, clock=clock)  # the default cost
    with pytest.raises(WrongPasswordError):
        users.authenticate("root", "s3cret-enougH")
    users.authenticate("root", "s3cret-enough")
    with engine.connect() as conn:
        upgraded = conn.execute(sa.select(operator_table.c.password_hash)).scalar_one()
    assert upgraded.split("$")[1] == str(DEFAULT_WORK_FACTOR)
    assert [e.details for e in users.audit.query(action="login")] == [{"rehashed": True}]


def test_an_unknown_login_costs_a_hash_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No timing oracle for which logins exist: an unknown one runs scrypt as well."""
    engine = fresh_engine(tmp_path)
    users = Users(engine, clock=SteppedClock(START), work_factor=2**10)
    users.add("root", display_name="r", password="s3cret-enough", roles=["admin"], by=None)
    calls: list[int] = []
    real = users_module._scrypt

    def counting(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        calls.append(n)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(users_module, "_scrypt", counting)
    for login, refusal in (("root", WrongPasswordError), ("nobody", UnknownUserError)):
        calls.clear()
        with pytest.raises(refusal):
            users.authenticate(login, "not-it-at-all")
        assert 2**10 in calls, f"{login}: no scrypt run"
