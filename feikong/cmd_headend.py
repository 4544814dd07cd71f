"""``feikong headend …``: the head-end's database, archive, runner, commands and status."""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from headend.errors import ArchiveFormatError, HeadendError

from .cmd_headend_collect import collect_command
from .cmd_headend_shards import dispatch_command
from .output import console, err_console, fail, print_json

if TYPE_CHECKING:  # the database stack is imported only by the commands that use it
    from collections.abc import Callable

    from sqlalchemy.engine import Engine

    from headend.archive import ImportReport
    from headend.control import ControlSettings, KeyRing
    from headend.events import Event
    from headend.jobs import JobRecord, JobStore

headend_app = typer.Typer(
    help="Head-end (主站): database, meter archive and channels.", no_args_is_help=True
)

_DB_HELP = (
    "Database URL: sqlite:///FILE or postgresql+psycopg://user:pass@host/db "
    "(default: $FEIKONG_DATA/feikong.db, ./data/feikong.db)."
)


def _db_option() -> Any:
    return typer.Option(None, "--db", envvar="FEIKONG_DB", help=_DB_HELP)


def _open(url: str | None) -> Engine:
    from headend.db import migrate, open_database

    try:
        engine = open_database(url)
        migrate(engine)
    except HeadendError as exc:
        fail(str(exc), 2)
    return engine


def migrate_command(db: str | None = _db_option()) -> None:
    """Create or upgrade the head-end tables (Alembic); safe to run any number of times."""
    from headend.db import migrate, open_database

    try:
        engine = open_database(db)
        revision = migrate(engine)
    except HeadendError as exc:
        fail(str(exc), 2)
    console.print(
        f"database {engine.url.render_as_string()} is at revision {revision}", highlight=False
    )


