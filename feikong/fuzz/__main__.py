"""Run one fuzz target in this process: ``python -m feikong.fuzz TARGET [options] [PATH…]``.

With atheris installed (the default engine) the remaining arguments are libFuzzer's:
``-max_total_time=S``, ``-timeout=S`` (per input), ``-rss_limit_mb=M``,
``-artifact_prefix=DIR/`` and corpus directories (an empty one is filled with the
target's seeds) or input files (each is run once: how a saved crash is reproduced).
libFuzzer ends the process itself: exit 0 when the time is up, non-zero with a
``crash-…``, ``timeout-…`` or ``oom-…`` file written when an input failed.

``--engine random`` runs a plain mutation loop instead (no coverage, no atheris):
``--seconds S --timeout-s T --artifacts DIR [CORPUS_DIR]``.

Either way the harness writes its own figures as JSON to the file named by
``FEIKONG_FUZZ_STATS`` (inputs run and the slowest input's milliseconds, the first
input, warming up, aside), refreshed every half second because libFuzzer exits without
running Python's exit handlers; the slowest input itself goes to ``….slowest``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from . import TARGET_NAMES

INSTRUMENTED = ("protocol", "meter_sim", "breaker_sim", "headend", "prepaid", "tomllib", "csv")
"""Packages atheris instruments for coverage (ours, plus the pure-Python parsers we use)."""
NOT_INSTRUMENTED = ("prepaid.cis._ledger", "headend.db", "prepaid.db")
"""Database code, not parsing. Instrumented, the ledger's SQLAlchemy expressions pile up
(about 10 KB per input: the payments target reached 1.6 GiB in 5 minutes; the same code
uninstrumented stays flat), and coverage of it guides nothing."""


class Stats:
    """Inputs run and the slowest one, written to ``FEIKONG_FUZZ_STATS`` now and then."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.inputs = 0
        self.slowest_ms = 0.0
        self.slowest_len = 0
        self.started = time.monotonic()
        self._written = 0.0

    def record(self, elapsed_s: float, data: bytes) -> None:
        self.inputs += 1
        ms = elapsed_s * 1000.0
        if ms > self.slowest_ms and self.inputs > 1:  # the first input pays for warming up
            self.slowest_ms = ms
            self.slowest_len = len(data)
            if self.path:
                Path(f"{self.path}.slowest").write_bytes(data)
        now = time.monotonic()
        if now - self._written >= 0.5:
            self.write(now)

    def write(self, now: float | None = None) -> None:
        if not self.path:
            return
        now = time.monotonic() if now is None else now
        self._written = now
        data = {
            "peak_rss_mib": _peak_rss_mib(),
            "inputs": self.inputs,
            "seconds": round(now - self.started, 3),
            "slowest_ms": round(self.slowest_ms, 3),
            "slowest_len": self.slowest_len,
        }
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)


