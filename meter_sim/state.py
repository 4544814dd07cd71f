"""Saving a fleet's state (仿真状态) across restarts: one JSON file.

The file holds every meter's :meth:`~meter_sim.config.SimulatedMeter.to_state`
by address::

    {"format": "feikong-meter-sim-state", "version": 1,
     "saved_at": "2026-01-01T00:00:00", "meters": {"000000000001": {...}, ...}}

Writes are atomic: a temporary file in the same directory, flushed and
``fsync``-ed, then renamed over the old one, so a crash leaves the old or the new
state, never half of one. :class:`StateKeeper` loads at start, saves every N
real seconds and once more on shutdown. A file that cannot be read as a state
raises :class:`StateFileError` and is never overwritten (the fleet does not start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from .fleet import Fleet

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "StateFileError",
    "StateKeeper",
    "read_state",
    "write_state",
]

logger = logging.getLogger(__name__)

STATE_FORMAT: Final = "feikong-meter-sim-state"
STATE_VERSION: Final = 1


class StateFileError(Exception):
    """A state file exists but cannot be used; it is left untouched."""


def write_state(path: str | os.PathLike[str], meters: dict[str, dict[str, Any]]) -> None:
    """Write ``meters`` (address → state) to ``path`` atomically (temp file + rename)."""
    target = Path(path)
    document = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "saved_at": datetime.now().isoformat(timespec="seconds"),
        "meters": meters,
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(document, f, ensure_ascii=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_state(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]] | None:
    """The meters' states in ``path``; None if there is no such file.

    Raises :class:`StateFileError` if the file is unreadable, not JSON, or not a
    state file of this format.
    """
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"cannot read state file {name}: {exc}") from None
    hint = "fix or remove it (it is left untouched), or give another --state file"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(f"state file {name} is corrupt ({exc}); {hint}") from None
    if (
        not isinstance(document, dict)
        or document.get("format") != STATE_FORMAT
        or not isinstance(document.get("meters"), dict)
    ):
        raise StateFileError(f"{name} is not a meter-sim state file; {hint}")
    if document.get("version") != STATE_VERSION:
        raise StateFileError(
            f"state file {name} has version {document.get('version')!r}, this feikong reads "
            f"version {STATE_VERSION}; {hint}"
        )
    meters: dict[str, dict[str, Any]] = document["meters"]
    for address, state in meters.items():
        if not isinstance(state, dict):
            raise StateFileError(f"state file {name}: meter {address} is not an object; {hint}")
    return meters


class StateKeeper:
    """Load a fleet's state at start, save it every ``interval_s`` real seconds and at stop."""

    def __init__(
        self, fleet: Fleet, path: str | os.PathLike[str], interval_s: float = 30.0
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"state save interval must be > 0 s, got {interval_s}")
        self.fleet = fleet
        self.path = Path(path)
        self.interval_s = interval_s
        self.saves = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    def load(self) -> int:
        """Restore the meters found in the file; returns how many (0 without a file).

        Addresses no meter has are logged as a warning and skipped. Raises
        :class:`StateFileError` if the file (or a meter's entry) is unusable.
        """
        states = read_state(self.path)
        if states is None:
            logger.info("no state file %s yet: meters start fresh", self.path)
            return 0
        try:
            unknown = self.fleet.restore_state(states)
        except ValueError as exc:
            raise StateFileError(
                f"state file {self.path}: {exc}; fix or remove the file (it is left untouched)"
            ) from None
        if unknown:
            shown = ", ".join(unknown[:5]) + (", …" if len(unknown) > 5 else "")
            logger.warning(
                "state file %s: %d meter(s) not in this fleet, ignored: %s",
                self.path,
                len(unknown),
                shown,
            )
        restored = len(states) - len(unknown)
        logger.info("restored %d meters from %s", restored, self.path)
        return restored

    async def save(self) -> None:
        """Save now (the states are taken at once; the file is written in a thread)."""
        async with self._lock:
            states = self.fleet.to_state()
            await asyncio.to_thread(write_state, self.path, states)
            self.saves += 1
        logger.debug("saved %d meters to %s", len(states), self.path)

    def start(self) -> None:
        """Save every ``interval_s`` real seconds until :meth:`stop`."""
        if self._task is None:
            self._stopping.clear()
            self._task = asyncio.create_task(self._autosave(), name="meter-sim state autosave")

    async def stop(self) -> None:
        """Stop the periodic saves and save once more."""
        task, self._task = self._task, None
        if task is not None:
            self._stopping.set()
            await task  # it is waiting, or finishing a save: never cut a save short
        await self.save()

    async def _autosave(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
                return
            except TimeoutError:
                pass
            try:
                await self.save()
            except OSError as exc:
                logger.error("cannot save state to %s: %s", self.path, exc)
