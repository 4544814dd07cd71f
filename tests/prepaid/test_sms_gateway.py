"""The HTTP SMS gateway adapter against a real HTTP server on a loopback port (no mocks)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from prepaid.db import migrate, open_database
from prepaid.messages import (
    DeliveryOutcome,
    FileSink,
    GatewayError,
    HttpGateway,
    MessageStatus,
    Outbox,
    OutgoingSms,
    Recipient,
    open_gateway,
)
from protocol.clock import SteppedClock

SMS = OutgoingSms(7, "13800138000", "【费控中心】您好", "C001/custom/e1", "custom", 1)


class FakeSmsPlatform:
    """An SMS platform on 127.0.0.1: each path answers its own way; requests are kept.

    /ok → 200 {"id", "status": "delivered"}; /accepted → 202; /refused → 200 with
    {"status": "rejected"}; /fail → 500; /bad → 400; /flaky → 503 once, then 200;
    /slow → no answer until the test ends (the client times out).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.release = threading.Event()
        self.flaky_calls = 0
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: dict[str, Any] | str) -> None:
                data = (json.dumps(body) if isinstance(body, dict) else body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length).decode("utf-8"))
                platform.requests.append((self.path, payload, dict(self.headers)))
                ref = f"gw-{payload['id']}"
                if self.path == "/ok":
                    self._reply(200, {"id": ref, "status": "delivered"})
                elif self.path == "/accepted":
                    self._reply(202, {"id": ref})
                elif self.path == "/refused":
                    self._reply(200, {"status": "rejected", "error": "number on blacklist"})
                elif self.path == "/fail":
                    self._reply(500, "internal error")
                elif self.path == "/bad":
                    self._reply(400, {"error": "text too long"})
                elif self.path == "/flaky":
                    platform.flaky_calls += 1
                    if platform.flaky_calls == 1:
                        self._reply(503, "busy")
                    else:
                        self._reply(200, {"id": ref})
                elif self.path == "/slow":
                    platform.release.wait(10)
                else:
                    self._reply(404, "no such path")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def url(self, path: str) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]


@pytest.fixture
def platform() -> Iterator[FakeSmsPlatform]:
    server = FakeSmsPlatform()
    server.thread.start()
    yield server
    server.release.set()
    server.server.shutdown()
    server.server.server_close()


def test_200_is_delivered_and_the_request_is_json(platform: FakeSmsPlatform) -> None:
    gateway = HttpGateway(platform.url("/ok"), headers={"X-Api-Key": "k1"})
    result = gateway.send(SMS)
    assert result.outcome is DeliveryOutcome.DELIVERED
    assert result.gateway_ref == "gw-7" and result.error is None
    assert [t.http_status for t in result.tries] == [200]
    path, payload, headers = platform.requests[0]
    assert path == "/ok"
    assert payload == {
        "id": 7,
        "to": "13800138000",
        "text": "【费控中心】您好",
        "kind": "custom",
        "episode": "C001/custom/e1",
        "segments": 1,
    }
    assert headers["X-Api-Key"] == "k1"
    assert headers["Content-Type"] == "application/json; charset=utf-8"


def test_202_is_sent_and_a_body_status_wins(platform: FakeSmsPlatform) -> None:
    accepted = HttpGateway(platform.url("/accepted")).send(SMS)
    assert (accepted.outcome, accepted.gateway_ref) == (DeliveryOutcome.SENT, "gw-7")
    refused = HttpGateway(platform.url("/refused")).send(SMS)
    assert refused.outcome is DeliveryOutcome.FAILED
    assert refused.error == "gateway refused the message: number on blacklist"
    assert len(refused.tries) == 1  # a refusal is not retried


def test_500_is_retried_then_failed(platform: FakeSmsPlatform) -> None:
    result = HttpGateway(platform.url("/fail"), retries=2).send(SMS)
    assert result.outcome is DeliveryOutcome.FAILED
    assert [t.http_status for t in result.tries] == [500, 500, 500]
    assert result.error == "HTTP 500: internal error"
    assert platform.paths() == ["/fail"] * 3


