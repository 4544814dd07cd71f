"""The code stays lint-clean and typed: ruff and mypy run as part of the tests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PACKAGES = ["protocol", "breaker_sim", "meter_sim", "headend", "prepaid", "console", "feikong"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_check() -> None:
    result = _run(str(BIN / "ruff"), "check", *PACKAGES, "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", *PACKAGES, "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy() -> None:
    """Strict on protocol/ (see pyproject), checked everywhere else."""
    result = _run(str(BIN / "mypy"), *PACKAGES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_starts_with_the_two_commands() -> None:
    lines = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.strip()]
    commands = [ln for ln in lines[:12] if ln.startswith("python3 -m venv")]
    assert len(commands) == 2
    assert commands[0].endswith("feikong demo")
    assert re.search(r"pytest", commands[1])
    # .ci/run runs exactly that second line
    assert "grep -m1 -E '^python3 -m venv .*pytest' README.md" in (ROOT / ".ci/run").read_text()


def test_layering() -> None:
    """protocol imports nothing of ours; meter_sim and headend never import each other."""
    rules = {
        "protocol": {"breaker_sim", "meter_sim", "headend", "prepaid", "console", "feikong"},
        "breaker_sim": {"meter_sim", "headend", "prepaid", "console", "feikong"},
        "meter_sim": {"headend", "prepaid", "console", "feikong"},
        "headend": {"meter_sim", "breaker_sim", "prepaid", "console", "feikong"},
        "prepaid": {"meter_sim", "breaker_sim", "console", "feikong"},
        "console": {"feikong", "meter_sim", "breaker_sim"},
    }
    bad = []
    for package, forbidden in rules.items():
        for path in (ROOT / package).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for name in forbidden:
                if re.search(rf"^\s*(from|import)\s+{name}\b", text, re.M):
                    bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad
