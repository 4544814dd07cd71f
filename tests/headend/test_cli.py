"""``feikong headend migrate | import-archive | export-archive``."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from feikong.cli import app
from headend.db import head_revision

runner = CliRunner()

ARCHIVE = """\
record,name,kind,host,port,address,meter_number,channel,breaker_type
channel,gw,tcp,127.0.0.1,6455,,,,
meter,,remote,,,000000000001,M1,gw,internal
meter,,remote,,,12345,M2,gw,internal
meter,,remote,,,000000000003,M3,nowhere,internal
"""


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_migrate(tmp_path: Path, db_url: str) -> None:
    for _ in range(2):
        result = runner.invoke(app, ["headend", "migrate", "--db", db_url])
        assert result.exit_code == 0, result.output
        assert f"revision {head_revision()}" in result.output


def test_import_reports_bad_rows_by_line(tmp_path: Path, db_url: str) -> None:
    path = write(tmp_path, "archive.csv", ARCHIVE)
    result = runner.invoke(app, ["headend", "import-archive", str(path), "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "loaded 2 row(s): 1 channel(s), 1 meter(s)" in result.output
    assert "line 4: address '12345' must be 12 decimal (BCD) digits" in result.output
    assert "line 5: unknown channel 'nowhere'" in result.output


def test_import_json_and_reimport(tmp_path: Path, db_url: str) -> None:
    path = write(tmp_path, "archive.csv", ARCHIVE)
    args = ["headend", "import-archive", str(path), "--db", db_url, "--json"]
    runner.invoke(app, args)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["loaded"], data["updated"], data["inserted"]) == (2, 2, 0)
    assert [e["line"] for e in data["errors"]] == [4, 5]


def test_every_row_bad_exits_1(tmp_path: Path, db_url: str) -> None:
    path = write(tmp_path, "bad.csv", "name,kind\nx,ftp\n")
    result = runner.invoke(app, ["headend", "import-archive", str(path), "--db", db_url])
    assert result.exit_code == 1
    assert "line 2: kind 'ftp' is not one of tcp, gateway, serial, mqtt" in result.output


def test_unreadable_file_exits_2(tmp_path: Path, db_url: str) -> None:
    result = runner.invoke(
        app, ["headend", "import-archive", str(tmp_path / "nope.csv"), "--db", db_url]
    )
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_bad_database_url_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "archive.csv", ARCHIVE)
    result = runner.invoke(app, ["headend", "import-archive", str(path), "--db", "mysql://x/y"])
    assert result.exit_code == 2
    assert "unsupported database 'mysql'" in result.output


def test_export_round_trips(tmp_path: Path, db_url: str) -> None:
    path = write(tmp_path, "archive.csv", ARCHIVE)
    runner.invoke(app, ["headend", "import-archive", str(path), "--db", db_url])
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["headend", "export-archive", str(out), "--db", db_url])
    assert result.exit_code == 0, result.output
    assert "exported 1 channel(s) and 1 meter(s)" in result.output
    other = f"sqlite:///{tmp_path / 'other.db'}"
    result = runner.invoke(app, ["headend", "import-archive", str(out), "--db", other, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["errors"] == []
    again = tmp_path / "again.csv"
    runner.invoke(app, ["headend", "export-archive", str(again), "--db", other])
    assert again.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")
