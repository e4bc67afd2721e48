"""An HTTP/1.1 load generator for the benchmarks: many keep-alive connections driven by one
thread over `selectors`, so that the load costs the machine little beside the server it loads.

The benchmarks run the load on the machine that runs the server (two cores). A generator of a
thread per client with `http.client` took 0.26-0.44 ms of CPU per request (header parsing with
the email package and the switching of a hundred threads over the GIL): a sixth of the
machine, taken from the server and charged to its latency. Here each request is encoded once
beforehand and each response is read as far as its status line and Content-Length, nothing
more.

Two loads:
- `closed_loop`: `clients` connections, each sending its next request as soon as the last is
  answered, until none are left or the deadline passes (the benchmark targets' load).
- `open_loop`: request j due at start + j / rate, sent on connection j % clients (after that
  connection's previous answer); latency counts from when it was due, so a server that falls
  behind is charged for the wait it causes.

A request is (method, path, body or None, headers). An answer other than 200 or 201, or a
connection lost mid-request, counts as a failure (the connection is opened again).
"""

from __future__ import annotations

import heapq
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

Request = tuple[str, str, bytes | None, dict[str, str]]

_OK = (b"200", b"201")
# An open loop with nothing to send and no answer for this long gives up.
STALL_S = 30.0


def encode(port: int, request: Request) -> bytes:
    """The request's bytes on the wire, for a server on 127.0.0.1:`port`."""
    method, path, body, headers = request
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


@dataclass
class Result:
    """Latencies (ms), failures, wall seconds, and each connection's latencies under its
    local port (to tell which server process held it)."""

    latencies: list[float]
    failures: int
    wall_s: float
    by_port: dict[int, list[float]] = field(default_factory=dict)


class _Connection:
    __slots__ = ("buffer", "due", "latencies", "port", "position", "sock")

    def __init__(self, port: int, position: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port: int = self.sock.getsockname()[1]
        self.position = position  # its place among the loop's connections
        self.buffer = b""
        self.due = 0.0  # when the request in flight was due (open loop), else when sent
        self.latencies: list[float] = []


def _answer(buffer: bytes) -> tuple[bool, int] | None:
    """(ok, bytes the answer takes) once `buffer` holds a whole answer, else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end]
    start = head.lower().find(b"\r\ncontent-length:")
    if start < 0:
        raise RuntimeError("an answer without Content-Length: " + head[:200].decode("latin-1"))
    stop = head.find(b"\r\n", start + 2)
    length = int(head[start + 17 : stop if stop >= 0 else len(head)])
    size = end + 4 + length
    if len(buffer) < size:
        return None
    return head[9:12] in _OK, size


class _Loop:
    """The connections, a selector over them, and what they have measured."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.connections = [self._open(position) for position in range(clients)]
        self.failures = 0
        self.by_port: dict[int, list[float]] = {}

    def _open(self, position: int) -> _Connection:
        connection = _Connection(self.port, position)
        self.selector.register(connection.sock, selectors.EVENT_READ, connection)
        return connection

    def _reopen(self, connection: _Connection) -> _Connection:
        self._retire(connection)
        fresh = self._open(connection.position)
        self.connections[connection.position] = fresh
        return fresh

    def _retire(self, connection: _Connection) -> None:
        self.selector.unregister(connection.sock)
        connection.sock.close()
        self.by_port.setdefault(connection.port, []).extend(connection.latencies)

    def close(self) -> None:
        for connection in self.connections:
            self._retire(connection)
        self.selector.close()

    def send(self, connection: _Connection, wire: bytes, due: float | None = None) -> None:
        connection.due = time.perf_counter() if due is None else due
        connection.sock.sendall(wire)

    def answered(self, timeout: float | None) -> list[_Connection]:
        """Wait up to `timeout` seconds; the connections whose answer is complete (a
        connection lost counts as a failed answer and is reopened: its replacement is here)."""
        done = []
        for key, _events in self.selector.select(timeout):
            connection: _Connection = key.data
            try:
                chunk = connection.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                done.append(self._record(connection, ok=False, lost=True))
                continue
            connection.buffer += chunk
            answer = _answer(connection.buffer)
            if answer is not None:
                ok, size = answer
                connection.buffer = connection.buffer[size:]
                done.append(self._record(connection, ok=ok, lost=False))
        return done

    def _record(self, connection: _Connection, *, ok: bool, lost: bool) -> _Connection:
        elapsed = (time.perf_counter() - connection.due) * 1000
        connection.latencies.append(elapsed)
        self.failures += not ok
        return self._reopen(connection) if lost else connection

    def result(self, wall_s: float) -> Result:
        latencies = [ms for each in self.by_port.values() for ms in each]
        return Result(latencies, self.failures, wall_s, self.by_port)


def closed_loop(port: int, clients: int, requests: Sequence[Request], deadline_s: float) -> Result:
    """Each connection sends its next request as soon as the last is answered."""
    wires = [encode(port, request) for request in reversed(requests)]
    loop = _Loop(port, clients)
    began = time.perf_counter()
    stop_at = began + deadline_s
    busy = 0
    try:
        for connection in loop.connections:
            if wires:
                loop.send(connection, wires.pop())
                busy += 1
        while busy:
            for connection in loop.answered(max(0.0, stop_at - time.perf_counter())):
                if wires and time.perf_counter() < stop_at:
                    loop.send(connection, wires.pop())
                else:
                    busy -= 1
            if time.perf_counter() >= stop_at and busy:
                break  # the deadline: answers still out are neither counted nor waited for
    finally:
        loop.close()
    return loop.result(time.perf_counter() - began)


def open_loop(port: int, clients: int, requests: Sequence[Request], rate: float) -> Result:
    """Request j is due at start + j / rate and goes out on connection j % clients once that
    connection's previous request is answered; its latency counts from when it was due."""
    wires = [encode(port, request) for request in requests]
    loop = _Loop(port, clients)
    start = time.perf_counter() + 0.05
    following = list(range(clients))  # each connection's next request
    # Idle connections with a request to send, by when it is due.
    waiting = [(start + position / rate, position) for position in range(clients)]
    waiting = [item for item in waiting if item[1] < len(wires)]
    heapq.heapify(waiting)
    outstanding = len(wires)
    progress = start  # when something was last sent or answered
    try:
        while outstanding:
            now = time.perf_counter()
            while waiting and waiting[0][0] <= now:
                due, position = heapq.heappop(waiting)
                loop.send(loop.connections[position], wires[following[position]], due)
                following[position] += clients
                progress = now
            timeout = max(0.0, waiting[0][0] - time.perf_counter()) if waiting else STALL_S
            answered = loop.answered(timeout)
            if answered:
                progress = time.perf_counter()
            elif time.perf_counter() - progress > STALL_S:
                raise RuntimeError(f"no answer in {STALL_S:g} s, {outstanding} outstanding")
            for connection in answered:
                outstanding -= 1
                position = connection.position
                if following[position] < len(wires):
                    heapq.heappush(waiting, (start + following[position] / rate, position))
    finally:
        loop.close()
    return loop.result(time.perf_counter() - start)
