"""The fuzz harnesses: one class per target, ``run(data)`` checks one input.

Every harness turns the package's documented errors into a normal outcome and lets
anything else through: an unexpected exception, or a :class:`Finding` when the result
breaks an invariant. Harnesses are deterministic: the same input gives the same outcome,
so a saved input reproduces a failure (``feikong bench fuzz --reproduce FILE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Final

__all__ = [
    "ArchiveTarget",
    "CisCsvTarget",
    "Finding",
    "MeterTarget",
    "ParserTarget",
    "Target",
    "TariffTarget",
    "make_target",
]


class Finding(AssertionError):
    """An input that broke an invariant (the message says which and how)."""


class Target(ABC):
    """A fuzz target: ``seeds()`` to start from, ``run(data)`` to check one input."""

    name: ClassVar[str]
    allowed: ClassVar[str]
    """The error types the code may raise, as people read them."""

    @abstractmethod
    def seeds(self) -> list[bytes]:
        """Valid (and a few almost valid) inputs to start mutating from."""

    @abstractmethod
    def run(self, data: bytes) -> None:
        """Check one input; raise on a finding."""

    def close(self) -> None:  # noqa: B027 - most targets hold nothing
        """Release what the target holds (temporary databases)."""


# --------------------------------------------------------------------------- parser


class ParserTarget(Target):
    """Stream parser, frame codec, message decoder and ``feikong frame``'s explainer.

    Input: byte 0 is the chunk size (1..64) the stream is fed in; the rest is the
    line's bytes. Checks: only ``ProtocolError`` is raised; every frame the parser
    returns re-encodes to bytes found in the stream, in order; the parser never holds
    more than one maximal frame plus the chunk just fed; chunked and whole feeding
    agree on the frames of a stream with no false start; a decoded message re-encodes
    to a frame that decodes to the same message.
    """

    name = "parser"
    allowed = "protocol.ProtocolError"

    def __init__(self) -> None:
        from protocol import ProtocolError, StreamParser, decode_message
        from protocol.explain import explain, to_jsonable
        from protocol.frame import MAX_FRAME, decode_frame, encode_frame

        self._error = ProtocolError
        self._parser = StreamParser
        self._decode_message = decode_message
        self._decode_frame = decode_frame
        self._encode_frame = encode_frame
        self._explain = explain
        self._jsonable = to_jsonable
        self._max_frame = MAX_FRAME

    def seeds(self) -> list[bytes]:
        from protocol.frame import encode_frame

        frames = [encode_frame(f) for f in _sample_frames()]
        out = [bytes([n]) + w for n, w in zip((1, 3, 7, 16, 64, 2), frames * 2, strict=False)]
        out.append(b"\x05" + b"".join(frames))
        out.append(b"\x04" + b"\xfe\xfe\x68\x00\x11" + b"".join(frames[:2]))
        broken = bytearray(frames[0])
        broken[-2] ^= 0x55
        out.append(b"\x08" + bytes(broken) + frames[1])
        return out

    def run(self, data: bytes) -> None:
        if not data:
            return
        chunk = data[0] % 64 + 1
        stream = data[1:]
        parser = self._parser()
        frames = []
        for start in range(0, len(stream), chunk):
            piece = stream[start : start + chunk]
            frames.extend(parser.feed(piece))
            if parser.pending > self._max_frame + len(piece):
                raise Finding(
                    f"parser holds {parser.pending} bytes after a {len(piece)}-byte chunk"
                )
        # Every frame is in the stream, in order, byte for byte.
        pos = 0
        for frame in frames:
            wire = self._encode_frame(frame, 0)
            found = stream.find(wire, pos)
            if found < 0:
                raise Finding(f"frame {wire.hex()} is not in the stream after byte {pos}")
            pos = found + len(wire)
        stats = parser.stats
        if stats.frames != len(frames):
            raise Finding(f"stats.frames {stats.frames} but {len(frames)} frames returned")
        if not stats.checksum_errors and not stats.framing_errors and not stats.noise_bytes:
            whole = self._parser().feed(stream)
            if whole != frames:
                raise Finding(
                    f"fed whole: {len(whole)} frames; in {chunk}-byte chunks: {len(frames)}"
                )
        for frame in frames:
            self._check_message(frame)
        with contextlib.suppress(self._error):
            self._decode_frame(stream)
        try:
            for explanation in self._explain(stream):
                self._jsonable(explanation.value)
                explanation.to_dict()
        except self._error:
            pass

    def _check_message(self, frame: Any) -> None:
        from protocol.frame import Frame

        try:
            message = self._decode_message(frame)
        except self._error:
            return
        again = Frame(frame.address, message.control, message.to_data())
        try:
            round_trip = self._decode_message(again)
        except self._error as exc:
            raise Finding(
                f"{message!r} re-encodes to {again} which does not decode: {exc}"
            ) from exc
        if round_trip != message:
            raise Finding(f"{message!r} re-encodes and decodes as {round_trip!r}")


def _sample_frames() -> list[Any]:
    """Requests and replies of every kind, as a head-end and a meter exchange them."""
    from protocol import Address
    from protocol.codes import ControlCommand
    from protocol.frame import Frame
    from protocol.messages import (
        ChangeBaudRequest,
        ChangePasswordRequest,
        ClearEventsRequest,
        ClearMeterRequest,
        ControlRequest,
        FreezeRequest,
        IdentityAuthRequest,
        MultiFunctionRequest,
        ReadAddressRequest,
        ReadFollowUpRequest,
        ReadRequest,
        TimeSyncRequest,
        WriteAddressRequest,
        WriteRequest,
        to_frame,
    )

    a = Address("000000000001")
    expiry = datetime(2026, 1, 1, 1, 0, 0)
    messages: list[Any] = [
        ReadRequest(0x00010000),
        ReadRequest(0x0506FF01),
        ReadRequest(0x00900200),
        ReadRequest(0x04000401),
        ReadRequest(0x05060101, blocks=2),
        ReadFollowUpRequest(0x0506FF01, 1),
        ReadAddressRequest(),
        WriteRequest(0x04000103, b"\x05"),
        WriteAddressRequest(Address("000000000009")),
        FreezeRequest(),
        ChangeBaudRequest(0x08),
        ChangePasswordRequest(4, "000000", "123456"),
        ClearMeterRequest(),
        ClearEventsRequest(),
        TimeSyncRequest(datetime(2026, 1, 1, 0, 5, 0)),
        MultiFunctionRequest(1),
        IdentityAuthRequest(bytes(8), bytes(range(8)), bytes.fromhex("0000000000000001")),
        *(ControlRequest(c, expiry) for c in ControlCommand),
    ]
    frames = [to_frame(a, m) for m in messages]
    replies = [
        Frame(a, 0x91, bytes.fromhex("00000100") + bytes.fromhex("12345678")),
        Frame(a, 0xB1, bytes.fromhex("01FF0605") + bytes(40)),
        Frame(a, 0xD1, b"\x02"),
        Frame(a, 0x93, a.wire),
        Frame(a, 0x9C, b""),
        Frame(a, 0xDC, b"\x01\x00"),
        Frame(a, 0x83, bytes(8) + bytes(4)),
        Frame(a, 0xC3, b"\x04\x00"),
    ]
    return frames + replies


# --------------------------------------------------------------------------- meter

_ADDRESSES: Final = (
    "000000000001",
    "000000000002",
    "000000000003",
    "999999999999",
    "AAAAAAAAAAAA",
    "AAAAAAAAAA01",
    "AAAAAAAA0002",
    "000000000004",
)
_MAX_STEPS: Final = 16
_STEP_S: Final = 37


class MeterTarget(Target):
    """Whole request frames into a fresh fleet of three meters; the clock moves between.

    The meters: remote fee-control with an internal relay in test mode (plaintext 1CH
    with the level 02 password is accepted, so the control handlers are reached),
    remote with the SPEC S1 external breaker, and a local (card) meter. Input: records
    of ``[address selector][control byte][clock step][length][data…]`` (up to 16), each
    encoded, parsed back by the stream parser and handed to
    :meth:`~meter_sim.fleet.Fleet.handle`; then the clock is stepped (0..255 × 37 s) so
    due trips, permit-closes and freezes fire. Checks: nothing escapes ``handle``; no
    meter logs an internal error (the meter turns any exception into ERR 01, which
    would hide a bug); no timer task fails; every reply is a well-formed reply frame
    from the meter addressed (or matched) that our decoder reads, and broadcasts get
    none.
    """

    name = "meter"
    allowed = "none (Fleet.handle never raises; internal errors are findings)"

    def __init__(self) -> None:
        from meter_sim.config import BreakerKind, MeterConfig, MeterKind
        from protocol import Address, StreamParser, decode_message
        from protocol.clock import SteppedClock
        from protocol.frame import Frame, encode_frame

        self._configs = [
            MeterConfig("000000000001", breaker=BreakerKind.INTERNAL, test_mode=True),
            MeterConfig("000000000002", breaker=BreakerKind.EXTERNAL, permit_close_delay_s=60),
            MeterConfig(
                "000000000003",
                kind=MeterKind.LOCAL,
                breaker=BreakerKind.EXTERNAL_REMOTE_CLOSE,
                extra={"remaining_yuan": "5.00"},
            ),
        ]
        self._addresses = [Address(a) for a in _ADDRESSES]
        self._clock_type = SteppedClock
        self._frame = Frame
        self._encode = encode_frame
        self._parser = StreamParser
        self._decode = decode_message
        self._loop = asyncio.new_event_loop()
        self._loop_errors: list[dict[str, Any]] = []
        self._loop.set_exception_handler(lambda _loop, ctx: self._loop_errors.append(ctx))
        self._log_errors: list[logging.LogRecord] = []
        self._handler = _ErrorCatcher(self._log_errors)
        for name in ("meter_sim", "breaker_sim", "protocol"):
            logging.getLogger(name).addHandler(self._handler)

    def seeds(self) -> list[bytes]:
        out = []
        for frame in _sample_frames():
            if frame.is_reply:
                continue
            for selector in (0, 1, 2):
                out.append(_record(selector, frame.control, 0, frame.data))
        # A trip, time passing, the permit-close, a read of the relay status.
        trip = next(f for f in _sample_frames() if f.control == 0x1C and f.data[8] == 0x1A)
        permit = next(f for f in _sample_frames() if f.control == 0x1C and f.data[8] == 0x1B)
        status = (0x04000503).to_bytes(4, "little")  # 电表运行状态字3: the relay
        for selector in (0, 1):
            out.append(
                _record(selector, 0x1C, 2, trip.data)
                + _record(selector, 0x11, 0, status)
                + _record(selector, 0x1C, 3, permit.data)
                + _record(selector, 0x11, 0, status)
            )
        out.append(_record(3, 0x08, 1, bytes.fromhex("000500010126")) + _record(4, 0x13, 0, b""))
        # Every registered data identifier, read (and written) once: the DI dictionary.
        from protocol.di import items
        from protocol.messages import WriteRequest

        for index, item in enumerate(items()):
            di = item.di.to_bytes(4, "little")
            if item.writable:
                size = getattr(item.format, "size", None) or 1
                write = WriteRequest(item.di, bytes(size))
                out.append(_record(index % 3, 0x14, 0, write.to_data()))
            else:
                out.append(_record(index % 3, 0x11, 0, di))
        return out

    def run(self, data: bytes) -> None:
        self._log_errors.clear()
        self._loop_errors.clear()
        self._loop.run_until_complete(self._session(data))
        if self._log_errors:
            record = self._log_errors[0]
            if record.exc_info and record.exc_info[1] is not None:
                raise record.exc_info[1]
            raise Finding(f"{record.name} logged an error: {record.getMessage()}")
        if self._loop_errors:
            ctx = self._loop_errors[0]
            exc = ctx.get("exception")
            if isinstance(exc, BaseException):
                raise exc
            raise Finding(f"event loop error: {ctx.get('message')}")

    async def _session(self, data: bytes) -> None:
        from meter_sim.fleet import Fleet

        clock = self._clock_type(datetime(2026, 1, 1, 0, 0, 0))
        fleet = Fleet(self._configs, clock, master_key=bytes(16))
        try:
            pos = 0
            for _ in range(_MAX_STEPS):
                if len(data) - pos < 4:
                    break
                selector, control, step, length = data[pos : pos + 4]
                body = data[pos + 4 : pos + 4 + length]
                pos += 4 + length
                await self._one(fleet, selector, control, body)
                if step:
                    await clock.advance(step * _STEP_S)
        finally:
            for meter in fleet:
                cancel = getattr(meter, "cancel_timers", None)
                if cancel is not None:
                    cancel()
            await asyncio.sleep(0)
            await fleet.aclose()

    async def _one(self, fleet: Any, selector: int, control: int, body: bytes) -> None:
        address = self._addresses[selector % len(self._addresses)]
        frame = self._frame(address, control, body)
        wire = self._encode(frame, selector % 5)
        parsed = self._parser().feed(wire)
        if parsed != [frame]:
            raise Finding(f"{wire.hex()} parses as {parsed}, not {frame}")
        reply = await fleet.handle(frame)
        if reply is None:
            return
        if address.is_broadcast:
            raise Finding(f"a broadcast {frame.describe_control()} was answered: {reply}")
        if not isinstance(reply, self._frame):
            raise Finding(f"raw bytes {reply!r} answered {frame} with no fault configured")
        if not reply.is_reply:
            raise Finding(f"reply {reply.describe_control()} lacks the direction bit")
        if reply.function != frame.function:
            raise Finding(f"{frame.describe_control()} answered with {reply.describe_control()}")
        if reply.address not in fleet.meters or not (
            reply.address == address or address.matches(reply.address)
        ):
            raise Finding(f"request to {address} answered from {reply.address}")
        self._encode(reply, 0)  # raises FrameError if the meter built an oversized reply
        try:
            self._decode(reply)
        except Exception as exc:
            raise Finding(f"the meter's reply {reply} does not decode: {exc}") from exc

    def close(self) -> None:
        for name in ("meter_sim", "breaker_sim", "protocol"):
            logging.getLogger(name).removeHandler(self._handler)
        self._loop.close()


def _record(selector: int, control: int, step: int, body: bytes) -> bytes:
    return bytes((selector, control, step, len(body))) + body


class _ErrorCatcher(logging.Handler):
    """Collects ERROR records (a meter logs ``failed on …`` with the exception)."""

    def __init__(self, sink: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink.append(record)


# --------------------------------------------------------------------------- files


class _FileTarget(Target):
    """Inputs written to a file in a private temporary directory (RAM-backed if it can)."""

    def __init__(self, suffix: str) -> None:
        # FEIKONG_FUZZ_WORKDIR: a folder the caller removes (libFuzzer exits the process
        # without running close()).
        given = os.environ.get("FEIKONG_FUZZ_WORKDIR")
        shm = Path("/dev/shm")
        base = given or (shm if shm.is_dir() else None)
        self._dir = Path(tempfile.mkdtemp(prefix="feikong-fuzz-", dir=base))
        self._path = self._dir / f"input{suffix}"

    def _write(self, data: bytes) -> Path:
        self._path.write_bytes(data)
        return self._path

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


class ArchiveTarget(_FileTarget):
    """The archive CSV import into a migrated SQLite database, emptied after each input.

    Checks: only ``ArchiveFormatError``; the report's counts match the rows stored;
    importing the same file again inserts nothing and reports the same bad rows; the
    export of what was stored imports back into an empty archive with no bad row and
    the same rows (the module's promise).
    """

    name = "archive"
    allowed = "headend.errors.ArchiveFormatError"

    def __init__(self) -> None:
        super().__init__(".csv")
        import sqlalchemy as sa

        from headend.db import migrate, open_database
        from headend.models import Channel, Meter

        self._sa = sa
        self._engine = open_database(f"sqlite:///{self._dir / 'archive.db'}")
        migrate(self._engine)
        with self._engine.begin() as c:
            c.exec_driver_sql("PRAGMA synchronous=OFF")
        self._channel = Channel.__table__  # type: ignore[attr-defined]
        self._meter = Meter.__table__  # type: ignore[attr-defined]

    def seeds(self) -> list[bytes]:
        from headend.archive import ALL_COLUMNS

        header = ",".join(ALL_COLUMNS)
        rows = [
            "channel,gw1,gateway,10.0.0.5,9001,,,,,4,,,,,,,,,",
            "channel,rs485,serial,,,/dev/ttyUSB0,2400,E,,1,,,,,,,,,",
            "channel,dtu,mqtt,broker.local,,,,,feikong/dtu/1,,,,,,,,,,",
            "meter,,remote,,,,,,,,123456781012,M-1,gw1,k1,internal,C001,unit-a,seg-1,true",
            "meter,,local,,,,,,,,000000000002,M-2,rs485,,external,,,,false",
            "# a comment",
            "meter,,remote,,,,,,,,000000000011,M-11,dtu,,external-remote-close,,,,yes",
        ]
        combined = "\n".join([header, *rows]) + "\n"
        meters_only = (
            "address,meter_number,kind,channel,breaker_type\n"
            "000000000021,M-21,remote,gw1,internal\n"
        )
        channels_only = "name,kind,host,port\ngw1,tcp,127.0.0.1,6455\n"
        return [
            combined.encode(),
            ("\ufeff" + combined).encode(),
            combined.encode("gb18030").replace(b"unit-a", "供电所".encode("gb18030")),
            meters_only.encode(),
            channels_only.encode(),
            b'name,kind,host,port\n"gw,1",tcp,"a""b",1\n',
        ]

    def run(self, data: bytes) -> None:
        from headend.archive import export_archive, import_archive
        from headend.errors import ArchiveFormatError

        path = self._write(data)
        self._clear()
        try:
            report = import_archive(self._engine, path)
        except ArchiveFormatError:
            return
        channels, meters = self._contents()
        _no_control_stored([*channels, *meters])
        if len(channels) != report.channels_loaded or len(meters) != report.meters_loaded:
            raise Finding(
                f"report says {report.channels_loaded} channels and {report.meters_loaded} "
                f"meters loaded, the database has {len(channels)} and {len(meters)}"
            )
        again = import_archive(self._engine, path)
        if again.inserted or again.loaded != report.loaded:
            raise Finding(f"a second import inserted {again.inserted} rows: {again.to_dict()}")
        if [(e.line, e.reason) for e in again.errors] != [
            (e.line, e.reason) for e in report.errors
        ]:
            raise Finding("a second import reports other bad rows")
        exported = self._dir / "export.csv"
        export_archive(self._engine, exported)
        self._clear()
        back = import_archive(self._engine, exported)
        if back.errors:
            raise Finding(f"the export does not import back: {back.errors[0]}")
        if self._contents() != (channels, meters):
            raise Finding("the export imports back to a different archive")

    def _clear(self) -> None:
        with self._engine.begin() as c:
            c.execute(self._meter.delete())
            c.execute(self._channel.delete())

    def _contents(self) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        sa = self._sa
        ch, me = self._channel, self._meter
        skip = {"id", "updated_at", "created_at", "channel_id"}
        with self._engine.connect() as c:
            channels = [
                tuple(r)
                for r in c.execute(
                    sa.select(*[col for col in ch.c if col.name not in skip]).order_by(ch.c.name)
                )
            ]
            meters = [
                tuple(r)
                for r in c.execute(
                    sa.select(ch.c.name, *[col for col in me.c if col.name not in skip])
                    .join(ch, ch.c.id == me.c.channel_id)
                    .order_by(me.c.address)
                )
            ]
        return channels, meters

    def close(self) -> None:
        self._engine.dispose()
        super().close()


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_stored(rows: list[tuple[Any, ...]]) -> None:
    """Text stored with a control character: PostgreSQL refuses NUL, a reader is misled."""
    for row in rows:
        for value in row:
            if isinstance(value, str) and _CONTROL.search(value):
                raise Finding(f"stored {value!r} (row {row}) holds a control character")


class CisCsvTarget(_FileTarget):
    """The payments CSV import into the built-in CIS ledger, emptied after each input.

    Checks: only ``CsvFormatError``; money is conserved (the ledger holds exactly what
    the report says was credited, and its audit finds nothing); a second import of the
    same file credits nothing (each payment id once) and counts every credited row as a
    duplicate.
    """

    name = "cis-csv"
    allowed = "prepaid.cis.CsvFormatError"

    def __init__(self) -> None:
        super().__init__(".csv")
        import sqlalchemy as sa

        from prepaid.cis import LedgerCis
        from prepaid.cis.tables import account, movement, rejection
        from prepaid.db import migrate, open_database
        from protocol.clock import SteppedClock

        self._sa = sa
        self._engine = open_database(f"sqlite:///{self._dir / 'cis.db'}")
        migrate(self._engine)
        self._ledger = LedgerCis(self._engine, clock=SteppedClock(datetime(2026, 3, 10, 9, 30)))
        self._tables = (movement, rejection, account)

    def seeds(self) -> list[bytes]:
        text = (
            "payment_id,account_no,amount,paid_at,source,cashier\n"
            "P-001,A1,100.00,2026-03-09 08:00:00,counter,Li\n"
            "P-002,A2,50.5,2026-03-09,bank,\n"
            "# a comment line is skipped\n"
            "P-003,A1,abc,,app,\n"
            "P-005,A3,10.001,,app,\n"
            "P-006,A2,30.00,2026/03/08 10:00,app,\n"
            "P-008,A3,12.34,,app,\n"
            "P-001,A1,100.00,,counter,\n"
        )
        chinese = "缴费流水号,户号,金额,缴费时间,渠道\nP-9,A9,1.00,2026-03-09,银行\n"
        return [
            text.encode(),
            ("\ufeff" + text).encode(),
            chinese.encode("gb18030"),
            chinese.encode(),
            b"payment_id,account_no,amount\nX,Y,9999999.99\nX2,Y,0.01\n",
        ]

    def run(self, data: bytes) -> None:
        from prepaid.cis import CsvFormatError, import_payments

        path = self._write(data)
        self._clear()
        try:
            report = import_payments(self._ledger, path)
        except CsvFormatError:
            return
        held = self._held()
        refused = self._stored_rows()
        if len(refused) != len(report.errors):
            raise Finding(f"{len(report.errors)} bad rows but {len(refused)} recorded rejections")
        if held != report.credited_fen:
            raise Finding(f"report credited {report.credited_fen} fen, the ledger holds {held}")
        mismatches = self._ledger.audit()
        if mismatches:
            raise Finding(f"ledger audit after import: {mismatches[0]}")
        again = import_payments(self._ledger, path)
        if again.credited or again.credited_fen or self._held() != held:
            raise Finding(f"a second import credited {again.credited_fen} fen again")
        if again.duplicates != report.credited + report.duplicates:
            raise Finding(
                f"second import: {again.duplicates} duplicates, expected "
                f"{report.credited + report.duplicates}"
            )

    def _stored_rows(self) -> list[tuple[Any, ...]]:
        """Every stored row (checked for control characters); returns the rejections."""
        sa = self._sa
        rejection = self._tables[1]
        with self._engine.connect() as c:
            rows = {t.name: [tuple(r) for r in c.execute(sa.select(t))] for t in self._tables}
        _no_control_stored([row for table in rows.values() for row in table])
        return rows[rejection.name]

    def _held(self) -> int:
        sa = self._sa
        account = self._tables[2]
        with self._engine.connect() as c:
            total = c.execute(sa.select(sa.func.coalesce(sa.func.sum(account.c.balance_fen), 0)))
            return int(total.scalar_one())

    def _clear(self) -> None:
        with self._engine.begin() as c:
            for table in self._tables:
                c.execute(table.delete())

    def close(self) -> None:
        self._engine.dispose()
        super().close()


class TariffTarget(_FileTarget):
    """Tariff TOML files, and rating under what loads.

    Checks: only ``TariffError`` from loading; each loaded tariff survives
    ``tariff_to_dict`` → ``tariff_from_dict``; rating a month of its energy (taken from
    the input's last bytes, split over its TOU periods) raises only ``RatingError``
    (a ``TariffError``) and the charge's lines add up to its total.
    """

    name = "tariff"
    allowed = "prepaid.tariff.TariffError"

    def __init__(self) -> None:
        super().__init__(".toml")

    def seeds(self) -> list[bytes]:
        from prepaid.tariff import example_paths

        return [p.read_bytes() for p in example_paths()]

    def run(self, data: bytes) -> None:
        from prepaid.tariff import (
            BillingPeriod,
            PeriodEnergy,
            TariffError,
            charge,
            load_book,
            tariff_from_dict,
            tariff_to_dict,
        )

        path = self._write(data)
        try:
            book = load_book(path)
        except TariffError:
            return
        energy = int.from_bytes(data[-3:], "little") if data else 0
        for tariff in book:
            back = tariff_from_dict(tariff_to_dict(tariff))
            if back != tariff:
                raise Finding(f"{tariff.id} v{tariff.version} changes in a round trip: {back}")
            start = tariff.effective_from
            period = BillingPeriod(start, BillingPeriod.of(start).end)
            names = [p.name for p in tariff.tou]
            tou = _split(energy, names) if names else None
            try:
                result = charge(
                    book, period, PeriodEnergy(energy, tou_ckwh=tou), tariff_id=tariff.id
                )
            except TariffError:
                continue
            total = sum(line.amount_e6 for line in result.lines)
            if total != result.total_e6:
                raise Finding(f"lines add up to {total}, the charge says {result.total_e6}")
            rated = sum(line.energy_ckwh for line in result.lines)
            if rated != energy:
                raise Finding(f"{tariff.id}: lines rate {rated} of {energy} ckWh")
            for line in result.lines:
                if line.amount_e6 != line.price_e4 * line.energy_ckwh:
                    raise Finding(f"{tariff.id}: line {line} amount is not price × energy")


def _split(energy: int, names: list[str]) -> dict[str, int]:
    share = energy // len(names)
    out = {n: share for n in names}
    out[names[0]] += energy - share * len(names)
    return out


# --------------------------------------------------------------------------- registry

_TARGETS: Final[dict[str, Callable[[], Target]]] = {
    "parser": ParserTarget,
    "meter": MeterTarget,
    "archive": ArchiveTarget,
    "cis-csv": CisCsvTarget,
    "tariff": TariffTarget,
}


def make_target(name: str) -> Target:
    """The harness of ``name`` (one of :data:`feikong.fuzz.TARGET_NAMES`), ready to run."""
    try:
        factory = _TARGETS[name]
    except KeyError:
        raise ValueError(
            f"unknown fuzz target {name!r}; choose one of {', '.join(_TARGETS)}"
        ) from None
    return factory()
