"""Headless Debian Chromium driven over the DevTools protocol (CDP) with aiohttp.

No browser download and no extra package: Chromium is Debian's ``/usr/bin/chromium``
(``.ci/debian-packages``), started with a fresh profile and every background service
off; the test talks to the page over the DevTools WebSocket (aiohttp, which
textual-serve brings) — navigate, evaluate JavaScript, type text and keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
    "--window-size=1400,900",
)


CAPTURE = r"""
// Keep a plain-text copy of what the server sends the page's terminal (the canvas
// renderer keeps no text in the DOM): every WebSocket message, decoded, escapes removed.
window.__screenText = "";
(() => {
  const Native = window.WebSocket;
  const decoder = new TextDecoder();
  const clean = (text) => text.replace(/\x1b\[[0-9;?<>=]*[ -\/]*[@-~]/g, " ")
                              .replace(/\x1b[\]P_^][^\x07\x1b]*(\x07|\x1b\\)/g, " ");
  window.WebSocket = function (...args) {
    const socket = new Native(...args);
    socket.addEventListener("message", (event) => {
      const data = event.data;
      if (typeof data === "string") {
        window.__screenText += clean(data);
      } else if (data instanceof ArrayBuffer) {
        window.__screenText += clean(decoder.decode(data));
      } else if (data instanceof Blob) {
        data.arrayBuffer().then((buffer) => {
          window.__screenText += clean(decoder.decode(buffer));
        });
      }
    });
    return socket;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, Native);
})();
"""


def available() -> bool:
    return Path(CHROMIUM).exists()


class Page:
    """One page target: ``call`` a CDP method, ``evaluate`` JavaScript, type."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        number = next(self._ids)
        await self.ws.send_str(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = await self.ws.receive_json(timeout=30)
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def screen_text(self) -> str:
        """Everything the terminal was sent so far, as plain text."""
        return str(await self.evaluate("window.__screenText") or "")

    async def focus_terminal(self) -> None:
        await self.evaluate("document.querySelector('.xterm-helper-textarea').focus()")

    async def type(self, text: str) -> None:
        await self.call("Input.insertText", text=text)

    async def key(self, key: str, code: int) -> None:
        for kind in ("rawKeyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=key,
                windowsVirtualKeyCode=code,
                nativeVirtualKeyCode=code,
            )

    async def wait_for(self, expression: str, *, timeout: float = 30.0) -> Any:
        """Evaluate ``expression`` until it is truthy (page state, not a fixed sleep)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if loop.time() > end:
                tail = (await self.screen_text())[-600:]
                raise TimeoutError(f"the page never satisfied {expression!r}; it shows …{tail!r}")
            await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def chromium_page(url: str) -> AsyncIterator[Page]:
    """Chromium with a fresh profile, showing ``url``; stopped and removed afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="feikong-chromium-"))
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            if process.poll() is not None:
                raise RuntimeError(f"chromium exited with {process.returncode}")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
                targets = await reply.json()
            target = next(t for t in targets if t.get("type") == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = Page(ws)
                await page.call("Page.enable")
                # the page links a web font; offline (CI) it must not hold the page up
                await page.call("Network.enable")
                await page.call("Network.setBlockedURLs", urls=["*fonts.googleapis.com*"])
                await page.call("Page.addScriptToEvaluateOnNewDocument", source=CAPTURE)
                await page.call("Page.navigate", url=url)
                yield page
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)
