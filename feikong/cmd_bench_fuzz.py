"""``feikong bench fuzz``: coverage-guided fuzzing of every parser and importer, for N minutes.

Each target (:mod:`feikong.fuzz`) runs in a process of its own (``python -m
feikong.fuzz``) under atheris/libFuzzer, one after the other, with a per-input time
limit (``--timeout-s``) and a memory limit (``--rss-limit-mib``). Per target it prints
``key=value`` lines::

    target=parser inputs=… inputs_per_s=… coverage=… features=… corpus=… crashes=0
        slowest_ms=… peak_rss_mib=… cpu_s=…

``coverage`` is libFuzzer's count of covered code edges (``cov:``) and ``features`` its
finer count (``ft:``). A crash, hang or memory blow-up leaves its input in
``OUT/TARGET/`` (``crash-…``, ``timeout-…``, ``oom-…``); the command prints it and how to
reproduce it, and exits 1. ``--reproduce FILE`` runs one saved input through the
harness in this process and prints the traceback. Without atheris (``--engine random``,
or where no wheel exists) a plain mutation loop runs instead, with no coverage figure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

from .fuzz import TARGET_NAMES
from .output import console, fail, print_json

__all__ = ["FuzzResult", "fuzz_command", "register", "run_target"]

_COV = re.compile(r"cov: (\d+) ft: (\d+) corp: (\d+)")
_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_ARTIFACT = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")


@dataclass(frozen=True, slots=True)
class FuzzResult:
    """What one target's run did."""

    target: str
    engine: str
    seconds: float
    inputs: int
    coverage: int | None
    features: int | None
    corpus: int | None
    crashes: int
    slowest_ms: float
    peak_rss_mib: float
    cpu_s: float
    exit_code: int
    reproducer: str | None
    reason: str | None
    slowest_input: str | None

    @property
    def inputs_per_s(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0


def atheris_available() -> bool:
    """True when atheris imports in this interpreter (a wheel exists for it)."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def run_target(
    target: str,
    seconds: int,
    out: Path,
    *,
    engine: str = "atheris",
    timeout_s: int = 10,
    rss_limit_mib: int = 2048,
    max_len: int = 4096,
) -> FuzzResult:
    """Fuzz ``target`` for ``seconds`` in a child process; corpus and findings in ``out/target``."""
    folder = out / target
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    stats_path = folder / "stats.json"
    stats_path.unlink(missing_ok=True)
    (folder / "stats.json.slowest").unlink(missing_ok=True)
    log_path = folder / "fuzz.log"
    command = [sys.executable, "-m", "feikong.fuzz", target]
    if engine == "atheris":
        command += [
            f"-max_total_time={seconds}",
            f"-timeout={timeout_s}",
            f"-rss_limit_mb={rss_limit_mib}",
            f"-max_len={max_len}",
            f"-artifact_prefix={folder}/",
            "-print_final_stats=1",
            str(corpus),
        ]
    else:
        command += [
            "--engine",
            "random",
            "--seconds",
            str(seconds),
            "--timeout-s",
            str(timeout_s),
            "--max-len",
            str(max_len),
            "--artifacts",
            str(folder),
            str(corpus),
        ]
    shm = Path("/dev/shm")
    workdir = Path(tempfile.mkdtemp(prefix="feikong-fuzz-", dir=shm if shm.is_dir() else None))
    env = {
        **os.environ,
        "FEIKONG_FUZZ_STATS": str(stats_path),
        "FEIKONG_FUZZ_WORKDIR": str(workdir),
        "PYTHONHASHSEED": "0",
    }
    before = {p.name for p in folder.iterdir() if p.name.startswith(_ARTIFACT)}
    started = time.monotonic()
    with log_path.open("wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        # A generous wall-clock guard: libFuzzer stops itself at max_total_time.
        deadline = started + seconds + 120 + timeout_s
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                child.kill()
                pid, status, usage = os.wait4(child.pid, 0)
                break
            time.sleep(0.2)
    child.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - started
    log_text = log_path.read_text(encoding="utf-8", errors="replace")
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    inputs = int(stats.get("inputs", 0))
    executed = _EXECUTED.search(log_text)
    if executed:
        inputs = max(inputs, int(executed.group(1)))
    coverage = features = corp = None
    for match in _COV.finditer(log_text):
        coverage, features, corp = (int(g) for g in match.groups())
    artifacts = sorted(
        p for p in folder.iterdir() if p.name.startswith(_ARTIFACT) and p.name not in before
    )
    failed = child.returncode != 0 or bool(artifacts)
    reason = _reason(log_text) if failed else None
    if failed and reason is None:
        reason = f"exit code {child.returncode}"
    return FuzzResult(
        target=target,
        engine=engine,
        seconds=round(elapsed, 1),
        inputs=inputs,
        coverage=coverage,
        features=features,
        corpus=corp,
        crashes=1 if failed else 0,
        slowest_ms=float(stats.get("slowest_ms", 0.0)),
        peak_rss_mib=float(stats.get("peak_rss_mib") or round(usage.ru_maxrss / 1024, 1)),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 1),
        exit_code=child.returncode,
        reproducer=str(artifacts[0]) if artifacts else None,
        reason=reason,
        slowest_input=str(slowest) if (slowest := folder / "stats.json.slowest").exists() else None,
    )


def _reason(log: str) -> str | None:
    """The first line that says what went wrong, from the child's log."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if "Uncaught Python exception" in line and i + 1 < len(lines):
            return lines[i + 1].strip()
        if line.startswith("== crash") or line.startswith("== timeout"):
            return line[3:].strip()
        if "ERROR: libFuzzer:" in line:
            return line.split("ERROR: libFuzzer:", 1)[1].strip()
    return None


def register(bench_app: typer.Typer) -> None:
    """Add ``fuzz`` to the ``feikong bench`` group."""
    bench_app.command("fuzz")(fuzz_command)


def fuzz_command(
    target: Annotated[
        str,
        typer.Option(
            "--target", help=f"What to fuzz: {' | '.join(TARGET_NAMES)} | all (one after another)."
        ),
    ] = "all",
    minutes: Annotated[
        float, typer.Option("--minutes", min=0.0, help="Minutes per target (0.05 = 3 s).")
    ] = 5.0,
    timeout_s: Annotated[
        int, typer.Option("--timeout-s", min=1, help="Per-input time limit; longer is a hang.")
    ] = 10,
    rss_limit_mib: Annotated[
        int, typer.Option("--rss-limit-mib", min=64, help="Memory limit of a target's process.")
    ] = 2048,
    max_len: Annotated[int, typer.Option("--max-len", min=16, help="Largest input, bytes.")] = 4096,
    engine: Annotated[
        str,
        typer.Option(
            "--engine", help="atheris (coverage-guided) | random (plain mutation) | auto."
        ),
    ] = "auto",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Corpus and findings (default: a temporary directory)."),
    ] = None,
    reproduce: Annotated[
        Path | None,
        typer.Option("--reproduce", help="Run one saved input through --target's harness."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Fuzz the stream parser, meter simulator, archive and payments CSV and tariff files."""
    names = list(TARGET_NAMES) if target == "all" else [target]
    if any(n not in TARGET_NAMES for n in names):
        fail(f"--target must be one of {', '.join(TARGET_NAMES)} or all, got {target!r}", 2)
    if reproduce is not None:
        _reproduce(names, reproduce)
        return
    if engine == "auto":
        engine = "atheris" if atheris_available() else "random"
    elif engine not in ("atheris", "random"):
        fail(f"--engine must be atheris, random or auto, got {engine!r}", 2)
    elif engine == "atheris" and not atheris_available():
        fail("atheris is not installed: pip install -e '.[test]' (or use --engine random)", 2)
    seconds = max(1, round(minutes * 60))
    folder = out or Path(tempfile.mkdtemp(prefix="feikong-fuzz-"))
    folder.mkdir(parents=True, exist_ok=True)
    if not as_json:
        console.print(
            f"fuzzing {', '.join(names)} for {seconds} s each with {engine}; "
            f"corpus and findings in {folder}",
            highlight=False,
            soft_wrap=True,
        )
    results: list[FuzzResult] = []
    for name in names:
        with console.status(f"fuzzing {name} for {seconds} s…", spinner="dots"):
            result = run_target(
                name,
                seconds,
                folder,
                engine=engine,
                timeout_s=timeout_s,
                rss_limit_mib=rss_limit_mib,
                max_len=max_len,
            )
        results.append(result)
        if not as_json:
            _print(result)
    load = os.getloadavg()[0]
    if as_json:
        print_json(
            {
                "out": str(folder),
                "load_1m_after": round(load, 2),
                "targets": [
                    {**asdict(r), "inputs_per_s": round(r.inputs_per_s, 1)} for r in results
                ],
            }
        )
    else:
        console.print(f"load_1m_after={load:.2f}", highlight=False)
    if any(r.crashes for r in results):
        raise typer.Exit(1)


def _print(r: FuzzResult) -> None:
    coverage = (
        f"coverage={r.coverage} features={r.features} corpus={r.corpus}"
        if r.coverage is not None
        else "coverage=n/a"
    )
    console.print(
        f"target={r.target} inputs={r.inputs} inputs_per_s={r.inputs_per_s:.0f} {coverage} "
        f"crashes={r.crashes} slowest_ms={r.slowest_ms:.1f} peak_rss_mib={r.peak_rss_mib:.0f} "
        f"cpu_s={r.cpu_s:.0f} seconds={r.seconds:.0f}",
        highlight=False,
        soft_wrap=True,
    )
    if r.crashes:
        console.print(
            f"[bold red]{r.target}: {r.reason}[/]\n  reproducer: {r.reproducer}\n"
            f"  reproduce:  feikong bench fuzz --target {r.target} --reproduce {r.reproducer}",
            highlight=False,
            soft_wrap=True,
        )


def _reproduce(names: list[str], path: Path) -> None:
    if len(names) != 1:
        fail("--reproduce needs one --target (the harness the input was found by)", 2)
    try:
        data = path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {str(path)!r}: {exc.strerror or exc}", 2)
    from .fuzz.targets import make_target

    harness = make_target(names[0])
    started = time.perf_counter()
    try:
        harness.run(data)
    except Exception:
        console.print(traceback.format_exc(), highlight=False, markup=False)
        console.print(f"[bold red]{names[0]}: {path} fails[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    finally:
        harness.close()
    ms = (time.perf_counter() - started) * 1000
    console.print(
        f"{names[0]}: {path} passes ({len(data)} bytes, {ms:.1f} ms)",
        highlight=False,
        soft_wrap=True,
    )
