"""Fixtures for every test package: a real MQTT broker (Debian's ``mosquitto``).

``mosquitto`` (session scope)
    One broker for the whole run, started on a free 127.0.0.1 port with a
    generated config (``listener PORT 127.0.0.1``, ``allow_anonymous true``,
    ``persistence false``) in a temporary directory. It yields a
    :class:`Mosquitto` with ``host``, ``port`` and ``url`` (``mqtt://127.0.0.1:PORT``)
    and is stopped at the end of the session. Share it between tests by giving
    each test its own topics: use the ``mqtt_prefix`` fixture (a unique topic
    prefix per test, as aiomqtt's own tests do), e.g.
    ``f"{mosquitto.url}/{mqtt_prefix}"``.

``private_mosquitto`` (function scope)
    A broker of the test's own, for tests that stop and restart it
    (``.stop()``, ``.start()`` again on the same port).

``mqtt_prefix``
    A topic prefix no other test uses (``test/<random>/meters``).

Tests that use a broker are marked ``broker`` automatically. Where the
``mosquitto`` binary is missing they are skipped with the reason — except in
CI (the ``CI`` environment variable is set), where that is a failure:
``.ci/debian-packages`` lists mosquitto, so CI always has it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BROKER_FIXTURES = frozenset({"mosquitto", "private_mosquitto"})
START_TIMEOUT_S = 10.0


def _mosquitto_binary() -> str:
    """The broker executable, or skip (fail in CI) saying how to get it."""
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None,
    )
    if found is None:
        reason = "the MQTT broker mosquitto is not installed (apt-get install mosquitto)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must have it (.ci/debian-packages)")
        pytest.skip(reason)
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mosquitto:
    """A mosquitto process listening on ``host:port`` (loopback), config in ``directory``."""

    host = "127.0.0.1"

    def __init__(self, binary: str, directory: Path, port: int | None = None) -> None:
        self.binary = binary
        self.directory = directory
        self.port = port or _free_port()
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} {self.host}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
        )
        self._process: subprocess.Popen[bytes] | None = None
        self._log = directory / "mosquitto.log"

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT`` (append ``/prefix`` for a transport URL)."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the broker and return once it accepts connections."""
        if self.running:
            return
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with code {self._process.returncode} at start: "
                    f"{self._log.read_text(errors='replace')[-2000:]}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"mosquitto did not accept connections on {self.host}:{self.port} "
                        f"within {START_TIMEOUT_S:g} s"
                    ) from None
                time.sleep(0.01)  # start-up of an external process: nothing to await

    def stop(self) -> None:
        """Stop the broker (every client connection drops)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __repr__(self) -> str:
        return f"<Mosquitto {self.url} {'running' if self.running else 'stopped'}>"


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """The session's MQTT broker on a free loopback port (see the module doc)."""
    broker = Mosquitto(_mosquitto_binary(), tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker for this test alone (it may stop and restart it)."""
    broker = Mosquitto(_mosquitto_binary(), tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mqtt_prefix() -> str:
    """A topic prefix unique to this test, so tests sharing the broker never collide."""
    return f"test/{uuid.uuid4().hex[:12]}/meters"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a broker ``broker`` (``-m 'not broker'`` skips them)."""
    for item in items:
        if BROKER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.broker)
