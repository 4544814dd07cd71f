"""Daily collection (日冻结采集), re-collection (补抄), on-demand reads and success rates.

The reading of day D
    Every meter freezes its energy registers at 00:00 (日冻结, DL/T 645-2007 DIs
    ``0506xxNN``; ``NN`` = 1 is the most recent freeze, up to 62). The reading of
    day D is the freeze the meter took at **00:00 of D** — the registers at the
    start of D, so the consumption of D−1 is reading(D) − reading(D−1). For each
    active meter the head-end reads

    ``0506FFNN`` — the daily-freeze data block (日冻结数据块): the freeze time
    (YYMMDDhhmm), to find and check the freeze, and the forward active energy
    block (total + tariffs 1..4, kWh) in one frame. The items of the block are
    each followed by an ``AAH`` separator (an item the meter does not keep is its
    separator alone; [FW-A] ``ReadFreezedRec``); a block without separators
    (time and forward block back to back) is read too. A meter that refuses the
    block (an abnormal reply: older firmware knows only the single items) is read
    item by item, two frames:

    * ``050600NN`` — the freeze time, and
    * ``050601NN`` — the forward active energy block.

    ``NN`` is first guessed from the head-end's clock (today → 1, yesterday →
    2, …) and corrected from the freeze time the meter returns (a meter whose
    clock is off, or that missed a freeze, keeps its freezes under other
    indices); once a meter's index is found it is the first guess for the next.

What is stored
    The energy block goes through :func:`headend.readings.store_readings` (bulk,
    idempotent: a reading is stored once per meter, DI and freeze date) with
    ``freeze_date`` = D and the DI normalised to freeze index 1 (the date says
    which freeze): ``05060101``, ``value`` = the five registers in kWh separated
    by commas (total, T1..T4; see :func:`parse_energy_block`), ``energy_ckwh`` =
    the total in 0.01 kWh.

    One row per (meter, day) in ``headend_collection`` (:class:`CollectionStatus`,
    采集状态) says ``collected`` or ``missing``, how many attempts were made, the
    last error and when, and the freeze time the meter reported (``05060001``).
    A meter once collected stays collected.

Re-collection (补抄)
    :func:`recollect_missing` reads again the active meters that are not collected
    for the day (missing, or never tried); a meter that answers now is marked
    collected. Call it in rounds during the day (``rounds`` / ``interval_s``, on
    the pool's clock).

At scale
    Meters are streamed from the archive in pages, dispatched to their channel,
    and read by as many workers per channel as it has slots (see
    :class:`~headend.channels.ChannelPool`); results are written in bulk (SQLAlchemy
    Core) every :data:`FLUSH_EVERY` meters in a worker thread while the reads go on.
    No ORM object is made per meter.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, Literal, Protocol

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    or_,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from protocol import Address
from protocol.codes import ErrorWord
from protocol.di import DataValue, format_di
from protocol.errors import ProtocolError, ResponseTimeoutError, TransportError
from protocol.frame import Frame

from .channels import ChannelError, ChannelPool
from .errors import HeadendError
from .events import ReadingCollected, ReadingMissing
from .models import Meter
from .readings import NewReading, store_readings

__all__ = [
    "FLUSH_EVERY",
    "FORWARD_BLOCK_DI",
    "FREEZE_TIME_DI",
    "MAX_FREEZE_INDEX",
    "CollectionError",
    "CollectionReport",
    "CollectionState",
    "CollectionStatus",
    "EventSink",
    "Progress",
    "SuccessRate",
    "collect_day",
    "parse_energy_block",
    "read_now",
    "recollect_missing",
    "success_rates",
]

log = logging.getLogger(__name__)

FREEZE_TIME_DI: Final = 0x05060001
"""Daily freeze time (日冻结时间) of freeze 1; kept in the collection status."""
FORWARD_BLOCK_DI: Final = 0x05060101
"""Daily freeze forward active energy block (日冻结正向有功电能数据), index normalised to 1."""
MAX_FREEZE_INDEX: Final = 62
"""A meter keeps its last 62 daily freezes."""
FLUSH_EVERY: Final = 2000
"""Meters whose results are written together."""
PAGE: Final = 5000
"""Meters fetched from the archive at a time."""
_PROGRESS_EVERY: Final = 256
_LOOKUP_BATCH: Final = 900
_READ: Final = 0x11
_NORMAL: Final = 0x91
_ABNORMAL: Final = 0xD1
_FREEZE_TIME_BASE: Final = 0x05060000
_FORWARD_BASE: Final = 0x05060100
_BLOCK_BASE: Final = 0x0506FF00
_SEPARATOR: Final = 0xAA
_REGISTER: Final = 100_000_000
"""One energy register of a block: 8 BCD digits."""
_new_frame: Final = tuple.__new__
_QUANTITY: Final = "forward-active-energy"

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` (meters) while a collection runs."""


