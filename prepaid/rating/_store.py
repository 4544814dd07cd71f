"""Reading and writing rating state in bulk, per chunk of accounts (SQLite, PostgreSQL).

Reading a chunk is one query in account order: the narrow covering index of the
accounts, their rating state (by integer key) and the day's reading from
``headend_reading`` (by its primary key, in meter-address order — account ids follow
the addresses). SQLite hands the columns over as one comma-separated text each
(``group_concat``) that numpy parses in C; PostgreSQL as a binary ``COPY`` parsed with
a numpy record type. No Python object is made per account.

Writing a chunk is one transaction:

1. the closing charges of skipped periods (rare);
2. the new state of every account rated, conditional on it not being rated for the
   day already (a concurrent re-rating of an account wins), the balance updated
   relatively (``balance_fen - amount``) so that a payment credited meanwhile is
   never lost, the outcome decided from that balance;
3. the day's charges copied from the state rows just written, in key order;
4. the TOU registers and the anomalies.

SQL text is built only from integers and constants of this module (the lines marked
``noqa: S608``); every value from outside is a bound parameter.

A rerun finds the accounts already rated (``reading_day``) and skips them; a charge
is keyed by (day, account), so nothing is ever charged twice.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Final

import numpy as np
from sqlalchemy import Connection, text
from sqlalchemy.dialects import postgresql, sqlite

from ..models import Anomaly, AnomalyKind, Outcome, day_number
from ._compute import ChunkInput, ChunkPlan, ClosingCharge, RatingOptions, TouArrays
from ._errors import RatingRunError
from ._registers import DAILY_FORWARD_DI, parse_rate_blocks

__all__ = ["Scope", "Store", "store_for"]

I64 = np.dtype(np.int64)

#: The columns read per account, small values packed in pairs (less text to make and
#: parse): id; tariff, household, free allowance; last reading day and period start
#: (+1, so that "none" is 0); last register; period energy; prior energy; charged;
#: average; the day's reading (``-1``: none).
_READ_COLUMNS: Final = (
    "a.id",
    "(CAST(a.tariff_id AS BIGINT) * 16777216) + (a.household_size * 2)"
    " + CASE WHEN a.free_allowance THEN 1 ELSE 0 END",
    "(CAST(coalesce(s.reading_day, -1) + 1 AS BIGINT) * 16777216)"
    " + coalesce(s.period_start, -1) + 1",
    "coalesce(s.reading_ckwh, -1)",
    "s.period_ckwh",
    "s.prior_ckwh",
    "s.charged_fen",
    "s.avg_daily_ckwh",
    "coalesce(r.energy_ckwh, -1)",
)
_LOW24: Final = (1 << 24) - 1

#: The rate-register columns of ``prepaid_rating_tou``, in ``ChunkPlan.tou_values`` order.
_TOU_COLUMNS: Final = tuple(
    f"{k}_{n}_ckwh" for k in ("reg", "ptd") for n in ("sharp", "peak", "flat", "valley")
)

_HELD_KINDS: Final = (
    AnomalyKind.NEGATIVE_CONSUMPTION,
    AnomalyKind.NO_TARIFF,
    AnomalyKind.NO_TOU_REGISTERS,
)


class Scope:
    """The accounts of a chunk: an id range ``[lo, hi)`` or an explicit list of ids."""

    __slots__ = ("hi", "ids", "lo")

    def __init__(self, lo: int = 0, hi: int = 0, ids: Sequence[int] | None = None) -> None:
        self.lo, self.hi = lo, hi
        self.ids = tuple(sorted(set(ids))) if ids is not None else None

    def where(self, column: str) -> str:
        if self.ids is not None:
            return f"{column} IN ({', '.join(str(int(i)) for i in self.ids) or 'NULL'})"
        return f"{column} >= {int(self.lo)} AND {column} < {int(self.hi)}"

    @property
    def size(self) -> int:
        return len(self.ids) if self.ids is not None else self.hi - self.lo


def _outcome_case(balance: str) -> str:
    return (
        f"CASE WHEN {balance} < 0 THEN {Outcome.NEGATIVE.value} "
        f"WHEN {balance} < coalesce(reminder_fen, :reminder) THEN {Outcome.BELOW_REMINDER.value} "
        f"ELSE {Outcome.NORMAL.value} END"
    )


class Store:
    """Bulk reads and writes of rating state on one database dialect."""

    dialect = "sqlite"

    def __init__(self, di: int = DAILY_FORWARD_DI, tou_tariffs: Sequence[int] = ()) -> None:
        self.di = di
        #: ids of the tariffs with time-of-use periods (their accounts need rate registers)
        self.tou_tariffs = tuple(tou_tariffs)

    # -- reading ------------------------------------------------------------------------

    def _from(self, scope: Scope) -> str:
        if self.dialect == "postgresql":
            # a key lookup per account whatever the statistics say (a hash join would
            # scan every reading of every day for each chunk)
            # (LIMIT 1 keeps the planner from flattening it; the key gives one row at most)
            reading = (
                " LEFT JOIN LATERAL (SELECT r0.energy_ckwh, r0.value"  # noqa: S608
                " FROM headend_reading r0 WHERE r0.meter_address = a.meter_address"
                f" AND r0.di = {int(self.di)} AND r0.freeze_date = :freeze_date LIMIT 1) r ON TRUE"
            )
            index = ""
        else:
            reading = (
                " LEFT JOIN headend_reading r ON r.meter_address = a.meter_address"
                f" AND r.di = {int(self.di)} AND r.freeze_date = :freeze_date"
            )
            index = " INDEXED BY ix_prepaid_account_rating"
        # the range on both keys: PostgreSQL's merge join does not seek the state by itself
        return (
            f" FROM prepaid_account a{index}"
            f" JOIN prepaid_rating_state s ON s.account_id = a.id{reading}"
            f" WHERE {scope.where('a.id')} AND {scope.where('s.account_id')} AND a.active"
        )

    def bounds(self, connection: Connection) -> tuple[int, int]:
        row = connection.execute(text("SELECT min(id), max(id) FROM prepaid_account")).one()
        return (int(row[0]), int(row[1])) if row[0] is not None else (0, -1)

    def fetch(self, connection: Connection, scope: Scope, day: date) -> ChunkInput:
        columns = [f"group_concat({c})" for c in _READ_COLUMNS]
        if self.tou_tariffs:
            # the value text of TOU accounts' readings (their rate registers), '' for others
            listed = ", ".join(str(int(t)) for t in sorted(self.tou_tariffs))
            columns.append(
                f"group_concat(CASE WHEN a.tariff_id IN ({listed})"
                " THEN coalesce(r.value, '') ELSE '' END, ';')"
            )
        sql = f"SELECT count(*), {', '.join(columns)}{self._from(scope)}"
        raw: Any = connection.connection.driver_connection
        row = raw.execute(sql, {"freeze_date": day.isoformat()}).fetchone()
        if not row or not row[0]:
            return ChunkInput.empty()
        width = len(_READ_COLUMNS)
        chunk = _chunk([np.fromstring(v, dtype=np.int64, sep=",") for v in row[1 : 1 + width]])
        if self.tou_tariffs:
            texts: list[str | None] = row[1 + width].split(";")
            self._fetch_tou(connection, scope, chunk, texts)
        return chunk

    def _fetch_tou(
        self, connection: Connection, scope: Scope, chunk: ChunkInput, texts: list[str | None]
    ) -> None:
        columns = ", ".join(f"group_concat({c})" for c in ("account_id", *_TOU_COLUMNS))
        raw: Any = connection.connection.driver_connection
        found = raw.execute(
            f"SELECT count(*), {columns} FROM prepaid_rating_tou"  # noqa: S608
            f" WHERE {scope.where('account_id')}"
        ).fetchone()
        if found and found[0]:
            numbers = [np.fromstring(v, dtype=np.int64, sep=",") for v in found[1:]]
            _set_tou(chunk, numbers, texts)

    # -- writing ------------------------------------------------------------------------

    def apply(
        self,
        connection: Connection,
        plan: ChunkPlan,
        scope: Scope,
        day: date,
        options: RatingOptions,
        now: datetime,
    ) -> None:
        """Store ``plan`` (the caller owns the transaction)."""
        d = day_number(day)
        if plan.closing:
            self._closing(connection, plan.closing, d, options)
        if len(plan):
            self._update_state(connection, plan, d, day, options)
            connection.execute(
                text(
                    "INSERT INTO prepaid_charge (day, account_id, period_start, reading_ckwh,"  # noqa: S608
                    " energy_ckwh, period_ckwh, amount_fen, charged_fen, balance_fen,"
                    " tariff_version, tier, outcome)"
                    " SELECT reading_day, account_id, period_start, reading_ckwh,"
                    " last_energy_ckwh, period_ckwh, last_amount_fen, charged_fen, balance_fen,"
                    " tariff_version, tier, outcome FROM prepaid_rating_state"
                    f" WHERE {scope.where('account_id')} AND reading_day = {d}"
                    " ON CONFLICT DO NOTHING"
                )
            )
        if plan.tou_ids.size:
            self._update_tou(connection, plan)
        if plan.anomalies:
            table = Anomaly.__table__  # type: ignore[attr-defined]
            dialect = postgresql if self.dialect == "postgresql" else sqlite
            statement = dialect.insert(table).on_conflict_do_nothing()
            connection.execute(
                statement,
                [
                    {
                        "day": d,
                        "account_id": a.account_id,
                        "kind": a.kind.value,
                        "reading_ckwh": a.reading_ckwh,
                        "previous_ckwh": a.previous_ckwh,
                        "detail": a.detail[:255],
                        "recorded_at": now,
                    }
                    for a in plan.anomalies
                ],
            )

    def _update_tou(self, connection: Connection, plan: ChunkPlan) -> None:
        sets = ", ".join(f"{n} = ?{i + 1}" for i, n in enumerate(_TOU_COLUMNS))
        raw: Any = connection.connection.driver_connection
        raw.executemany(
            f"UPDATE prepaid_rating_tou SET {sets} WHERE account_id = ?9",  # noqa: S608
            ((*v, i) for v, i in zip(plan.tou_values.tolist(), plan.tou_ids.tolist(), strict=True)),
        )

    def _closing(
        self, connection: Connection, closing: list[ClosingCharge], d: int, options: RatingOptions
    ) -> None:
        cumulative: Counter[int] = Counter()
        rows = []
        for c in closing:
            cumulative[c.account_id] += c.amount_fen
            rows.append(
                {
                    "account_id": c.account_id,
                    "cday": c.day,
                    "ps": c.period_start,
                    "reg": c.reading_ckwh,
                    "energy": c.energy_ckwh,
                    "pck": c.period_ckwh,
                    "amount": c.amount_fen,
                    "cum": cumulative[c.account_id],
                    "charged": c.charged_fen,
                    "version": c.tariff_version,
                    "tier": c.tier,
                    "reminder": options.reminder_fen,
                }
            )
        connection.execute(
            text(
                "INSERT INTO prepaid_charge (day, account_id, period_start, reading_ckwh,"  # noqa: S608
                " energy_ckwh, period_ckwh, amount_fen, charged_fen, balance_fen,"
                " tariff_version, tier, outcome)"
                " SELECT :cday, account_id, :ps, :reg, :energy, :pck, :amount, :charged,"
                f" balance_fen - :cum, :version, :tier, {_outcome_case('balance_fen - :cum')}"
                " FROM prepaid_rating_state WHERE account_id = :account_id"
                f" AND (reading_day IS NULL OR reading_day < {d})"
                " ON CONFLICT DO NOTHING"
            ),
            rows,
        )

    def _update_sql(self, d: int, ps: int, options: RatingOptions) -> str:
        """The state update of an account rated on the vector path (4 parameters).

        ``?1`` the register, ``?2`` the period-to-date charge, ``?3`` prior energy ×
        2**24 + version × 256 + tier × 2 + jump, ``?4`` the account. Everything else
        follows from the row as it is, in the same way as :func:`plan_chunk` computes
        it (a concurrent rating of the account makes the ``WHERE`` false; a payment
        only moves the balance, which is updated relatively).
        """
        same = f"period_start = {ps}"
        energy = "(?1 - reading_ckwh)"
        amount = f"(?2 - CASE WHEN {same} THEN charged_fen ELSE 0 END)"
        balance = f"balance_fen - {amount}"
        outcome = _outcome_case(balance).replace(":reminder", str(int(options.reminder_fen)))
        k = int(options.average_days)
        per_day = f"({energy} / max({d} - reading_day, 1))"
        average = (
            f"CASE WHEN avg_daily_ckwh > 0 THEN (avg_daily_ckwh * {k - 1} + {per_day}) / {k}"
            f" ELSE {per_day} END"
        )
        return (
            f"UPDATE prepaid_rating_state SET reading_day = {d}, reading_ckwh = ?1,"  # noqa: S608
            f" period_start = {ps},"
            f" period_ckwh = CASE WHEN {same} THEN period_ckwh ELSE 0 END + {energy},"
            f" prior_ckwh = ?3 / 16777216, last_energy_ckwh = {energy},"
            f" last_amount_fen = {amount}, charged_fen = ?2, balance_fen = {balance},"
            f" avg_daily_ckwh = {average}, tariff_version = (?3 % 16777216) / 256,"
            f" tier = (?3 / 2) % 128,"
            f" outcome = CASE WHEN ?3 % 2 = 1 THEN {Outcome.ANOMALY.value} ELSE {outcome} END"
            f" WHERE account_id = ?4 AND (reading_day IS NULL OR reading_day < {d})"
        )

    def _explicit_sql(self, d: int, ps: int, reminder: int) -> str:
        """The state update of an account rated on the scalar path (every value given)."""
        balance = "balance_fen - ?12"
        outcome = _outcome_case(balance).replace(":reminder", str(int(reminder)))
        return (
            f"UPDATE prepaid_rating_state SET reading_day = {d}, reading_ckwh = ?1,"  # noqa: S608
            f" period_start = {ps}, period_ckwh = ?2, prior_ckwh = ?3, last_energy_ckwh = ?4,"
            f" last_amount_fen = ?5, charged_fen = ?6, balance_fen = {balance},"
            " avg_daily_ckwh = ?7, tariff_version = ?8, tier = ?9,"
            f" outcome = CASE WHEN ?10 THEN {Outcome.ANOMALY.value} ELSE {outcome} END"
            f" WHERE account_id = ?11 AND (reading_day IS NULL OR reading_day < {d})"
        )

    def _update_state(
        self, connection: Connection, plan: ChunkPlan, d: int, day: date, options: RatingOptions
    ) -> None:
        from ._compute import period_of_day

        ps = day_number(period_of_day(day).start)
        raw: Any = connection.connection.driver_connection
        reminder = options.reminder_fen
        explicit = plan.explicit
        if explicit.any():
            cols = [
                plan.reading,
                plan.period_ckwh,
                plan.prior_ckwh,
                plan.energy,
                plan.amount,
                plan.charged,
                plan.avg,
                plan.version,
                plan.tier,
                plan.jump,
                plan.ids,
                plan.total,
            ]
            raw.executemany(
                self._explicit_sql(d, ps, reminder),
                zip(*(c[explicit].tolist() for c in cols), strict=True),
            )
        fast = ~explicit
        packed = (
            plan.prior_ckwh[fast] * 16777216
            + plan.version[fast] * 256
            + plan.tier[fast] * 2
            + plan.jump[fast]
        )
        raw.executemany(
            self._update_sql(d, ps, options),
            zip(
                plan.reading[fast].tolist(),
                plan.charged[fast].tolist(),
                packed.tolist(),
                plan.ids[fast].tolist(),
                strict=True,
            ),
        )

    # -- results ------------------------------------------------------------------------

    def counts(self, connection: Connection, scope: Scope, day: date) -> Counter[Outcome]:
        """The day's outcome per account of ``scope`` (rated ones and open anomalies)."""
        d = day_number(day)
        out: Counter[Outcome] = Counter()
        for outcome, n in connection.execute(
            text(
                "SELECT outcome, count(*) FROM prepaid_charge"  # noqa: S608
                f" WHERE day = {d} AND {scope.where('account_id')} GROUP BY outcome"
            )
        ):
            out[Outcome(int(outcome))] += int(n)
        held = ", ".join(f"'{k.value}'" for k in _HELD_KINDS)
        for kind, n in connection.execute(
            text(
                "SELECT CASE WHEN kind = :missing THEN 1 ELSE 0 END,"  # noqa: S608
                " count(DISTINCT account_id) FROM prepaid_anomaly an"
                f" WHERE day = {d} AND {scope.where('account_id')}"
                f" AND (kind = :missing OR kind IN ({held}))"
                " AND NOT EXISTS (SELECT 1 FROM prepaid_charge c"
                "  WHERE c.day = an.day AND c.account_id = an.account_id)"
                " GROUP BY CASE WHEN kind = :missing THEN 1 ELSE 0 END"
            ),
            {"missing": AnomalyKind.MISSING_READING.value},
        ):
            out[Outcome.MISSING_READING if kind else Outcome.ANOMALY] += int(n)
        return out

    def refresh_outcomes(
        self, connection: Connection, scope: Scope, day: date, options: RatingOptions
    ) -> None:
        """Re-decide the outcome of accounts already rated for ``day`` from their balance now."""
        d = day_number(day)
        connection.execute(
            text(
                f"UPDATE prepaid_rating_state SET outcome = {_outcome_case('balance_fen')}"  # noqa: S608
                f" WHERE {scope.where('account_id')} AND reading_day = {d}"
                f" AND outcome <> {Outcome.ANOMALY.value}"
            ),
            {"reminder": options.reminder_fen},
        )


