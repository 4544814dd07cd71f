"""The meter archive (电表档案) and channels (通道): CSV import and export.

One CSV file carries both kinds of record; the ``record`` column says which
(``channel`` or ``meter``). A file whose header has no ``record`` column holds one
kind only: meters if it has an ``address`` column, channels otherwise. Columns may
come in any order; unknown columns are an error; empty cells mean "not set"; a
cell with a control character (NUL, …) makes its row a bad row.
UTF-8 (with or without BOM) is expected; GB 18030 (Excel in Chinese locales) is
accepted too. Blank lines and lines starting with ``#`` are skipped.

Channel columns
    ``name``         unique name, referenced by meters (required)
    ``kind``         ``tcp`` | ``gateway`` | ``serial`` | ``mqtt`` (required)
    ``host``         tcp / gateway endpoint or MQTT broker (required for those)
    ``port``         1..65535 (required for tcp / gateway; MQTT default 1883)
    ``serial_port``  e.g. ``/dev/ttyUSB0`` (required for serial)
    ``baud``         300..115200 (serial only; default 2400)
    ``parity``       ``N`` | ``E`` | ``O`` (serial only; default ``E``); also spelled
                     ``even`` / ``odd`` / ``none`` or 偶校验 / 奇校验 / 无校验
    ``mqtt_topic``   topic the frames ride on (required for mqtt)
    ``concurrency``  requests in flight at once, ≥ 1 (default 1)

Meter columns
    ``address``          communication address, 12 decimal digits (required)
    ``meter_number``     meter number / 表号 (required)
    ``kind``             ``remote`` (远程费控) | ``local`` (本地费控) (required)
    ``channel``          a channel name, in this file or already stored (required)
    ``key_ref``          reference of the meter's key (the key is never in the archive)
    ``breaker_type``     ``external`` | ``external-remote-close`` | ``internal`` (required)
    ``customer_no``      customer number (户号), may be empty
    ``supply_unit``      supply unit (供电单位)
    ``reading_segment``  meter-reading segment (抄表段)
    ``active``           ``true``/``false`` (also 1/0, yes/no; default true)

Import is an upsert by channel name and meter address, so importing the same
file twice changes nothing; a bad row is reported with its line number and the
reason and every good row still loads. Export writes the combined format, which
imports back to the same archive.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from sqlalchemy import Connection, Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from .errors import ArchiveFormatError
from .models import (
    BAUD_RATES,
    PARITIES,
    BreakerType,
    Channel,
    ChannelKind,
    Meter,
    MeterKind,
    utcnow,
)

__all__ = [
    "ALL_COLUMNS",
    "CHANNEL_COLUMNS",
    "METER_COLUMNS",
    "ImportReport",
    "RowError",
    "export_archive",
    "import_archive",
]

log = logging.getLogger(__name__)

CHANNEL_COLUMNS: Final = (
    "name",
    "kind",
    "host",
    "port",
    "serial_port",
    "baud",
    "parity",
    "mqtt_topic",
    "concurrency",
)
METER_COLUMNS: Final = (
    "address",
    "meter_number",
    "kind",
    "channel",
    "key_ref",
    "breaker_type",
    "customer_no",
    "supply_unit",
    "reading_segment",
    "active",
)
ALL_COLUMNS: Final = ("record", *dict.fromkeys((*CHANNEL_COLUMNS, *METER_COLUMNS)))
"""The columns of an exported archive, in order."""

_CHANNEL_REQUIRED: Final = ("name", "kind")
_METER_REQUIRED: Final = ("address", "meter_number", "kind", "channel", "breaker_type")
_FIELDS_BY_CHANNEL_KIND: Final = {
    ChannelKind.TCP: {"host", "port"},
    ChannelKind.GATEWAY: {"host", "port"},
    ChannelKind.SERIAL: {"serial_port", "baud", "parity"},
    ChannelKind.MQTT: {"host", "port", "mqtt_topic"},
}
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
"""Control characters: never part of a value (PostgreSQL refuses NUL in text)."""
_TRUE: Final = {"true", "1", "yes", "y", "t"}
_FALSE: Final = {"false", "0", "no", "n", "f"}
_BATCH: Final = 5000
_LOOKUP_BATCH: Final = 900
DEFAULT_BAUD: Final = 2400
DEFAULT_PARITY: Final = "E"
DEFAULT_MQTT_PORT: Final = 1883
PARITY_WORDS: Final = {
    "even": "E",
    "odd": "O",
    "none": "N",
    "偶": "E",
    "偶校验": "E",
    "奇": "O",
    "奇校验": "O",
    "无": "N",
    "无校验": "N",
}
"""Parity as archives exported from other systems spell it (stored as E / O / N)."""

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while rows are written."""


