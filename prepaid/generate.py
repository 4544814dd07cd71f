"""A realistic synthetic population (模拟用户档案): accounts, meters and daily readings.

``generate(engine, GenerateOptions(customers=N, days=D, seed=S))`` fills an empty
database with:

- the organisation: supply units (供电单位), feeder lines (线路), transformer areas
  (台区, 60–240 accounts each) and reading segments (抄表段, a few areas each);
- the tariffs shipped in ``prepaid/tariffs`` as database rows;
- N accounts: Chinese names (shops for commercial tariffs), addresses, phones —
  about 4 % unusable (too short, letters, empty, bad prefix) as real CIS data has —,
  household sizes, a tariff mix (monthly, seasonal, annual tiers, peak/valley, flat,
  commercial TOU), 5 % local (card) fee control, a few power-guarantee (保电) and
  vulnerable customers, opening balances (some low, some negative);
- the head-end side: a gateway channel per transformer area, the meter archive and D
  daily frozen readings (DI 0506 01 01) per meter from ``start``, with seasonal,
  weekly and household consumption and a few anomalies: missing readings, a register
  that goes backwards (meter replaced), implausible jumps;
- each account's rating state at the first reading (period-to-date energy and charge
  from the simulated days before it), so ``feikong rate`` can rate the next day.

Everything is drawn from numpy generators seeded by (seed, first account of the
chunk), so the same seed (and chunk size) gives the same database, and rows are bulk-inserted in key
order (executemany on SQLite, COPY on PostgreSQL).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from .accounts import load_catalog, store_tariffs
from .models import day_number
from .rating import DAILY_FORWARD_DI, period_of_day
from .tariff import (
    Cycle,
    PeriodEnergy,
    Tariff,
    TariffBook,
    TariffError,
    charge,
    charge_many,
    example_paths,
    load_book,
)

__all__ = [
    "TARIFF_MIX",
    "GenerateError",
    "GenerateOptions",
    "GenerateReport",
    "generate",
]

log = logging.getLogger(__name__)

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]


class GenerateError(Exception):
    """The population cannot be generated here; the message says why and what to do."""


#: Share of accounts per tariff code (the codes of ``prepaid/tariffs``).
TARIFF_MIX: Final = (
    ("res-monthly", 0.55),
    ("res-seasonal", 0.10),
    ("res-annual", 0.12),
    ("res-tou", 0.10),
    ("com-flat", 0.08),
    ("com-tou4", 0.03),
    ("res-2025", 0.02),
)
_COMMERCIAL: Final = frozenset({"com-flat", "com-tou4"})

_SURNAMES: Final = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶"
    "程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾"
)
_GIVEN: Final = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华建国志文博宇浩然轩涵欣怡萱晨阳琪远鸣嘉"
)
_SHOP_WORDS: Final = (
    "鑫源",
    "华联",
    "好又多",
    "惠民",
    "兴旺",
    "金鼎",
    "百佳",
    "顺发",
    "利民",
    "聚福",
)
_SHOP_KINDS: Final = ("超市", "餐馆", "理发店", "五金店", "药店", "便利店", "服装店", "茶楼")
_CITIES: Final = (
    ("01", "杭州"),
    ("02", "宁波"),
    ("03", "温州"),
    ("04", "嘉兴"),
    ("05", "湖州"),
    ("06", "绍兴"),
    ("07", "金华"),
    ("08", "衢州"),
    ("09", "舟山"),
    ("10", "台州"),
    ("11", "丽水"),
)
_DISTRICTS: Final = ("城区", "城东", "城西", "城南", "城北", "新区", "开发区", "县")
_ROADS: Final = (
    "解放路",
    "人民路",
    "中山路",
    "建设路",
    "文化路",
    "和平路",
    "胜利路",
    "新华路",
    "学院路",
    "朝阳路",
    "滨江路",
    "湖滨路",
    "延安路",
    "凤起路",
    "庆春路",
    "环城路",
)
_MOBILE_PREFIXES: Final = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "170",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]

#: Fractions of the day's energy per rate register (sharp, peak, flat, valley).
_TOU_SHARES: Final = {"res-tou": (0.0, 0.62, 0.0, 0.38), "com-tou4": (0.10, 0.45, 0.20, 0.25)}

_AREA_SIZE: Final = (60, 240)
_AREAS_PER_LINE: Final = (15, 45)
_AREAS_PER_SEGMENT: Final = (3, 8)
_ACCOUNTS_PER_UNIT: Final = 125_000


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    """What to generate: ``customers`` accounts and ``days`` daily readings from ``start``.

    Anomaly rates are per meter and day; ``chunk`` is the accounts per transaction.
    """

    customers: int
    days: int = 30
    seed: int = 1
    start: date = date(2026, 1, 1)
    chunk: int = 100_000
    missing_rate: float = 0.004
    backwards_rate: float = 0.00002
    jump_rate: float = 0.0001

    def __post_init__(self) -> None:
        if not 1 <= self.customers <= 99_999_999:
            raise GenerateError(f"customers must be 1 to 99,999,999, got {self.customers}")
        if not 1 <= self.days <= 366:
            raise GenerateError(f"days must be 1 to 366, got {self.days}")
        if self.chunk < 1:
            raise GenerateError(f"chunk must be ≥ 1, got {self.chunk}")
        for name in ("missing_rate", "backwards_rate", "jump_rate"):
            if not 0 <= getattr(self, name) < 1:
                raise GenerateError(f"{name} must be in [0, 1)")

    @property
    def last_day(self) -> date:
        return self.start + timedelta(days=self.days - 1)


@dataclass(slots=True)
class GenerateReport:
    """What :func:`generate` made."""

    customers: int = 0
    supply_units: int = 0
    feeder_lines: int = 0
    transformer_areas: int = 0
    reading_segments: int = 0
    channels: int = 0
    readings: int = 0
    missing_readings: int = 0
    invalid_phones: int = 0
    first_day: date | None = None
    last_day: date | None = None
    seconds: float = 0.0
    tariffs: dict[str, int] = field(default_factory=dict)

    def add(self, part: GenerateReport) -> None:
        """Add the counts of a chunk's report."""
        self.readings += part.readings
        self.missing_readings += part.missing_readings
        self.invalid_phones += part.invalid_phones
        for code, n in part.tariffs.items():
            self.tariffs[code] = self.tariffs.get(code, 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "supply_units": self.supply_units,
            "feeder_lines": self.feeder_lines,
            "transformer_areas": self.transformer_areas,
            "reading_segments": self.reading_segments,
            "channels": self.channels,
            "readings": self.readings,
            "missing_readings": self.missing_readings,
            "invalid_phones": self.invalid_phones,
            "first_day": self.first_day.isoformat() if self.first_day else None,
            "last_day": self.last_day.isoformat() if self.last_day else None,
            "seconds": round(self.seconds, 3),
            "tariffs": dict(self.tariffs),
        }


