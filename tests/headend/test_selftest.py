"""``headend.selftest`` against real simulated meters: a pty RS-485 line and TCP.

The meters are :mod:`meter_sim` meters served by :class:`~meter_sim.runner.FleetServers`
(the same servers ``feikong meter-sim`` runs); the self-test reaches them through
the head-end's own transports, as it would a meter on the bench.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from headend.selftest import CheckStatus, SelftestError, SelftestReport, run_selftest
from meter_sim.config import FaultConfig, MeterConfig
from meter_sim.fleet import Fleet
from meter_sim.runner import FleetServers, Listen, SerialBus, TcpGateway
from protocol import SteppedClock
from protocol.errors import TransportError
from protocol.security import SimulatedEncryptionMachine
from protocol.transport import SerialTransport, TcpTransport, Transport
from tests.protocol.transport.conftest import PtyNullModem

START = datetime(2026, 3, 1, 8, 0)
ADDRESS = "000000000101"
KEY = bytes(range(16))
MANDATORY = {
    "read-address",
    "foreign-address",
    "energy-combined",
    "energy-forward",
    "energy-reverse",
    "status-word-1",
    "status-word-2",
    "status-word-3",
    "clock-date",
    "clock-time",
    "freeze-time",
    "freeze-forward",
    "freeze-reverse",
    "unknown-di",
}


async def serve_on_pty(bench: Bench, port: str) -> str:
    """Serve at 2400 8E1 (the DL/T 645 line); N if this kernel's pty refuses even parity.

    A pty carries bytes, not bits: parity changes nothing on it, but some kernels
    reject the setting (EINVAL), as they may on a cheap USB adapter.
    """
    try:
        await bench.serve(SerialBus(port, 2400, "E"))
        return "E"
    except TransportError as exc:
        assert "refuse parity E" in str(exc)
    await bench.serve(SerialBus(port, 2400, "N"))
    return "N"


class Bench:
    """One or more simulated meters served on a link, a stepped clock, a day of history."""

    def __init__(self, configs: Sequence[MeterConfig]) -> None:
        self.clock = SteppedClock(START)
        self.fleet = Fleet(configs, self.clock, master_key=KEY)
        self.servers: FleetServers | None = None

    async def serve(self, listen: Listen) -> FleetServers:
        self.servers = FleetServers(self.fleet, listen)
        try:
            await self.servers.start()
        except BaseException:
            self.servers = None
            raise
        # one night passes: the meters take their 00:00 daily freeze of 2026-03-02
        await self.clock.advance(timedelta(days=1, hours=2).total_seconds())
        return self.servers

    async def aclose(self) -> None:
        if self.servers is not None:
            await self.servers.stop()
        await self.fleet.aclose()


def configs(count: int = 1, **faults: object) -> list[MeterConfig]:
    fault = FaultConfig(**faults)  # type: ignore[arg-type]
    return [
        MeterConfig(f"{101 + i:012d}", seed=3 + i, faults=fault if i == 0 else FaultConfig())
        for i in range(count)
    ]


@pytest.fixture
async def null_modem() -> AsyncIterator[PtyNullModem]:
    modem = PtyNullModem()
    try:
        yield modem
    finally:
        modem.close()


async def tcp_bench(*conf: MeterConfig, timeout: float = 0.5) -> tuple[Bench, TcpTransport]:
    bench = Bench(list(conf) or configs())
    servers = await bench.serve(TcpGateway("127.0.0.1", 0))
    port = servers.servers[0].port  # type: ignore[attr-defined]
    return bench, TcpTransport("127.0.0.1", port, response_timeout=timeout)


async def selftest(
    bench: Bench, link: Transport, address: str = ADDRESS, timeout: float = 0.5, **kw: object
) -> SelftestReport:
    try:
        return await run_selftest(link, address, clock=bench.clock, timeout=timeout, **kw)  # type: ignore[arg-type]
    finally:
        await link.close()


def statuses(report: SelftestReport) -> dict[str, CheckStatus]:
    return {c.key: c.status for c in report.checks}


async def test_a_meter_on_a_pty_rs485_line_at_2400_8e1_passes_every_check(
    null_modem: PtyNullModem,
) -> None:
    bench = Bench(configs())
    try:
        parity = await serve_on_pty(bench, null_modem.a)
        link = SerialTransport(null_modem.b, baudrate=2400, parity=parity, preamble=4)
        assert str(link.settings) == f"2400 8{parity}1"
        report = await selftest(bench, link, capture_frames=True)
    finally:
        await bench.aclose()
    assert report.ok, [c for c in report.checks if not c.passed]
    assert {c.key for c in report.checks if c.mandatory} == MANDATORY
    assert all(c.status is CheckStatus.PASS for c in report.checks), report.checks
    assert report.link.startswith(f"serial://{null_modem.b}?baud=2400")
    # TV4a of PROTOCOL.md §6: the wildcard 13H with the 4-byte FE wake-up
    read_address = report.check("read-address")
    assert read_address.frames[0].hex == "FE FE FE FE 68 AA AA AA AA AA AA 68 13 00 DF 16"
    assert read_address.value == ADDRESS
    # the reply to 13H: 93H, L=06, the address low byte first, each byte +33H
    assert read_address.frames[1].hex.startswith("68 01 01 00 00 00 00 68 93 06 34 34 33 33 33 33")
    # every request went out with the wake-up preamble
    assert all(f.hex.startswith("FE FE FE FE 68") for c in report.checks for f in c.frames[:1])
    # the freeze is the one the meter took at 00:00 of the night that passed
    assert report.check("freeze-time").value == "2026-03-02T00:00:00"
    assert report.check("clock-date").value == "2026-03-02"
    assert report.check("clock-time").value == "10:00:00"
    assert report.check("clock-offset").value == 0
    # an unknown DI is refused with D1H, ERR 02 (no requested data)
    unknown = report.check("unknown-di")
    assert unknown.error_word == 0x02 and unknown.error_bits == ("NO_DATA",)
    assert unknown.frames[1].hex.split()[8:11] == ["D1", "01", "35"]
    assert all(c.elapsed_ms is not None and c.elapsed_ms < 500 for c in report.checks[:2])


async def test_over_tcp_the_values_are_the_meters_registers() -> None:
    bench, link = await tcp_bench()
    try:
        report = await selftest(bench, link)
        meter = bench.fleet.meters[ADDRESS]  # type: ignore[index]
        forward = meter.registers.block(1)  # type: ignore[attr-defined]
        frozen = meter.daily_freezes.get(1)  # type: ignore[attr-defined]
    finally:
        await bench.aclose()
    assert report.ok
    # the registers hold 0.01 kWh: 1234 → "12.34"
    assert report.check("energy-forward").value == str(Decimal(forward[0]).scaleb(-2))
    assert report.check("energy-block").value == [str(Decimal(v).scaleb(-2)) for v in forward]
    assert report.check("freeze-forward").value == [
        str(Decimal(v).scaleb(-2)) for v in frozen.forward
    ]
    assert Decimal(report.check("energy-forward").value) > 0  # a day and a night of consumption
    # a remote-mode meter: status word 1 bit 6 (fee-control mode) set
    assert "REMOTE_MODE" in report.check("status-word-1").detail.upper().replace(" ", "_")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["failed_mandatory"] == []
    assert data["counts"]["pass"] == len(report.checks)
    assert "frames" not in data["checks"][0]  # frames only on request


async def test_a_missing_freeze_is_not_supported_with_its_error_word() -> None:
    bench, link = await tcp_bench(*configs(missing_freeze_days=1))
    try:
        report = await selftest(bench, link)
    finally:
        await bench.aclose()
    for key in ("freeze-time", "freeze-forward", "freeze-reverse"):
        check = report.check(key)
        assert check.status is CheckStatus.NOT_SUPPORTED
        assert check.error_word == 0x02 and check.error_bits == ("NO_DATA",)
        assert "ERR 02" in check.detail or "no requested data" in check.detail.lower()
    assert not report.ok
    assert [c.key for c in report.failed_mandatory] == [
        "freeze-time",
        "freeze-forward",
        "freeze-reverse",
    ]
    assert report.check("energy-forward").passed


async def test_a_meter_that_never_answers_times_out_check_by_check() -> None:
    bench, link = await tcp_bench(*configs(no_reply=True))
    link.response_timeout = 0.1
    try:
        report = await run_selftest(link, ADDRESS, clock=bench.clock, timeout=0.1)
        await link.close()
    finally:
        await bench.aclose()
    assert not report.ok
    for check in report.checks:
        if check.key == "foreign-address":
            assert check.status is CheckStatus.PASS  # silence is what that check wants
        elif check.key == "clock-offset":
            assert check.status is CheckStatus.SKIPPED
        else:
            assert check.status is CheckStatus.TIMEOUT, check
            assert check.detail == "no reply within 0.1 s"
            assert check.elapsed_ms is not None and check.elapsed_ms >= 90
    assert MANDATORY - {"foreign-address"} == {c.key for c in report.failed_mandatory}


async def test_a_wrong_address_names_the_meter_that_answers() -> None:
    bench, link = await tcp_bench()
    try:
        report = await selftest(bench, link, address="000000000999", timeout=0.1)
    finally:
        await bench.aclose()
    assert not report.ok
    check = report.check("read-address")
    assert check.status is CheckStatus.FAIL
    assert "answers as 000000000101, not 000000000999" in check.detail
    assert report.answered_as == ADDRESS
    assert report.check("energy-forward").status is CheckStatus.TIMEOUT


async def test_a_shared_line_skips_the_wildcard_and_foreign_address_checks() -> None:
    bench, link = await tcp_bench(*configs(count=3))
    try:
        report = await selftest(bench, link, address="000000000102", shared_line=True)
    finally:
        await bench.aclose()
    assert statuses(report)["read-address"] is CheckStatus.SKIPPED
    assert statuses(report)["foreign-address"] is CheckStatus.SKIPPED
    assert report.check("address-di").value == "000000000102"
    # skipped mandatory checks do not pass: the report says the line was not fully tested
    assert not report.ok
    assert {c.key for c in report.failed_mandatory} == {"read-address", "foreign-address"}


async def test_identity_authentication_with_the_lab_key() -> None:
    bench, link = await tcp_bench()
    try:
        good = await selftest(bench, link, machine=SimulatedEncryptionMachine(KEY))
        wrong = await selftest(bench, link, machine=SimulatedEncryptionMachine(bytes(16)))
    finally:
        await bench.aclose()
    assert good.check("identity-auth").status is CheckStatus.PASS
    assert not good.check("identity-auth").mandatory
    refused = wrong.check("identity-auth")
    assert refused.status is CheckStatus.NOT_SUPPORTED
    assert refused.error_word is not None and "AUTH_FAILED" in refused.error_bits
    assert wrong.ok  # optional: a lab key mismatch does not fail conformance


async def test_a_link_that_cannot_be_opened_is_an_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clock = SteppedClock(START)
    refused = TcpTransport("127.0.0.1", port, connect_attempts=1)
    with pytest.raises(SelftestError, match=f"cannot open the link.*127.0.0.1:{port}"):
        await run_selftest(refused, ADDRESS, clock=clock)
    missing = SerialTransport("/dev/feikong-no-such-port", parity="N")
    with pytest.raises(SelftestError, match="no such device"):
        await run_selftest(missing, ADDRESS, clock=clock)
    for bad in ("12345", "12345678901A", "999999999999", "AAAAAAAAAAAA"):
        with pytest.raises(SelftestError, match=r"12 decimal digits|broadcast or a wildcard"):
            await run_selftest(refused, bad, clock=clock)
