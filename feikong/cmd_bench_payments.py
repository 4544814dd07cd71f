"""``feikong bench payments``: payments arriving at a steady rate, each credited once and
its account re-rated — how many a second the platform takes, and how soon the new
real-time balance is known.

A population of ``--accounts`` accounts is generated (:mod:`prepaid.generate`, two
days of readings, the second rated) and opened in the built-in CIS ledger. Then
``--rate`` payments a second arrive for ``--seconds`` seconds (open loop: arrival
times are fixed in advance, whether the platform keeps up or not), to random accounts;
every ``--resend-every``-th arrival is a resend of an earlier payment (same id,
account and amount, as a CIS retries), which must credit nothing. The ingestion is
the production path, :class:`prepaid.cis.payments.PaymentService`: by default each
tick takes what has arrived since the last one (up to ``--max-batch``) through
:meth:`~prepaid.cis.payments.PaymentService.pay_many` — credit in the CIS, post to
the real-time balance, re-rate the accounts, read their new balance — and with
``--per-payment`` each payment goes through :meth:`~prepaid.cis.payments.PaymentService.pay`
on its own (the path of ``feikong cis pay``).

Afterwards the ledger and the balances are checked. It prints ``key=value`` lines::

    offered=30600 offered_per_s=1020     (payments arrived, resends included)
    ingested=30600 ingested_per_s=…      (payments answered / time to the last answer)
    p50_ms=… p99_ms=… max_ms=…           (arrival → new real-time balance known)
    lag_max_s=…                          (the oldest waiting payment's age, at worst)
    lag_end_s=…                          (last answer − last arrival)
    lost=0                               (payments with no CIS movement)
    doubled=0                            (payment ids credited or posted more than once)
    balances_off=0                       (accounts whose CIS balance did not move by
                                          exactly their payments, whose real-time balance
                                          differs from the last answer, or that
                                          sync_balances had to correct) audit_mismatches=0
    cpu_us_per_payment=…  batches=…  mean_batch=…  peak_rss_mib=…  load_1m=…
"""

from __future__ import annotations

import bisect
import cProfile
import math
import os
import random
import resource
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .output import err_console, fail, print_figures

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

__all__ = ["PaymentsBenchResult", "register", "run_payments_bench"]

_START = date(2026, 1, 1)
_PREFIX = "BP-"


@dataclass(frozen=True, slots=True)
class PaymentsBenchResult:
    accounts: int
    rate: float
    seconds: float
    offered: int
    resends: int
    ingested: int
    refused: int
    elapsed_s: float
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    lag_max_s: float
    lag_end_s: float
    lost: int
    doubled: int
    balances_off: int
    audit_mismatches: int
    batches: int
    cpu_s: float
    setup_s: float
    per_payment: bool
    peak_rss_mib: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]

    @property
    def ingested_per_s(self) -> float:
        return self.ingested / self.elapsed_s if self.elapsed_s else 0.0

    def lines(self) -> list[tuple[str, Any]]:
        return [
            ("accounts", self.accounts),
            ("mode", "per-payment" if self.per_payment else "batch-per-tick"),
            ("offered", self.offered),
            ("resends", self.resends),
            ("offered_per_s", round(self.offered / self.seconds, 1)),
            ("ingested", self.ingested),
            ("ingested_per_s", round(self.ingested_per_s, 1)),
            ("refused", self.refused),
            ("p50_ms", self.p50_ms),
            ("p99_ms", self.p99_ms),
            ("max_ms", self.max_ms),
            ("lag_max_s", round(self.lag_max_s, 3)),
            ("lag_end_s", round(self.lag_end_s, 3)),
            ("lost", self.lost),
            ("doubled", self.doubled),
            ("balances_off", self.balances_off),
            ("audit_mismatches", self.audit_mismatches),
            ("batches", self.batches),
            ("mean_batch", round(self.ingested / self.batches, 1) if self.batches else 0),
            ("cpu_us_per_payment", round(1e6 * self.cpu_s / max(1, self.ingested))),
            ("setup_s", round(self.setup_s, 1)),
            ("peak_rss_mib", round(self.peak_rss_mib, 1)),
            ("load_1m", round(self.load_before[0], 2)),
            ("load_1m_after", round(self.load_after[0], 2)),
        ]


def register(bench_app: typer.Typer) -> None:
    """Add ``payments`` to the ``feikong bench`` group."""
    bench_app.command("payments")(payments_command)


