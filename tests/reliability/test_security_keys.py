"""Security: keys are never stored in plaintext; the meter refuses wrong keys, expired and
replayed commands — end to end through the head-end over TCP.

A full bench run with a random lab master key: ``feikong meter-sim`` in its own process
(``--key-file``, ``--state``), the head-end's ``feikong headend command … --key-dir``
tripping one meter with the right key and failing on another with a wrong key, and a card
sale (``feikong vend sell --key-file``). Then every cell of every table, the raw database
files, the simulator's state file, the card file and the commands' output are searched
for the master key and the keys dispersed from it (per meter, per card) — as raw bytes,
hex (plain and spaced, as frames are logged), base64, and as they would travel in a DL/T
645 data field (reversed, +33H): none is there.

The expired and replayed commands go through the head-end's service interface to a
simulated meter on a TCP gateway (the stepped-clock rig): the job fails with the meter's
refusal named, and the breaker does not move.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from breaker_sim import BreakerState
from feikong.cli import app
from headend.events import CommandFailed, CommandSucceeded
from headend.service import HeadendService
from prepaid.accounts import open_accounts
from prepaid.db import migrate, open_database
from prepaid.models import FeeControlMode
from protocol import ControlErrorWord
from protocol.clock import SteppedClock
from protocol.frame import Frame, decode_frame, encode_frame, unscramble
from protocol.security import card_key, diversify, format_key_file, meter_factor

from ..headend.jobs_rig import FIRST, headend
from ..headend.test_cli_run import _free_port, _wait_port
from ..prepaid.rating_helpers import account, with_tariffs_and_unit
from ..prepaid.security_helpers import PASSWORD, add_staff, make_users

runner = CliRunner()
METERS = ("000000000001", "000000000002")
CARD_CUSTOMER = "3300000007"


# -- searching for keys ---------------------------------------------------------------------


def _forms(key: bytes) -> list[bytes]:
    """The ways a 16-byte key could be written down or sent."""
    on_wire = bytes((b + 0x33) & 0xFF for b in reversed(key))  # a DL/T 645 data field
    out = []
    for raw in (key, key[::-1], on_wire):
        out += [
            raw,
            raw.hex().encode(),
            raw.hex().upper().encode(),
            raw.hex(" ").upper().encode(),
            base64.b64encode(raw),
            base64.b64encode(raw).rstrip(b"="),
        ]
    return out


def _cells(url: str) -> Iterator[tuple[str, bytes]]:
    """(table.column, value) of every cell of every table, values as bytes."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                    for column, value in row._mapping.items():
                        if value is None:
                            continue
                        data = value if isinstance(value, bytes) else str(value).encode()
                        yield f"{table}.{column}", data
    finally:
        engine.dispose()


def _found(keys: dict[str, bytes], places: dict[str, bytes]) -> list[str]:
    hits = []
    for key_name, key in keys.items():
        for form in _forms(key):
            for place, data in places.items():
                if form in data or form.lower() in data.lower():
                    hits.append(f"{key_name} in {place} as {form[:16]!r}…")
    return hits


def test_the_search_finds_a_key_in_each_form() -> None:
    key = bytes(range(0xA0, 0xB0))
    for n, form in enumerate(_forms(key)):
        assert _found({"k": key}, {f"p{n}": b"xx" + form + b"yy"}) != []
    assert _found({"k": key}, {"p": b"68 01 00 00 00 00 00 68 03 20 32 33"}) == []


# -- the bench run ----------------------------------------------------------------------------