@dataclass(frozen=True, slots=True)
class RowError:
    """A rejected row: its line number in the file (the header is line 1) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(slots=True)
class ImportReport:
    """What an import did. ``*_loaded`` counts good rows written (new or updated)."""

    channels_loaded: int = 0
    channels_updated: int = 0
    meters_loaded: int = 0
    meters_updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def loaded(self) -> int:
        return self.channels_loaded + self.meters_loaded

    @property
    def updated(self) -> int:
        """Rows among ``loaded`` that replaced an existing channel or meter."""
        return self.channels_updated + self.meters_updated

    @property
    def inserted(self) -> int:
        return self.loaded - self.updated

    def to_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "inserted": self.inserted,
            "updated": self.updated,
            "channels": {"loaded": self.channels_loaded, "updated": self.channels_updated},
            "meters": {"loaded": self.meters_loaded, "updated": self.meters_updated},
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


class _RowInvalid(ValueError):
    pass


# --------------------------------------------------------------------------- reading


def _read_text(source: Path | str | TextIO) -> TextIO:
    if not isinstance(source, (Path, str)):
        return source
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArchiveFormatError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise ArchiveFormatError(
                f"{str(path)!r} is neither UTF-8 nor GB 18030 text; save it as UTF-8 CSV"
            ) from None
    return io.StringIO(text, newline="")


def _rows(stream: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each non-blank, non-comment row."""
    reader = csv.reader(stream)
    previous = 0
    try:
        for cells in reader:
            line = previous + 1
            previous = reader.line_num
            if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
                continue
            yield line, cells
    except csv.Error as exc:
        raise ArchiveFormatError(f"line {reader.line_num}: not valid CSV: {exc}") from exc


