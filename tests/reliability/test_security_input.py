"""Security: every command-line value and input file is validated — bad input is one clear
error line naming the thing, exit status 2, no traceback, nothing stored.

The table below runs the real ``feikong`` commands (typer's ``CliRunner``) on a migrated
database with bad files (archive CSV, payments CSV, tariff TOML, scenario TOML — broken
syntax, unknown keys, wrong values, binary, missing) and bad values (settings values,
meter addresses, DIs, dates, amounts, database URLs, listen URLs, HOST:PORT). Each must
exit 2 (``feikong.output.fail(…, 2)``, the project's code for bad input) with one line
``error: …`` that contains the words naming the bad thing.

CSV imports have their own documented convention: bad *rows* are listed by line number
and the good rows still load; the exit status is 1 when every row is bad (2 only when
the file cannot be read). ``ROW_CASES`` checks that, and that nothing was stored.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from feikong.cli import app
from prepaid.db import open_database

from ..prepaid.security_helpers import PASSWORD, add_staff, make_users
from ..prepaid.workflows_rig import MONDAY, _template_file, add_accounts

runner = CliRunner()
TARIFFS = Path(__file__).resolve().parents[2] / "prepaid" / "tariffs"
MONTHLY = str(TARIFFS / "residential_monthly.toml")

FILES: dict[str, str | bytes] = {
    "archive_no_header.csv": "hello,world\n1,2\n",
    "binary.csv": b"\xff\xfe\x00\x01\x80garbage",
    "archive_bad_rows.csv": (
        "record,name,kind,host,port,address,meter_number,channel,breaker_type\n"
        "channel,gw,gateway,127.0.0.1,99999,,,,\n"
        "meter,,remote,,,12AB,1,gw,external\n"
    ),
    "payments_bad_rows.csv": (
        "payment_id,account_no,amount\nP1,3300000001,-5\nP2,3300000001,abc\nP3,,1.00\n"
    ),
    "broken.toml": "[tariff\ncode = ",
    "tariff_unknown_key.toml": 'code = "x"\n',
    "tariff_bad_price.toml": (
        '[[tariff]]\nid = "t"\nname = "t"\nversion = 1\neffective_from = 2024-01-01\n'
        'kind = "tiered"\ncycle = "monthly"\nthresholds_kwh = [200, 400]\n'
        'prices = [0.52, "cheap", 0.82]\n'
    ),
    "scenario_unknown_key.toml": "[fleet]\ncount = 3\nbogus = 1\n",
    "scenario_bad_count.toml": "[fleet]\ncount = -3\n",
}


def _setup(folder: Path) -> str:
    database = folder / "feikong.db"
    shutil.copyfile(_template_file(), database)
    engine = open_database(f"sqlite:///{database}")
    add_accounts(engine)
    from protocol.clock import SteppedClock

    add_staff(make_users(engine, SteppedClock(MONDAY)))
    engine.dispose()
    for name, content in FILES.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return f"sqlite:///{database}"


# (id, arguments — {db} and {dir} are filled in —, words the error line must contain)
_NO_SERVER = "postgresql+psycopg://feikong:secret@127.0.0.1:1/feikong"
"""A PostgreSQL URL where nothing listens (port 1)."""

CASES: list[tuple[str, list[str], list[str]]] = [
    # a database that cannot be reached: one line, the URL without its password, what to check
    (
        "database: no server (rate)",
        ["rate", "--date", "2026-01-02", "--db", _NO_SERVER],
        ["cannot be reached", "feikong:***@127.0.0.1:1", "server is running", "--db URL"],
    ),
    (
        "database: no server (head-end)",
        ["headend", "status", "--db", _NO_SERVER],
        ["cannot be reached", "feikong:***@127.0.0.1:1", "server is running"],
    ),
    # files
    (
        "archive: unknown columns",
        ["headend", "import-archive", "{dir}/archive_no_header.csv"],
        ["unknown column", "hello"],
    ),
    (
        "archive: not text",
        ["headend", "import-archive", "{dir}/binary.csv"],
        ["binary.csv", "neither UTF-8 nor GB 18030"],
    ),
    (
        "archive: missing file",
        ["headend", "import-archive", "{dir}/nope.csv"],
        ["cannot read", "nope.csv"],
    ),
    ("payments CSV: not text", ["cis", "import", "{dir}/binary.csv"], ["binary.csv", "UTF-8"]),
    ("payments CSV: missing file", ["cis", "import", "{dir}/nope.csv"], ["nope.csv"]),
    (
        "tariff: broken TOML",
        ["tariff", "show", "--tariff", "{dir}/broken.toml"],
        ["broken.toml", "not valid TOML", "line 1"],
    ),
    (
        "tariff: unknown key",
        ["tariff", "show", "--tariff", "{dir}/tariff_unknown_key.toml"],
        ["tariff_unknown_key.toml", "code", "unknown"],
    ),
    (
        "tariff: bad price",
        ["tariff", "show", "--tariff", "{dir}/tariff_bad_price.toml"],
        ["tariff_bad_price.toml", "prices"],
    ),
    (
        "tariff: missing file",
        ["tariff", "show", "--tariff", "{dir}/nope.toml"],
        ["nope.toml", "cannot read"],
    ),
    (
        "scenario: broken TOML",
        ["meter-sim", "--tcp", "127.0.0.1:0", "--scenario", "{dir}/broken.toml"],
        ["broken.toml", "TOML"],
    ),
    (
        "scenario: unknown key",
        ["meter-sim", "--tcp", "127.0.0.1:0", "--scenario", "{dir}/scenario_unknown_key.toml"],
        ["fleet.bogus", "expected one of"],
    ),
    (
        "scenario: negative count",
        ["meter-sim", "--tcp", "127.0.0.1:0", "--scenario", "{dir}/scenario_bad_count.toml"],
        ["count"],
    ),
    # settings values
    (
        "setting: not an amount",
        [
            "settings",
            "set",
            "reminder_amount",
            "lots",
            "--level",
            "line",
            "--key",
            "L1",
            "--user",
            "root",
            "--db",
            "{db}",
        ],
        ["reminder_amount", "lots"],
    ),
    (
        "setting: unknown name",
        [
            "settings",
            "set",
            "no_such",
            "1",
            "--level",
            "line",
            "--key",
            "L1",
            "--user",
            "root",
            "--db",
            "{db}",
        ],
        ["unknown setting", "no_such"],
    ),
    (
        "setting: bad protected hours",
        [
            "settings",
            "set",
            "protected_hours",
            "25:00-08:00",
            "--level",
            "default",
            "--user",
            "root",
            "--db",
            "{db}",
        ],
        ["protected_hours", "25:00"],
    ),
    # addresses, DIs, hosts
    (
        "read: address",
        ["read", "--tcp", "127.0.0.1:1", "--address", "12AB", "--di", "00010000"],
        ["address", "12AB", "12 digits"],
    ),
    (
        "read: DI",
        ["read", "--tcp", "127.0.0.1:1", "--address", "000000000001", "--di", "XYZ"],
        ["DI", "XYZ"],
    ),
    (
        "read: HOST:PORT",
        ["read", "--tcp", "localhost", "--address", "000000000001", "--di", "00010000"],
        ["--tcp", "HOST:PORT", "localhost"],
    ),
    (
        "control: port out of range",
        ["control", "--tcp", "127.0.0.1:99999", "--address", "000000000001", "trip"],
        ["--tcp", "99999"],
    ),
    (
        "head-end command: address",
        ["headend", "command", "12AB", "trip", "--db", "{db}"],
        ["address", "12AB"],
    ),
    (
        "head-end command: not in the archive",
        ["headend", "command", "000000000077", "trip", "--db", "{db}"],
        ["000000000077", "archive"],
    ),
    # dates
    ("rate: date", ["rate", "--date", "2026-13-01", "--db", "{db}"], ["--date", "2026-13-01"]),
    (
        "collect: date",
        ["headend", "collect", "--date", "tomorrow", "--db", "{db}"],
        ["--date", "tomorrow"],
    ),
    ("audit: since", ["audit", "--since", "yesterday", "--db", "{db}"], ["--since", "yesterday"]),
    (
        "quote: 30 February",
        ["tariff", "quote", "--tariff", MONTHLY, "--kwh", "3", "--from", "2026-02-30"],
        ["--from", "2026-02-30"],
    ),
    # amounts
    (
        "pay: three decimals",
        [
            "cis",
            "pay",
            "--account",
            "3300000001",
            "--amount",
            "12.345",
            "--payment-id",
            "P9",
            "--db",
            "{db}",
        ],
        ["--amount", "12.345", "2 decimals"],
    ),
    (
        "pay: negative",
        [
            "cis",
            "pay",
            "--account",
            "3300000001",
            "--amount",
            "-1",
            "--payment-id",
            "P9",
            "--db",
            "{db}",
        ],
        ["--amount", "-1"],
    ),
    (
        "refund: zero",
        [
            "cis",
            "refund",
            "--account",
            "3300000001",
            "--amount",
            "0",
            "--refund-id",
            "R1",
            "--db",
            "{db}",
        ],
        ["--amount", "0"],
    ),
    (
        "vend: three decimals",
        ["vend", "sell", "3300000001", "1.001", "--sale-id", "S", "--db", "{db}"],
        ["amount", "1.001"],
    ),
    (
        "card: not an amount",
        [
            "card",
            "write",
            "{dir}/card.json",
            "--customer",
            "000000000042",
            "--amount",
            "abc",
            "--count",
            "1",
        ],
        ["--amount", "abc"],
    ),
    (
        "quote: negative energy",
        ["tariff", "quote", "--tariff", MONTHLY, "--kwh", "-3", "--from", "2026-03-01"],
        ["--kwh", "-3"],
    ),
    # URLs
    ("database URL", ["headend", "status", "--db", "notaurl://x"], ["notaurl"]),
    ("listen URL", ["meter-sim", "--listen", "ftp://x"], ["--listen", "ftp://x"]),
    (
        "MQTT broker URL",
        [
            "headend",
            "dispatch",
            "--shards",
            "2",
            "--mqtt",
            "http://x:1",
            "--queued",
            "--db",
            "{db}",
        ],
        ["not an MQTT URL", "http://x:1"],
    ),
]


def _fill(args: list[str], db: str, folder: Path) -> list[str]:
    return [a.replace("{db}", db).replace("{dir}", str(folder)) for a in args]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("input")
    return _setup(folder), folder


def _rows(db: str) -> dict[str, int]:
    engine = sa.create_engine(db)
    try:
        with engine.connect() as conn:
            return {
                t: int(conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one())
                for t in sa.inspect(conn).get_table_names()
                if not t.startswith("prepaid_audit") and t != "prepaid_operator"
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize(("args", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_exit_2(
    world: tuple[str, Path], args: list[str], words: list[str]
) -> None:
    db, folder = world
    before = _rows(db)
    result = runner.invoke(app, _fill(args, db, folder), env={"FEIKONG_PASSWORD": PASSWORD})
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    line = output[output.index("error:") :].split("\nwarning:")[0]
    for word in words:
        assert word.lower() in " ".join(line.split()).lower(), f"{word!r} not in {line!r}"
    assert _rows(db) == before


ROW_CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "archive rows",
        ["headend", "import-archive", "{dir}/archive_bad_rows.csv", "--db", "{db}"],
        ["line 2: port '99999'", "line 3: address '12AB'", "2 bad row(s)"],
    ),
    (
        "payment rows",
        ["cis", "import", "{dir}/payments_bad_rows.csv", "--db", "{db}"],
        ["line 2: amount '-5'", "line 3: amount 'abc'", "line 4: account_no is empty"],
    ),
]


@pytest.mark.parametrize(
    ("args", "lines"), [c[1:] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES]
)
def test_bad_rows_are_listed_by_line_and_nothing_is_stored(
    world: tuple[str, Path], args: list[str], lines: list[str]
) -> None:
    db, folder = world
    before = _rows(db)
    result = runner.invoke(app, _fill(args, db, folder))
    assert result.exit_code == 1, result.output  # every row bad (documented: 1)
    assert "Traceback" not in result.output
    flat = " ".join(result.output.split())
    for line in lines:
        assert line in flat, result.output
    after = _rows(db)
    rejected = after.pop("prepaid_cis_rejection") - before.pop("prepaid_cis_rejection")
    assert after == before  # nothing loaded …
    assert rejected == (3 if args[0] == "cis" else 0)  # … and refused payments are recorded