def _import_with_progress(engine: Engine, file: Path) -> ImportReport:
    from headend.archive import import_archive

    if not console.is_terminal:
        return import_archive(engine, file)
    columns = (
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("import", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return import_archive(engine, file, progress=update)


def import_archive_command(
    file: Path = typer.Argument(..., help="Archive CSV (channels and/or meters)."),
    db: str | None = _db_option(),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Load channels and meters from CSV; bad rows are listed, good rows still load.

    Exit status: 0 if anything loaded, 1 if every row was bad, 2 if the file cannot
    be read.
    """
    engine = _open(db)
    try:
        report = _import_with_progress(engine, file)
    except ArchiveFormatError as exc:
        fail(str(exc), 2)
    except HeadendError as exc:
        fail(str(exc), 2)
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(
            f"loaded {report.loaded} row(s): {report.channels_loaded} channel(s), "
            f"{report.meters_loaded} meter(s); {report.updated} updated, "
            f"{report.inserted} new; {len(report.errors)} bad row(s)",
            highlight=False,
        )
        for error in report.errors:
            console.print(str(error), highlight=False, soft_wrap=True, markup=False)
    if report.errors and report.loaded == 0:
        raise typer.Exit(1)


def export_archive_command(
    file: Path = typer.Argument(..., help="CSV file to write (the combined format)."),
    db: str | None = _db_option(),
) -> None:
    """Write every channel and meter to CSV; the file imports back unchanged."""
    from headend.archive import export_archive

    engine = _open(db)
    try:
        channels, meters = export_archive(engine, file)
    except HeadendError as exc:
        fail(str(exc), 2)
    console.print(f"exported {channels} channel(s) and {meters} meter(s) to {file}", markup=False)


# --------------------------------------------------------------------------- run, command, status

_KEYS_HELP = (
    "Key directory: default.key and <key_ref>.key files (32 hex digits each); "
    "default: the lab test key (simulation crypto)."
)


_KEY_DIR = typer.Option(None, "--key-dir", envvar="FEIKONG_KEYS", help=_KEYS_HELP)
_SETTLE = typer.Option(
    3.0, "--settle", help="Seconds between a trip/close and reading the relay state."
)


def _control_settings(settle: float) -> ControlSettings:
    from headend.control import ControlSettings

    if settle < 0:
        fail(f"--settle must be >= 0 s, got {settle}", 2)
    return ControlSettings(settle_s=settle)


def _keyring(key_dir: Path | None) -> KeyRing:
    from headend.control import KeyRing
    from headend.errors import KeyRingError

    try:
        keys = KeyRing.from_dir(key_dir) if key_dir is not None else KeyRing()
    except KeyRingError as exc:
        fail(escape(str(exc)), 2)
    if keys.uses_test_key:
        err_console.print(
            "[yellow]warning:[/] using the well-known lab test key (simulation crypto, "
            "not SGCC-compatible); give --key-dir outside a lab",
            highlight=False,
        )
    return keys


def _parse_hhmm(text: str | None) -> dt.time | None:
    if text is None:
        return None
    try:
        return dt.time.fromisoformat(text.strip())
    except ValueError:
        fail(f"--collect-at wants a time of day HH:MM (e.g. 01:30), got {text!r}", 2)


class Action(enum.StrEnum):
    """What ``feikong headend command`` asks a meter to do (1CH N1)."""

    TRIP = "trip"
    PERMIT_CLOSE = "permit-close"
    CLOSE = "close"
    GUARANTEE = "guarantee"
    GUARANTEE_OFF = "guarantee-off"


def _outcome_line(event: Event) -> str | None:
    from headend.events import CommandFailed, CommandSucceeded

    if isinstance(event, CommandSucceeded):
        extra = ""
        if event.relay:
            extra += f", relay {event.relay}"
        if event.energy_ckwh is not None:
            extra += f", energy {event.energy_ckwh / 100:.2f} kWh"
        return (
            f"{event.at:%H:%M:%S} {event.address} {event.command} done{extra} (job {event.job_id})"
        )
    if isinstance(event, CommandFailed):
        what = "expired" if event.expired else "failed"
        return (
            f"{event.at:%H:%M:%S} {event.address} {event.command} {what} after "
            f"{event.attempts} attempt(s): {event.reason} (job {event.job_id})"
        )
    return None


def run_command(
    db: str | None = _db_option(),
    mqtt: str | None = typer.Option(
        None,
        "--mqtt",
        envvar="FEIKONG_MQTT",
        help="Publish events to this broker, mqtt://HOST:PORT.",
    ),
    collect_at: str | None = typer.Option(
        None,
        "--collect-at",
        metavar="HH:MM",
        help="Collect every meter's daily freeze at this time.",
    ),
    key_dir: Path | None = _KEY_DIR,
    timeout: float = typer.Option(2.0, "--timeout", help="Response timeout of the channels, s."),
    recollect_rounds: int = typer.Option(
        3, "--recollect-rounds", help="补抄 rounds after the daily collection."
    ),
    recollect_interval: float = typer.Option(
        60.0, "--recollect-interval-min", help="Minutes between 补抄 rounds."
    ),
    speed: float = typer.Option(
        1.0, "--speed", help="Clock speed (simulated seconds per second; for demos)."
    ),
    settle: float = _SETTLE,
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING, ERROR."),
    shard: str | None = typer.Option(
        None,
        "--shard",
        metavar="I/K",
        help="Run as the front-end of shard I of K (needs --mqtt; PostgreSQL for standbys).",
    ),
) -> None:
    """Run the head-end: execute queued jobs, collect daily, publish events (Ctrl-C stops).

    Jobs queued by `feikong headend command` (or by the prepaid platform) are
    carried out on the meters' channels; every outcome is printed. The status
    (channel health, queues, collections) is recorded for `feikong headend status`.
    """
    import asyncio
    import logging
    import signal

    from headend.events import MqttSettings
    from headend.service import HeadEnd, HeadEndSettings
    from protocol.clock import AcceleratedClock, RealClock

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        fail(f"--log-level must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}", 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not timeout > 0 or not speed > 0:
        fail("--timeout and --speed must be > 0", 2)
    if recollect_rounds < 0 or recollect_interval < 0:
        fail("--recollect-rounds and --recollect-interval-min must be >= 0", 2)
    at = _parse_hhmm(collect_at)
    if shard is not None:
        from .cmd_headend_shards import mqtt_url

        mqtt = mqtt_url(mqtt)  # the shards need a broker; HOST:PORT is accepted too
    if mqtt is not None:
        try:
            MqttSettings.from_url(mqtt)
        except HeadendError as exc:
            fail(escape(str(exc)), 2)
    engine = _open(db)
    keys = _keyring(key_dir)
    clock = RealClock() if speed == 1.0 else AcceleratedClock(speed=speed)
    settings = HeadEndSettings(
        control=_control_settings(settle),
        timeout_s=timeout,
        collect_at=at,
        recollect_rounds=recollect_rounds,
        recollect_interval_s=recollect_interval * 60,
    )
    if shard is not None:
        from .cmd_headend_shards import run_frontend

        run_frontend(engine, shard, mqtt, clock=clock, keys=keys, settings=settings)
        return

    async def main() -> None:
        try:
            head = HeadEnd(engine, clock=clock, keys=keys, mqtt=mqtt, settings=settings)
        except HeadendError as exc:
            fail(escape(str(exc)), 2)

        def show(event: Event) -> None:
            line = _outcome_line(event)
            if line is not None:
                console.print(line, highlight=False, markup=False, soft_wrap=True)

        head.bus.on(show)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        async with head:
            channels = len(head.pool.health())
            where = f"; events to {mqtt}" if mqtt else ""
            daily = f"; daily collection at {at:%H:%M}" if at else ""
            console.print(
                f"head-end running: {len(head.pool)} meter(s) on {channels} channel(s), "
                f"{head.runner.queued} job(s) queued{daily}{where} (Ctrl-C stops)",
                highlight=False,
                markup=False,
            )
            await stop.wait()
            console.print("stopping: running attempts finish or are requeued", markup=False)
        console.print("head-end stopped", markup=False)

    asyncio.run(main())


_ACTION_KINDS = {
    Action.TRIP: "trip",
    Action.PERMIT_CLOSE: "permit-close",
    Action.CLOSE: "close",
    Action.GUARANTEE: "guarantee-on",
    Action.GUARANTEE_OFF: "guarantee-off",
}


_PERMISSIONS = {
    Action.TRIP: "trip",
    Action.PERMIT_CLOSE: "permit-close",
    Action.CLOSE: "permit-close",
    Action.GUARANTEE: "guarantee",
    Action.GUARANTEE_OFF: "guarantee",
}
"""The prepaid platform's role action (``prepaid.users.Action``) each command needs."""


def _operator_for(
    engine: Engine, user: str | None, action: Action, address: str
) -> Callable[[str, bool], None] | None:
    """On a database with operators: log ``user`` in and check the role (refusals are
    audited and exit 1); returns what records the queued job in the audit log. On a
    head-end database without operators: ``None`` (nothing to check)."""
    import sqlalchemy as sa

    if not sa.inspect(engine).has_table("prepaid_operator"):
        return None
    from prepaid.audit import AuditLog
    from prepaid.users import Action as Permission
    from prepaid.users import PermissionDeniedError, Users, operator_table, require
    from protocol.clock import RealClock

    from .cmd_settings import login

    with engine.connect() as conn:
        if conn.execute(sa.select(operator_table.c.login).limit(1)).first() is None:
            return None
        known = conn.execute(
            sa.text("SELECT 1 FROM headend_meter WHERE address = :address"), {"address": address}
        ).first()
        if known is None:  # a bad or unknown address: the job store refuses it, clearly
            return None
        unit = conn.execute(
            sa.text(
                "SELECT u.code FROM prepaid_account a JOIN prepaid_supply_unit u "
                "ON u.id = a.supply_unit_id WHERE a.meter_address = :address"
            ),
            {"address": address},
        ).scalar()
    if not user:
        fail(
            f"this database has operators: give your login with --user to {action.value} "
            f"meter {address} (the role for it is checked and the command audited)",
            2,
        )
    clock = RealClock()
    audit = AuditLog(engine, clock)
    operator = login(Users(engine, clock=clock, audit=audit), user)
    permission = Permission(_PERMISSIONS[action])
    try:
        require(operator, permission, supply_unit=unit)
    except PermissionDeniedError as exc:
        audit.record(
            operator,
            f"meter.{action.value}.refused",
            f"meter:{address}"[:200],
            {"reason": str(exc), "via": "feikong headend command"},
        )
        fail(f"refused: {exc}", 1)

    def record(job_id: str, created: bool) -> None:
        audit.record(
            operator,
            f"meter.{action.value}",
            f"meter:{address}"[:200],
            {"job": job_id, "created": created, "via": "feikong headend command"},
        )

    return record


def command_command(
    address: str = typer.Argument(..., help="Meter address, 12 digits."),
    action: Action = typer.Argument(..., case_sensitive=False, help="What the meter should do."),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept with the job)."),
    wait: bool = typer.Option(
        False, "--wait", help="Carry it out now and show the outcome (exit 1 on failure)."
    ),
    job_id: str | None = typer.Option(
        None, "--id", help="Job id (idempotency key): the same id never runs twice."
    ),
    deadline_min: float = typer.Option(30.0, "--deadline-min", help="Give up after N minutes."),
    attempts: int = typer.Option(3, "--attempts", help="Tries before it fails."),
    db: str | None = _db_option(),
    key_dir: Path | None = _KEY_DIR,
    timeout: float = typer.Option(2.0, "--timeout", help="Response timeout, s (with --wait)."),
    settle: float = _SETTLE,
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    user: str | None = typer.Option(
        None,
        "--user",
        help="Your login, where the database has operators (the prepaid platform's): "
        "the command needs the role for it (trip, permit-close, guarantee) and is audited.",
    ),
) -> None:
    """Queue a control command for a meter (a job); with --wait, carry it out and report.

    Without --wait a running `feikong headend run` carries it out. On a database with
    operators (`feikong users`) it needs --user with the role for the command; a bench
    head-end database without operators needs none. Exit status: 0 queued or done,
    1 failed, expired or refused, 2 bad input.
    """
    from headend.jobs import JobSpec, JobStore
    from headend.models import JobKind
    from protocol.clock import RealClock

    if not deadline_min > 0 or attempts < 1 or not timeout > 0:
        fail("--deadline-min and --timeout must be > 0 and --attempts >= 1", 2)
    kind = JobKind(_ACTION_KINDS[action])
    if kind is JobKind.TRIP and not (reason or "").strip():
        reason = "manual trip (feikong headend command)"
    clock = RealClock()
    engine = _open(db)
    audit_as = _operator_for(engine, user, action, address)
    spec = JobSpec(
        kind=kind,
        address=address,
        id=job_id,
        priority=10,
        deadline=clock.now() + dt.timedelta(minutes=deadline_min),
        max_attempts=attempts,
        params={"reason": reason} if reason else {},
    )
    store = JobStore(engine)
    try:
        job, created = store.submit(spec, clock.now())
    except HeadendError as exc:
        fail(escape(str(exc)), 2)
    if audit_as is not None:
        audit_as(job.id, created)
    if not wait:
        if as_json:
            print_json({"job": job.to_dict(), "created": created})
            return
        how = "queued" if created else f"already exists ({job.state.value})"
        console.print(
            f"{job.kind.value} of meter {job.address}: job {job.id} {how}; "
            "`feikong headend run` carries it out",
            highlight=False,
            markup=False,
        )
        return
    control = _control_settings(settle)
    final = _wait_for(engine, job.id, _keyring(key_dir), control, timeout, as_json)
    if as_json:
        print_json(
            {"job": final.to_dict(), "attempts": [a.to_dict() for a in store.attempts(job.id)]}
        )
    else:
        _print_attempts(store, job.id)
        if final.state.value == "succeeded":
            result = final.result or {}
            extra = f"; relay {result['relay']}" if result.get("relay") else ""
            if result.get("energy_kwh"):
                extra += f"; energy at the trip {result['energy_kwh']} kWh"
            console.print(
                f"meter {final.address}: {final.kind.value} done{extra}",
                highlight=False,
                markup=False,
            )
        else:
            err_console.print(
                f"[bold red]{final.state.value}:[/] {escape(final.reason or '')}",
                highlight=False,
                soft_wrap=True,
            )
    if final.state.value != "succeeded":
        raise typer.Exit(1)


def _wait_for(
    engine: Engine,
    job_id: str,
    keys: KeyRing,
    control: ControlSettings,
    timeout: float,
    as_json: bool,
) -> JobRecord:
    """Run this one job in-process (unless another head-end runs it) and wait for its end."""
    import asyncio

    from headend.channels import ChannelPool
    from headend.control import control_handlers
    from headend.events import EventBus, JobStarted
    from headend.jobs import JobRunner
    from headend.service import wait_for_job

    async def main() -> JobRecord:
        pool = ChannelPool.from_archive(engine, timeout=timeout)
        bus = EventBus()
        runner = JobRunner(
            engine, pool, control_handlers(keys, control), bus=bus, only={job_id}, poll_s=0.5
        )
        shown: set[int] = set()

        def progress(event: Event) -> None:
            if isinstance(event, JobStarted) and not as_json:
                err_console.print(f"attempt {event.attempt} …", highlight=False)

        bus.on(progress)
        try:
            async with runner:
                while True:
                    try:
                        return await wait_for_job(runner.store, bus, job_id, timeout=0.5)
                    except TimeoutError:
                        for attempt in runner.store.attempts(job_id):
                            if attempt.ended_at and attempt.attempt_no not in shown and not as_json:
                                shown.add(attempt.attempt_no)
                                err_console.print(
                                    f"attempt {attempt.attempt_no} {attempt.outcome}: "
                                    f"{escape(attempt.error or '')}",
                                    highlight=False,
                                    soft_wrap=True,
                                )
        finally:
            await pool.aclose()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        fail(f"interrupted; job {job_id} stays queued for `feikong headend run`", 130)


def _print_attempts(store: JobStore, job_id: str) -> None:
    table = Table("attempt", "started", "ended", "outcome", "error", title=f"job {job_id}")
    for a in store.attempts(job_id):
        table.add_row(
            str(a.attempt_no),
            f"{a.started_at:%H:%M:%S}",
            f"{a.ended_at:%H:%M:%S}" if a.ended_at else "",
            a.outcome or "running",
            a.error or "",
        )
    console.print(table)


def status_command(
    db: str | None = _db_option(),
    day: str | None = typer.Option(
        None, "--date", metavar="YYYY-MM-DD", help="Collection day (default: today)."
    ),
    by: str | None = typer.Option(
        None, "--by", help="Success rates per supply_unit or reading_segment."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Jobs by state and kind, channel health, and the collection success rate of a day."""
    from headend.collection import success_rates
    from headend.jobs import JobStore

    if by not in (None, "supply_unit", "reading_segment"):
        fail(f"--by must be supply_unit or reading_segment, got {by!r}", 2)
    try:
        when = dt.date.fromisoformat(day) if day else dt.date.today()
    except ValueError:
        fail(f"--date wants YYYY-MM-DD, got {day!r}", 2)
    engine = _open(db)
    store = JobStore(engine)
    try:
        counts = store.counts()
        recorded = store.load_status("runner")
        rates = success_rates(engine, when, by=by)  # type: ignore[arg-type]
    except HeadendError as exc:
        fail(escape(str(exc)), 2)
    snapshot, saved_at = recorded if recorded is not None else ({}, None)
    jobs: dict[str, dict[str, int]] = {}
    for (state, kind), n in sorted(counts.items()):
        jobs.setdefault(kind, {})[state] = n
    if as_json:
        print_json(
            {
                "jobs": jobs,
                "head_end": None
                if recorded is None
                else {**snapshot, "recorded_at": saved_at.isoformat() if saved_at else None},
                "collection": [r.to_dict() for r in rates],
            }
        )
        return
    states = ["queued", "running", "succeeded", "failed", "expired"]
    table = Table("job kind", *states, title="jobs")
    for kind, by_state in jobs.items():
        table.add_row(kind, *(str(by_state.get(s, 0)) for s in states))
    if not jobs:
        table.add_row("(none)", *("0" for _ in states))
    console.print(table)
    if recorded is None:
        console.print(
            "channel health: none recorded yet (start `feikong headend run`)", markup=False
        )
    else:
        state = "running" if snapshot.get("running") else "stopped"
        console.print(
            f"head-end {state} (pid {snapshot.get('pid')}), status recorded "
            f"{saved_at:%Y-%m-%d %H:%M:%S}; {snapshot.get('queued', 0)} job(s) queued in it, "
            f"{snapshot.get('meters_busy', 0)} meter(s) busy",
            highlight=False,
            markup=False,
        )
        health = Table(
            "channel",
            "kind",
            "url",
            "connected",
            "requests",
            "timeouts",
            "errors",
            "p99 ms",
            "last error",
            title="channel health",
        )
        for ch in snapshot.get("channels", []):
            health.add_row(
                str(ch.get("name")),
                str(ch.get("kind")),
                str(ch.get("url")),
                "yes" if ch.get("connected") else "no",
                str(ch.get("requests")),
                str(ch.get("timeouts")),
                str(ch.get("errors")),
                "" if ch.get("p99_ms") is None else f"{ch['p99_ms']:.1f}",
                escape(str(ch.get("last_error") or "")),
            )
        console.print(health)
    rate_table = Table(
        *(["group"] if by else []),
        "meters",
        "collected",
        "missing",
        "pending",
        "rate",
        title=f"collection {when.isoformat()}",
    )
    for r in rates:
        row = [str(r.meters), str(r.collected), str(r.missing), str(r.pending), f"{r.rate:.2%}"]
        rate_table.add_row(*([str(r.group or "(none)")] if by else []), *row)
    console.print(rate_table)


headend_app.command("migrate")(migrate_command)
headend_app.command("import-archive")(import_archive_command)
headend_app.command("export-archive")(export_archive_command)
headend_app.command("collect")(collect_command)
headend_app.command("run")(run_command)
headend_app.command("command")(command_command)
headend_app.command("status")(status_command)
headend_app.command("dispatch")(dispatch_command)


def register(app: typer.Typer) -> None:
    app.add_typer(headend_app, name="headend")
