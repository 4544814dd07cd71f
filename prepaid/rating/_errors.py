"""The rating package's exceptions."""

from __future__ import annotations


class RatingRunError(Exception):
    """A rating run cannot proceed (no tariffs, a bad date, a database problem).

    The message says what is wrong and what to do; nothing of the run's current
    chunk was stored (each chunk is one transaction).
    """
