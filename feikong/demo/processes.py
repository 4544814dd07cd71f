"""The demo's processes (进程): start, watch and stop them, each with its own log file.

A :class:`Part` is one child process (``feikong breaker-sim …`` or
``python -m feikong.demo.parts …``) whose output goes to ``logs/NAME.log`` in the
demo's output directory. :meth:`Part.wait_port` waits until it listens,
:meth:`Part.check` raises :class:`PartFailed` (with the end of its log) when it died,
and :meth:`Part.stop` sends SIGTERM, then SIGKILL after a grace period. Only the
processes started here are ever signalled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

__all__ = ["Part", "PartFailed", "free_port_block"]


class PartFailed(RuntimeError):
    """A part of the demo exited or did not come up; the message has its log's last lines."""


def free_port_block(n: int, tries: int = 50) -> int:
    """The first of ``n`` consecutive free TCP ports on 127.0.0.1."""
    for _ in range(tries):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first: int = s.getsockname()[1]
        if first + n > 65535:
            continue
        if all(_free(p) for p in range(first, first + n)):
            return first
    raise PartFailed(f"no {n} consecutive free TCP ports on 127.0.0.1")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Part:
    """One process of the demo (see the module doc)."""

    def __init__(self, name: str, args: list[str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Part:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
        )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def check(self) -> None:
        """Raise :class:`PartFailed` if the process has exited (with a failure code)."""
        if self.proc is None:
            raise PartFailed(f"{self.name} was never started")
        code = self.proc.poll()
        if code is not None and code != 0:
            raise PartFailed(
                f"{self.name} exited with code {code}; its log {self.log_path} ends:\n{self.tail()}"
            )

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def wait_port(self, port: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if self.exited():
                raise PartFailed(f"{self.name} exited before listening on port {port}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise PartFailed(
            f"{self.name} did not listen on 127.0.0.1:{port} within {timeout:.0f} s; "
            f"its log {self.log_path} ends:\n{self.tail()}"
        )

    def wait_text(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            if text in self.tail(200):
                return
            if self.exited():
                raise PartFailed(f"{self.name} exited early; its log ends:\n{self.tail()}")
            time.sleep(0.05)
        raise PartFailed(
            f"{self.name} did not start within {timeout:.0f} s; its log {self.log_path} "
            f"ends:\n{self.tail()}"
        )

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None