def _relay_bits(port: int, address: str) -> object:
    """Status word 3 (04000503, relay state among its bits) read by ``feikong read``."""
    result = runner.invoke(
        app,
        ["read", "--tcp", f"127.0.0.1:{port}", "--address", address, "--di", "04000503", "--json"],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["value"]


def test_a_bench_run_with_keys_stores_no_key_and_a_wrong_key_moves_nothing(tmp_path: Path) -> None:
    master, wrong = secrets.token_bytes(16), secrets.token_bytes(16)
    (tmp_path / "lab.key").write_text(format_key_file(master))
    for folder, key in (("keys", master), ("wrong", wrong)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "default.key").write_text(format_key_file(key))
    url = f"sqlite:///{tmp_path / 'feikong.db'}"
    state = tmp_path / "meters.json"
    port = _free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "feikong", "meter-sim", "--tcp", f"127.0.0.1:{port}"),
            *("--first-address", "1", "--count", str(len(METERS))),
            *("--key-file", str(tmp_path / "lab.key"), "--state", str(state)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    outputs: dict[str, bytes] = {}
    try:
        _wait_port(port, proc)
        archive = tmp_path / "archive.csv"
        archive.write_text(
            "record,name,kind,host,port,address,meter_number,channel,breaker_type\n"
            f"channel,bench,gateway,127.0.0.1,{port},,,,\n"
            + "".join(f"meter,,remote,,,{a},{a},bench,external\n" for a in METERS)
        )
        imported = runner.invoke(app, ["headend", "import-archive", str(archive), "--db", url])
        assert imported.exit_code == 0, imported.output
        before = _relay_bits(port, METERS[1])
        assert _relay_bits(port, METERS[0]) == before  # both closed

        command = ["headend", "command", "--db", url, "--settle", "0.2", "--wait"]
        good = runner.invoke(
            app,
            [*command[:2], METERS[0], "trip", *command[2:], "--key-dir", str(tmp_path / "keys")],
        )
        assert good.exit_code == 0, good.output
        assert "trip done; relay open" in good.output
        assert _relay_bits(port, METERS[0]) != before  # the read shows a trip
        bad = runner.invoke(
            app,
            [*command[:2], METERS[1], "trip", *command[2:], "--key-dir", str(tmp_path / "wrong")],
        )
        assert bad.exit_code == 1, bad.output
        assert "refused identity authentication" in bad.output
        assert "does not match" in bad.output and "Traceback" not in bad.output
        assert _relay_bits(port, METERS[1]) == before, "the wrong key moved the relay"
        outputs = {
            "command output (right key)": good.output.encode(),
            "(wrong key)": bad.output.encode(),
        }

        # a card sale signed with the same master key
        engine = open_database(url)
        migrate(engine)
        with engine.begin() as conn:
            unit = with_tariffs_and_unit(conn)
            open_accounts(conn, [account(7, unit, fee_control_mode=FeeControlMode.LOCAL)])
        add_staff(make_users(engine, _clock()))
        engine.dispose()
        card = tmp_path / "card.json"
        sold = runner.invoke(
            app,
            [
                *("vend", "sell", CARD_CUSTOMER, "50.00", "--sale-id", "S-1", "--card", str(card)),
                *("--key-file", str(tmp_path / "lab.key"), "--user", "customer.service"),
                *("--db", url),
            ],
            env={"FEIKONG_PASSWORD": PASSWORD},
        )
        assert sold.exit_code == 0, sold.output
        assert card.exists()
        outputs["vend output"] = sold.output.encode()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the simulator saves its state on the way out
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert state.exists()
    outputs["meter-sim output"] = out + err

    keys = {"master key": master}
    for address in METERS:
        keys[f"meter {address}'s dispersed key"] = diversify(master, meter_factor(address))
    keys["the card key"] = card_key(master, CARD_CUSTOMER.zfill(12))
    places = {f"cell {where}": data for where, data in _cells(url)}
    places.update(
        {
            str(p.relative_to(tmp_path)): p.read_bytes()
            for p in tmp_path.iterdir()
            if p.is_file() and p.name != "lab.key"
        }
    )
    places.update(outputs)
    assert any(name.startswith("cell headend_job_attempt.frames_hex") for name in places), (
        "frames were logged"
    )
    assert _found(keys, places) == []
    # the key files themselves hold it (the search works on this very run)
    assert _found(
        {"master key": master}, {"keys": (tmp_path / "keys" / "default.key").read_bytes()}
    )


def _clock() -> SteppedClock:
    return SteppedClock(datetime(2026, 3, 2, 9, 0))


# -- expired and replayed commands through the head-end's service ---------------------------------


async def test_an_expired_command_is_refused_and_the_relay_does_not_move(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:
        service = HeadendService(he.runner)
        meter = he.meter(FIRST)
        meter.clock.set(he.clock.now() + timedelta(hours=1))  # the meter's clock runs ahead
        trips = he.breaker(FIRST).trip_count
        event = await he.finish(service.trip(FIRST, "arrears"))
        assert isinstance(event, CommandFailed), event
        assert event.error == "command-expired"
        assert "EXPIRED" in event.reason and "clock may be ahead" in event.reason
        assert he.breaker(FIRST).state is BreakerState.CLOSED
        assert he.breaker(FIRST).trip_count == trips


async def _send(port: int, raw: bytes) -> Frame:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        buffer = b""
        while True:
            buffer += await asyncio.wait_for(reader.read(256), 5)
            try:
                frame, _ = decode_frame(buffer)
            except Exception:
                continue
            return frame
    finally:
        writer.close()
        await writer.wait_closed()


def _control_error(reply: Frame) -> ControlErrorWord:
    assert reply.control == 0xDC, f"not a refusal: {reply}"
    data = unscramble(reply.data)
    return ControlErrorWord(int.from_bytes(data[:2], "little"))


async def test_a_replayed_command_is_refused_and_the_relay_does_not_move(tmp_path: Path) -> None:
    async with headend(tmp_path) as he:
        service = HeadendService(he.runner)
        job = service.trip(FIRST, "arrears")
        assert isinstance(await he.finish(job), CommandSucceeded)
        sent = [
            decode_frame(bytes.fromhex(line[3:]))[0]
            for attempt in he.runner.store.attempts(job)
            for line in attempt.frames
            if line.startswith("TX")
        ]
        auth = next(f for f in sent if f.control == 0x03)
        control = next(f for f in sent if f.control == 0x1C)
        breaker = he.breaker(FIRST)

        esam = he.meter(FIRST).auth.esam
        mac_errors = esam.mac_errors

        # 1. the captured trip block again, in the same authenticated session: its MAC is
        # good, so the meter knows it as a replay (refused, not counted towards suspension)
        replay = await _send(he.gateway.port, encode_frame(control))
        assert ControlErrorWord.MAC_ERROR in _control_error(replay)
        assert esam.mac_errors == mac_errors

        # the customer pays: permit-close through the head-end, then closed by hand
        assert isinstance(
            await he.finish(service.permit_close(FIRST, reason="paid")), CommandSucceeded
        )
        breaker.manual_close()
        assert breaker.state is BreakerState.CLOSED
        trips = breaker.trip_count

        # 2. later an attacker replays the whole exchange: identity authentication, then the trip
        await _send(he.gateway.port, encode_frame(auth))
        replay = await _send(he.gateway.port, encode_frame(control))
        assert ControlErrorWord.MAC_ERROR in _control_error(replay)
        assert esam.mac_errors == mac_errors + 1  # the new session's key: the MAC fails
        assert breaker.state is BreakerState.CLOSED and breaker.trip_count == trips
