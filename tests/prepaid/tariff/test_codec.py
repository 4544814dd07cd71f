"""Tariff files and rows: the shipped examples, round trips, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prepaid.tariff import (
    Tariff,
    TariffBook,
    TariffError,
    example_path,
    example_paths,
    load_book,
    loads_book,
)

GOOD = """
[[tariff]]
id = "t"
name = "test"
version = 1
effective_from = 2025-01-01
thresholds_kwh = [200, 400]
prices = [0.52, 0.57, 0.82]
"""

TOU = """
[[tariff.tou]]
period = "peak"
delta = 0.03
segments = ["08:00-22:00"]

[[tariff.tou]]
period = "valley"
delta = -0.17
segments = ["22:00-08:00"]
"""


def test_every_shipped_example_loads_and_round_trips() -> None:
    names = {p.stem for p in example_paths()}
    assert {
        "residential_monthly",
        "residential_annual",
        "residential_tou2",
        "commercial_tou4",
        "commercial_flat",
        "residential_price_change",
        "residential_seasonal",
    } <= names
    for path in example_paths():
        book = load_book(path)
        for tariff in book:
            row = json.loads(json.dumps(tariff.to_dict()))  # a JSON column and back
            assert Tariff.from_dict(row) == tariff
        again = TariffBook.from_dicts(book.to_dicts())
        assert list(again) == list(book)


def test_decimals_are_exact_and_never_float() -> None:
    tariff = next(iter(loads_book(GOOD)))
    assert tariff.prices_e4 == (5200, 5700, 8200)
    assert tariff.thresholds_ckwh == (20000, 40000)
    assert tariff.to_dict()["prices"] == ["0.5200", "0.5700", "0.8200"]
    with pytest.raises(TariffError, match="binary float"):
        Tariff.from_dict({**tariff.to_dict(), "prices": [0.52, 0.57, 0.82]})


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(TariffError, match=r"nope\.toml: cannot read"):
        load_book(path)


def test_errors_name_the_file_and_table(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD.replace("[0.52, 0.57, 0.82]", "[0.52, 0.57]"), encoding="utf-8")
    with pytest.raises(TariffError) as info:
        load_book(path)
    text = str(info.value)
    assert text.startswith(f"{path}: tariff[0]: 't' v1: ")
    assert "thresholds_kwh: expected 1 thresholds" in text
    assert info.value.key == "thresholds_kwh"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # missing key
        ("prices = [0.52, 0.57, 0.82]\n", "", r"prices: missing key: expected a list of prices"),
        ('name = "test"\n', "", r"name: missing key"),
        ("thresholds_kwh = [200, 400]\n", "", r"thresholds_kwh: missing key: expected ascending"),
        # thresholds
        ("[200, 400]", "[400, 200]", r"thresholds_kwh: expected strictly ascending.*\[400, 200\]"),
        ("[200, 400]", "[200, 200]", r"expected strictly ascending"),
        ("[200, 400]", "[0, 400]", r"expected thresholds > 0 kWh"),
        ("[200, 400]", "[200.005, 400]", r"at most 2 decimals"),
        ("[200, 400]", '["abc", 400]', r"thresholds_kwh: expected kWh, got 'abc'"),
        # prices
        ("[0.52, 0.57, 0.82]", "[0.52, 0.57, 0.82, 0.9]", r"expected 3 thresholds"),
        ("[0.52, 0.57, 0.82]", "[0.52, -0.57, 0.82]", r"prices: expected a price ≥ 0"),
        ("[0.52, 0.57, 0.82]", "[0.52, 0.57, 0.82111]", r"at most 4 decimals"),
        ("[0.52, 0.57, 0.82]", '"0.52"', r"prices: expected a list of prices"),
        # dates
        ("2025-01-01", '"2025-13-01"', r"effective_from: expected a date YYYY-MM-DD"),
        ("2025-01-01", "2025-01-01T08:00:00", r"without a time"),
        (
            "effective_from = 2025-01-01\n",
            "effective_from = 2025-01-01\neffective_to = 2024-12-31\n",
            r"effective_to: expected a day on or after effective_from",
        ),
        # the rest
        ("version = 1", "version = 0", r"version: expected an integer ≥ 1"),
        ("version = 1", 'version = "1"', r"version: expected a version number"),
        ('name = "test"\n', 'name = "test"\nthreshold = 3\n', r"threshold: unknown key"),
        (
            'name = "test"\n',
            'name = "test"\nkind = "ladder"\n',
            r"kind: expected one of flat, tiered",
        ),
        (
            'name = "test"\n',
            'name = "test"\ncycle = "annual"\ncycle_start_month = 13\n',
            r"cycle_start_month: expected 1..12",
        ),
        (
            'name = "test"\n',
            'name = "test"\nfree_allowance_kwh = 250\n',
            r"free_allowance_kwh: expected at most the first threshold \(200 kWh\)",
        ),
        ('name = "test"\n', 'name = "test"\nkind = "flat"\n', r"a flat tariff has 1 price"),
    ],
)
def test_bad_tariff_values(old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(TariffError, match=message) as info:
        loads_book(GOOD.replace(old, new, 1), source="f.toml")
    assert str(info.value).startswith("f.toml: tariff[0]")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('period = "valley"', 'period = "night"', r"tou: unknown TOU period 'night': expected one"),
        ('period = "valley"', 'period = "peak"', r"listed twice"),
        ('"22:00-08:00"', '"21:00-08:00"', r"tou.valley.segments: overlaps peak at 21:00"),
        ('"22:00-08:00"', '"23:00-08:00"', r"segments leave 22:00-23:00 uncovered"),
        ('"22:00-08:00"', '"22-08"', r"expected a time segment 'HH:MM-HH:MM'"),
        ('"22:00-08:00"', '"22:00-22:00"', r"different ends"),
        ("delta = -0.17", "delta = -0.60", r"makes a tier price negative"),
        ("delta = -0.17\n", "", r"tou\[1\].delta: missing key"),
    ],
)
def test_bad_tou(old: str, new: str, message: str) -> None:
    text = GOOD + TOU
    loads_book(text)  # the unchanged text is fine
    with pytest.raises(TariffError, match=message):
        loads_book(text.replace(old, new, 1), source="tou.toml")


FLAT_PERIOD = """
[[tariff.tou]]
period = "flat"
delta = 0
segments = ["22:00-23:00"]
"""


def test_tou_needs_two_or_four_periods() -> None:
    three = (GOOD + TOU + FLAT_PERIOD).replace('"22:00-08:00"', '"23:00-08:00"')
    with pytest.raises(TariffError, match=r"expected 2 TOU periods \(peak, valley\) or 4"):
        loads_book(three)
    valley_first = GOOD + TOU.split("\n\n")[1] + "\n" + TOU.split("\n\n")[0]
    with pytest.raises(TariffError, match="in the order peak, valley"):
        loads_book(valley_first)


def test_bad_seasons_and_uplift() -> None:
    season = GOOD + "\n[[tariff.season]]\nmonths = [5, 13]\nthresholds_kwh = [260, 600]\n"
    with pytest.raises(TariffError, match=r"season\[0\].months: expected months 1..12"):
        loads_book(season)
    annual = GOOD.replace('name = "test"\n', 'name = "test"\ncycle = "annual"\n')
    with pytest.raises(TariffError, match="monthly cycles only"):
        loads_book(annual + "\n[[tariff.season]]\nmonths = [5]\nthresholds_kwh = [260, 600]\n")
    uplift = GOOD + "\n[[tariff.household_uplift]]\nmin_persons = 5\nadd_kwh = [100]\n"
    with pytest.raises(TariffError, match=r"household_uplift\[0\].add_kwh: expected 2 values"):
        loads_book(uplift)
    inverted = GOOD + "\n[[tariff.household_uplift]]\nmin_persons = 5\nadd_kwh = [300, 0]\n"
    with pytest.raises(TariffError, match="no longer ascending"):
        loads_book(inverted)


def test_file_level_errors() -> None:
    with pytest.raises(TariffError, match=r"^x.toml: not valid TOML"):
        loads_book("[[tariff]\n", source="x.toml")
    with pytest.raises(TariffError, match=r"x.toml: tariff: missing key: expected at least one"):
        loads_book("", source="x.toml")
    with pytest.raises(TariffError, match=r"x.toml: tarif: unknown top-level key"):
        loads_book(GOOD.replace("[[tariff]]", "[[tarif]]"), source="x.toml")


def test_overlapping_versions_are_rejected() -> None:
    v2 = GOOD.replace("version = 1", "version = 2").replace("2025-01-01", "2025-06-01")
    first = GOOD.replace('name = "test"\n', 'name = "test"\neffective_to = 2025-06-30\n')
    with pytest.raises(TariffError, match=r"x.toml: 't': effective_to: v1 runs to 2025-06-30"):
        loads_book(first + v2, source="x.toml")
    swapped = GOOD.replace("version = 1", "version = 3") + v2
    with pytest.raises(TariffError, match="expected distinct versions ascending"):
        loads_book(swapped)


def test_example_path_unknown_name() -> None:
    assert example_path("commercial_flat").name == "commercial_flat.toml"
    with pytest.raises(TariffError, match="expected one of"):
        example_path("nope")
