"""Security: the audit chain is verifiable — one tampered entry is named by `feikong audit verify`.

An attacker with the database file (the append-only triggers dropped first) changes,
deletes, reorders or inserts one entry of a real log written by real actions (operators
added, granted, logged in). ``feikong audit verify`` must exit non-zero and name the
first bad entry; the untouched log verifies (exit 0).

A writer who rewrites *every* hash from the tampered entry to the head row leaves a
chain that is consistent in itself: only an anchor (``ENTRY:HASH`` printed by a verify
before and kept outside the database) finds that, through ``--anchor``.
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


def _rewrite_from(conn: sa.Connection, entry_id: int, actor: str) -> None:
    """The attack a bare chain cannot show: change an entry and recompute every hash from
    it to the head row, as a writer with the database and the code could."""
    from prepaid.audit import _entry_hash, audit_head

    prev = _row(conn, entry_id)["prev_hash"]
    last = conn.execute(sa.select(sa.func.max(audit_table.c.id))).scalar_one()
    for ident in range(entry_id, last + 1):
        row = _row(conn, ident)
        who = actor if ident == entry_id else row["actor"]
        digest = _entry_hash(
            ident, row["at"], who, row["action"], row["target"], row["details"], prev
        )
        conn.execute(
            sa.update(audit_table)
            .where(audit_table.c.id == ident)
            .values(actor=who, prev_hash=prev, hash=digest)
        )
        prev = digest
    conn.execute(sa.update(audit_head).values(last_hash=prev))


def test_a_log_rewritten_with_new_hashes_is_found_by_an_anchor_noted_earlier(
    tmp_path: Path,
) -> None:
    engine = fresh_engine(tmp_path)
    total = _real_log(engine)
    db = ["--db", url_of(engine)]
    intact = runner.invoke(app, ["audit", "verify", *db])
    assert intact.exit_code == 0, intact.output
    (anchor,) = re.findall(r"^anchor: (\d+:[0-9a-f]{64})$", intact.output, re.MULTILINE)
    assert anchor.startswith(f"{total}:")
    as_json = json.loads(runner.invoke(app, ["audit", "verify", *db, "--json"]).stdout)
    assert as_json["anchor"] == anchor
    # the anchor of an intact log holds
    again = runner.invoke(app, ["audit", "verify", *db, "--anchor", anchor])
    assert again.exit_code == 0, again.output

    _untrigger(engine)
    with engine.begin() as conn:
        _rewrite_from(conn, 4, "mallory")

    plain = runner.invoke(app, ["audit", "verify", *db])
    assert plain.exit_code == 0, plain.output  # the chain alone cannot tell …
    assert "mallory" not in plain.output
    anchored = runner.invoke(app, ["audit", "verify", *db, "--anchor", anchor])
    assert anchored.exit_code == 1, anchored.output  # … the anchor kept outside can
    assert f"audit chain BROKEN at entry #{total}:" in anchored.output
    assert "noted down for it (the log was rewritten since)" in " ".join(anchored.output.split())


def test_an_anchor_past_the_end_or_malformed_is_refused(tmp_path: Path) -> None:
    engine = fresh_engine(tmp_path)
    total = _real_log(engine)
    db = ["--db", url_of(engine)]
    past = runner.invoke(app, ["audit", "verify", *db, "--anchor", f"{total + 5}:{'ab' * 32}"])
    assert past.exit_code == 1, past.output
    said = " ".join(past.output.split())  # the console wraps long lines
    assert f"entry #{total + 5} was noted down but the log ends at #{total}" in said
    for bad in ("12", "x:" + "ab" * 32, f"3:{'ab' * 31}", f"3:{'zz' * 32}"):
        result = runner.invoke(app, ["audit", "verify", *db, "--anchor", bad])
        assert result.exit_code == 2, (bad, result.output)
        assert "is not ENTRY:HASH" in result.output
        assert "Traceback" not in result.output