def payments_command(
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, help="Payments arriving per second.")
    ] = 1000.0,
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.1, help="How long payments arrive.")
    ] = 30.0,
    accounts: Annotated[
        int, typer.Option("--accounts", min=1, help="Accounts to generate.")
    ] = 100_000,
    per_payment: Annotated[
        bool,
        typer.Option("--per-payment", help="One PaymentService.pay call per payment."),
    ] = False,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, help="Most payments taken in one tick.")
    ] = 2000,
    resend_every: Annotated[
        int,
        typer.Option("--resend-every", min=0, help="Every Nth arrival is a resend (0: none)."),
    ] = 50,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Empty database URL (default: a temporary SQLite file)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
    profile: Annotated[
        Path | None, typer.Option("--profile", help="Write a cProfile of the ingestion here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Ingest payments at --rate a second through the PaymentService; print the figures."""
    from prepaid.generate import GenerateError

    try:
        result = run_payments_bench(
            rate=rate,
            seconds=seconds,
            accounts=accounts,
            per_payment=per_payment,
            max_batch=max_batch,
            resend_every=resend_every,
            db=db,
            seed=seed,
            profile=profile,
            progress=not as_json and err_console.is_terminal,
        )
    except GenerateError as exc:
        fail(escape(str(exc)), 2)
    print_figures(result.lines(), as_json)


# --------------------------------------------------------------------------- the run


@dataclass(frozen=True, slots=True)
class _Arrival:
    at: float
    payment_id: str
    account_no: str
    amount_fen: int
    resend: bool


def _schedule(
    rate: float, seconds: float, accounts: int, resend_every: int, seed: int
) -> list[_Arrival]:
    """Arrival times (real seconds from the start), ids, accounts and amounts."""
    rng = random.Random(seed)
    total = max(1, round(rate * seconds))
    out: list[_Arrival] = []
    fresh: list[_Arrival] = []
    for i in range(total):
        at = i / rate
        if resend_every and fresh and (i + 1) % resend_every == 0:
            first = rng.choice(fresh)
            out.append(_Arrival(at, first.payment_id, first.account_no, first.amount_fen, True))
            continue
        arrival = _Arrival(
            at,
            f"{_PREFIX}{seed}-{i}",
            f"33{rng.randrange(1, accounts + 1):08d}",
            rng.randrange(1_000, 50_001),
            False,
        )
        fresh.append(arrival)
        out.append(arrival)
    return out


def _setup(engine: Engine, accounts: int, clock: Any) -> Any:
    """Population, the second day rated, the ledger opened; returns the PaymentService."""
    from prepaid.balance import adopt_opening_balances
    from prepaid.cis import LedgerCis
    from prepaid.cis.payments import PaymentService
    from prepaid.generate import GenerateOptions, generate
    from prepaid.rating import rate_day

    generate(engine, GenerateOptions(customers=accounts, days=2, start=_START))
    rate_day(engine, _START + timedelta(days=1))
    ledger = LedgerCis(engine, clock=clock)
    adopt_opening_balances(engine, ledger)
    return PaymentService(engine, ledger, clock=clock)


def run_payments_bench(
    *,
    rate: float = 1000.0,
    seconds: float = 30.0,
    accounts: int = 100_000,
    per_payment: bool = False,
    max_batch: int = 2000,
    resend_every: int = 50,
    db: str | None = None,
    seed: int = 1,
    profile: Path | None = None,
    progress: bool = False,
) -> PaymentsBenchResult:
    """Run the benchmark (see the module docstring)."""
    from prepaid.cis import CisError, PaymentOrder
    from prepaid.db import migrate, open_database
    from protocol.clock import SteppedClock

    load_before = os.getloadavg()
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if db is None:
        tmp = tempfile.TemporaryDirectory(prefix="feikong-bench-payments-")
        db = f"sqlite:///{tmp.name}/bench.db"
    try:
        engine = open_database(db)
        migrate(engine)
        # the payments come the day after the last reading, 10:00 (as `feikong cis bench`)
        clock = SteppedClock(datetime.combine(_START + timedelta(days=2), datetime.min.time()))
        clock.set(clock.now() + timedelta(hours=10))
        t = time.perf_counter()
        service = _setup(engine, accounts, clock)
        setup_s = time.perf_counter() - t
        arrivals = _schedule(rate, seconds, accounts, resend_every, seed)
        touched = sorted({a.account_no for a in arrivals})
        cis_before = service.cis.balances(touched)
        times = [a.at for a in arrivals]
        latencies: list[float] = []
        last_balance: dict[str, int] = {}
        refused = 0
        batches = 0
        lag_max = 0.0
        profiler = cProfile.Profile() if profile is not None else None
        if progress:
            err_console.print(
                f"setup {setup_s:.1f} s; {len(arrivals)} payments at {rate:g}/s …",
                highlight=False,
            )
        cpu0 = _cpu()
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        done_at = 0.0
        i = 0
        while i < len(arrivals):
            now = time.perf_counter() - t0
            j = bisect.bisect_right(times, now)
            if j <= i:
                time.sleep(times[i] - now)  # the load generator waits for the next arrival
                continue
            j = min(j, i + (1 if per_payment else max_batch))
            lag_max = max(lag_max, now - times[i])
            batch = arrivals[i:j]
            orders = [PaymentOrder(a.payment_id, a.account_no, a.amount_fen) for a in batch]
            if per_payment:
                order = orders[0]
                try:
                    outcome: Any = service.pay(order.account_no, order.amount_fen, order.payment_id)
                except CisError as exc:
                    outcome = exc
                results = [outcome]
            else:
                results = service.pay_many(orders)
            done_at = time.perf_counter() - t0
            batches += 1
            for arrival, result in zip(batch, results, strict=True):
                latencies.append(done_at - arrival.at)
                if isinstance(result, CisError):
                    refused += 1
                else:
                    last_balance[arrival.account_no] = result.balance.realtime_fen
            i = j
        if profiler is not None:
            profiler.disable()
            if profile is not None:
                profiler.dump_stats(str(profile))
        cpu_s = _cpu() - cpu0
        lost, doubled, off, mismatches = _check(engine, service, arrivals, cis_before, last_balance)
        engine.dispose()
    finally:
        if tmp is not None:
            tmp.cleanup()
    latencies.sort()
    return PaymentsBenchResult(
        accounts=accounts,
        rate=rate,
        seconds=seconds,
        offered=len(arrivals),
        resends=sum(a.resend for a in arrivals),
        ingested=len(latencies),
        refused=refused,
        elapsed_s=done_at,
        p50_ms=_pct(latencies, 0.50),
        p99_ms=_pct(latencies, 0.99),
        max_ms=_pct(latencies, 1.0),
        lag_max_s=lag_max,
        lag_end_s=done_at - times[-1],
        lost=lost,
        doubled=doubled,
        balances_off=off,
        audit_mismatches=mismatches,
        batches=batches,
        cpu_s=cpu_s,
        setup_s=setup_s,
        per_payment=per_payment,
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        load_before=load_before,
        load_after=os.getloadavg(),
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _pct(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1
    return round(ordered[index] * 1000, 2)


def _check(
    engine: Engine,
    service: Any,
    arrivals: list[_Arrival],
    cis_before: dict[str, int],
    last_balance: dict[str, int],
) -> tuple[int, int, int, int]:
    """lost, doubled, accounts whose balances are off, ledger audit mismatches."""
    import sqlalchemy as sa

    from prepaid.balance import account_ids, realtime_balances, sync_balances
    from prepaid.cis.tables import movement, posted

    unique = {a.payment_id: a for a in arrivals if not a.resend}
    with engine.connect() as c:
        moved: Counter[str] = Counter(
            dict(
                c.execute(
                    sa.select(movement.c.operation_id, sa.func.count())
                    .where(movement.c.kind == "payment")
                    .where(movement.c.operation_id.like(f"{_PREFIX}%"))
                    .group_by(movement.c.operation_id)
                ).all()
            )
        )
        posts: Counter[str] = Counter(
            dict(
                c.execute(
                    sa.select(posted.c.operation_id, sa.func.count())
                    .where(posted.c.kind == "payment")
                    .where(posted.c.operation_id.like(f"{_PREFIX}%"))
                    .group_by(posted.c.operation_id)
                ).all()
            )
        )
        ids = account_ids(c, sorted(cis_before))
    lost = sum(1 for p in unique if moved[p] == 0 or posts[p] == 0)
    doubled = sum(1 for p in unique if moved[p] > 1 or posts[p] > 1)
    doubled += sum(1 for p in moved if p not in unique)  # credited but never offered
    paid: dict[str, int] = defaultdict(int)
    for a in unique.values():
        paid[a.account_no] += a.amount_fen
    after = service.cis.balances(sorted(cis_before))
    off = {no for no in cis_before if after[no] - cis_before[no] != paid[no]}
    realtime = realtime_balances(engine, sorted(ids.values()))
    off |= {no for no, fen in last_balance.items() if realtime[ids[no]].realtime_fen != fen}
    corrected = sync_balances(engine, sorted(ids.values()))  # 0 when every copy was right
    if corrected:
        off.add(f"sync corrected {corrected}")
    return lost, doubled, len(off), len(service.cis.audit())
