"""Throw-away servers on loopback for benches and tests: mosquitto and PostgreSQL.

:class:`Mosquitto` runs Debian's ``mosquitto`` broker on a free 127.0.0.1 port
with a generated config (anonymous, no persistence); :class:`PostgresCluster`
makes a cluster with ``initdb`` in a temporary directory and runs it with
``pg_ctl`` on a free port (as the ``postgres`` user when started by root, since
initdb refuses root). Both are context managers::

    with Mosquitto.start_new() as broker, PostgresCluster.start_new() as pg:
        print(broker.url, pg.url)    # mqtt://127.0.0.1:PORT  postgresql+psycopg://…

They raise :class:`ServerUnavailableError` (saying which package to install) when
the binaries are missing, and :class:`ServerStartError` with the server's log
when a server does not come up.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final, Self

__all__ = [
    "Mosquitto",
    "PostgresCluster",
    "ServerStartError",
    "ServerUnavailableError",
    "free_port",
    "mosquitto_binary",
    "postgres_tools",
]

START_TIMEOUT_S: Final = 20.0


class ServerUnavailableError(RuntimeError):
    """The server's programs are not installed (the message names the package)."""


class ServerStartError(RuntimeError):
    """A server did not start; the message carries the end of its log."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    """The broker executable; :class:`ServerUnavailableError` if not installed."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        raise ServerUnavailableError(
            "the MQTT broker mosquitto is not installed (apt-get install mosquitto)"
        )
    return found


def _pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def postgres_tools() -> tuple[str, str]:
    """``(initdb, pg_ctl)``; :class:`ServerUnavailableError` if not installed."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise ServerUnavailableError(
            "the PostgreSQL server tools (initdb, pg_ctl) are not installed "
            "(apt-get install postgresql)"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise ServerUnavailableError(
            "the PostgreSQL driver psycopg is not installed (pip install 'psycopg[binary]')"
        ) from None
    return initdb, pg_ctl


def _wait_port(host: str, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise ServerStartError(
                f"the server exited with code {process.returncode} at start: "
                f"{log.read_text(errors='replace')[-2000:]}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"nothing accepted connections on {host}:{port} within {START_TIMEOUT_S:g} s"
                ) from None
            time.sleep(0.01)  # an external process starting: there is nothing to await


class Mosquitto:
    """A mosquitto process on ``127.0.0.1:port``, its config and log in ``directory``."""

    host = "127.0.0.1"

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = mosquitto_binary()
        self.directory = directory
        self.port = port or free_port()
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 100000\n"
            "log_dest stderr\n"
        )
        self.log = directory / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._owned_dir: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def start_new(cls) -> Self:
        """A running broker in a new temporary directory (removed by :meth:`stop`)."""
        tmp = tempfile.TemporaryDirectory(prefix="feikong-mosquitto-")
        broker = cls(Path(tmp.name))
        broker._owned_dir = tmp
        broker.start()
        return broker

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT``."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker; return once it accepts connections."""
        if self.running:
            return
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=log
            )
        try:
            _wait_port(self.host, self.port, self._process, self.log)
        except ServerStartError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the broker (clients are disconnected)."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._owned_dir is not None:
            self._owned_dir.cleanup()
            self._owned_dir = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class PostgresCluster:
    """A throw-away PostgreSQL cluster on ``127.0.0.1:port`` (trust authentication).

    ``settings`` are extra server settings (``-c name=value``), e.g.
    ``{"fsync": "off"}`` for tests.
    """

    host = "127.0.0.1"

    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.initdb, self.pg_ctl = postgres_tools()
        self.settings = dict(settings or {})
        self.port = free_port()
        self.base: Path | None = None
        self._prefix: list[str] = []
        self.user = os.environ.get("USER", "postgres")
        self.started = False

    @classmethod
    def start_new(cls, settings: dict[str, str] | None = None) -> Self:
        cluster = cls(settings)
        cluster.start()
        return cluster

    @property
    def url(self) -> str:
        """``postgresql+psycopg://USER@127.0.0.1:PORT/postgres``."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/postgres"

    @property
    def data(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._prefix, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.base / "log" if self.base is not None else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise ServerStartError(
                f"{Path(args[0]).name} failed: {(done.stdout + done.stderr).strip()} {tail}"
            )

    def start(self) -> None:
        """initdb and start the server; return once it accepts connections."""
        if self.started:
            return
        # Not under a private temporary directory: the server may run as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="feikong-pg-"))
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise ServerUnavailableError("running as root needs runuser to start PostgreSQL")
            shutil.chown(self.base, "postgres")
            self.base.chmod(0o755)
            self._prefix = ["runuser", "-u", "postgres", "--"]
            self.user = "postgres"
        self._run(self.initdb, "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        options = f"-p {self.port} -k {self.base} -c listen_addresses={self.host}"
        for name, value in self.settings.items():
            options += f" -c {name}={value}"
        try:
            self._run(
                self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.base / "log"),
                "-w", "start",
            )  # fmt: skip
        except ServerStartError:
            shutil.rmtree(self.base, ignore_errors=True)
            raise
        self.started = True

    def stop(self) -> None:
        """Stop the server at once and remove its files."""
        if self.started:
            self.started = False
            with contextlib.suppress(ServerStartError):  # already gone; the files go anyway
                self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop")
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
