"""``feikong console --web``: the console served by textual-serve, opened in headless Chromium.

The server runs as the user would start it (its own process, a free loopback port,
the test's database); Debian's Chromium loads the page, the test logs in by typing
into the page's terminal and sees the dashboard's overview of the supply units.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from . import browser
from .world import PASSWORD, World

pytestmark = pytest.mark.skipif(
    not browser.available() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it; apt-get install chromium)",
)


def _command(port: int, db: str) -> list[str]:
    return [sys.executable, "-m", "feikong", "console", "--web", "--port", str(port), "--db", db]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"feikong console --web exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if loop.time() > end:
                raise TimeoutError(f"nothing listens on port {port}") from None
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return


async def test_the_web_console_logs_in_and_shows_the_dashboard(
    world: World, tmp_path: Path
) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "FEIKONG_DB"}
    log = (tmp_path / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "feikong",
            "console",
            "--web",
            "--port",
            str(port),
            "--db",
            world.url,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its consoles too are stopped with the group
    )
    try:
        await _listening(port, server)
        async with browser.chromium_page(f"http://127.0.0.1:{port}/") as page:
            await page.wait_for("window.__screenText.includes('log in')")
            await page.focus_terminal()
            await page.type("operator")
            await page.key("Tab", 9)  # to the password field (the browser moves on too)
            # the password field has the focus when its cursor splits the placeholder
            await page.wait_for(r"/p +assword/.test(window.__screenText)")
            await page.focus_terminal()
            await page.type(PASSWORD)
            bullets = "(window.__screenText.match(/•/g) || []).length"
            await page.wait_for(f"{bullets} >= {len(PASSWORD)}")  # typed, masked
            await page.key("Enter", 13)
            await page.wait_for("window.__screenText.includes('supply unit')")
            await page.wait_for("window.__screenText.includes('33002')")
            text = await page.screen_text()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
    for seen in ("Dashboard", "Customers", "Meters", "费控概况", "alarms", "33001", "33002"):
        assert seen in text, seen
    # the operator may not see the audit log: its tab is not there
    assert "Audit" not in text


def test_a_port_in_use_is_a_clear_error(world: World) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            _command(port, world.url),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"cannot serve the console on 127.0.0.1:{port}" in done.stderr
    assert "choose another --port" in done.stderr
    assert "Traceback" not in done.stderr
