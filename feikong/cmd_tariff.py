"""Tariff commands: ``feikong tariff quote`` (the charge of a period) and ``tariff show``."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from prepaid.tariff import (
    BillingPeriod,
    Charge,
    Cycle,
    PeriodEnergy,
    RatingError,
    Tariff,
    TariffBook,
    TariffError,
    charge,
    ckwh_to_kwh,
    e4_to_yuan,
    e6_to_yuan,
    kwh_to_ckwh,
    load_book,
)

from .output import console, fail, print_json


def _book(path: Path) -> TariffBook:
    try:
        return load_book(path)
    except TariffError as exc:
        fail(str(exc), 2)


def _kwh(text: str, option: str) -> int:
    try:
        return kwh_to_ckwh(text.strip(), key=option)
    except TariffError:
        fail(f"{option} wants kWh ≥ 0 with at most 2 decimals (e.g. 450.25), got {text!r}", 2)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option} wants a date YYYY-MM-DD, got {text!r}", 2)


def _tou(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            fail(f"--tou wants PERIOD=KWH,... (e.g. peak=300,valley=150), got {text!r}", 2)
        if name in out:
            fail(f"--tou names {name!r} twice", 2)
        out[name] = _kwh(value, f"--tou {name}")
    return out


def _period(start: str | None, end: str | None) -> BillingPeriod:
    first = _day(start, "--from") if start else None
    last = _day(end, "--to") if end else None
    if first is None and last is None:
        return BillingPeriod.of(date.today())
    if first is None:
        assert last is not None
        first = last.replace(day=1)
    if last is None:
        last = BillingPeriod.of(first).end
    try:
        return BillingPeriod(first, last)
    except RatingError as exc:
        fail(f"--from/--to: {exc.detail}", 2)


def _pick_id(book: TariffBook, tariff_id: str | None, path: Path) -> str:
    if tariff_id is not None:
        if tariff_id not in book:
            fail(f"{path}: no tariff {tariff_id!r}; the file has {', '.join(book.ids())}", 2)
        return tariff_id
    ids = book.ids()
    if len(ids) != 1:
        fail(f"{path} has {len(ids)} tariffs ({', '.join(ids)}): choose one with --id", 2)
    return ids[0]


def quote(
    tariff_file: Path = typer.Option(
        ..., "--tariff", help="Tariff TOML file (e.g. prepaid/tariffs/…)."
    ),
    tariff_id: str | None = typer.Option(None, "--id", help="Tariff id, if the file has several."),
    kwh: str | None = typer.Option(None, "--kwh", help="Energy in the period, kWh (0.01)."),
    prior_kwh: str | None = typer.Option(
        None, "--prior-kwh", help="Annual tiers: energy earlier in the tier year, kWh."
    ),
    start: str | None = typer.Option(
        None, "--from", help="First day of the period, YYYY-MM-DD (default: this month)."
    ),
    end: str | None = typer.Option(
        None, "--to", help="Last day of the period (default: end of --from's month)."
    ),
    tou: str | None = typer.Option(
        None, "--tou", help="Energy per TOU period, kWh: peak=300,valley=150."
    ),
    household_size: str | None = typer.Option(
        None, "--household-size", help="Persons in the household (household uplift)."
    ),
    free: bool = typer.Option(False, "--free", help="The household gets the free allowance."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """The charge of a billing period: a line per tier (and TOU period) and the total.

    Monthly thresholds are prorated for a period shorter than a calendar month.

    A price change inside the period splits the energy by days.
    """
    book = _book(tariff_file)
    ident = _pick_id(book, tariff_id, tariff_file)
    period = _period(start, end)
    tou_ckwh = _tou(tou) if tou else None
    if kwh is None and tou_ckwh is None:
        fail("give the energy: --kwh KWH or --tou PERIOD=KWH,...", 2)
    total = _kwh(kwh, "--kwh") if kwh is not None else sum((tou_ckwh or {}).values())
    persons: int | None = None
    if household_size is not None:
        if not household_size.strip().isdigit() or int(household_size) < 1:
            fail(f"--household-size wants a whole number ≥ 1, got {household_size!r}", 2)
        persons = int(household_size)
    try:
        energy = PeriodEnergy(
            total,
            tou_ckwh=tou_ckwh,
            prior_ckwh=_kwh(prior_kwh, "--prior-kwh") if prior_kwh is not None else 0,
            household_size=persons,
            free_allowance=free,
        )
        result = charge(book, period, energy, tariff_id=ident)
    except TariffError as exc:
        fail(str(exc), 2)
    first = book.at(ident, period.start)
    if as_json:
        print_json({"tariff": ident, "name": first.name, **result.to_dict()})
        return
    notes: list[str] = []
    if prior_kwh is not None and first.cycle is not Cycle.ANNUAL:
        notes.append(f"--prior-kwh ignored: {ident} has {first.cycle.value} tiers")
    if free and not first.free_allowance_ckwh:
        notes.append(f"--free ignored: {ident} has no free allowance")
    if tou_ckwh is not None and not first.tou:
        notes.append(f"--tou ignored: {ident} has no TOU periods")
    _print_charge(first, result, notes)


def _print_charge(first: Tariff, result: Charge, notes: list[str]) -> None:
    several = len(result.segments) > 1
    has_tou = any(line.tou_period for line in result.lines)
    console.print(f"[bold]{first.id}[/] — {first.name} · {result.period}", highlight=False)
    table = Table()
    if several:
        table.add_column("version")
        table.add_column("days")
    table.add_column("tier", justify="right")
    if has_tou:
        table.add_column("TOU")
    table.add_column("kWh", justify="right")
    table.add_column("price", justify="right")
    table.add_column("amount", justify="right")
    for line in result.lines:
        row: list[str] = []
        if several:
            row += [f"v{line.version}", f"{line.start:%m-%d}..{line.end:%m-%d}"]
        row.append(f"{line.tier} free" if line.free else str(line.tier))
        if has_tou:
            row.append(line.tou_period or "")
        row += [str(line.kwh), str(line.price), _amount(line.amount_e6)]
        table.add_row(*row)
    table.add_section()
    blanks = (2 if several else 0) + (1 if has_tou else 0)
    table.add_row(
        "total", *([""] * blanks), str(ckwh_to_kwh(result.energy_ckwh)), "", str(result.total)
    )
    console.print(table)
    for segment in result.segments if several else ():
        thresholds = ", ".join(str(ckwh_to_kwh(t)) for t in segment.thresholds_ckwh)
        console.print(
            f"v{segment.version} {segment.start}..{segment.end}: "
            f"{ckwh_to_kwh(segment.energy_ckwh)} kWh, thresholds [{thresholds}] kWh",
            highlight=False,
        )
    for note in notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(
        f"charge: [bold]{result.total}[/] yuan (tier {result.tier}; exact "
        f"{_amount(result.total_e6)})",
        highlight=False,
    )


def _amount(amount_e6: int) -> str:
    """Exact yuan with at least 2 decimals: 104.00, 50.3204."""
    value = e6_to_yuan(amount_e6).normalize()
    if value.as_tuple().exponent > -2:  # type: ignore[operator]
        value = value.quantize(Decimal("0.01"))
    return f"{value:f}"


def show(
    tariff_file: Path = typer.Option(..., "--tariff", help="Tariff TOML file."),
    tariff_id: str | None = typer.Option(None, "--id", help="Only this tariff id."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show a tariff file: every version's tiers, seasons, uplift, free allowance and TOU."""
    book = _book(tariff_file)
    ids = [_pick_id(book, tariff_id, tariff_file)] if tariff_id else list(book.ids())
    versions = [t for ident in ids for t in book.versions(ident)]
    if as_json:
        print_json([t.to_dict() for t in versions])
        return
    for tariff in versions:
        _print_tariff(tariff, book.last_day(tariff))


