"""Tariff versions by id and effective date."""

from __future__ import annotations

from datetime import date

import pytest

from prepaid.tariff import TariffError, example_path, load_book, loads_book


def test_at_picks_the_version_in_force() -> None:
    book = load_book(example_path("residential_price_change"))
    assert book.at("res-2025", date(2025, 6, 15)).version == 1
    assert book.at("res-2025", date(2025, 6, 16)).version == 2
    assert book.at("res-2025", date(2030, 1, 1)).version == 2
    with pytest.raises(TariffError, match="no version is in force on 2024-12-31"):
        book.at("res-2025", date(2024, 12, 31))
    with pytest.raises(TariffError, match="unknown tariff id"):
        book.at("nope", date(2025, 1, 1))


def test_segments_cover_the_days_in_order() -> None:
    book = load_book(example_path("residential_price_change"))
    segments = book.segments("res-2025", date(2025, 6, 1), date(2025, 6, 30))
    assert [(t.version, a.day, b.day) for t, a, b in segments] == [(1, 1, 15), (2, 16, 30)]


def test_open_version_ends_before_the_next() -> None:
    text = """
[[tariff]]
id = "t"
name = "t"
version = 1
effective_from = 2025-01-01
kind = "flat"
prices = [0.5]

[[tariff]]
id = "t"
name = "t"
version = 2
effective_from = 2025-03-01
effective_to = 2025-03-31
kind = "flat"
prices = [0.6]
"""
    book = loads_book(text)
    v1, v2 = book.versions("t")
    assert book.last_day(v1) == date(2025, 2, 28)
    assert book.last_day(v2) == date(2025, 3, 31)
    with pytest.raises(TariffError, match="no version is in force on 2025-04-01"):
        book.at("t", date(2025, 4, 1))