def _peak_rss_mib() -> float | None:
    """This process's peak resident memory (VmHWM: unlike ``ru_maxrss``, it does not count
    the parent's memory that a spawned child inherits until its exec)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def _fill_corpus(paths: list[str], seeds: list[bytes]) -> None:
    for text in paths:
        folder = Path(text)
        if folder.is_dir() and not any(folder.iterdir()):
            for i, seed in enumerate(seeds):
                (folder / f"seed-{i:04d}").write_bytes(seed)


def _atheris(name: str, argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=list(INSTRUMENTED), exclude=list(NOT_INSTRUMENTED)):
        from .targets import make_target

        target = make_target(name)
        seeds = target.seeds()
    _fill_corpus([a for a in argv if not a.startswith("-")], seeds)
    stats = Stats(os.environ.get("FEIKONG_FUZZ_STATS"))

    def one(data: bytes) -> None:
        start = time.perf_counter()
        try:
            target.run(data)
        except BaseException:
            stats.record(time.perf_counter() - start, data)
            stats.write()
            raise
        stats.record(time.perf_counter() - start, data)

    atheris.Setup([sys.argv[0], *argv], one)
    atheris.Fuzz()


class _Timeout(Exception):
    pass


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _Timeout("input ran past the per-input time limit")


def _mutate(rng: random.Random, data: bytes, pool: list[bytes], max_len: int) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(pos, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif op == 2:
            out[pos:pos] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and out:
            del out[pos : pos + rng.randint(1, 16)]
        elif op == 4 and out:
            end = min(len(out), pos + rng.randint(1, 32))
            out[pos:pos] = out[pos:end]
        elif op == 5:
            other = rng.choice(pool)
            a = rng.randrange(len(other) + 1)
            out[pos:] = other[a:]
        elif op == 6:
            out[pos:pos] = rng.choice(_TOKENS)
        elif op == 7 and out:
            out[min(pos, len(out) - 1)] = rng.choice(b"\x00\xff\x68\x16\xfe\x33,\n\r\"'=[]")
    return bytes(out[:max_len])


_TOKENS = (
    b"\x68",
    b"\x16",
    b"\xfe\xfe",
    b",",
    b"\n",
    b'"',
    b"\r\n",
    b"#",
    b"\xef\xbb\xbf",
    b"[[tariff]]\n",
    b" = ",
    b"-",
    b".",
    b"9" * 20,
    b"0",
)


def _random(name: str, argv: list[str]) -> int:
    seconds = 60.0
    timeout_s = 10.0
    artifacts = Path(".")
    max_len = 4096
    corpus: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--seconds":
            seconds = float(next(args))
        elif arg == "--timeout-s":
            timeout_s = float(next(args))
        elif arg == "--artifacts":
            artifacts = Path(next(args))
        elif arg == "--max-len":
            max_len = int(next(args))
        else:
            corpus.append(arg)
    from .targets import make_target

    target = make_target(name)
    seeds = target.seeds()
    _fill_corpus(corpus, seeds)
    pool = list(seeds)
    for text in corpus:
        path = Path(text)
        if path.is_dir():
            pool.extend(p.read_bytes() for p in sorted(path.iterdir()) if p.is_file())
    stats = Stats(os.environ.get("FEIKONG_FUZZ_STATS"))
    rng = random.Random(int.from_bytes(os.urandom(8), "little"))
    signal.signal(signal.SIGALRM, _alarm)
    deadline = time.monotonic() + seconds
    queue = list(pool)
    while time.monotonic() < deadline:
        data = queue.pop() if queue else _mutate(rng, rng.choice(pool), pool, max_len)
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            target.run(data)
        except BaseException as exc:
            signal.setitimer(signal.ITIMER_REAL, 0)
            kind = "timeout" if isinstance(exc, _Timeout) else "crash"
            artifacts.mkdir(parents=True, exist_ok=True)
            path = artifacts / f"{kind}-{hashlib.sha1(data).hexdigest()}"
            path.write_bytes(data)
            stats.record(time.perf_counter() - start, data)
            stats.write()
            sys.stderr.write(f"== {kind} in target {name}: {exc!r}\n")
            traceback.print_exc()
            sys.stderr.write(f"Test unit written to {path}\n")
            return 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        stats.record(time.perf_counter() - start, data)
    stats.write()
    target.close()
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGET_NAMES:
        sys.stderr.write(f"usage: python -m feikong.fuzz {{{','.join(TARGET_NAMES)}}} …\n")
        return 2
    name, rest = argv[0], argv[1:]
    engine = "atheris"
    if rest[:1] == ["--engine"] and len(rest) > 1:
        engine, rest = rest[1], rest[2:]
    if engine == "random":
        return _random(name, rest)
    if engine != "atheris":
        sys.stderr.write(f"unknown engine {engine!r}: atheris or random\n")
        return 2
    _atheris(name, rest)
    return 0  # pragma: no cover - atheris.Fuzz() exits the process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
