"""The production server itself (gunicorn with gunicorn.conf.py: two gevent workers) under a
crowd of check-ins with retries, on each backend: one attendance per assignment, every tap
answered with it, nothing lost. On PostgreSQL the taps go through the fast path's batches in
greenlets, the way they run in service."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask

from tests.attendance.conftest import POST_LAT, POST_LON, World
from tests.conftest import Factory
from volunteer_hub.models.attendance import Attendance, IdempotencyRecord

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(app: Flask, tmp_path: Path) -> Iterator[int]:
    """gunicorn as README's production command starts it, on the test's database; its port."""
    port = _free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("REDIS_URL", "DATABASE_URL") and not name.startswith("ATTENDANCE_")
    }
    env.update(
        DATABASE_URL=str(app.config["SQLALCHEMY_DATABASE_URI"]),
        JWT_SECRET_KEY=str(app.config["JWT_SECRET_KEY"]),
        HUB_INSTANCE_DIR=str(tmp_path),
        PUSH_QUIET_HOURS="off",
        LOG_LEVEL="WARNING",
    )
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [
            *(str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py"), "-b", f"127.0.0.1:{port}"),
            # No control socket: another gunicorn on this host (a parallel test) may hold it.
            *("--no-control-socket", "--log-level", "warning", "wsgi:app"),
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "gunicorn stopped while starting"
            try:
                status, _ = _request(port, "GET", "/api/v1/health", None, {})
                if status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not answer within 60 s"
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def _request(
    port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def test_a_crowd_of_check_ins_with_retries_makes_one_attendance_each(
    app: Flask, factory: Factory, world: World, server: int
) -> None:
    post = world.post(radius_m=200)
    people = [factory.create_member(name=f"队员{i}") for i in range(30)]
    assignments = [world.assignment(m, post_id=post) for m in people]
    body = json.dumps({"lat": POST_LAT, "lon": POST_LON, "accuracy_m": 10}).encode()
    # Per assignment: the same key three times (a weak signal), and two other keys (taps).
    sends = [
        (assignment, dict(factory.headers(person), **{"Idempotency-Key": key}))
        for assignment, person in zip(assignments, people, strict=True)
        for key in ("retry", "retry", "retry", "second-tap", "third-tap")
    ]
    barrier = threading.Barrier(50)

    def send(index: int) -> tuple[int, int, dict[str, object]]:
        assignment, headers = sends[index]
        if index < 50:
            barrier.wait()
        headers = dict(headers, **{"Content-Type": "application/json"})
        path = f"/api/v1/assignments/{assignment}/check-in"
        status, answer = _request(server, "POST", path, body, headers)
        return assignment, status, answer

    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(send, range(len(sends))))

    by_assignment: dict[int, list[tuple[int, dict[str, object]]]] = defaultdict(list)
    for assignment, status, answer in answers:
        by_assignment[assignment].append((status, answer))
    stored = {a.assignment_id: a.id for a in world.rows(Attendance)}
    assert sorted(stored) == sorted(assignments)
    for assignment, got in by_assignment.items():
        assert Counter(status for status, _ in got) == {201: 1, 200: 4}, got
        assert {answer["id"] for _, answer in got} == {stored[assignment]}, got
    # One record per key used: three per assignment.
    assert len(world.rows(IdempotencyRecord)) == 3 * len(assignments)
