"""Security: the audit chain is verifiable — one tampered entry is named by `feikong audit verify`.

An attacker with the database file (the append-only triggers dropped first) changes,
deletes, reorders or inserts one entry of a real log written by real actions (operators
added, granted, logged in). ``feikong audit verify`` must exit non-zero and name the
first bad entry; the untouched log verifies (exit 0).

What the chain cannot show (RELIABILITY.md says so): a writer who rewrites *every* hash
from the tampered entry to the head row — no external anchor is kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from feikong.cli import app
from prepaid.audit import audit_table
from prepaid.users import Role
from protocol.clock import SteppedClock

from ..prepaid.security_helpers import (
    PASSWORD,
    START,
    add_staff,
    fresh_engine,
    make_users,
    url_of,
)

runner = CliRunner()


def _real_log(engine: Engine) -> int:
    """Entries written by real actions; returns how many."""
    clock = SteppedClock(START)
    users = make_users(engine, clock)
    staff = add_staff(users)  # 7 users.add
    users.grant("operator", Role.CUSTOMER_SERVICE, by=staff["admin"])
    users.authenticate("operator", PASSWORD)
    with pytest.raises(Exception, match="wrong password"):
        users.authenticate("operator", "not the password")
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(audit_table)).scalar_one())


def _untrigger(engine: Engine) -> None:
    """What someone with the database file can do first: drop the append-only guards."""
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER prepaid_audit_no_update")
        conn.exec_driver_sql("DROP TRIGGER prepaid_audit_no_delete")


def _row(conn: sa.Connection, entry_id: int) -> dict[str, Any]:
    return dict(
        conn.execute(sa.select(audit_table).where(audit_table.c.id == entry_id)).one()._mapping
    )


def _change_details(conn: sa.Connection) -> None:
    conn.execute(
        sa.update(audit_table).where(audit_table.c.id == 4).values(details='{"roles":["admin"]}')
    )


def _change_actor(conn: sa.Connection) -> None:
    conn.execute(sa.update(audit_table).where(audit_table.c.id == 4).values(actor="mallory"))


def _delete_middle(conn: sa.Connection) -> None:
    conn.execute(sa.delete(audit_table).where(audit_table.c.id == 4))


def _delete_last(conn: sa.Connection) -> None:
    last = conn.execute(sa.select(sa.func.max(audit_table.c.id))).scalar_one()
    conn.execute(sa.delete(audit_table).where(audit_table.c.id == last))


def _swap(conn: sa.Connection) -> None:
    """Reorder: entries 4 and 5 exchange places (ids kept, contents swapped)."""
    four, five = _row(conn, 4), _row(conn, 5)
    conn.execute(sa.delete(audit_table).where(audit_table.c.id.in_([4, 5])))
    conn.execute(sa.insert(audit_table).values({**five, "id": 4}))
    conn.execute(sa.insert(audit_table).values({**four, "id": 5}))


def _renumber_swap(conn: sa.Connection) -> None:
    """Reorder keeping each entry's own hash: only the ids are exchanged."""
    conn.execute(sa.update(audit_table).where(audit_table.c.id == 4).values(id=-4))
    conn.execute(sa.update(audit_table).where(audit_table.c.id == 5).values(id=4))
    conn.execute(sa.update(audit_table).where(audit_table.c.id == -4).values(id=5))


def _forge_own_hash(conn: sa.Connection) -> None:
    """Change entry 4 and recompute its own hash: the link from entry 5 breaks."""
    from prepaid.audit import _entry_hash

    row = _row(conn, 4)
    digest = _entry_hash(
        4, row["at"], "mallory", row["action"], row["target"], row["details"], row["prev_hash"]
    )
    conn.execute(
        sa.update(audit_table).where(audit_table.c.id == 4).values(actor="mallory", hash=digest)
    )


TAMPERING: list[tuple[str, Callable[[sa.Connection], None], str]] = [
    ("update-details", _change_details, r"#4: its content does not match its hash"),
    ("update-actor", _change_actor, r"#4: its content does not match its hash"),
    ("delete-middle", _delete_middle, r"#4: entry #4 is missing \(the next one is #5\)"),
    ("delete-last", _delete_last, r"entries were removed from the end"),
    ("reorder-contents", _swap, r"#4: "),
    ("reorder-ids", _renumber_swap, r"#4: "),
    ("forge-own-hash", _forge_own_hash, r"#5: its previous-hash does not match"),
]


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [pytest.param(t, e, id=name) for name, t, e in TAMPERING],
)
def test_audit_verify_names_the_first_tampered_entry(
    tmp_path: Path, tamper: Callable[[sa.Connection], None], expected: str
) -> None:
    engine = fresh_engine(tmp_path)
    total = _real_log(engine)
    db = ["--db", url_of(engine)]
    intact = runner.invoke(app, ["audit", "verify", *db])
    assert intact.exit_code == 0, intact.output
    assert f"audit chain intact: {total} entries, last #{total}" in intact.output

    _untrigger(engine)
    with engine.begin() as conn:
        tamper(conn)

    result = runner.invoke(app, ["audit", "verify", *db])
    assert result.exit_code == 1, result.output
    assert "audit chain BROKEN at entry #" in result.output
    assert re.search(expected, result.output), result.output
    assert "Traceback" not in result.output
    report = json.loads(runner.invoke(app, ["audit", "verify", *db, "--json"]).stdout)
    assert report["ok"] is False
    named = int(re.search(r"#(\d+)", result.output.split("BROKEN at entry ", 1)[1]).group(1))  # type: ignore[union-attr]
    assert report["bad_id"] == named
    # the entries before the bad one were checked and found good
    assert report["checked"] == named - 1
