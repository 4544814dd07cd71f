"""The ``feikong`` command: one entry point, a subcommand per job."""

from __future__ import annotations

import logging
import os

import typer

from . import __version__

app = typer.Typer(
    name="feikong",
    help="Prepaid (fee-controlled, 费控) electricity metering: DL/T 645-2007 tools, "
    "simulated meters and breakers, head-end and prepaid platform.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that print key=value figures.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"feikong {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(
        level=os.environ.get("FEIKONG_LOG", level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _register() -> None:
    from . import (
        cmd_bench,
        cmd_bench_console,
        cmd_bench_fleet,
        cmd_bench_fuzz,
        cmd_bench_payments,
        cmd_bench_reads,
        cmd_bench_trips,
        cmd_breaker,
        cmd_card,
        cmd_cis,
        cmd_console,
        cmd_control,
        cmd_demo,
        cmd_demo_report,
        cmd_headend,
        cmd_messages,
        cmd_meter_sim,
        cmd_protocol,
        cmd_rating,
        cmd_selftest,
        cmd_service,
        cmd_settings,
        cmd_stats,
        cmd_tariff,
        cmd_users,
        cmd_vend,
        cmd_workflows,
    )

    for module in (
        cmd_protocol,
        cmd_control,
        cmd_breaker,
        cmd_meter_sim,
        cmd_demo,
        cmd_demo_report,
        cmd_tariff,
        cmd_headend,
        cmd_card,
        cmd_messages,
    ):
        module.register(app)
    cmd_cis.register(app)
    cmd_settings.register(app)
    cmd_users.register(app)
    cmd_workflows.register(app)
    cmd_rating.register(app)
    cmd_service.register(app)
    cmd_stats.register(app)
    cmd_vend.register(app)
    cmd_selftest.register(app)
    cmd_console.register(app)
    cmd_bench.register(bench_app)
    cmd_bench_fleet.register(bench_app)
    cmd_bench_reads.register(bench_app)
    cmd_bench_trips.register(bench_app)
    cmd_bench_payments.register(bench_app)
    cmd_bench_console.register(bench_app)
    cmd_bench_fuzz.register(bench_app)
    cmd_rating.register_bench(bench_app)
    cmd_service.register_bench(bench_app)
    cmd_settings.register_bench(bench_app)


_register()


def main() -> None:
    app()