Progress = Callable[[int, int], None]


# -- organisation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Organisation:
    """Contiguous blocks of accounts: area ``k`` is accounts ``area_start[k]..`` etc."""

    area_start: I64  # first account index of each area (0-based), ascending
    area_line: I64  # line index of each area
    area_segment: I64  # segment index of each area
    line_unit: I64  # unit index of each line
    segment_unit: I64  # unit index of each segment
    units: int

    def area_of(self, index: I64) -> I64:
        return np.searchsorted(self.area_start, index, side="right") - 1


def _organisation(customers: int, seed: int) -> _Organisation:
    rng = np.random.default_rng([seed, 0])
    estimate = customers // _AREA_SIZE[0] + 2
    sizes = rng.integers(_AREA_SIZE[0], _AREA_SIZE[1] + 1, estimate)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    areas = int(np.searchsorted(starts, customers, side="left"))
    area_start = starts[: max(areas, 1)].astype(np.int64)
    n_areas = area_start.size
    per_line = rng.integers(_AREAS_PER_LINE[0], _AREAS_PER_LINE[1] + 1, n_areas + 1)
    per_line = np.minimum(per_line, max(1, math.ceil(n_areas / 4)))  # small populations too
    area_line = np.repeat(np.arange(per_line.size), per_line)[:n_areas].astype(np.int64)
    n_lines = int(area_line[-1]) + 1
    units = max(1, min(n_lines, math.ceil(customers / _ACCOUNTS_PER_UNIT)))
    if customers >= 100 and n_lines >= 2:
        units = max(units, 2)
    line_unit = (np.arange(n_lines) * units // n_lines).astype(np.int64)
    # reading segments: a few consecutive areas, never across a unit
    per_segment = rng.integers(_AREAS_PER_SEGMENT[0], _AREAS_PER_SEGMENT[1] + 1, n_areas + 1)
    raw_segment = np.repeat(np.arange(per_segment.size), per_segment)[:n_areas]
    area_unit = line_unit[area_line]
    key = raw_segment.astype(np.int64) * (units + 1) + area_unit
    _, area_segment = np.unique(key, return_inverse=True)
    area_segment = area_segment.astype(np.int64)
    segment_unit = np.zeros(int(area_segment.max()) + 1, dtype=np.int64)
    segment_unit[area_segment] = area_unit
    return _Organisation(area_start, area_line, area_segment, line_unit, segment_unit, units)


def _unit_code(u: int) -> str:
    return f"33{u + 1:03d}"


def _unit_name(u: int) -> str:
    _, city = _CITIES[u % len(_CITIES)]
    district = _DISTRICTS[(u // len(_CITIES)) % len(_DISTRICTS)]
    suffix = "" if u < len(_CITIES) * len(_DISTRICTS) else str(u)
    return f"{city}{district}{suffix}供电分公司"


# -- writing -------------------------------------------------------------------------------


class _Writer:
    """Bulk inserts on one connection: executemany (SQLite) or COPY (PostgreSQL)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.pg = connection.dialect.name == "postgresql"
        self.raw: Any = connection.connection.driver_connection

    def day(self, value: date) -> Any:
        return value if self.pg else value.isoformat()

    def stamp(self, value: datetime) -> Any:
        return value if self.pg else value.replace(tzinfo=None).isoformat(sep=" ")

    def rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        names = ", ".join(columns)
        if self.pg:
            with (
                self.raw.cursor() as cursor,
                cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns)
            self.raw.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)  # noqa: S608

    def readings(self, rows: Iterable[Sequence[Any]], stamp: Any) -> None:
        """Daily readings ``(address, date, total, sharp, peak, flat, valley)``, 0.01 kWh.

        The value is the daily freeze block as the head-end stores it (five registers
        in kWh, ``"total,sharp,peak,flat,valley"``), formatted by the database; a
        sharp register of ``-1`` stands for a single-rate meter, whose energy is all
        on the flat register.
        """
        columns = ("meter_address", "freeze_date", "energy_ckwh", "s", "p", "f", "v")
        if self.pg:
            self.connection.execute(
                text(
                    "CREATE TEMP TABLE IF NOT EXISTS generate_reading (meter_address text,"
                    " freeze_date date, energy_ckwh int8, s int8, p int8, f int8, v int8)"
                    " ON COMMIT DROP"
                )
            )
            self.rows("generate_reading", columns, rows)
            source, marks = "generate_reading", columns
        else:
            source, marks = "", ("?1", "?2", "?3", "?4", "?5", "?6", "?7")
        total = _decimal_sql(marks[2], self.pg)
        registers = " || ',' || ".join(_decimal_sql(m, self.pg) for m in marks[3:])
        single = f"{total} || ',0.00,0.00,' || {total} || ',0.00'"
        value = f"CASE WHEN {marks[3]} < 0 THEN {single} ELSE {total} || ',' || {registers} END"
        head = (
            "INSERT INTO headend_reading (meter_address, di, freeze_date, value, energy_ckwh,"
            f" collected_at) SELECT {marks[0]}, {DAILY_FORWARD_DI}, {marks[1]}, {value},"
            f" {marks[2]}, :stamp"
        )
        if self.pg:
            self.connection.execute(text(f"{head} FROM {source}"), {"stamp": stamp})
        else:
            self.raw.executemany(head.replace(":stamp", "?8"), ((*r, stamp) for r in rows))


def _decimal_sql(ckwh: str, pg: bool) -> str:
    """SQL for the decimal kWh text of an integer count of 0.01 kWh (never negative)."""
    if pg:
        return f"(({ckwh}) / 100)::text || '.' || lpad((({ckwh}) % 100)::text, 2, '0')"
    return f"printf('%d.%02d', ({ckwh}) / 100, ({ckwh}) % 100)"


# -- consumption ---------------------------------------------------------------------------


def _season(days: I64) -> F64:
    """Seasonal factor of each day number: summer air conditioning, winter heating."""
    doy = (days - day_number(date(2000, 1, 1))) % 365.25
    summer = 0.45 * np.cos(2 * np.pi * (doy - 205) / 365.25)
    winter = 0.25 * np.cos(2 * np.pi * (doy - 15) / 365.25)
    return np.asarray(1.0 + np.clip(summer, 0, None) + np.clip(winter, 0, None), dtype=np.float64)


def _weekly(days: I64, commercial: NDArray[np.bool_]) -> F64:
    weekend = ((days + 3) % 7) >= 5  # day 0 (1970-01-01) was a Thursday
    res = np.where(weekend, 1.12, 0.97)
    com = np.where(weekend, 0.65, 1.1)
    return np.asarray(np.where(commercial[:, None], com[None, :], res[None, :]), dtype=np.float64)


# -- the population ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Chunk:
    index: I64  # account index, 0-based
    tariff: I64  # index into the mix
    household: I64
    commercial: NDArray[np.bool_]
    base_ckwh: F64


def _phone(rng: np.random.Generator, n: int) -> tuple[list[str], int]:
    prefix = rng.integers(0, len(_MOBILE_PREFIXES), n)
    number = rng.integers(0, 100_000_000, n)
    kind = rng.random(n)
    out: list[str] = []
    bad = 0
    for p, num, k in zip(prefix.tolist(), number.tolist(), kind.tolist(), strict=True):
        mobile = f"{_MOBILE_PREFIXES[p]}{num:08d}"
        if k < 0.010:
            out.append(mobile[: 7 + num % 3])  # too short
        elif k < 0.018:
            out.append(mobile[:5] + "O" + mobile[6:])  # a letter O for a zero
        elif k < 0.030:
            out.append("")  # none recorded
        elif k < 0.040:
            out.append("12" + mobile[2:])  # no such mobile prefix
        elif k < 0.060:
            out.append(f"0{571 + p % 7}-{num % 100_000_000:08d}")  # landline (valid)
            continue
        else:
            out.append(mobile)
            continue
        bad += 1
    return out, bad


def generate(
    engine: Engine, options: GenerateOptions, *, progress: Progress | None = None
) -> GenerateReport:
    """Fill an empty (migrated) database with a synthetic population; see the module doc."""
    started = time.perf_counter()
    report = GenerateReport(first_day=options.start, last_day=options.last_day)
    org = _organisation(options.customers, options.seed)
    with engine.connect() as connection:
        existing = connection.execute(text("SELECT count(*) FROM prepaid_account")).scalar_one()
        if existing:
            raise GenerateError(
                f"the database already has {existing} accounts: generate into a new database"
            )
        readings = connection.execute(
            text("SELECT count(*) FROM headend_meter WHERE address >= '330000000000'")
        ).scalar_one()
        if readings:
            raise GenerateError(
                "the head-end archive already has generated meters: use a new database"
            )
        connection.rollback()
        with connection.begin():
            tariff_ids = _organisation_rows(connection, org, report)
        catalog = load_catalog(connection)
    mix = [code for code, _ in TARIFF_MIX]
    missing = [c for c in mix if c not in catalog.ids]
    if missing:
        raise GenerateError(f"the shipped tariffs lack {', '.join(missing)}")
    total = options.customers
    now = datetime.now(UTC)
    engine.dispose()  # no other pooled connection: the bulk load may leave WAL mode
    with engine.connect() as connection, _bulk_load(connection):
        writer = _Writer(connection)
        channels = _area_channels(connection)
        connection.rollback()
        job = _Job(org, options, catalog.book, tariff_ids, mix, now, channels, writer.pg)
        ranges = [(lo, min(total, lo + job.chunk)) for lo in range(0, total, job.chunk)]
        source = _produced(job, ranges) if len(ranges) > 1 else map(job.make, ranges)
        for hi, operations, part in source:
            with connection.begin():
                for operation in operations:
                    operation.apply(writer)
            report.add(part)
            if progress is not None:
                progress(hi, total)
    report.customers = total
    report.seconds = time.perf_counter() - started
    return report


_SEPARATOR: Final = "\x1f"  # the unit separator: never in generated text


def _pack(column: tuple[Any, ...]) -> Any:
    """A column for the trip between processes: text as one joined string (fast to pickle)."""
    if column and all(type(v) is str for v in column):
        return _SEPARATOR.join(column)
    return list(column)


def _unpack(column: Any) -> list[Any]:
    return column.split(_SEPARATOR) if isinstance(column, str) else list(column)


@dataclass(frozen=True, slots=True)
class _Operation:
    """A recorded bulk insert into ``table`` (``headend_reading``: daily readings), by column."""

    table: str
    columns: tuple[str, ...]
    data: list[Any]
    stamp: Any = None

    @classmethod
    def of(
        cls, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], stamp: Any = None
    ) -> _Operation:
        return cls(table, tuple(columns), [_pack(c) for c in zip(*rows, strict=True)], stamp)

    def apply(self, writer: _Writer) -> None:
        rows = zip(*(_unpack(c) for c in self.data), strict=True)
        if self.table == "headend_reading":
            writer.readings(rows, self.stamp)
        else:
            writer.rows(self.table, self.columns, rows)


class _Recorder:
    """Has the :class:`_Writer` interface, records the inserts (made in another process)."""

    def __init__(self, pg: bool) -> None:
        self.pg = pg
        self.operations: list[_Operation] = []

    day = _Writer.day
    stamp = _Writer.stamp

    def rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        self.operations.append(_Operation.of(table, columns, rows))

    def readings(self, rows: Iterable[Sequence[Any]], stamp: Any) -> None:
        self.operations.append(_Operation.of("headend_reading", (), rows, stamp))


@dataclass(frozen=True, slots=True)
class _Job:
    """Everything needed to make a chunk's rows, in this process or a producer."""

    org: _Organisation
    options: GenerateOptions
    book: TariffBook
    tariff_ids: dict[str, int]
    mix: list[str]
    now: datetime
    channels: I64
    pg: bool

    @property
    def chunk(self) -> int:
        # bounded rows in flight: fewer accounts per chunk when there are many days
        return min(self.options.chunk, max(1000, 4_000_000 // (self.options.days + 4)))

    def make(self, bounds: tuple[int, int]) -> tuple[int, list[_Operation], GenerateReport]:
        lo, hi = bounds
        recorder = _Recorder(self.pg)
        part = GenerateReport()
        _write_chunk(
            recorder,  # type: ignore[arg-type]
            lo,
            hi,
            self.org,
            self.options,
            self.book,
            self.tariff_ids,
            self.mix,
            self.now,
            self.channels,
            part,
        )
        return hi, recorder.operations, part


def _producer(job: _Job, ranges: list[tuple[int, int]], out: Any) -> None:
    try:
        for bounds in ranges:
            out.put(job.make(bounds))
        out.put(None)
    except BaseException as exc:  # handed to the inserting process, which raises it
        out.put(GenerateError(f"making the population failed: {type(exc).__name__}: {exc}"))


def _produced(
    job: _Job, ranges: list[tuple[int, int]]
) -> Iterator[tuple[int, list[_Operation], GenerateReport]]:
    """The chunks made by a producer process while this one inserts (both cores busy)."""
    context = multiprocessing.get_context("spawn")
    handoff: Any = context.Queue(maxsize=2)
    producer = context.Process(
        target=_producer, args=(job, ranges, handoff), name="feikong-generate", daemon=True
    )
    producer.start()
    try:
        while True:
            try:
                item = handoff.get(timeout=1.0)
            except queue.Empty:
                if producer.exitcode is not None:
                    raise GenerateError(
                        f"the population producer stopped (exit code {producer.exitcode})"
                    ) from None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if producer.is_alive():
            producer.terminate()
        producer.join()
        handoff.close()


@contextmanager
def _bulk_load(connection: Connection) -> Iterator[None]:
    """SQLite: no foreign-key checks, no fsync and no write-ahead log while loading rows
    made consistent here (the database goes back to WAL at the end).

    A crash midway may leave the file unusable: generate again into a new database.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    raw: Any = connection.connection.driver_connection
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("PRAGMA synchronous = OFF")
    raw.execute("PRAGMA cache_size = -262144")
    # without a write-ahead log every page is written once, not twice; this only
    # works when no other connection has the file open (otherwise WAL it stays)
    mode = raw.execute("PRAGMA journal_mode = MEMORY").fetchone()[0]
    try:
        yield
    finally:
        if str(mode).lower() == "memory":
            raw.execute("PRAGMA journal_mode = WAL")
        raw.execute("PRAGMA foreign_keys = ON")
        raw.execute("PRAGMA synchronous = NORMAL")
        raw.execute("PRAGMA cache_size = -2000")


def _organisation_rows(
    connection: Connection, org: _Organisation, report: GenerateReport
) -> dict[str, int]:
    for path in example_paths():
        store_tariffs(connection, load_book(path))
    writer = _Writer(connection)
    writer.rows(
        "prepaid_supply_unit",
        ("id", "code", "name"),
        ((u + 1, _unit_code(u), _unit_name(u)) for u in range(org.units)),
    )
    writer.rows(
        "prepaid_feeder_line",
        ("id", "supply_unit_id", "code", "name"),
        (
            (i + 1, int(u) + 1, f"{_unit_code(int(u))}L{i + 1:05d}", f"10kV {i + 1:05d}线")
            for i, u in enumerate(org.line_unit.tolist())
        ),
    )
    writer.rows(
        "prepaid_transformer_area",
        ("id", "feeder_line_id", "code", "name"),
        (
            (a + 1, int(line) + 1, f"TA{a + 1:07d}", f"{a + 1:07d}号台区")
            for a, line in enumerate(org.area_line.tolist())
        ),
    )
    writer.rows(
        "prepaid_reading_segment",
        ("id", "supply_unit_id", "code", "name"),
        (
            (s + 1, int(u) + 1, f"{_unit_code(int(u))}S{s + 1:05d}", f"抄表段{s + 1:05d}")
            for s, u in enumerate(org.segment_unit.tolist())
        ),
    )
    stamp = writer.stamp(datetime.now(UTC))
    writer.rows(
        "headend_channel",
        ("name", "kind", "host", "port", "concurrency", "updated_at"),
        (
            (
                f"TA{a + 1:07d}",
                "gateway",
                f"10.{(a >> 16) & 255}.{(a >> 8) & 255}.{a & 255}",
                6455,
                1,
                stamp,
            )
            for a in range(org.area_start.size)
        ),
    )
    report.supply_units = org.units
    report.feeder_lines = int(org.line_unit.size)
    report.transformer_areas = int(org.area_start.size)
    report.reading_segments = int(org.segment_unit.size)
    report.channels = int(org.area_start.size)
    rows = connection.execute(text("SELECT code, id FROM prepaid_tariff")).all()
    return {str(code): int(ident) for code, ident in rows}


def _area_channels(connection: Connection) -> I64:
    """The channel id of every transformer area (channels are named after the areas)."""
    rows = connection.execute(
        text("SELECT id FROM headend_channel WHERE name LIKE 'TA%' ORDER BY name")
    ).scalars()
    return np.fromiter(rows, dtype=np.int64)


def _write_chunk(
    writer: _Writer,
    lo: int,
    hi: int,
    org: _Organisation,
    options: GenerateOptions,
    book: TariffBook,
    tariff_ids: dict[str, int],
    mix: list[str],
    now: datetime,
    channels: I64,
    report: GenerateReport,
) -> None:
    rng = np.random.default_rng([options.seed, 1, lo])
    n = hi - lo
    index = np.arange(lo, hi, dtype=np.int64)
    ids = index + 1
    area = org.area_of(index)
    line = org.area_line[area]
    unit = org.line_unit[line]
    segment = org.area_segment[area]
    shares = np.array([s for _, s in TARIFF_MIX])
    tariff = np.searchsorted(np.cumsum(shares) / shares.sum(), rng.random(n), side="right")
    tariff = np.minimum(tariff, len(mix) - 1).astype(np.int64)
    commercial = np.isin(tariff, [mix.index(c) for c in _COMMERCIAL])
    household = rng.choice(
        np.arange(1, 7), n, p=np.array([0.15, 0.25, 0.30, 0.15, 0.10, 0.05])
    ).astype(np.int64)
    household = np.where(commercial, 0, household)
    base = np.where(
        commercial,
        rng.lognormal(np.log(40.0), 0.6, n),
        (2.5 + 2.0 * household) * rng.lognormal(0.0, 0.45, n),
    )
    base_ckwh = base * 100.0
    local = rng.random(n) < 0.05
    guarantee = rng.random(n) < np.where(commercial, 0.02, 0.002)
    vulnerable = ~commercial & (rng.random(n) < 0.02)
    free = vulnerable & (rng.random(n) < 0.6)
    paper = rng.random(n) < 0.10
    phones, bad = _phone(rng, n)
    report.invalid_phones += bad
    surname = rng.integers(0, len(_SURNAMES), n)
    given1 = rng.integers(0, len(_GIVEN), n)
    given2 = rng.integers(-len(_GIVEN) // 2, len(_GIVEN), n)
    road = rng.integers(0, len(_ROADS), n)
    number = rng.integers(1, 400, n)
    building = rng.integers(1, 30, n)
    room = rng.integers(101, 2405, n)
    opened = rng.integers(0, 3650, n)
    balance = np.round(rng.lognormal(np.log(25000.0), 0.8, n)).astype(np.int64)
    low = rng.random(n)
    balance = np.where(low < 0.05, rng.integers(0, 3000, n), balance)
    balance = np.where(low < 0.02, rng.integers(-5000, 0, n), balance)
    reminder = np.where(rng.random(n) < 0.05, 5000, -1)

    names: list[str] = []
    addresses: list[str] = []
    for i in range(n):
        city = _CITIES[int(unit[i]) % len(_CITIES)][1]
        if commercial[i]:
            word = _SHOP_WORDS[int(given1[i]) % len(_SHOP_WORDS)]
            kind = _SHOP_KINDS[int(given2[i]) % len(_SHOP_KINDS)]
            names.append(f"{city}{word}{kind}")
            addresses.append(f"{city}市{_ROADS[road[i]]}{number[i]}号")
        else:
            g2 = _GIVEN[given2[i]] if given2[i] >= 0 else ""
            names.append(f"{_SURNAMES[surname[i]]}{_GIVEN[given1[i]]}{g2}")
            addresses.append(f"{city}市{_ROADS[road[i]]}{number[i]}号{building[i]}幢{room[i]}室")
    stamp = writer.stamp(now)
    epoch = date(2016, 1, 1)
    opened_days = [writer.day(epoch + timedelta(days=d)) for d in range(3650)]
    customer_no = [f"33{i:08d}" for i in ids.tolist()]
    address = [f"{330000000000 + i:012d}" for i in ids.tolist()]
    codes = [mix[t] for t in tariff.tolist()]
    writer.rows(
        "prepaid_account",
        (
            "id",
            "customer_no",
            "name",
            "phone",
            "address",
            "supply_unit_id",
            "feeder_line_id",
            "transformer_area_id",
            "reading_segment_id",
            "meter_address",
            "tariff_id",
            "household_size",
            "notify_mode",
            "fee_control_mode",
            "power_guarantee",
            "vulnerable",
            "free_allowance",
            "active",
            "opened_on",
        ),
        zip(
            ids.tolist(),
            customer_no,
            names,
            phones,
            addresses,
            (unit + 1).tolist(),
            (line + 1).tolist(),
            (area + 1).tolist(),
            (segment + 1).tolist(),
            address,
            [tariff_ids[c] for c in codes],
            household.tolist(),
            ["paper" if p else "sms" for p in paper.tolist()],
            ["local" if x else "remote" for x in local.tolist()],
            guarantee.tolist(),
            vulnerable.tolist(),
            free.tolist(),
            [True] * n,
            [opened_days[d] for d in opened.tolist()],
            strict=True,
        ),
    )
    unit_codes = [_unit_code(u) for u in range(org.units)]
    writer.rows(
        "headend_meter",
        (
            "address",
            "meter_number",
            "kind",
            "channel_id",
            "breaker_type",
            "customer_no",
            "supply_unit",
            "reading_segment",
            "active",
            "updated_at",
        ),
        zip(
            address,
            [f"330{i:013d}" for i in ids.tolist()],
            ["local" if x else "remote" for x in local.tolist()],
            channels[area].tolist(),
            ["internal" if x else "external" for x in local.tolist()],
            customer_no,
            [unit_codes[u] for u in unit.tolist()],
            [f"S{s + 1:05d}" for s in segment.tolist()],
            [True] * n,
            [stamp] * n,
            strict=True,
        ),
    )
    _readings_and_state(
        writer,
        rng,
        ids,
        address,
        tariff,
        codes,
        household,
        free,
        commercial,
        base_ckwh,
        balance,
        reminder,
        mix,
        options,
        book,
        stamp,
        report,
    )
    for code in codes:
        report.tariffs[code] = report.tariffs.get(code, 0) + 1


def _readings_and_state(
    writer: _Writer,
    rng: np.random.Generator,
    ids: I64,
    address: list[str],
    tariff: I64,
    codes: list[str],
    household: I64,
    free: NDArray[np.bool_],
    commercial: NDArray[np.bool_],
    base_ckwh: F64,
    balance: I64,
    reminder: I64,
    mix: list[str],
    options: GenerateOptions,
    book: TariffBook,
    stamp: Any,
    report: GenerateReport,
) -> None:
    n = ids.size
    first = options.start
    period = period_of_day(first)
    # simulated days: from the period start (closed by the reading dated period.start)
    # through the day before the last reading
    sim_first = period.start
    sim_days = (options.last_day - sim_first).days  # energy of day j: reading j → j + 1
    pre = (first - sim_first).days  # days before the first stored reading
    day_numbers = day_number(sim_first) + np.arange(sim_days, dtype=np.int64)
    factor = _season(day_numbers)[None, :] * _weekly(day_numbers, commercial)
    noise = rng.lognormal(0.0, 0.25, (n, sim_days))
    daily = np.round(base_ckwh[:, None] * factor * noise).astype(np.int64)
    jumps = rng.random((n, sim_days)) < options.jump_rate
    jumps[:, :pre] = False
    daily = np.where(jumps, daily * 30 + 5000, daily)
    start_register = rng.integers(0, 3_000_000, n).astype(np.int64)
    registers = np.concatenate(
        [start_register[:, None], start_register[:, None] + np.cumsum(daily, axis=1)], axis=1
    )
    # a meter replaced: its register restarts near zero from a random day on
    backwards = rng.random((n, sim_days)) < options.backwards_rate
    backwards[:, :pre] = False
    if backwards.any():
        for i, j in zip(*np.nonzero(backwards), strict=True):
            registers[i, j + 1 :] -= registers[i, j + 1] - int(rng.integers(0, 1000))
    # stored readings: the reading dated first + t is registers[:, pre + t]
    stored = registers[:, pre:]
    missing = rng.random(stored.shape) < options.missing_rate
    missing[:, 0] = False  # the opening reading is there
    report.missing_readings += int(missing.sum())

    tou_index = [mix.index(c) for c in _TOU_SHARES]
    is_tou = np.isin(tariff, tou_index)
    rate_regs: dict[int, I64] = {}  # row → (days+1, 4) registers for TOU accounts
    for row in np.flatnonzero(is_tou).tolist():
        shares = np.array(_TOU_SHARES[codes[row]], dtype=np.float64)
        jitter = shares * rng.uniform(0.85, 1.15, 4)
        jitter = jitter / jitter.sum() if jitter.sum() else jitter
        parts = np.floor(daily[row][:, None] * jitter[None, :]).astype(np.int64)
        last = int(np.flatnonzero(shares)[-1])
        parts[:, last] += daily[row] - parts.sum(axis=1)
        base = np.zeros(4, dtype=np.int64)
        base[last] = start_register[row]
        rate_regs[row] = np.concatenate([base[None, :], base + np.cumsum(parts, axis=0)])

    days = np.array([writer.day(first + timedelta(days=t)) for t in range(options.days)])
    keep = ~missing.ravel()
    rate = np.full((n, options.days, 4), -1, dtype=np.int64)
    for row, regs in rate_regs.items():
        rate[row] = regs[pre:]
    rate = rate.reshape(-1, 4)[keep]
    rows = zip(
        np.repeat(np.array(address, dtype=object), options.days)[keep].tolist(),
        np.tile(days, n)[keep].tolist(),
        stored.ravel()[keep].tolist(),
        rate[:, 0].tolist(),
        rate[:, 1].tolist(),
        rate[:, 2].tolist(),
        rate[:, 3].tolist(),
        strict=True,
    )
    writer.readings(rows, stamp)
    report.readings += int(keep.sum())

    # opening rating state: rated through the first reading
    ptd = registers[:, pre] - registers[:, 0]
    if (ptd < 0).any():
        ptd = np.maximum(ptd, 0)
    charged = np.zeros(n, dtype=np.int64)
    prior = np.zeros(n, dtype=np.int64)
    tou_ptd: dict[int, I64] = {row: regs[pre] - regs[0] for row, regs in rate_regs.items()}
    for t_index in np.unique(tariff).tolist():
        members = np.flatnonzero(tariff == t_index)
        code = mix[t_index]
        _opening_charges(
            book, code, first, members, ptd, household, free, base_ckwh, tou_ptd, charged, prior
        )
    avg = np.round(base_ckwh).astype(np.int64)
    versions = {t: _version(book, mix[t], first) for t in np.unique(tariff).tolist()}
    writer.rows(
        "prepaid_rating_state",
        (
            "account_id",
            "reading_day",
            "reading_ckwh",
            "period_start",
            "period_ckwh",
            "prior_ckwh",
            "charged_fen",
            "balance_fen",
            "reminder_fen",
            "avg_daily_ckwh",
            "last_energy_ckwh",
            "last_amount_fen",
            "tariff_version",
            "tier",
            "outcome",
        ),
        zip(
            ids.tolist(),
            [day_number(first)] * n,
            stored[:, 0].tolist(),
            [day_number(period.start)] * n,
            ptd.tolist(),
            prior.tolist(),
            charged.tolist(),
            balance.tolist(),
            [None if r < 0 else r for r in reminder.tolist()],
            avg.tolist(),
            [0] * n,
            [0] * n,
            [versions[t] for t in tariff.tolist()],
            [1] * n,
            [None] * n,
            strict=True,
        ),
    )
    if rate_regs:
        writer.rows(
            "prepaid_rating_tou",
            (
                "account_id",
                "reg_sharp_ckwh",
                "reg_peak_ckwh",
                "reg_flat_ckwh",
                "reg_valley_ckwh",
                "ptd_sharp_ckwh",
                "ptd_peak_ckwh",
                "ptd_flat_ckwh",
                "ptd_valley_ckwh",
            ),
            (
                (int(ids[row]), *regs[pre].tolist(), *tou_ptd[row].tolist())
                for row, regs in sorted(rate_regs.items())
            ),
        )


def _version(book: TariffBook, code: str, day: date) -> int:
    """The version in force on the day the reading dated ``day`` closes (0: none)."""
    try:
        return book.at(code, day - timedelta(days=1)).version
    except TariffError:
        return 0


def _opening_charges(
    book: TariffBook,
    code: str,
    first: date,
    members: I64,
    ptd: I64,
    household: I64,
    free: NDArray[np.bool_],
    base_ckwh: F64,
    tou_ptd: dict[int, I64],
    charged: I64,
    prior: I64,
) -> None:
    """Charge of each member's opening period-to-date energy (and annual prior energy)."""
    period = period_of_day(first)
    try:
        versions = book.segments(code, period.start, period.end)
    except TariffError:
        return  # no version in force: rating will report it
    tariff: Tariff = versions[0][0]
    through = first - timedelta(days=1)  # the first reading closes this day
    if tariff.cycle is Cycle.ANNUAL:
        months = (period.start.month - tariff.cycle_start_month) % 12
        prior[members] = np.round(base_ckwh[members] * 30.4 * months).astype(np.int64)
    tou = None
    if tariff.tou:
        names = tariff.tou_names
        order = ("sharp", "peak", "flat", "valley")
        tou = {
            name: np.array([int(tou_ptd[int(m)][order.index(name)]) for m in members])
            for name in names
        }
    if len(versions) == 1:
        charged[members] = charge_many(
            tariff,
            period,
            ptd[members],
            prior[members],
            household_size=household[members],
            free_allowance=free[members],
            tou_ckwh=tou,
        )
        return
    order = ("sharp", "peak", "flat", "valley")
    for m in members.tolist():
        regs = tou_ptd.get(m)
        tou_m = None
        if tariff.tou and regs is not None:
            tou_m = {name: int(regs[order.index(name)]) for name in tariff.tou_names}
        result = charge(
            book,
            period,
            PeriodEnergy(
                int(ptd[m]),
                through=through,
                prior_ckwh=int(prior[m]),
                household_size=int(household[m]) or None,
                free_allowance=bool(free[m]),
                tou_ckwh=tou_m,
            ),
            tariff_id=code,
        )
        charged[m] = result.total_fen