def _chunk(arrays: list[np.ndarray[Any, Any]]) -> ChunkInput:
    """A :class:`ChunkInput` from the :data:`_READ_COLUMNS` arrays."""
    n = arrays[0].size
    if len(arrays) != len(_READ_COLUMNS) or any(a.size != n for a in arrays):
        raise RatingRunError("the rating query returned columns of different lengths")
    ids, profile, days, reading_ckwh, pck, prior, charged, avg, reading = arrays
    return ChunkInput(
        ids,
        profile >> 24,
        (profile & _LOW24) >> 1,
        profile & 1,
        (days >> 24) - 1,
        reading_ckwh,
        (days & _LOW24) - 1,
        pck,
        prior,
        charged,
        avg,
        reading,
    )


def _set_tou(chunk: ChunkInput, numbers: list[Any], texts: list[str | None]) -> None:
    """Attach TOU register state; ``texts[i]``: the value text of chunk row ``i``'s reading."""
    if any(a.size != numbers[0].size for a in numbers) or len(texts) != len(chunk):
        raise RatingRunError("the TOU rating query returned columns of different lengths")
    order = np.argsort(numbers[0], kind="stable")
    ids = numbers[0][order]
    table = np.stack(numbers[1:], axis=1)[order]
    rows = np.searchsorted(chunk.ids, ids)
    present = rows < len(chunk)
    present[present] = chunk.ids[rows[present]] == ids[present]
    reading = np.full((ids.size, 4), -1, dtype=np.int64)
    picked = rows[present].tolist()
    reading[present] = parse_rate_blocks([texts[i] for i in picked])
    chunk.tou = TouArrays(
        ids, np.ascontiguousarray(table[:, :4]), np.ascontiguousarray(table[:, 4:]), reading
    )


