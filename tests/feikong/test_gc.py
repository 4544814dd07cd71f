"""Serving processes collect the young generation less often, never more often."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from feikong._gc import YOUNG_THRESHOLD, serving_gc


@pytest.fixture(autouse=True)
def _restore_thresholds() -> Iterator[None]:
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_the_young_threshold_is_raised_for_the_block_only() -> None:
    gc.set_threshold(700, 10, 7)
    with serving_gc():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 7)
    assert gc.get_threshold() == (700, 10, 7)


def test_a_higher_threshold_or_collection_off_is_left_alone() -> None:
    gc.set_threshold(50_000, 10, 10)
    with serving_gc():
        assert gc.get_threshold() == (50_000, 10, 10)
    gc.set_threshold(0, 10, 10)
    with serving_gc():
        assert gc.get_threshold() == (0, 10, 10)


def test_the_thresholds_come_back_after_an_error() -> None:
    gc.set_threshold(700, 10, 10)
    with pytest.raises(RuntimeError), serving_gc():
        raise RuntimeError("the collection failed")
    assert gc.get_threshold() == (700, 10, 10)
