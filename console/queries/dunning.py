"""Dunning batches (催费批次) for the console: where paper notices are printed to.

The batches and their records are read with :func:`prepaid.dunning.list_batches` and
:func:`prepaid.dunning.list_records`; a batch is printed with
:func:`prepaid.dunning.print_batch` (the existing paper-notice code).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

__all__ = ["NOTICES_ENV", "notices_directory"]

NOTICES_ENV: Final = "FEIKONG_NOTICES"
"""The directory the console prints paper notices into (default ``./notices``)."""


def notices_directory() -> Path:
    """``$FEIKONG_NOTICES``, else ``notices`` in the current directory (made if needed)."""
    return Path(os.environ.get(NOTICES_ENV) or "notices").expanduser()
