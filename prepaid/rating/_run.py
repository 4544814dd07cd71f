"""Rating runs: every account for a day (:func:`rate_day`), or a few now (:func:`rate_accounts`).

A run walks the accounts in id order, a chunk at a time. Each chunk is read and
computed, then stored in one transaction; a run killed midway leaves whole chunks
rated and the rest untouched, and running it again rates only the rest. With
``pipeline`` (the default for runs of more than two chunks) a second process reads
and computes the next chunks while the current one is written, so both cores work.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ..accounts import TariffCatalog, load_catalog
from ..db import bulk_session, open_database
from ..models import Outcome, day_date, day_number
from ._compute import ChunkPlan, RatingOptions, plan_chunk
from ._errors import RatingRunError
from ._registers import DAILY_FORWARD_DI
from ._store import Scope, Store, store_for

__all__ = ["DEFAULT_CHUNK", "AccountResult", "RatingReport", "rate_accounts", "rate_day"]

log = logging.getLogger(__name__)

#: Accounts per chunk (one transaction each).
DEFAULT_CHUNK: Final = 100_000


@dataclass(frozen=True, slots=True)
class AccountResult:
    """Where one account stands after :func:`rate_accounts`."""

    account_id: int
    outcome: Outcome | None
    balance_fen: int
    charged_fen: int
    last_amount_fen: int
    reading_day: date | None
    rated_now: bool


@dataclass(slots=True)
class RatingReport:
    """What a rating run did.

    ``counts``: the day's outcome per account over the accounts looked at — rated
    (normal, below reminder, negative, anomaly for a jump), held back by an anomaly,
    or missing the reading; a rerun reports the same counts. ``rated``: accounts
    rated by this run; ``already_rated``: found rated for the day before it;
    ``closing_charges``: periods closed over missing readings.
    """

    day: date
    accounts: int = 0
    rated: int = 0
    already_rated: int = 0
    closing_charges: int = 0
    chunks: int = 0
    seconds: float = 0.0
    counts: Counter[Outcome] = field(default_factory=Counter)
    results: tuple[AccountResult, ...] = ()
    #: seconds spent reading, planning (computing), writing, and the writer waiting
    timings: dict[str, float] = field(default_factory=dict)

    def add_time(self, phase: str, seconds: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    @property
    def accounts_per_second(self) -> float:
        return self.accounts / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "accounts": self.accounts,
            "rated": self.rated,
            "already_rated": self.already_rated,
            "closing_charges": self.closing_charges,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "outcomes": {o.name.lower(): self.counts.get(o, 0) for o in Outcome},
            "timings": {k: round(v, 3) for k, v in sorted(self.timings.items())},
            "results": [
                {
                    "account_id": r.account_id,
                    "outcome": r.outcome.name.lower() if r.outcome else None,
                    "balance_fen": r.balance_fen,
                    "charged_fen": r.charged_fen,
                    "last_amount_fen": r.last_amount_fen,
                    "reading_day": r.reading_day.isoformat() if r.reading_day else None,
                    "rated_now": r.rated_now,
                }
                for r in self.results
            ],
        }


Progress = Callable[[int, int], None]
AfterChunk = Callable[[int], None]


def _driver_errors() -> tuple[type[BaseException], ...]:
    """Errors of the database drivers themselves: the bulk paths use the raw DB-API
    connection (``executemany``, ``COPY``), whose errors are not SQLAlchemy's."""
    errors: list[type[BaseException]] = [SQLAlchemyError, sqlite3.Error]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        pass
    else:
        errors.append(psycopg.Error)
    return tuple(errors)


#: Database failures a rating run reports as :class:`RatingRunError` (locked, gone …).
_DB_ERRORS: Final = _driver_errors()


def _db_problem(exc: BaseException) -> str:
    """``OperationalError: database is locked`` — without the SQL and the links."""
    orig = getattr(exc, "orig", None) or exc
    text_ = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    hint = (
        "; another process held the database longer than the busy timeout"
        if "locked" in text_ or "busy" in text_
        else ""
    )
    return f"{type(orig).__name__}: {text_}{hint}"


def _now(clock: Any | None) -> datetime:
    return clock.now() if clock is not None else datetime.now(UTC)


def _catalog(connection: Connection) -> TariffCatalog:
    catalog = load_catalog(connection)
    if not catalog.ids:
        raise RatingRunError(
            "no tariffs in the database: load them (feikong generate does) before rating"
        )
    return catalog


def _tou_tariffs(catalog: TariffCatalog) -> list[int]:
    """Ids of the tariffs with a time-of-use version (accounts rated with rate registers)."""
    return [i for code, i in catalog.ids.items() if any(t.tou for t in catalog.book.versions(code))]