# -- PostgreSQL --------------------------------------------------------------------------

_PG_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"


class PostgresStore(Store):
    """PostgreSQL: binary COPY out of the chunk query, binary COPY into a staging table."""

    dialect = "postgresql"

    _STAGE_COLUMNS: Final = (
        "account_id",
        "reading_ckwh",
        "period_ckwh",
        "prior_ckwh",
        "energy_ckwh",
        "amount_fen",
        "total_fen",
        "charged_fen",
        "avg_daily_ckwh",
        "tariff_version",
        "tier",
        "jump",
    )

    def fetch(self, connection: Connection, scope: Scope, day: date) -> ChunkInput:
        columns = ", ".join(f"({c})::int8" for c in _READ_COLUMNS)
        sql = f"SELECT {columns}{self._from(scope)} ORDER BY a.id".replace(
            ":freeze_date", f"DATE '{day.isoformat()}'"
        )
        raw: Any = connection.connection.driver_connection
        buffer = bytearray()
        with raw.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as cp:
            for data in cp:
                buffer += data
        width = len(_READ_COLUMNS)
        chunk = _chunk(_parse_pg_binary(bytes(buffer), width))
        if self.tou_tariffs:
            self._fetch_tou_pg(connection, scope, day, chunk)
        return chunk

    def _fetch_tou_pg(
        self, connection: Connection, scope: Scope, day: date, chunk: ChunkInput
    ) -> None:
        columns = ", ".join(f"t.{c}" for c in ("account_id", *_TOU_COLUMNS))
        rows = connection.execute(
            text(
                f"SELECT {columns}, r.value FROM prepaid_rating_tou t"  # noqa: S608
                " JOIN prepaid_account a ON a.id = t.account_id"
                " LEFT JOIN LATERAL (SELECT r0.value FROM headend_reading r0"
                " WHERE r0.meter_address = a.meter_address"
                f" AND r0.di = {int(self.di)} AND r0.freeze_date = :freeze_date LIMIT 1) r"
                " ON TRUE"
                f" WHERE {scope.where('t.account_id')}"
            ),
            {"freeze_date": day},
        ).all()
        if not rows:
            return
        numbers = np.array([r[:9] for r in rows], dtype=np.int64)
        texts: list[str | None] = [None] * len(chunk)
        where = np.searchsorted(chunk.ids, numbers[:, 0])
        for i, row in zip(where.tolist(), rows, strict=True):
            if i < len(chunk) and int(chunk.ids[i]) == int(row[0]):
                texts[i] = row[9]
        _set_tou(chunk, [numbers[:, j] for j in range(9)], texts)

    def _update_state(
        self, connection: Connection, plan: ChunkPlan, d: int, day: date, options: RatingOptions
    ) -> None:
        from ._compute import period_of_day

        ps = day_number(period_of_day(day).start)
        raw: Any = connection.connection.driver_connection
        names = self._STAGE_COLUMNS
        connection.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS prepaid_rating_stage ("
                + ", ".join(f"{n} int8 NOT NULL" for n in names)
                + ") ON COMMIT DELETE ROWS"
            )
        )
        cols = [
            plan.ids,
            plan.reading,
            plan.period_ckwh,
            plan.prior_ckwh,
            plan.energy,
            plan.amount,
            plan.total,
            plan.charged,
            plan.avg,
            plan.version,
            plan.tier,
            plan.jump,
        ]
        payload = _pg_binary(cols)
        with (
            raw.cursor() as cursor,
            cursor.copy(
                f"COPY prepaid_rating_stage ({', '.join(names)}) FROM STDIN (FORMAT BINARY)"
            ) as cp,
        ):
            cp.write(payload)
        balance = "s.balance_fen - t.total_fen"
        outcome = _outcome_case(balance).replace("reminder_fen", "s.reminder_fen")
        connection.execute(
            text(
                f"UPDATE prepaid_rating_state s SET reading_day = {d},"  # noqa: S608
                f" reading_ckwh = t.reading_ckwh, period_start = {ps},"
                " period_ckwh = t.period_ckwh, prior_ckwh = t.prior_ckwh,"
                " last_energy_ckwh = t.energy_ckwh, last_amount_fen = t.amount_fen,"
                f" charged_fen = t.charged_fen, balance_fen = {balance},"
                " avg_daily_ckwh = t.avg_daily_ckwh, tariff_version = t.tariff_version,"
                f" tier = t.tier, outcome = CASE WHEN t.jump = 1 THEN {Outcome.ANOMALY.value}"
                f" ELSE {outcome} END"
                " FROM prepaid_rating_stage t WHERE s.account_id = t.account_id"
                f" AND s.account_id BETWEEN {int(plan.ids.min())} AND {int(plan.ids.max())}"
                f" AND (s.reading_day IS NULL OR s.reading_day < {d})"
            ),
            {"reminder": options.reminder_fen},
        )
        connection.execute(text("TRUNCATE prepaid_rating_stage"))

    def _update_tou(self, connection: Connection, plan: ChunkPlan) -> None:
        raw: Any = connection.connection.driver_connection
        connection.execute(
            text(
                "CREATE TEMP TABLE IF NOT EXISTS prepaid_rating_tou_stage (account_id int8,"
                + ", ".join(f"{n} int8" for n in _TOU_COLUMNS)
                + ") ON COMMIT DELETE ROWS"
            )
        )
        cols = [plan.tou_ids, *(plan.tou_values[:, j] for j in range(8))]
        with (
            raw.cursor() as cursor,
            cursor.copy("COPY prepaid_rating_tou_stage FROM STDIN (FORMAT BINARY)") as cp,
        ):
            cp.write(_pg_binary(cols))
        sets = ", ".join(f"{n} = t.{n}" for n in _TOU_COLUMNS)
        connection.execute(
            text(
                f"UPDATE prepaid_rating_tou s SET {sets} FROM prepaid_rating_tou_stage t"  # noqa: S608
                " WHERE s.account_id = t.account_id AND s.account_id BETWEEN"
                f" {int(plan.tou_ids.min())} AND {int(plan.tou_ids.max())}"
            )
        )
        connection.execute(text("TRUNCATE prepaid_rating_tou_stage"))


