"""The benchmarks' load generator against a small keep-alive HTTP server: every request
answered is counted once, failures are told apart, and a lost connection is replaced."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from bench import loadgen


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    seen: ClassVar[list[tuple[str, str, bytes, str | None]]] = []

    def _reply(self, status: int, body: bytes, *, length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._route(b"")

    def do_POST(self) -> None:
        self._route(self.rfile.read(int(self.headers["Content-Length"])))

    def _route(self, body: bytes) -> None:
        _Handler.seen.append((self.command, self.path, body, self.headers.get("X-Key")))
        if self.path == "/drop":
            self.close_connection = True  # hang up without an answer
            return
        if self.path == "/bare":
            self.close_connection = True
            self._reply(200, b"{}", length=False)
            return
        status = 500 if self.path == "/fail" else 201 if self.command == "POST" else 200
        self._reply(status, b'{"ok": true}')

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    _Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_closed_loop_counts_every_answer_on_kept_connections(port: int) -> None:
    requests: list[loadgen.Request] = [
        ("POST", f"/items/{i}", b'{"n": %d}' % i, {"X-Key": f"k{i}"}) for i in range(60)
    ]
    result = loadgen.closed_loop(port, 5, requests, 30)
    assert len(result.latencies) == 60
    assert result.failures == 0
    assert all(ms >= 0 for ms in result.latencies)
    # Five connections, kept alive throughout: they answered the 60 between them.
    assert len(result.by_port) == 5
    assert sum(len(each) for each in result.by_port.values()) == 60
    # Each request went out once, whole: method, path, body and headers.
    assert sorted(_Handler.seen) == sorted(
        ("POST", f"/items/{i}", b'{"n": %d}' % i, f"k{i}") for i in range(60)
    )


def test_failures_are_counted_and_a_lost_connection_is_replaced(port: int) -> None:
    requests: list[loadgen.Request] = [("GET", "/ok", None, {})] * 10
    requests += [("GET", "/fail", None, {})] * 3 + [("GET", "/drop", None, {})]
    requests += [("GET", "/ok", None, {})] * 6
    result = loadgen.closed_loop(port, 1, requests, 30)
    assert len(result.latencies) == 20
    assert result.failures == 4  # three 500s and the answer that never came
    # The 500s kept the connection; the hang-up took it, and a new one took the rest.
    assert sorted(len(each) for each in result.by_port.values()) == [6, 14]
    assert [path for _m, path, _b, _k in _Handler.seen].count("/ok") == 16


def test_open_loop_sends_at_the_rate_and_counts_from_when_due(port: int) -> None:
    requests: list[loadgen.Request] = [("GET", "/ok", None, {})] * 40
    result = loadgen.open_loop(port, 4, requests, rate=200.0)
    assert len(result.latencies) == 40
    assert result.failures == 0
    # Request 39 is due 195 ms after the start: the run cannot be shorter.
    assert result.wall_s >= 39 / 200
    assert sum(len(each) for each in result.by_port.values()) == 40


def test_an_answer_without_content_length_is_refused_plainly(port: int) -> None:
    with pytest.raises(RuntimeError, match="without Content-Length"):
        loadgen.closed_loop(port, 1, [("GET", "/bare", None, {})], 30)