def _check_day(day: date) -> None:
    if day_number(day) <= 0:
        raise RatingRunError(f"cannot rate {day}: expected a date after 1970-01-01")


def _ranges(lo: int, hi: int, size: int) -> list[Scope]:
    return [Scope(start, min(start + size, hi + 1)) for start in range(lo, hi + 1, size)]


def _planned(
    engine: Engine,
    store: Store,
    scopes: Sequence[Scope],
    day: date,
    catalog: TariffCatalog,
    options: RatingOptions,
) -> Iterator[tuple[Scope, ChunkPlan, int]]:
    codes = catalog.codes
    with bulk_session(engine) as connection:
        for scope in scopes:
            started = time.perf_counter()
            chunk = store.fetch(connection, scope, day)
            connection.rollback()  # end the read transaction: never hold a snapshot
            read = time.perf_counter()
            plan = plan_chunk(chunk, day, catalog.book, codes, options)
            plan.seconds = {"read": read - started, "plan": time.perf_counter() - read}
            yield scope, plan, len(chunk)


def _reader_process(
    url: str,
    ranges: list[tuple[int, int]],
    day: date,
    options: RatingOptions,
    di: int,
    out: Any,
) -> None:
    """The reader of a pipelined run, in its own process: fetch and plan every chunk.

    It stops as soon as the writer is gone (killed, even with SIGKILL): otherwise it
    would wait forever on the full hand-off queue, holding the database open.
    """
    parent = multiprocessing.parent_process()
    try:
        engine = open_database(url)
        with engine.connect() as connection:
            catalog = _catalog(connection)
            store = store_for(connection, di, _tou_tariffs(catalog))
        scopes = [Scope(lo, hi) for lo, hi in ranges]
        for scope, plan, looked_at in _planned(engine, store, scopes, day, catalog, options):
            _hand_over(out, (scope.lo, scope.hi, plan, looked_at), parent)
        _hand_over(out, None, parent)
    except _WriterGone:
        log.warning("the rating writer is gone: the reader stops")
    except BaseException as exc:  # handed to the writer, which raises it
        with contextlib.suppress(_WriterGone):
            _hand_over(
                out,
                RatingRunError(f"the rating reader failed: {type(exc).__name__}: {exc}"),
                parent,
            )


class _WriterGone(Exception):
    """The process that started a rating reader has ended."""


def _hand_over(out: Any, item: object, parent: Any) -> None:
    """``out.put(item)``, but give up when ``parent`` (the writer) has ended."""
    while True:
        if parent is not None and not parent.is_alive():
            raise _WriterGone
        try:
            out.put(item, timeout=0.5)
        except queue.Full:
            continue
        return


def _pipelined(
    engine: Engine,
    store: Store,
    scopes: Sequence[Scope],
    day: date,
    catalog: TariffCatalog,
    options: RatingOptions,
) -> Iterator[tuple[Scope, ChunkPlan, int]]:
    """:func:`_planned` in a reader process, at most two chunks ahead of the writer.

    A process, not a thread: the writer's executemany hands the interpreter lock over
    at every row, which would starve a reader thread.
    """
    context = multiprocessing.get_context("spawn")
    handoff: Any = context.Queue(maxsize=2)
    reader = context.Process(
        target=_reader_process,
        args=(
            engine.url.render_as_string(hide_password=False),
            [(s.lo, s.hi) for s in scopes],
            day,
            options,
            store.di,
            handoff,
        ),
        name="feikong-rating-reader",
        daemon=True,
    )
    reader.start()
    try:
        while True:
            try:
                item = handoff.get(timeout=1.0)
            except queue.Empty:
                if reader.exitcode is not None:
                    raise RatingRunError(
                        f"the rating reader stopped (exit code {reader.exitcode}); "
                        "run again to rate the rest"
                    ) from None
                continue
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            lo, hi, plan, looked_at = item
            yield Scope(lo, hi), plan, looked_at
    finally:
        if reader.is_alive():
            reader.terminate()
        reader.join()
        handoff.close()


