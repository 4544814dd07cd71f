"""The interim demo: what exists today, end to end, as separate processes.

1. starts ``feikong breaker-sim`` (Modbus TCP) and ``feikong meter-sim`` (TCP
   gateway, meters driving those breakers over Modbus) as their own processes,
   on an accelerated clock;
2. from this process, as a master station would: reads energies and status
   words, authenticates and trips a meter (SPEC S1: the breaker opens at once,
   a manual close is refused, the meter permits the close 60 s later, the
   customer closes by hand), and shows a guaranteed (保电) meter refusing a trip;
3. measures the codec for one second.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta

from rich.table import Table

from breaker_sim import ModbusBreakerLink
from protocol import AbnormalReplyError, ControlCommand, ProtocolError, names
from protocol.bench import run_codec_bench
from protocol.client import MasterClient
from protocol.security import TEST_MASTER_KEY, SimulatedEncryptionMachine
from protocol.transport import TcpTransport

from .output import console

SPEED = 60.0
"""Simulated seconds per real second: the 60 s permit-close delay takes 1 s."""
METERS = ["000000000001", "000000000002", "000000000003"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {proc.returncode}; run it alone to see why"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "feikong", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def _session(meter_port: int, breaker_port: int) -> None:
    machine = SimulatedEncryptionMachine(TEST_MASTER_KEY)
    # Expiry a simulated day ahead: the meters' clock runs SPEED times faster.
    expiry = datetime.now() + timedelta(days=1)
    async with TcpTransport("127.0.0.1", meter_port, response_timeout=3.0) as link:
        client = MasterClient(link)
        table = Table("meter", "forward active", "status word 3")
        for address in METERS:
            energy = await client.read(address, 0x00010000)
            word = await client.read(address, 0x04000503)
            table.add_row(address, energy.text(), ", ".join(names(word.value)) or "relay closed")
        console.print(table)

        steps = Table("step", "result")
        breaker = ModbusBreakerLink("127.0.0.1", breaker_port, 1)
        try:
            session = await client.authenticate(METERS[0], machine, METERS[0])
            steps.add_row("identity authentication (03H 070000FF)", "session open")
            reply = await client.control_secure(session, machine, ControlCommand.TRIP, expiry)
            info = ", ".join(names(reply.info)) if reply.info is not None else "done"
            steps.add_row("98-level trip (1CH 1AH)", info)
            steps.add_row("breaker", (await breaker.read_state()).name)
            outcome = await breaker.manual_close()
            steps.add_row("customer pushes the lever", outcome.message)
            await asyncio.sleep(60 / SPEED + 0.5)
            steps.add_row("60 s later: breaker", (await breaker.read_state()).name)
            outcome = await breaker.manual_close()
            steps.add_row("customer pushes the lever", outcome.message)
            word = await client.read(METERS[0], 0x04000503)
            steps.add_row("meter status word 3", ", ".join(names(word.value)) or "relay closed")
        finally:
            await breaker.aclose()

        session = await client.authenticate(METERS[1], machine, METERS[1])
        await client.control_secure(session, machine, ControlCommand.GUARANTEE, expiry)
        steps.add_row(f"meter {METERS[1]}: power guarantee (保电, 3AH)", "on")
        try:
            await client.control_secure(session, machine, ControlCommand.TRIP, expiry)
            steps.add_row("trip a guaranteed meter", "[red]executed (wrong!)[/]")
        except AbnormalReplyError as exc:
            steps.add_row("trip a guaranteed meter", f"refused: {exc}")
        console.print(steps)


def run_protocol_demo() -> None:
    console.rule("feikong demo")
    breaker_port, meter_port = _free_port(), _free_port()
    breakers = _start(
        ["breaker-sim", "--modbus-tcp", f"127.0.0.1:{breaker_port}", "--count", str(len(METERS))]
    )
    meters: subprocess.Popen[bytes] | None = None
    try:
        _wait_port(breaker_port, breakers, "breaker-sim")
        meters = _start(
            [
                "meter-sim",
                "--tcp",
                f"127.0.0.1:{meter_port}",
                "--first-address",
                METERS[0],
                "--count",
                str(len(METERS)),
                "--breaker",
                f"modbus://127.0.0.1:{breaker_port}",
                "--speed",
                str(SPEED),
            ]
        )
        _wait_port(meter_port, meters, "meter-sim")
        console.print(
            f"breaker-sim: {len(METERS)} breakers on Modbus TCP 127.0.0.1:{breaker_port}; "
            f"meter-sim: {len(METERS)} remote fee-control meters on TCP 127.0.0.1:{meter_port} "
            f"(clock ×{SPEED:.0f})",
            highlight=False,
        )
        asyncio.run(_session(meter_port, breaker_port))
    except (RuntimeError, ProtocolError, OSError) as exc:
        console.print(f"[bold red]demo failed:[/] {exc}")
        raise SystemExit(1) from None
    finally:
        if meters is not None:
            _stop(meters)
        _stop(breakers)
    console.print("\nCodec benchmark (1 s each way):")
    result = run_codec_bench(1.0)
    console.print(f"  encode_frames_per_s={result.encode_per_s:.0f}", highlight=False)
    console.print(f"  decode_frames_per_s={result.decode_per_s:.0f}", highlight=False)
