"""Bad input to ``feikong headend run --shard`` and ``feikong headend dispatch``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from feikong._servers import free_port
from feikong.cli import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["headend", *args])
    return result.exit_code, " ".join(result.output.split())


def test_a_shard_that_does_not_exist_or_no_broker_is_refused(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'h.db'}"
    code, out = _run("run", "--db", db, "--shard", "2/2", "--mqtt", "127.0.0.1:1883")
    assert code == 2 and "shard 2/2 does not exist" in out
    code, out = _run("run", "--db", db, "--shard", "0/2")
    assert code == 2 and "--mqtt is needed" in out
    code, out = _run("run", "--db", db, "--shard", "0/2", "--mqtt", "mqtt://:0")
    assert code == 2 and "not an MQTT URL" in out


def test_dispatch_says_what_is_missing_or_wrong() -> None:
    code, out = _run("dispatch", "--shards", "2", "--mqtt", "127.0.0.1:1883")
    assert code == 2 and "nothing to do" in out
    code, out = _run(
        "dispatch", "--shards", "2", "--mqtt", "127.0.0.1:1883", "--collect", "2026-13-01"
    )
    assert code == 2 and "--collect wants a date YYYY-MM-DD" in out
    code, out = _run("dispatch", "--shards", "0", "--collect", "2026-03-02")
    assert code == 2 and "--shards" in out


def test_dispatch_to_a_broker_that_is_not_there_fails_clearly() -> None:
    port = free_port()  # nothing listens there
    code, out = _run(
        "dispatch", "--shards", "2", "--mqtt", f"127.0.0.1:{port}", "--collect", "2026-03-02"
    )
    assert code == 1 and f"cannot use the MQTT broker at mqtt://127.0.0.1:{port}" in out
    assert "is the broker running?" in out
