"""Fuzzing: short runs of every harness, and the bugs the fuzzer found, kept fixed.

The long runs are ``feikong bench fuzz --target all --minutes N`` (atheris, coverage-guided);
here each harness gets its seeds and a few hundred hypothesis-generated inputs, and one
atheris run per target proves the CLI and the coverage-guided engine work end to end.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from feikong.cli import app
from feikong.cmd_bench_fuzz import atheris_available
from feikong.fuzz import TARGET_NAMES
from feikong.fuzz.targets import make_target
from meter_sim.config import BreakerKind, MeterConfig
from meter_sim.fleet import Fleet
from meter_sim.meter import Meter
from protocol import (
    Address,
    ErrorReply,
    ErrorWord,
    Frame,
    SecurityErrorReply,
    SecurityErrorWord,
    decode_message,
)
from protocol.clock import SteppedClock
from protocol.di import encode_value
from protocol.messages import AckReply, ReadReply, ReadRequest, WriteRequest, to_frame

METER = "000000000001"


async def _ask(fleet: Fleet, message: object) -> object:
    reply = await fleet.handle(to_frame(METER, message))  # type: ignore[arg-type]
    assert reply is not None and not isinstance(reply, bytes)
    return decode_message(reply)


async def test_a_date_write_of_00_00_00_is_refused_without_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Found by the meter harness: 14H 04000101 (date and week) with the value 00000000
    # decodes to "no date" (None); the meter took it as a date and failed with a
    # TypeError inside its handler (logged, answered ERR 01 by the catch-all).
    clock = SteppedClock(datetime(2026, 1, 1, 0, 0, 0))
    fleet = Fleet(
        [MeterConfig(METER, breaker=BreakerKind.INTERNAL, test_mode=True)],
        clock,
        master_key=bytes(16),
    )
    with caplog.at_level(logging.INFO, logger="meter_sim"):
        reply = await _ask(fleet, WriteRequest(0x04000101, bytes(4)))
    assert reply == ErrorReply(0x14, ErrorWord.OTHER)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "00-00-00 is not a date" in caplog.text
    # The meter's date is unchanged, and a real date is still written.
    meter_date = await _ask(fleet, ReadRequest(0x04000101))
    assert isinstance(meter_date, ReadReply) and meter_date.raw == bytes.fromhex("04010126")
    # 2026-01-01 was a Thursday: WW DD MM YY = 04 01 01 26 on the wire, low byte first.
    sunday = encode_value(0x04000101, date(2026, 3, 15))
    assert sunday == bytes.fromhex("00150326")
    reply = await _ask(fleet, WriteRequest(0x04000101, sunday))
    assert reply == AckReply(0x14)
    meter_date = await _ask(fleet, ReadRequest(0x04000101))
    assert isinstance(meter_date, ReadReply) and meter_date.raw == sunday


async def test_a_malformed_security_request_gets_a_well_formed_c3h_refusal() -> None:
    # Found by the meter harness: a 03H request too short to decode (1 data byte) was
    # answered C3H with a 1-byte error word; an abnormal 03H reply carries the 2-byte
    # SERR word, so a head-end could not read the refusal (DataError on decode).
    clock = SteppedClock(datetime(2026, 1, 1, 0, 0, 0))
    fleet = Fleet([MeterConfig(METER)], clock, master_key=bytes(16))
    reply = await fleet.handle(Frame(Address(METER), 0x03, b"\x06"))
    assert isinstance(reply, Frame)
    assert (reply.control, reply.data) == (0xC3, b"\x01\x00")  # SERR 0001: other error
    assert decode_message(reply) == SecurityErrorReply(SecurityErrorWord.OTHER)


# --------------------------------------------------------------------------- short runs

FOUND = {
    # the inputs that found the two bugs above, kept as a regression corpus
    "meter-date-00-00-00": ("meter", "0014001001010004020000000000000000000000"),
    "meter-short-03h": ("meter", "0308010600ffffffffff020308010600ffffffffff02"),
}


@pytest.mark.parametrize("name", sorted(FOUND))
def test_the_inputs_that_found_bugs_pass_their_harness(name: str, tmp_path: Path) -> None:
    target, hex_input = FOUND[name]
    path = tmp_path / name
    path.write_bytes(bytes.fromhex(hex_input))
    result = CliRunner().invoke(
        app, ["bench", "fuzz", "--target", target, "--reproduce", str(path)]
    )
    assert result.exit_code == 0, result.output
    assert f"{target}: {path}" in result.output and "passes" in result.output


def _spliced(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with a slice replaced by random bytes (or by a slice of another seed)."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        seed = draw(st.sampled_from(seeds))
        a = draw(st.integers(0, len(seed)))
        b = draw(st.integers(a, min(len(seed), a + 64)))
        other = draw(st.sampled_from(seeds))
        c = draw(st.integers(0, len(other)))
        filler = draw(st.one_of(st.binary(max_size=24), st.just(other[c : c + 32])))
        return seed[:a] + filler + seed[b:]

    return build()


EXAMPLES = {"parser": 300, "meter": 200, "archive": 60, "cis-csv": 60, "tariff": 200}


@pytest.mark.parametrize("name", TARGET_NAMES)
def test_each_harness_holds_on_its_seeds_and_generated_inputs(name: str) -> None:
    target = make_target(name)
    try:
        seeds = target.seeds()
        assert seeds, "a target starts from valid inputs"
        for seed in seeds:
            target.run(seed)

        @settings(
            max_examples=EXAMPLES[name],
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.one_of(_spliced(seeds), st.binary(max_size=300)))
        def check(data: bytes) -> None:
            target.run(data)

        check()
    finally:
        target.close()


def test_the_meter_harness_reports_an_error_the_meter_hides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The meter answers ERR 01 when its handler fails and logs the exception; the
    # harness must turn that log into a failure, or the fuzzer would never see a bug.
    def broken(self: object, request: object) -> object:
        raise RuntimeError("planted bug in 14H")

    meter = make_target("meter")
    try:
        write = WriteRequest(0x04000102, bytes(3)).to_data()  # time 00:00:00
        record = bytes((0, 0x14, 0, len(write))) + write
        meter.run(record)
        monkeypatch.setattr(Meter, "_write", broken)
        with pytest.raises(RuntimeError, match="planted bug in 14H"):
            meter.run(record)
    finally:
        meter.close()


@pytest.mark.skipif(not atheris_available(), reason="no atheris wheel for this platform")
def test_bench_fuzz_runs_every_target_under_atheris(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "feikong",
            "bench",
            "fuzz",
            "--target",
            "all",
            "--minutes",
            "0.02",
            "--out",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [t["target"] for t in report["targets"]] == list(TARGET_NAMES)
    for t in report["targets"]:
        assert t["engine"] == "atheris"
        assert t["crashes"] == 0 and t["reproducer"] is None, t
        assert t["inputs"] > 0 and t["coverage"] > 0, t
        assert 0 < t["peak_rss_mib"] < 2048, t
        assert any((tmp_path / t["target"] / "corpus").iterdir())


# --------------------------------------------------------------------------- control characters


def test_an_archive_cell_with_a_control_character_is_a_bad_row(tmp_path: Path) -> None:
    # Found by the archive harness: a NUL byte in a cell was stored as is. PostgreSQL
    # refuses NUL in text, so there the whole import failed with a driver error
    # (psycopg DataError, not ArchiveFormatError) and no row loaded.
    from headend.archive import import_archive
    from headend.db import migrate, open_database

    engine = open_database(f"sqlite:///{tmp_path / 'archive.db'}")
    migrate(engine)
    csv_text = (
        "name,kind,host,port\n"
        "gw\x001,tcp,127.0.0.1,6455\n"
        "gw2,tcp,10.0.0.\x07,6455\n"
        "gw3,tcp,127.0.0.1,6456\n"
    )
    report = import_archive(engine, io.StringIO(csv_text))
    assert report.channels_loaded == 1
    assert [(e.line, e.reason) for e in report.errors] == [
        (2, "name 'gw\\x001' contains a control character; remove it"),
        (3, "host '10.0.0.\\x07' contains a control character; remove it"),
    ]
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT name FROM headend_channel").scalars().all() == ["gw3"]
    engine.dispose()


def test_a_payment_row_with_a_control_character_is_a_bad_row_and_recorded(
    tmp_path: Path,
) -> None:
    # Found by the payments harness: a NUL in the source column went into the ledger
    # (on PostgreSQL the batch failed: "cannot credit 1 payment(s): the ledger database
    # failed"), and a NUL in a refused row's payment id made the rejection record fail,
    # so every refused row of the file went unrecorded.
    from prepaid.cis import LedgerCis, import_payments
    from prepaid.cis.tables import movement, rejection
    from prepaid.db import migrate, open_database

    engine = open_database(f"sqlite:///{tmp_path / 'cis.db'}")
    migrate(engine)
    ledger = LedgerCis(engine, clock=SteppedClock(datetime(2026, 3, 10, 9, 30)))
    path = tmp_path / "payments.csv"
    path.write_text(
        "payment_id,account_no,amount,source\n"
        "P-1,A1,1.00,bank\x00x\n"
        "P\x002,A1,2.00,bank\n"
        "P-3,A1,3.00,bank\n",
        encoding="utf-8",
    )
    report = import_payments(ledger, path)
    assert (report.credited, report.credited_fen) == (1, 300)
    assert [(e.line, e.reason) for e in report.errors] == [
        (2, "source 'bank\\x00x' contains a control character; remove it"),
        (
            3,
            "payment id 'P\\x002' must be 1 to 64 printable characters "
            "(the CIS serial number of the transaction)",
        ),
    ]
    assert ledger.balance("A1") == 300
    with engine.connect() as c:
        sources = c.execute(sa.select(movement.c.source)).scalars().all()
        refused = c.execute(sa.select(rejection.c.operation_id).order_by(rejection.c.id)).all()
    assert all("\x00" not in s for s in sources)
    assert [r[0] for r in refused] == ["P-1", "P\\x002"]
    engine.dispose()
