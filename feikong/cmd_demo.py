"""``feikong demo``: the whole system on one machine (see the README and feikong.demo)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from .output import console, fail

if TYPE_CHECKING:
    from .demo.runner import DayLine, DemoResult


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


def _day_text(d: DayLine) -> str:
    outcomes = d.outcomes
    low = outcomes.get("below_reminder", 0) + outcomes.get("below reminder", 0)
    neg = outcomes.get("negative", 0)
    text = (
        f"day {d.number:>3} {d.day}  collected {d.collected}/{d.meters}  rated {d.rated}"
        f" (low {low}, negative {neg})  reminders {d.reminders}  dunning {d.dunning}"
        f"  requests {d.requested}  approved {d.approved}  trips {d.trips}"
        f"  failed {d.failed_trips}  work orders {d.work_orders}"
        f"  paid {d.payments} ({_yuan(d.paid_fen)})  reconnected {d.reconnected}  sms {d.sms}"
    )
    if d.errors:
        text += f"  [errors: {'; '.join(d.errors)}]"
    return text


def _print_end(result: DemoResult) -> None:
    s = result.summary
    table = Table(title="the district after the run", show_header=False, title_justify="left")
    district = s["district"]
    table.add_row("customers", f"{district['customers']} in {district['areas']} areas")
    table.add_row("meters", f"{district['remote_meters']} remote, {district['card_meters']} card")
    table.add_row(
        "special customers",
        f"{len(district['guaranteed'])} guaranteed, {len(district['without_phone'])} without "
        f"phone, {len(district['breakers_failing'])} breakers failing to trip, "
        f"{len(district['offline_meters'])} meters offline",
    )
    for name in ("episodes", "messages", "work_orders"):
        values = s.get(name) or {}
        table.add_row(
            name.replace("_", " "), ", ".join(f"{k} {v}" for k, v in values.items()) or "-"
        )
    customers = s.get("customers") or {}
    if customers:
        profiles = ", ".join(f"{k} {v}" for k, v in customers["profiles"].items())
        table.add_row(
            "payments",
            f"{customers['payments']} ({_yuan(customers['paid_fen'])}); habits: {profiles}",
        )
    console.print(table)


def demo(
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario", metavar="FILE", help="Scenario TOML (default: the shipped one)."
        ),
    ] = None,
    days: Annotated[
        int | None, typer.Option("--days", metavar="N", help="Simulated days (default 60).")
    ] = None,
    customers: Annotated[
        int | None,
        typer.Option("--customers", metavar="N", help="Customers of the district (default 1000)."),
    ] = None,
    out: Annotated[
        Path,
        typer.Option("--out", metavar="DIR", help="Output: database, report, logs, SMS, notices."),
    ] = Path("feikong-demo"),
    db: Annotated[
        str | None,
        typer.Option(
            "--db", metavar="URL", help="Database URL (default: sqlite:///DIR/feikong-demo.db)."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", metavar="N", help="Random seed (same seed, same run).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if an invariant is broken (listed).")
    ] = False,
    protocol: Annotated[
        bool,
        typer.Option(
            "--protocol", help="Only the protocol walkthrough (one meter trip, 3 meters)."
        ),
    ] = False,
) -> None:
    """Run the whole system on one machine: a district, simulated days, a report.

    Starts the breaker simulators (Modbus), the meter fleet (TCP), the head-end and the
    prepaid platform as separate processes on one accelerated clock and one SQLite
    database, plays the customers, and ends with a report. Every knob is in the
    scenario file (see feikong/demo/scenarios/default.toml).
    """
    if protocol:
        from .demo_protocol import run_protocol_demo

        run_protocol_demo()
        return
    from .demo.processes import PartFailed
    from .demo.runner import DemoError, DemoOptions, DemoRunner
    from .demo.scenario import ScenarioError, load_scenario

    try:
        loaded = load_scenario(scenario).with_overrides(days=days, customers=customers, seed=seed)
    except ScenarioError as exc:
        fail(escape(str(exc)), 2)
    run = loaded.run
    console.rule("feikong demo")
    console.print(
        f"scenario {loaded.source}: {loaded.district.customers} customers, {run.days} days "
        f"from {run.start}, {run.seconds_per_day:g} s per simulated day; output in {out}/",
        highlight=False,
        soft_wrap=True,
    )

    def phase(text: str) -> None:
        console.print(f"· {text}", highlight=False, markup=False, soft_wrap=True)

    def day(line: DayLine) -> None:
        console.print(_day_text(line), highlight=False, markup=False, soft_wrap=True)

    runner = DemoRunner(DemoOptions(loaded, out, db), on_phase=phase, on_day=day)
    try:
        result = runner.run()
    except ScenarioError as exc:
        fail(escape(str(exc)), 2)
    except (DemoError, PartFailed) as exc:
        fail(escape(str(exc)), 1)
    except KeyboardInterrupt:
        fail("interrupted; the processes were stopped", 130)
    except Exception as exc:
        from prepaid.generate import GenerateError

        if isinstance(exc, GenerateError):
            fail(escape(f"{exc} (--db {db})"), 2)
        raise
    _print_end(result)
    if result.report_text:
        console.print(result.report_text, highlight=False, markup=False)
    console.print(
        f"finished in {result.seconds:.0f} s; database {result.db_url} "
        f"(browse it: feikong console --db {result.db_url}); logs, SMS and notices in {out}/",
        highlight=False,
        soft_wrap=True,
    )
    for path in result.report_files:
        console.print(f"  report: {path}", highlight=False, markup=False)
    if result.violations:
        console.print(f"{len(result.violations)} invariant violation(s):", highlight=False)
        for v in result.violations:
            console.print(
                f"  {v.invariant}: {v.subject}: {v.detail}", highlight=False, markup=False
            )
        if check:
            raise typer.Exit(1)
    else:
        console.print("invariants: all hold", highlight=False)


def demo_protocol() -> None:
    """The protocol walkthrough: one meter tripped, permit-close, a guaranteed meter."""
    from .demo_protocol import run_protocol_demo

    run_protocol_demo()


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("demo-protocol")(demo_protocol)