def _kwh_text(ckwh: int) -> str:
    return f"{ckwh_to_kwh(ckwh).normalize():f}"


def _print_tariff(tariff: Tariff, last_day: date | None) -> None:
    unit = "month" if tariff.cycle is Cycle.MONTHLY else "year"
    facts: list[tuple[str, str]] = [
        ("in force", f"{tariff.effective_from} .. {last_day or 'open'}"),
        ("kind", tariff.kind.value),
    ]
    if tariff.thresholds_ckwh:
        cycle = tariff.cycle.value
        if tariff.cycle is Cycle.ANNUAL:
            cycle += f" (from month {tariff.cycle_start_month})"
        facts.append(("tier cycle", cycle))
    console.print(f"[bold]{tariff.label}[/] — {tariff.name}", highlight=False)
    table = Table()
    table.add_column("tier", justify="right")
    table.add_column(f"kWh per {unit}", justify="right")
    table.add_column("yuan/kWh", justify="right")
    bounds: list[Any] = [0, *tariff.thresholds_ckwh, None]
    for i, price in enumerate(tariff.prices_e4):
        low, high = bounds[i], bounds[i + 1]
        span = (
            f"{_kwh_text(low)} – {_kwh_text(high)}" if high is not None else f"> {_kwh_text(low)}"
        )
        table.add_row(str(i + 1), span if tariff.thresholds_ckwh else "all", str(e4_to_yuan(price)))
    for season in tariff.seasons:
        months = ",".join(str(m) for m in season.months)
        values = " / ".join(_kwh_text(t) for t in season.thresholds_ckwh)
        facts.append((f"months {months}", f"thresholds {values} kWh"))
    for rule in tariff.uplifts:
        values = " / ".join(_kwh_text(a) for a in rule.add_ckwh)
        facts.append((f"≥ {rule.min_persons} persons", f"thresholds + {values} kWh"))
    if tariff.free_allowance_ckwh:
        facts.append(("free allowance", f"{_kwh_text(tariff.free_allowance_ckwh)} kWh per {unit}"))
    console.print(table)
    for key, value in facts:
        console.print(f"  {key}: {value}", highlight=False)
    if tariff.tou:
        tou = Table(title="time of use", title_justify="left")
        tou.add_column("period")
        tou.add_column("delta yuan/kWh", justify="right")
        tou.add_column("segments")
        for period in tariff.tou:
            delta = e4_to_yuan(period.delta_e4)
            tou.add_row(period.name, f"{delta:+}", ", ".join(period.segment_text()))
        console.print(tou)


def register(app: typer.Typer) -> None:
    tariff_app = typer.Typer(
        help="Tariffs (阶梯电价, 分时电价): quote a period's charge, show a tariff file.",
        no_args_is_help=True,
    )
    tariff_app.command("quote")(quote)
    tariff_app.command("show")(show)
    app.add_typer(tariff_app, name="tariff")