def _header(cells: list[str], line: int) -> tuple[list[str], str | None]:
    names = [c.strip().lstrip("\ufeff").strip().lower() for c in cells]
    known = set(ALL_COLUMNS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ArchiveFormatError(
            f"line {line}: unknown column(s) {', '.join(map(repr, unknown))}; "
            f"the columns are {', '.join(ALL_COLUMNS)}"
        )
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ArchiveFormatError(f"line {line}: column(s) given twice: {', '.join(duplicated)}")
    if "record" in names:
        return names, None
    fixed = "meter" if "address" in names else "channel"
    required = _METER_REQUIRED if fixed == "meter" else _CHANNEL_REQUIRED
    missing = [c for c in required if c not in names]
    if missing:
        raise ArchiveFormatError(
            f"line {line}: a {fixed} file needs the column(s) {', '.join(missing)} "
            "(or add a 'record' column to mix channels and meters)"
        )
    return names, fixed


# --------------------------------------------------------------------------- validation


def _opt(row: Mapping[str, str], name: str) -> str | None:
    value = row.get(name, "").strip()
    return value or None


def _int(row: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    text = _opt(row, name)
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise _RowInvalid(f"{name} {text!r} must be a whole number from {low} to {high}")
    return int(text)


def _choice(row: Mapping[str, str], name: str, allowed: Sequence[str], *, fold: bool) -> str:
    text = _opt(row, name) or ""
    value = text.lower() if fold else text.upper()
    if value not in allowed:
        raise _RowInvalid(f"{name} {text!r} is not one of {', '.join(allowed)}")
    return value


def _required(row: Mapping[str, str], names: Iterable[str]) -> None:
    missing = [n for n in names if not _opt(row, n)]
    if missing:
        raise _RowInvalid(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} empty")


def _parity(row: Mapping[str, str]) -> str:
    """The parity letter; the words (``even``, ``偶校验``, …) that archives spell out too."""
    text = _opt(row, "parity")
    if text is None:
        return DEFAULT_PARITY
    letter = PARITY_WORDS.get(text.strip().lower())
    if letter is not None:
        return letter
    return _choice(row, "parity", PARITIES, fold=False)


def _check_address(text: str) -> str:
    if len(text) != 12 or not (text.isascii() and text.isdigit()):
        raise _RowInvalid(f"address {text!r} must be 12 decimal (BCD) digits, e.g. 123456781012")
    if text == "999999999999":
        raise _RowInvalid("address 999999999999 is the broadcast address, not a meter")
    return text


def _no_control(row: Mapping[str, str]) -> None:
    for name, value in row.items():
        text = value.strip()
        if _CONTROL.search(text):
            raise _RowInvalid(f"{name} {text!r} contains a control character; remove it")


def _channel_values(row: Mapping[str, str]) -> dict[str, Any]:
    _no_control(row)
    _required(row, _CHANNEL_REQUIRED)
    kind = ChannelKind(_choice(row, "kind", [k.value for k in ChannelKind], fold=True))
    allowed = _FIELDS_BY_CHANNEL_KIND[kind]
    stray = [
        n
        for n in ("host", "port", "serial_port", "baud", "parity", "mqtt_topic")
        if n not in allowed and _opt(row, n)
    ]
    if stray:
        raise _RowInvalid(f"{', '.join(stray)} do(es) not apply to a {kind.value} channel")
    values: dict[str, Any] = {
        "name": _opt(row, "name"),
        "kind": kind.value,
        "host": None,
        "port": None,
        "serial_port": None,
        "baud": None,
        "parity": None,
        "mqtt_topic": None,
        "concurrency": _int(row, "concurrency", 1, 10_000) or 1,
    }
    if len(values["name"]) > 64:
        raise _RowInvalid("name is longer than 64 characters")
    if kind is ChannelKind.SERIAL:
        _required(row, ["serial_port"])
        values["serial_port"] = _opt(row, "serial_port")
        baud = _int(row, "baud", 1, 10_000_000)
        if baud is not None and baud not in BAUD_RATES:
            raise _RowInvalid(f"baud {baud} is not one of {', '.join(map(str, BAUD_RATES))}")
        values["baud"] = baud or DEFAULT_BAUD
        values["parity"] = _parity(row)
    else:
        _required(row, ["host"])
        values["host"] = _opt(row, "host")
        port = _int(row, "port", 1, 65535)
        if kind is ChannelKind.MQTT:
            _required(row, ["mqtt_topic"])
            values["mqtt_topic"] = _opt(row, "mqtt_topic")
            port = port or DEFAULT_MQTT_PORT
        elif port is None:
            raise _RowInvalid(f"port is empty (a {kind.value} channel needs host and port)")
        values["port"] = port
    return values


def _meter_values(row: Mapping[str, str]) -> dict[str, Any]:
    _no_control(row)
    _required(row, _METER_REQUIRED)
    active_text = (_opt(row, "active") or "true").lower()
    if active_text not in _TRUE | _FALSE:
        raise _RowInvalid(f"active {row.get('active')!r} must be true or false")
    values: dict[str, Any] = {
        "address": _check_address(_opt(row, "address") or ""),
        "meter_number": _opt(row, "meter_number"),
        "kind": _choice(row, "kind", [k.value for k in MeterKind], fold=True),
        "channel": _opt(row, "channel"),
        "key_ref": _opt(row, "key_ref"),
        "breaker_type": _choice(row, "breaker_type", [b.value for b in BreakerType], fold=True),
        "customer_no": _opt(row, "customer_no"),
        "supply_unit": _opt(row, "supply_unit"),
        "reading_segment": _opt(row, "reading_segment"),
        "active": active_text in _TRUE,
    }
    limits = {
        "meter_number": 32,
        "key_ref": 64,
        "customer_no": 32,
        "supply_unit": 64,
        "reading_segment": 64,
    }
    for name, limit in limits.items():
        if values[name] is not None and len(values[name]) > limit:
            raise _RowInvalid(f"{name} is longer than {limit} characters")
    return values


# --------------------------------------------------------------------------- writing


def _upsert(connection: Connection, table: Table, key: str) -> Insert:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        pg = postgresql.insert(table)
        columns = {c.name: pg.excluded[c.name] for c in table.columns if c.name not in (key, "id")}
        return pg.on_conflict_do_update(index_elements=[key], set_=columns)
    if dialect == "sqlite":
        lite = sqlite.insert(table)
        columns = {
            c.name: lite.excluded[c.name] for c in table.columns if c.name not in (key, "id")
        }
        return lite.on_conflict_do_update(index_elements=[key], set_=columns)
    raise ArchiveFormatError(f"no upsert for the {dialect!r} database")  # pragma: no cover


def _existing(connection: Connection, column: Any, keys: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), _LOOKUP_BATCH):
        chunk = keys[start : start + _LOOKUP_BATCH]
        found.update(connection.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def _write(
    connection: Connection,
    table: Table,
    key: str,
    rows: list[dict[str, Any]],
    progress: Callable[[int], None],
) -> int:
    """Upsert ``rows`` in batches; returns how many already existed."""
    if not rows:
        return 0
    updated = len(_existing(connection, table.c[key], [r[key] for r in rows]))
    statement = _upsert(connection, table, key)
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        connection.execute(statement, batch)
        progress(len(batch))
    return updated


def import_archive(
    engine: Engine, source: Path | str | TextIO, *, progress: Progress | None = None
) -> ImportReport:
    """Load channels and meters from a CSV file (path) or text stream; see the module doc.

    Raises :class:`~headend.errors.ArchiveFormatError` when the file cannot be read
    at all (missing, undecodable, unknown columns); bad rows go to the report.
    The whole import is one transaction.
    """
    stream = _read_text(source)
    rows = _rows(stream)
    first = next(rows, None)
    report = ImportReport()
    if first is None:
        return report
    header_line, header_cells = first
    names, fixed = _header(header_cells, header_line)

    channels: dict[str, tuple[int, dict[str, Any]]] = {}
    meters: dict[str, tuple[int, dict[str, Any]]] = {}
    rejected_channels: dict[str, int] = {}
    for line, cells in rows:
        if len(cells) > len(names):
            extra = cells[len(names) :]
            if any(c.strip() for c in extra):
                report.errors.append(
                    RowError(line, f"{len(cells)} cells but the header has {len(names)} columns")
                )
                continue
        row = dict(zip(names, cells, strict=False))
        record = fixed or (row.get("record", "").strip().lower())
        try:
            if record == "channel":
                values = _channel_values(row)
                if values["name"] in channels:
                    first_line = channels[values["name"]][0]
                    raise _RowInvalid(
                        f"duplicate channel {values['name']!r} (first on line {first_line})"
                    )
                channels[values["name"]] = (line, values)
            elif record == "meter":
                values = _meter_values(row)
                if values["address"] in meters:
                    first_line = meters[values["address"]][0]
                    raise _RowInvalid(
                        f"duplicate address {values['address']} (first on line {first_line})"
                    )
                meters[values["address"]] = (line, values)
            else:
                raise _RowInvalid(f"record {row.get('record', '')!r} is not channel or meter")
        except _RowInvalid as exc:
            report.errors.append(RowError(line, str(exc)))
            if record == "channel" and _opt(row, "name"):
                rejected_channels.setdefault(_opt(row, "name") or "", line)

    total = len(channels) + len(meters)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    now = utcnow()
    channel_table: Table = Channel.__table__  # type: ignore[attr-defined]
    meter_table: Table = Meter.__table__  # type: ignore[attr-defined]
    with engine.begin() as connection:
        channel_rows = [{**v, "updated_at": now} for _, v in channels.values()]
        report.channels_updated = _write(connection, channel_table, "name", channel_rows, advance)
        report.channels_loaded = len(channel_rows)

        wanted = sorted({v["channel"] for _, v in meters.values()})
        ids: dict[str, int] = {}
        for start in range(0, len(wanted), _LOOKUP_BATCH):
            chunk = wanted[start : start + _LOOKUP_BATCH]
            query = select(channel_table.c.name, channel_table.c.id).where(
                channel_table.c.name.in_(chunk)
            )
            ids.update({name: id_ for name, id_ in connection.execute(query)})
        meter_rows: list[dict[str, Any]] = []
        for line, values in meters.values():
            name = values.pop("channel")
            if name not in ids:
                reason = f"unknown channel {name!r}"
                if name in rejected_channels:
                    reason += f" (its row on line {rejected_channels[name]} was rejected)"
                report.errors.append(RowError(line, reason))
                continue
            meter_rows.append({**values, "channel_id": ids[name], "updated_at": now})
        total = len(channel_rows) + len(meter_rows)
        report.meters_updated = _write(connection, meter_table, "address", meter_rows, advance)
        report.meters_loaded = len(meter_rows)
    report.errors.sort(key=lambda e: e.line)
    log.info(
        "archive import: %d loaded (%d updated), %d bad rows",
        report.loaded,
        report.updated,
        len(report.errors),
    )
    return report


# --------------------------------------------------------------------------- export


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def export_archive(engine: Engine, target: Path | str | TextIO) -> tuple[int, int]:
    """Write every channel then every meter in the combined format; (channels, meters)."""
    if isinstance(target, (Path, str)):
        path = Path(target)
        try:
            with path.open("w", encoding="utf-8", newline="") as stream:
                return export_archive(engine, stream)
        except OSError as exc:
            raise ArchiveFormatError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from exc
    writer = csv.writer(target, lineterminator="\n")
    writer.writerow(ALL_COLUMNS)
    channel_table: Table = Channel.__table__  # type: ignore[attr-defined]
    meter_table: Table = Meter.__table__  # type: ignore[attr-defined]
    n_channels = n_meters = 0
    with engine.connect() as connection:
        for channel in connection.execute(select(channel_table).order_by(channel_table.c.name)):
            data = channel._mapping
            cells = {"record": "channel", **{c: data[c] for c in CHANNEL_COLUMNS}}
            writer.writerow([_cell(cells.get(c)) for c in ALL_COLUMNS])
            n_channels += 1
        query = (
            select(meter_table, channel_table.c.name.label("channel"))
            .join(channel_table, meter_table.c.channel_id == channel_table.c.id)
            .order_by(meter_table.c.address)
            .execution_options(yield_per=_BATCH)
        )
        for meter in connection.execute(query):
            data = meter._mapping
            cells = {"record": "meter", **{c: data[c] for c in METER_COLUMNS}}
            writer.writerow([_cell(cells.get(c)) for c in ALL_COLUMNS])
            n_meters += 1
    return n_channels, n_meters