class EventSink(Protocol):
    """Anything with ``publish(event)``: :class:`headend.events.EventBus`."""

    def publish(self, event: Any) -> None: ...


class CollectionError(HeadendError):
    """A collection cannot run as asked (e.g. a day in the future)."""


class CollectionState(enum.StrEnum):
    """采集状态 of a meter for a day."""

    COLLECTED = "collected"
    MISSING = "missing"


class CollectionStatus(SQLModel, table=True):
    """Whether the daily freeze of a meter for a day was collected (采集状态).

    ``attempts`` counts every read attempt (first collection and each 补抄 round);
    ``last_error`` is the error of the last attempt (``None`` when it succeeded);
    ``last_attempt_at`` is by the head-end clock, ``freeze_time`` the time of the
    freeze by the meter's clock (both naive local time, as meters keep time).
    """

    __tablename__ = "headend_collection"
    __table_args__ = (
        CheckConstraint("status IN ('collected', 'missing')", name="ck_headend_collection_status"),
        CheckConstraint("attempts >= 1", name="ck_headend_collection_attempts"),
        Index("ix_headend_collection_day_status", "day", "status"),
    )

    meter_address: str = Field(
        sa_column=Column(
            String(12), ForeignKey("headend_meter.address"), primary_key=True, nullable=False
        )
    )
    day: date = Field(sa_column=Column(Date, primary_key=True, nullable=False))
    status: str = Field(max_length=16)
    attempts: int = 1
    last_error: str | None = Field(default=None, sa_type=Text)
    last_attempt_at: datetime = Field(sa_type=DateTime())
    freeze_time: datetime | None = Field(default=None, sa_type=DateTime(), nullable=True)


_STATUS: Final[Table] = CollectionStatus.__table__  # type: ignore[attr-defined]
_METER: Final[Table] = Meter.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CollectionReport:
    """What one collection round did.

    ``meters``: meters read this round; ``collected`` / ``missing``: their outcome;
    ``reasons``: missing meters by kind of failure (``timeout``, ``no-freeze``,
    ``refused``, ``link``, ``bad-reply``, ``unknown-meter``, ``error``);
    ``readings_written``: new reading rows (0 when re-collecting stored ones);
    ``unknown_meters``: addresses asked for that are not in the archive.
    """

    day: date
    meters: int
    collected: int
    missing: int
    readings_written: int
    requests: int
    elapsed_s: float
    reasons: dict[str, int] = field(default_factory=dict)
    unknown_meters: tuple[str, ...] = ()
    rounds: int = 1

    @property
    def rate(self) -> float:
        """Collected / read this round (1.0 when nothing needed reading)."""
        return self.collected / self.meters if self.meters else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "meters": self.meters,
            "collected": self.collected,
            "missing": self.missing,
            "rate": round(self.rate, 6),
            "readings_written": self.readings_written,
            "requests": self.requests,
            "elapsed_s": round(self.elapsed_s, 3),
            "reasons": dict(self.reasons),
            "unknown_meters": list(self.unknown_meters),
            "rounds": self.rounds,
        }


@dataclass(frozen=True, slots=True)
class SuccessRate:
    """The collection success rate (采集成功率) of a day, overall or for one group.

    ``meters`` is the active meters of the group; ``pending`` those not tried yet.
    ``rate`` = collected / meters.
    """

    day: date
    by: str | None
    group: str | None
    meters: int
    collected: int
    missing: int

    @property
    def pending(self) -> int:
        return self.meters - self.collected - self.missing

    @property
    def rate(self) -> float:
        return self.collected / self.meters if self.meters else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "by": self.by,
            "group": self.group,
            "meters": self.meters,
            "collected": self.collected,
            "missing": self.missing,
            "pending": self.pending,
            "rate": round(self.rate, 6),
        }


# --------------------------------------------------------------------------- decoding