def test_400_fails_at_once_and_503_then_200_succeeds(platform: FakeSmsPlatform) -> None:
    bad = HttpGateway(platform.url("/bad"), retries=3).send(SMS)
    assert bad.outcome is DeliveryOutcome.FAILED and len(bad.tries) == 1
    assert bad.error is not None and bad.error.startswith("HTTP 400:")
    assert "text too long" in bad.error
    flaky = HttpGateway(platform.url("/flaky"), retries=1).send(SMS)
    assert flaky.outcome is DeliveryOutcome.DELIVERED
    assert [t.http_status for t in flaky.tries] == [503, 200]


def test_timeout_is_retried_then_failed(platform: FakeSmsPlatform) -> None:
    result = HttpGateway(platform.url("/slow"), timeout_s=0.2, retries=1).send(SMS)
    assert result.outcome is DeliveryOutcome.FAILED
    assert [t.http_status for t in result.tries] == [None, None]
    assert result.error == f"no answer from {platform.url('/slow')} within 0.2 s"


def test_connection_refused_is_a_clear_failure() -> None:
    probe = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = probe.server_address[1]
    probe.server_close()  # nothing listens there now
    result = HttpGateway(f"http://127.0.0.1:{port}/sms", retries=0).send(SMS)
    assert result.outcome is DeliveryOutcome.FAILED
    assert result.error is not None and result.error.startswith(
        f"cannot reach http://127.0.0.1:{port}/sms"
    )


def test_bad_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="not an SMS gateway URL"):
        HttpGateway("ftp://example.com/sms")
    with pytest.raises(GatewayError, match="timeout must be > 0"):
        HttpGateway("http://127.0.0.1/sms", timeout_s=0)
    with pytest.raises(GatewayError, match="unknown SMS gateway 'smtp:x'"):
        open_gateway("smtp:x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(GatewayError, match="cannot append to the SMS sink file"):
        open_gateway(f"file:{blocker}/sms.jsonl")
    assert isinstance(open_gateway(f"file:{tmp_path}/sms.jsonl"), FileSink)
    assert isinstance(open_gateway("http://127.0.0.1:1/sms"), HttpGateway)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_database(f"sqlite:///{tmp_path / 'feikong.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def test_outbox_dispatch_through_http_records_each_status(
    platform: FakeSmsPlatform, engine: Engine
) -> None:
    outbox = Outbox(engine, clock=SteppedClock(datetime(2026, 3, 5, 8, 0)))
    for i in range(3):
        who = Recipient(f"C00{i}", f"客户{i}", f"1390000000{i}")
        outbox.enqueue(who, "custom", {"text": "明日检修停电。"}, episode="notice-1")
    report = outbox.dispatch(HttpGateway(platform.url("/ok")), limit=1)
    assert report.counts == {"delivered": 1}
    report = outbox.dispatch(HttpGateway(platform.url("/accepted")), limit=1)
    assert report.counts == {"sent": 1}
    report = outbox.dispatch(HttpGateway(platform.url("/fail"), retries=1))
    assert report.counts == {"failed": 1}
    by_customer = {m.customer_no: m for m in outbox.messages()}
    assert by_customer["C000"].status is MessageStatus.DELIVERED
    assert by_customer["C000"].gateway_ref == "gw-1"
    assert by_customer["C001"].status is MessageStatus.SENT
    failed = by_customer["C002"]
    assert (failed.status, failed.attempts, failed.error) == (
        MessageStatus.FAILED,
        2,
        "HTTP 500: internal error",
    )
    assert [(a["attempt"], a["http_status"]) for a in outbox.attempts(failed.id)] == [
        (1, 500),
        (2, 500),
    ]
    # the platform recovers: a retry run delivers it, and the receipt for C001 arrives
    report = outbox.dispatch(HttpGateway(platform.url("/ok")), retry_failed=True)
    assert report.counts == {"delivered": 1}
    assert outbox.record_receipt(by_customer["C001"].id, True).status is MessageStatus.DELIVERED
    assert outbox.counts() == {"delivered": 3}