def rate_day(
    engine: Engine,
    day: date,
    *,
    options: RatingOptions | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    pipeline: bool = True,
    progress: Progress | None = None,
    after_chunk: AfterChunk | None = None,
    clock: Any | None = None,
    di: int = DAILY_FORWARD_DI,
) -> RatingReport:
    """Rate every active account for the daily reading dated ``day`` (``feikong rate``).

    Idempotent: an account is rated at most once per day, so running again — after a
    crash or not — rates only what is left. ``progress(done, total)`` is called after
    each chunk, ``after_chunk(index)`` after each chunk's commit.
    """
    _check_day(day)
    if chunk_size < 1:
        raise RatingRunError(f"chunk size must be ≥ 1, got {chunk_size}")
    options = options or RatingOptions()
    started = time.perf_counter()
    report = RatingReport(day)
    try:
        with engine.connect() as connection:
            catalog = _catalog(connection)
            store = store_for(connection, di, _tou_tariffs(catalog))
            lo, hi = store.bounds(connection)
        scopes = _ranges(lo, hi, chunk_size)
        total = max(0, hi - lo + 1)
        source = _pipelined if pipeline and len(scopes) > 2 else _planned
        done = 0
        with bulk_session(engine) as writer:
            waited = time.perf_counter()
            for index, (scope, plan, looked_at) in enumerate(
                source(engine, store, scopes, day, catalog, options)
            ):
                writing = time.perf_counter()
                report.add_time("wait", writing - waited)
                with writer.begin():
                    store.apply(writer, plan, scope, day, options, _now(clock))
                waited = time.perf_counter()
                report.add_time("write", waited - writing)
                for phase, seconds in plan.seconds.items():
                    report.add_time(phase, seconds)
                report.accounts += looked_at
                report.rated += len(plan)
                report.already_rated += plan.already
                report.closing_charges += len(plan.closing)
                report.chunks += 1
                done += scope.size
                if progress is not None:
                    progress(min(done, total), total)
                if after_chunk is not None:
                    after_chunk(index)
            # the day's outcome per account, in one pass over its charges and anomalies
            counting = time.perf_counter()
            report.counts.update(store.counts(writer, Scope(lo, hi + 1), day))
            writer.rollback()
            report.add_time("count", time.perf_counter() - counting)
    except _DB_ERRORS as exc:
        raise RatingRunError(
            f"rating {day} failed in the database ({_db_problem(exc)}); the chunks "
            "committed so far are kept: run it again to rate the rest"
        ) from exc
    report.seconds = time.perf_counter() - started
    log.info(
        "rated %s: %d accounts in %.1f s (%d rated now)",
        day,
        report.accounts,
        report.seconds,
        report.rated,
    )
    return report


def rate_accounts(
    engine: Engine,
    account_ids: Sequence[int],
    day: date,
    *,
    clock: Any | None = None,
    options: RatingOptions | None = None,
    di: int = DAILY_FORWARD_DI,
) -> RatingReport:
    """Rate a few accounts now for the reading dated ``day`` (e.g. when a payment arrives).

    Accounts already rated for ``day`` keep their charge; their outcome is decided
    again from the balance as it is now (a payment may have lifted it above the
    reminder amount). ``results`` gives every account's state afterwards.
    """
    _check_day(day)
    options = options or RatingOptions()
    started = time.perf_counter()
    report = RatingReport(day)
    ids = sorted({int(i) for i in account_ids})
    if not ids:
        return report
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # take the write lock first: a read-then-write transaction could find
                # its snapshot outdated by a concurrent rating run
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            catalog = _catalog(connection)
            store = store_for(connection, di, _tou_tariffs(catalog))
            scope = Scope(ids=ids)
            chunk = store.fetch(connection, scope, day)
            plan = plan_chunk(chunk, day, catalog.book, catalog.codes, options)
            store.apply(connection, plan, scope, day, options, _now(clock))
            store.refresh_outcomes(connection, scope, day, options)
            report.counts.update(store.counts(connection, scope, day))
            report.results = _results(connection, scope, set(plan.ids.tolist()))
            connection.commit()
    except _DB_ERRORS as exc:
        raise RatingRunError(
            f"rating accounts {ids[:5]}… for {day} failed in the database "
            f"({_db_problem(exc)}); nothing of it was kept: run it again"
        ) from exc
    report.accounts = len(chunk)
    report.rated = len(plan)
    report.already_rated = plan.already
    report.closing_charges = len(plan.closing)
    report.chunks = 1
    report.seconds = time.perf_counter() - started
    return report


def _results(connection: Connection, scope: Scope, rated: set[int]) -> tuple[AccountResult, ...]:
    rows = connection.execute(
        text(
            "SELECT account_id, outcome, balance_fen, charged_fen, last_amount_fen, reading_day"  # noqa: S608
            f" FROM prepaid_rating_state WHERE {scope.where('account_id')} ORDER BY account_id"
        )
    )
    return tuple(
        AccountResult(
            int(r[0]),
            Outcome(int(r[1])) if r[1] is not None else None,
            int(r[2]),
            int(r[3]),
            int(r[4]),
            day_date(int(r[5])) if r[5] is not None else None,
            int(r[0]) in rated,
        )
        for r in rows
    )