class _Missing(Exception):
    """One meter could not be collected: ``kind`` for the summary, the text for the table."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(text)
        self.kind = kind


_BLOCK_TEXT: Final = ",".join(["%d.%02d"] * 5)
"""Five registers in kWh from (whole, hundredths) pairs."""
_TIME_DI_BYTES: Final = tuple(
    (_FREEZE_TIME_BASE | n).to_bytes(4, "little") for n in range(MAX_FREEZE_INDEX + 1)
)
_FORWARD_DI_BYTES: Final = tuple(
    (_FORWARD_BASE | n).to_bytes(4, "little") for n in range(MAX_FREEZE_INDEX + 1)
)
_BLOCK_DI_BYTES: Final = tuple(
    (_BLOCK_BASE | n).to_bytes(4, "little") for n in range(MAX_FREEZE_INDEX + 1)
)
_FREEZE_TIMES: dict[bytes, datetime] = {}
"""Freeze times (``mm hh DD MM YY``) already decoded (a fleet's freezes share a few)."""


def parse_energy_block(value: str) -> tuple[Decimal, ...]:
    """The registers (kWh) of a stored ``05060101`` value: total, T1, T2, T3, T4."""
    return tuple(Decimal(part) for part in value.split(","))


def _freeze_time(raw: bytes, address: str) -> datetime:
    """A freeze time: ``mm hh DD MM YY`` (BCD, low byte first)."""
    when = _FREEZE_TIMES.get(raw)
    if when is not None:
        return when
    digits = raw[::-1].hex() if len(raw) == 5 else ""
    try:
        when = datetime(
            2000 + int(digits[0:2]),
            int(digits[2:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
        )
    except ValueError:
        raise _Missing(
            "bad-reply", f"meter {address}: freeze time {raw.hex().upper()} is not a valid time"
        ) from None
    if len(_FREEZE_TIMES) > 4096:
        _FREEZE_TIMES.clear()
    _FREEZE_TIMES[raw] = when
    return when


def _daily_block(raw: bytes, address: str) -> tuple[bytes, bytes]:
    """The freeze time and forward energy block of a daily-freeze data block's value.

    Raises :class:`_NoBlock` when the block has no forward energy (the meter does
    not keep it in the block): the single items are read instead.
    """
    if len(raw) >= 27 and raw[5] == _SEPARATOR and raw[26] == _SEPARATOR:
        return raw[:5], raw[6:26]  # the usual layout, without splitting
    if _SEPARATOR not in raw:
        if len(raw) >= 25:  # items back to back
            return raw[:5], raw[5:25]
        raise _Missing(
            "bad-reply",
            f"meter {address}: daily-freeze block {raw.hex().upper()} is too short "
            "(needs the freeze time and the forward energy block)",
        )
    items = raw.split(b"\xaa")
    if len(items[0]) != 5:
        raise _Missing(
            "bad-reply", f"meter {address}: daily-freeze block starts with no freeze time"
        )
    if len(items) < 2 or not items[1]:
        raise _NoBlock(f"meter {address} keeps no forward energy in its daily-freeze block")
    return items[0], items[1]


def _refused(reply: Frame, address: str, di: int) -> None:
    """Raise for a reply that is not a normal read reply (ERR 02 as :class:`_NoData`)."""
    control = reply.control
    if control == _ABNORMAL:
        err = reply.data[0] if reply.data else 0
        if err & ErrorWord.NO_DATA:
            raise _NoData(f"meter {address} has no data for {format_di(di)} (ERR {err:02X})")
        raise _Missing("refused", f"meter {address} refused {format_di(di)} (ERR {err:02X})")
    raise _Missing(
        "bad-reply", f"meter {address} answered {format_di(di)} with control {control:02X}"
    )


def _energy_block(raw: bytes, address: str) -> list[int]:
    """Five BCD energy registers (4 bytes each, low byte first) in 0.01 kWh."""
    if len(raw) != 20:
        raise _Missing(
            "bad-reply", f"meter {address}: energy block of {len(raw)} bytes, expected 20"
        )
    digits = raw[::-1].hex()  # register 4 first: register i is digits[32 - 8i : 40 - 8i]
    try:
        value = int(digits)  # hex() gives 0-9 and a-f only: int() refuses anything not BCD
    except ValueError:
        raise _Missing(
            "bad-reply", f"meter {address}: energy block {raw.hex().upper()} is not BCD"
        ) from None
    value, b0 = divmod(value, _REGISTER)
    value, b1 = divmod(value, _REGISTER)
    value, b2 = divmod(value, _REGISTER)
    b4, b3 = divmod(value, _REGISTER)
    return [b0, b1, b2, b3, b4]


# --------------------------------------------------------------------------- the run


_Status = tuple[str, date, str, str | None, datetime, datetime | None]
"""A status row: address, day, status, last error, attempt time, freeze time."""
_Reading = tuple[str, int, date, str, int, datetime]
"""A reading row: address, DI, freeze date, value, energy (0.01 kWh), collected at."""


@dataclass(slots=True)
class _Batch:
    readings: list[_Reading] = field(default_factory=list)
    statuses: list[_Status] = field(default_factory=list)


_UPSERT: Final = (
    "INSERT INTO headend_collection (meter_address, day, status, attempts, last_error, "
    "last_attempt_at, freeze_time) VALUES ({p}, {p}, {p}, 1, {p}, {p}, {p}) "
    "ON CONFLICT (meter_address, day) DO UPDATE SET "
    "status = CASE WHEN headend_collection.status = 'collected' THEN 'collected' "
    "ELSE excluded.status END, "
    "attempts = headend_collection.attempts + 1, "
    "last_error = excluded.last_error, "
    "last_attempt_at = excluded.last_attempt_at, "
    "freeze_time = COALESCE(excluded.freeze_time, headend_collection.freeze_time)"
)
"""Insert a status row; a further attempt is counted and never un-collects a meter.

Sent as the driver's own SQL (the same text on SQLite and PostgreSQL): at tens of
thousands of rows a second, SQLAlchemy's per-row parameter processing would cost
more than the database itself.
"""


_UPSERT_SQLITE: Final = _UPSERT.format(p="?")


def _sqlite_time(t: datetime) -> str:
    """``t`` as SQLAlchemy keeps a DateTime in SQLite (``YYYY-MM-DD hh:mm:ss.ffffff``)."""
    text = str(t)  # much faster than strftime; no fraction when it is zero
    return text if len(text) > 19 else text + ".000000"


def _write_statuses(
    connection: Connection,
    rows: list[_Status],
    text: dict[date | datetime | None, str | None] | None = None,
) -> None:
    """Upsert status rows; ``text`` has SQLite texts of dates and times already made."""
    name = connection.dialect.name
    if name == "sqlite":
        if text is None:
            text = {None: None}
        params: list[tuple[Any, ...]] = []
        for a, d, s, e, t, f in rows:
            day = text.get(d)
            if day is None:
                day = text[d] = d.isoformat()
            at = text.get(t)
            if at is None:
                at = text[t] = _sqlite_time(t)
            frozen = text.get(f, "")
            if frozen == "":
                assert f is not None
                frozen = text[f] = _sqlite_time(f)
            params.append((a, day, s, e, at, frozen))
        connection.exec_driver_sql(_UPSERT_SQLITE, params)
    elif name == "postgresql":
        connection.exec_driver_sql(_UPSERT.format(p="%s"), rows)
    else:
        raise HeadendError(f"collection status cannot be stored in a {name!r} database")


_INSERT_READING: Final = (
    "INSERT INTO headend_reading (meter_address, di, freeze_date, value, energy_ckwh, "
    "collected_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (meter_address, di, freeze_date) DO NOTHING"
)
"""A reading stored once (frozen data does not change), sent as the driver's own SQL."""


def _write_sqlite(connection: Connection, batch: _Batch) -> int:
    """Readings and statuses in one transaction, as plain tuples; the readings written.

    The meters come from the archive, so every reading has its meter (the
    foreign key would refuse one that has not). ``executemany`` keeps one
    prepared statement for the whole batch; its row count adds up the rows
    inserted (a reading already stored counts 0).
    """
    # A reading and its status share the collection time: its text is made once.
    text: dict[date | datetime | None, str | None] = {None: None}
    params: list[tuple[Any, ...]] = []
    for a, di, d, v, e, t in batch.readings:
        day = text.get(d)
        if day is None:
            day = text[d] = d.isoformat()
        when = text.get(t)
        if when is None:
            when = text[t] = _sqlite_time(t)
        params.append((a, di, day, v, e, when))
    written = 0
    if params:
        written = max(0, connection.exec_driver_sql(_INSERT_READING, params).rowcount)
    if batch.statuses:
        _write_statuses(connection, batch.statuses, text)
    return written


def _write(engine: Engine, batch: _Batch) -> int:
    """Store a batch (readings first, then statuses); the number of readings written."""
    if engine.dialect.name == "sqlite":
        try:
            with engine.begin() as connection:
                return _write_sqlite(connection, batch)
        except IntegrityError:
            log.warning("a meter left the archive during the collection; storing item by item")
    written = 0
    if batch.readings:
        readings = [NewReading(*row) for row in batch.readings]
        written = store_readings(engine, readings).written  # leaves out unknown meters
    if batch.statuses:
        with engine.begin() as connection:
            _write_statuses(connection, batch.statuses)
    return written


class _Run:
    """One round of collection over a stream of (address, channel id)."""

    def __init__(
        self,
        engine: Engine,
        pool: ChannelPool,
        day: date,
        bus: EventSink | None,
        progress: Progress | None,
        total: int,
    ) -> None:
        self.engine = engine
        self.pool = pool
        self.day = day
        self.bus = bus
        self.progress = progress
        self.total = total
        self.clock = pool.clock
        today = self.clock.now().date()
        self.hint = (today - day).days + 1
        """The freeze index tried first (the last one that matched, for the next meter)."""
        self.done = 0
        self.collected = 0
        self.requests = 0
        self.block_refused = 0
        """Meters that refused the daily-freeze block (read item by item)."""
        self.written = 0
        self.reasons: Counter[str] = Counter()
        self.batch = _Batch()
        self.flushing: asyncio.Task[int] | None = None
        self.flush_lock = asyncio.Lock()
        # dispatch to channels
        self.queues: dict[int, deque[str]] = {}
        self.wake: dict[int, asyncio.Event] = {}
        self.workers: list[asyncio.Task[None]] = []
        self.buffered = 0
        self.low_water = PAGE // 2
        self.slots = 0
        self.need_more = asyncio.Event()
        self.exhausted = False

    # -- one meter ----------------------------------------------------------------

    async def _collect(self, address: str) -> tuple[datetime, list[int]]:
        """The freeze time and forward block of the meter's freeze of the day.

        Reads the daily-freeze data block at the hinted index, moving by the
        difference between the freeze time found and the day; a meter that
        refuses the block is read item by item (:meth:`_collect_items`).
        Transport errors propagate (see :meth:`_one`).
        """
        wire_address = str.__new__(Address, address)  # archive addresses are validated
        request = self.pool.request
        day = self.day
        n = guess = self.hint
        probed = False
        for _ in range(4):
            if not 1 <= n <= MAX_FREEZE_INDEX:
                raise _Missing(
                    "no-freeze",
                    f"meter {address} keeps no daily freeze for {day} "
                    f"(it would be freeze {n}; meters keep {MAX_FREEZE_INDEX})",
                )
            self.requests += 1
            frame = _new_frame(Frame, (wire_address, _READ, _BLOCK_DI_BYTES[n]))  # Frame(…)
            reply = await request(address, frame)
            if reply.control != _NORMAL:
                if reply.control != _ABNORMAL:
                    _refused(reply, address, _BLOCK_BASE | n)
                err = reply.data[0] if reply.data else 0
                if err & ErrorWord.NO_DATA and n != 1 and not probed:
                    # No freeze n, or no block at all: the newest freeze tells which.
                    probed = True
                    n = 1
                    continue
                self.block_refused += 1
                return await self._collect_items(address, guess if probed else n)
            try:
                raw_time, raw_block = _daily_block(reply.data[4:], address)
            except _NoBlock:
                self.block_refused += 1
                return await self._collect_items(address, n)
            frozen = _freeze_time(raw_time, address)
            if frozen.date() == day:
                block = _energy_block(raw_block, address)
                self.hint = n
                return frozen, block
            n += (frozen.date() - day).days
        raise _Missing(
            "no-freeze",
            f"meter {address}: no daily freeze dated {day} (freeze {n} is {frozen})",
        )

    async def _collect_items(self, address: str, n: int) -> tuple[datetime, list[int]]:
        """The freeze time and forward block read item by item, from freeze index ``n``.

        Tries the hinted freeze index, then moves by the difference between the
        freeze time found and the day. When the meter has no freeze at the index
        tried (a young meter, or the head-end's clock ahead of the meter's), the
        most recent freeze (index 1) tells where the day's freeze must be.
        Transport errors propagate (see :meth:`_one`).
        """
        wire_address = str.__new__(Address, address)  # archive addresses are validated
        request = self.pool.request
        day = self.day
        probed = False
        for _ in range(4):
            if not 1 <= n <= MAX_FREEZE_INDEX:
                raise _Missing(
                    "no-freeze",
                    f"meter {address} keeps no daily freeze for {day} "
                    f"(it would be freeze {n}; meters keep {MAX_FREEZE_INDEX})",
                )
            self.requests += 1
            reply = await request(address, Frame(wire_address, _READ, _TIME_DI_BYTES[n]))
            if reply.control != _NORMAL:
                try:
                    _refused(reply, address, _FREEZE_TIME_BASE | n)
                except _NoData as exc:
                    if n == 1 or probed:
                        raise _Missing(
                            "no-freeze", f"{exc}: daily freeze {n} was not taken"
                        ) from None
                    probed = True
                    n = 1  # where is the newest freeze?
                    continue
            frozen = _freeze_time(reply.data[4:], address)
            if frozen.date() == day:
                break
            n += (frozen.date() - day).days
        else:
            raise _Missing(
                "no-freeze",
                f"meter {address}: no daily freeze dated {day} (freeze {n} is {frozen})",
            )
        self.requests += 1
        reply = await request(address, Frame(wire_address, _READ, _FORWARD_DI_BYTES[n]))
        if reply.control != _NORMAL:
            try:
                _refused(reply, address, _FORWARD_BASE | n)
            except _NoData as exc:
                raise _Missing("no-freeze", str(exc)) from None
        block = _energy_block(reply.data[4:], address)
        self.hint = n
        return frozen, block

    async def _one(self, address: str) -> None:
        try:
            frozen, block = await self._collect(address)
        except _Missing as exc:
            self._missing(address, exc.kind, str(exc))
        except ResponseTimeoutError:
            reason = f"no reply from meter {address} within {self.pool.timeout:g} s"
            self._missing(address, "timeout", reason)
        except TransportError as exc:
            self._missing(address, "link", f"meter {address}: {exc}")
        except ChannelError as exc:
            self._missing(address, "unknown-meter", str(exc))
        except (ProtocolError, HeadendError) as exc:  # anything else the codec refuses
            self._missing(address, "bad-reply", f"meter {address}: {exc}")
        except Exception as exc:  # a bug must not stop the other meters' collection
            log.exception("collecting meter %s failed", address)
            self._missing(address, "error", f"meter {address}: internal error {exc!r}")
        else:
            self._collected(address, frozen, block)
        self.done += 1
        if self.progress is not None and self.done % _PROGRESS_EVERY == 0:
            self.progress(self.done, self.total)
        if len(self.batch.statuses) >= FLUSH_EVERY:
            await self._flush(final=False)

    def _collected(self, address: str, frozen: datetime, block: list[int]) -> None:
        now = self.clock.now()
        day = self.day
        b0, b1, b2, b3, b4 = block
        value = _BLOCK_TEXT % (
            b0 // 100,
            b0 % 100,
            b1 // 100,
            b1 % 100,
            b2 // 100,
            b2 % 100,
            b3 // 100,
            b3 % 100,
            b4 // 100,
            b4 % 100,
        )
        self.batch.readings.append((address, FORWARD_BLOCK_DI, day, value, block[0], now))
        self.batch.statuses.append((address, day, "collected", None, now, frozen))
        self.collected += 1
        if self.bus is not None:
            self.bus.publish(
                ReadingCollected(
                    address=address,
                    at=now,
                    di=format_di(FORWARD_BLOCK_DI),
                    value=value,
                    quantity=_QUANTITY,
                    unit="kWh",
                    freeze_date=day,
                    energy_ckwh=block[0],
                )
            )

    def _missing(self, address: str, kind: str, reason: str) -> None:
        now = self.clock.now()
        self.reasons[kind] += 1
        self.batch.statuses.append((address, self.day, "missing", reason, now, None))
        log.debug("%s", reason)
        if self.bus is not None:
            self.bus.publish(
                ReadingMissing(
                    address=address,
                    at=now,
                    di=format_di(FORWARD_BLOCK_DI),
                    reason=reason,
                    quantity=_QUANTITY,
                    freeze_date=self.day,
                )
            )

    async def _flush(self, *, final: bool) -> None:
        """Hand the batch to a writer thread: one write at a time, reads go on meanwhile."""
        if self.flush_lock.locked() and not final:
            return  # a worker is already handing over; keep filling the batch
        async with self.flush_lock:
            running = self.flushing
            if running is not None:
                busy = not running.done() and len(self.batch.statuses) < 4 * FLUSH_EVERY
                if busy and not final:
                    return  # the writer is busy: keep collecting into this batch
                self.flushing = None
                self.written += await running
            batch, self.batch = self.batch, _Batch()
            if batch.statuses:
                task = asyncio.create_task(asyncio.to_thread(_write, self.engine, batch))
                if final:
                    self.written += await task
                else:
                    self.flushing = task

    # -- dispatch -----------------------------------------------------------------

    def _dispatch(self, rows: Iterable[tuple[str, int]]) -> None:
        pool = self.pool
        for address, channel_id in rows:
            if address not in pool:
                pool.assign(address, channel_id)
            queue = self.queues.get(channel_id)
            if queue is None:
                queue = self.queues[channel_id] = deque()
                self.wake[channel_id] = asyncio.Event()
                slots = max(1, pool.slots(channel_id))
                self.slots += slots
                self.low_water = max(PAGE // 2, 2 * self.slots)
                for _ in range(slots):
                    self.workers.append(asyncio.create_task(self._worker(channel_id)))
            queue.append(address)
            self.buffered += 1
        for channel_id, queue in self.queues.items():
            if queue:
                self.wake[channel_id].set()

    async def _worker(self, channel_id: int) -> None:
        queue = self.queues[channel_id]
        wake = self.wake[channel_id]
        while True:
            if queue:
                address = queue.popleft()
                self.buffered -= 1
                if self.buffered <= self.low_water and not self.exhausted:
                    self.need_more.set()
                await self._one(address)
            elif self.exhausted:
                return
            else:
                wake.clear()
                await wake.wait()

    async def run(self, pages: Iterator[list[tuple[str, int]]]) -> None:
        for rows in pages:
            self._dispatch(rows)
            self.need_more.clear()
            if self.buffered > self.low_water:
                await self.need_more.wait()
        self.exhausted = True
        for event in self.wake.values():
            event.set()
        if self.workers:
            await asyncio.gather(*self.workers)
        await self._flush(final=True)
        if self.progress is not None:
            self.progress(self.done, self.total)


class _NoData(Exception):
    """ERR 02: the meter has no such data (here: that freeze was not taken)."""


class _NoBlock(Exception):
    """The meter's daily-freeze block lacks the forward energy: read the items."""


# --------------------------------------------------------------------------- queries


def _active_meters(day: date, missing_only: bool) -> Any:
    m = _METER.c
    query = select(m.address, m.channel_id).where(m.active.is_(True))
    if missing_only:
        s = _STATUS.c
        query = query.select_from(
            _METER.outerjoin(_STATUS, and_(s.meter_address == m.address, s.day == day))
        ).where(or_(s.status.is_(None), s.status != CollectionState.COLLECTED.value))
    return query


def _count(engine: Engine, query: Any) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(select(func.count()).select_from(query.subquery())).scalar_one()
        )


def _pages(engine: Engine, query: Any) -> Iterator[list[tuple[str, int]]]:
    """Keyset pages of (address, channel id) in address order."""
    last: str | None = None
    address = _METER.c.address
    while True:
        page_query = query.order_by(address).limit(PAGE)
        if last is not None:
            page_query = page_query.where(address > last)
        with engine.connect() as connection:
            rows = [(r[0], r[1]) for r in connection.execute(page_query).all()]
        if not rows:
            return
        last = rows[-1][0]
        yield rows
        if len(rows) < PAGE:
            return


def _listed(engine: Engine, addresses: Sequence[str]) -> tuple[list[tuple[str, int]], list[str]]:
    """(address, channel id) of the listed meters in the archive, and the unknown ones."""
    wanted = list(dict.fromkeys(str(a) for a in addresses))
    found: dict[str, int] = {}
    m = _METER.c
    with engine.connect() as connection:
        for start in range(0, len(wanted), _LOOKUP_BATCH):
            chunk = wanted[start : start + _LOOKUP_BATCH]
            query = select(m.address, m.channel_id).where(m.address.in_(chunk))
            found.update((r[0], r[1]) for r in connection.execute(query))
    return [(a, found[a]) for a in wanted if a in found], [a for a in wanted if a not in found]


def _check_day(pool: ChannelPool, day: date) -> None:
    today = pool.clock.now().date()
    if day > today:
        raise CollectionError(
            f"the daily freeze of {day} is taken at its 00:00, which is still to come "
            f"(today is {today}); collect {today} or an earlier day"
        )
    if (today - day).days + 1 > MAX_FREEZE_INDEX:
        raise CollectionError(
            f"{day} is more than {MAX_FREEZE_INDEX} days ago: meters no longer keep that freeze"
        )


async def _round(
    engine: Engine,
    pool: ChannelPool,
    day: date,
    *,
    bus: EventSink | None,
    progress: Progress | None,
    meters: Sequence[str] | None,
    missing_only: bool,
) -> CollectionReport:
    _check_day(pool, day)
    started = time.perf_counter()
    unknown: list[str] = []
    if meters is not None:
        rows, unknown = _listed(engine, meters)
        total = len(rows)
        pages: Iterator[list[tuple[str, int]]] = iter(
            [rows[i : i + PAGE] for i in range(0, len(rows), PAGE)]
        )
    else:
        query = _active_meters(day, missing_only)
        total = _count(engine, query)
        pages = _pages(engine, query)
    if progress is not None:
        progress(0, total)
    run = _Run(engine, pool, day, bus, progress, total)
    try:
        await run.run(pages)
    finally:
        for task in run.workers:
            task.cancel()
        if run.flushing is not None:
            run.written += await run.flushing
    report = CollectionReport(
        day=day,
        meters=run.done,
        collected=run.collected,
        missing=run.done - run.collected,
        readings_written=run.written,
        requests=run.requests,
        elapsed_s=time.perf_counter() - started,
        reasons=dict(run.reasons),
        unknown_meters=tuple(unknown),
    )
    log.info(
        "collection of %s: %d meter(s), %d collected, %d missing in %.1f s",
        day,
        report.meters,
        report.collected,
        report.missing,
        report.elapsed_s,
    )
    return report


async def collect_day(
    engine: Engine,
    pool: ChannelPool,
    day: date,
    *,
    bus: EventSink | None = None,
    meters: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> CollectionReport:
    """Collect the daily freeze of ``day`` from every active meter (or the listed ``meters``).

    Meters already collected are read again (their readings are not stored twice).
    Raises :class:`CollectionError` for a day whose freeze is not taken yet or no
    longer kept.
    """
    return await _round(
        engine, pool, day, bus=bus, progress=progress, meters=meters, missing_only=False
    )


async def recollect_missing(
    engine: Engine,
    pool: ChannelPool,
    day: date,
    *,
    bus: EventSink | None = None,
    progress: Progress | None = None,
    rounds: int = 1,
    interval_s: float = 0.0,
) -> CollectionReport:
    """补抄: read again the active meters not yet collected for ``day`` (missing or untried).

    With ``rounds`` > 1, waits ``interval_s`` (on the pool's clock) between rounds
    and stops early once nothing is missing. The report adds up the rounds.
    """
    if rounds < 1:
        raise CollectionError(f"rounds must be at least 1, got {rounds}")
    total: CollectionReport | None = None
    for number in range(1, rounds + 1):
        if number > 1:
            await pool.clock.sleep(interval_s)
        report = await _round(
            engine, pool, day, bus=bus, progress=progress, meters=None, missing_only=True
        )
        total = report if total is None else _add(total, report, number)
        if report.missing == 0:
            break
    assert total is not None
    return total


def _add(a: CollectionReport, b: CollectionReport, rounds: int) -> CollectionReport:
    reasons = Counter(b.reasons)  # the last round's reasons are the meters still missing
    return CollectionReport(
        day=a.day,
        meters=a.meters,
        collected=a.collected + b.collected,
        missing=b.missing,
        readings_written=a.readings_written + b.readings_written,
        requests=a.requests + b.requests,
        elapsed_s=a.elapsed_s + b.elapsed_s,
        reasons=dict(reasons),
        unknown_meters=a.unknown_meters,
        rounds=rounds,
    )


# --------------------------------------------------------------------------- on demand


def _storable(value: DataValue) -> tuple[Decimal | str | bytes, int | None]:
    v = value.value
    energy = None
    if isinstance(v, bool):
        v = str(v)
    if isinstance(v, int | Decimal):
        number = Decimal(v)
        if value.di >> 24 == 0x00:  # an energy register
            energy = int(number * 100)
        return number, energy
    if isinstance(v, bytes | str):
        return v, None
    if isinstance(v, tuple):
        return ",".join(str(x) for x in v), None
    if hasattr(v, "isoformat"):
        return v.isoformat(sep=" ") if isinstance(v, datetime) else v.isoformat(), None
    return value.text(), None


async def read_now(
    engine: Engine,
    pool: ChannelPool,
    address: str,
    di: int,
    *,
    store: bool = True,
    bus: EventSink | None = None,
) -> DataValue:
    """On-demand read (实时召测) of any DI from one meter.

    The decoded value is returned and, with ``store``, kept as today's reading of
    that DI (a later read the same day replaces it). Frozen data (DI3 = 05) is not
    stored this way: collect it with :func:`collect_day` (``meters=[address]``).
    Protocol errors (no reply, refusal) are raised as they are.
    """
    now = pool.clock.now()
    async with pool.session(address) as client:
        value = await client.read(address, di)
    stored, energy = _storable(value)
    if store and di >> 24 != 0x05:
        reading = NewReading(address, di, now.date(), stored, energy, now)
        store_readings(engine, [reading], replace=True)
    if bus is not None:
        text = stored.hex().upper() if isinstance(stored, bytes) else str(stored)
        bus.publish(
            ReadingCollected(
                address=address,
                at=now,
                di=format_di(di),
                value=text,
                quantity=value.item.name if value.item else None,
                unit=value.unit or None,
                energy_ckwh=energy,
            )
        )
    return value


# --------------------------------------------------------------------------- rates


def success_rates(
    engine: Engine,
    day: date,
    *,
    by: Literal["supply_unit", "reading_segment"] | None = None,
) -> list[SuccessRate]:
    """采集成功率 of ``day``: collected / active meters, overall or per group.

    ``by="supply_unit"`` (供电单位) or ``"reading_segment"`` (抄表段) gives one row
    per group (meters with no group in ``group=None``), ordered by group.
    """
    m = _METER.c
    s = _STATUS.c
    if by not in (None, "supply_unit", "reading_segment"):
        raise CollectionError(f"success rates are by supply_unit or reading_segment, not {by!r}")
    group = m[by] if by is not None else None
    collected = func.sum(case((s.status == CollectionState.COLLECTED.value, 1), else_=0))
    missing = func.sum(case((s.status == CollectionState.MISSING.value, 1), else_=0))
    columns: list[Any] = [func.count(), collected, missing]
    if group is not None:
        columns.insert(0, group)
    query = (
        select(*columns)
        .select_from(_METER.outerjoin(_STATUS, and_(s.meter_address == m.address, s.day == day)))
        .where(m.active.is_(True))
    )
    if group is not None:
        query = query.group_by(group).order_by(group)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    out: list[SuccessRate] = []
    for row in rows:
        values = list(row)
        name = values.pop(0) if group is not None else None
        count, got, lost = (int(v or 0) for v in values)
        out.append(SuccessRate(day, by, name, count, got, lost))
    return out
