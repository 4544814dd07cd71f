"""Progress of head-end jobs (进度): queued → running → succeeded / failed, per job.

The head-end (``feikong headend run``, usually another process) carries the jobs
out; this widget re-reads their state from the database every ``poll_s`` seconds and
shows a progress bar (jobs ended / jobs) and a line per job. When every job has
ended it posts :class:`JobProgress.Finished`.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.timer import Timer
from textual.widgets import ProgressBar, Static

from headend.jobs import JobRecord, JobStore

__all__ = ["JobProgress"]


def describe(job: JobRecord) -> str:
    """One line about a job, as an operator reads it."""
    line = f"{job.kind.value} {job.address}: {job.state.value}"
    if job.attempts:
        line += f" (attempt {job.attempts} of {job.max_attempts})"
    result = job.result or {}
    if result.get("value") is not None:
        unit = result.get("unit") or ""
        line += f" — {result['value']} {unit}".rstrip()
    elif result.get("relay"):
        line += f" — relay {result['relay']}"
    if job.error:
        line += f" — {job.error}"
    if not job.done and job.state.value == "queued":
        line += " — waiting for the head-end (feikong headend run)"
    return line


class JobProgress(Vertical):
    """Tracks head-end jobs until they end."""

    DEFAULT_CSS = """
    JobProgress { height: auto; padding: 0 1; }
    JobProgress #job-lines { height: auto; }
    """

    class Finished(Message):
        """Every tracked job has ended."""

        def __init__(self, jobs: Sequence[JobRecord]) -> None:
            super().__init__()
            self.jobs = tuple(jobs)

    def __init__(self, engine: Engine, *, poll_s: float = 0.5, id: str | None = None) -> None:
        super().__init__(id=id)
        self.store = JobStore(engine)
        self.poll_s = poll_s
        self.job_ids: list[str] = []
        self.jobs: list[JobRecord] = []
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=1, show_eta=False, id="job-bar")
        yield Static("no command sent yet", id="job-lines")

    def track(self, job_ids: Sequence[str]) -> None:
        """Follow these jobs (replacing the ones followed before)."""
        self.job_ids = list(job_ids)
        self.query_one(ProgressBar).update(total=max(1, len(self.job_ids)), progress=0)
        if self._timer is not None:
            self._timer.stop()
        self.poll()
        if not self.finished:
            self._timer = self.set_interval(self.poll_s, self.poll)

    @property
    def finished(self) -> bool:
        return bool(self.jobs) and all(j.done for j in self.jobs)

    def poll(self) -> None:
        """Re-read the jobs now (also called by the timer)."""
        jobs = [j for j in (self.store.get(i) for i in self.job_ids) if j is not None]
        self.jobs = jobs
        ended = sum(1 for j in jobs if j.done)
        self.query_one(ProgressBar).update(progress=ended)
        self.query_one("#job-lines", Static).update(
            "\n".join(describe(j) for j in jobs) or "no command sent yet"
        )
        if self.finished:
            if self._timer is not None:
                self._timer.stop()
                self._timer = None
            self.post_message(self.Finished(jobs))
