"""``feikong demo-report``: the demo's report and invariant checks, again, over any database."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import typer

from .output import console, err_console, fail, print_json


def _day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option} wants a day as YYYY-MM-DD (e.g. 2026-03-02), got {text!r}", 2)


def demo_report(
    db: str = typer.Option(
        ...,
        "--db",
        envvar="FEIKONG_DB",
        help="The database of a demo run (e.g. sqlite:///demo-out/feikong.db, or postgresql://…).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write report.txt, report.json, the PNG charts and report.html into this folder.",
    ),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 if an invariant is broken (the checks always run)."
    ),
    start: str | None = typer.Option(
        None, "--start", help="First day of the run (default: the first daily freeze)."
    ),
    days: int | None = typer.Option(
        None, "--days", min=1, help="Days of the run (default: up to the last daily freeze)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Report on a demo database (customers, money, workflows, messages, per day) and check
    the invariants: money conserved, two approvals, no guaranteed trip, no trip in
    protected hours, a work order for every failed trip."""
    from feikong.demo.invariants import InvariantCheckError, check_invariants
    from feikong.demo.report import build_report, run_period
    from prepaid.db import PrepaidDatabaseError, open_database

    url = db.strip()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        fail(f"--db {url}: no such database file; give the database a demo run left", 2)
    try:
        engine = open_database(url)
    except PrepaidDatabaseError as exc:
        fail(str(exc), 2)
    began = time.perf_counter()
    try:
        first, length = run_period(engine)
        chosen = _day(start, "--start") or first
        if start is not None and days is None:
            length = max(1, length - (chosen - first).days)
        violations = check_invariants(engine)
        report = build_report(engine, start=chosen, days=days or length, violations=violations)
    except InvariantCheckError as exc:
        fail(f"--db {url}: {exc}", 2)
    finally:
        engine.dispose()
    seconds = time.perf_counter() - began
    if as_json:
        print_json(report.to_dict())
    else:
        console.print(report.to_text(), end="", highlight=False, markup=False, soft_wrap=True)
    if out is not None:
        paths = report.write(out)
        err_console.print(
            f"wrote {len(paths)} file(s) to {out}: " + ", ".join(p.name for p in paths),
            highlight=False,
        )
    err_console.print(f"report and checks in {seconds:.2f} s", highlight=False)
    if check and violations:
        err_console.print(f"[bold red]{len(violations)} invariant violation(s)[/]", highlight=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo-report")(demo_report)