def _pg_binary(cols: list[np.ndarray[Any, Any]]) -> bytes:
    n = cols[0].size
    k = len(cols)
    dtype = np.dtype(
        [("count", ">i2")]
        + [item for i in range(k) for item in ((f"l{i}", ">i4"), (f"v{i}", ">i8"))]
    )
    rows = np.empty(n, dtype=dtype)
    rows["count"] = k
    for i, col in enumerate(cols):
        rows[f"l{i}"] = 8
        rows[f"v{i}"] = col
    return _PG_SIGNATURE + struct.pack(">ii", 0, 0) + rows.tobytes() + struct.pack(">h", -1)


def _parse_pg_binary(data: bytes, width: int) -> list[np.ndarray[Any, Any]]:
    if not data.startswith(_PG_SIGNATURE):
        raise RatingRunError("unexpected COPY output from PostgreSQL (not binary COPY)")
    (ext,) = struct.unpack_from(">i", data, len(_PG_SIGNATURE) + 4)
    start = len(_PG_SIGNATURE) + 8 + ext
    body = data[start:-2]  # the trailer is a field count of -1
    dtype = np.dtype(
        [("count", ">i2")]
        + [item for i in range(width) for item in ((f"l{i}", ">i4"), (f"v{i}", ">i8"))]
    )
    if len(body) % dtype.itemsize:
        raise RatingRunError("a rating row from PostgreSQL has a NULL or a non-int8 column")
    rows = np.frombuffer(body, dtype=dtype)
    return [rows[f"v{i}"].astype(np.int64) for i in range(width)]


def store_for(
    connection: Connection, di: int = DAILY_FORWARD_DI, tou_tariffs: Sequence[int] = ()
) -> Store:
    name = connection.dialect.name
    if name == "sqlite":
        return Store(di, tou_tariffs)
    if name == "postgresql":
        return PostgresStore(di, tou_tariffs)
    raise RatingRunError(f"rating runs on SQLite or PostgreSQL, not {name!r}")
