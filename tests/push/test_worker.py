"""`flask hub worker` as real processes: SIGKILL mid-batch, two workers on one outbox, SIGTERM;
and singleton_lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from notifications.fakefcm import FakeFcm
from tests.conftest import Factory
from tests.push.conftest import Push
from volunteer_hub.extensions import db
from volunteer_hub.jobs.worker import singleton_lock
from volunteer_hub.models.notifications import OutboxMessage, OutboxStatus

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    """One `flask hub worker --only outbox` process with its log in a file."""

    def __init__(self, app: Flask, fake: FakeFcm, service_account: Path, log: Path, **env: str):
        self.log = log
        environment = {
            **os.environ,
            "FLASK_APP": "wsgi.py",
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "JWT_SECRET_KEY": app.config["JWT_SECRET_KEY"],
            "HUB_INSTANCE_DIR": str(log.parent),
            "FCM_CREDENTIALS": str(service_account),
            "FCM_URL": fake.base_url,
            "OUTBOX_BACKOFF_BASE_S": "0.2",
            **env,
        }
        self._out = open(log, "w", encoding="utf-8")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flask",
                "hub",
                "worker",
                "--only",
                "outbox",
                "--interval",
                "0.2",
            ],
            cwd=ROOT,
            env=environment,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8")

    def wait_started(self, timeout: float = 180) -> None:
        _wait(lambda: "worker: started" in self.text(), timeout, f"worker start: {self.text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=timeout)
        self._out.close()
        return code


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def workers(
    push_app: Flask, fake_fcm: FakeFcm, service_account: Path, tmp_path: Path
) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(name: str, **env: str) -> Worker:
        worker = Worker(push_app, fake_fcm, service_account, tmp_path / f"{name}.log", **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait()
        worker._out.close()


def _statuses(app: Flask) -> dict[OutboxStatus, int]:
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        ).all()
        db.session.remove()
    return {status: count for status, count in rows}


def _members_with_phones(push: Push, factory: Factory, count: int) -> list[int]:
    members = []
    for index in range(count):
        member = factory.create_member()
        push.add_device(member, f"phone-{index}")
        members.append(member)
    return members


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_keep_their_message_id(
    push: Push, factory: Factory, fake_fcm: FakeFcm, workers: Callable[..., Worker]
) -> None:
    members = _members_with_phones(push, factory, 30)
    for index in range(10):  # a third of the phones answer slowly: the batch is mid-way
        fake_fcm.set_token_error(f"phone-{index}", None, delay_s=4)
    rows = [push.enqueue(member) for member in members]
    with push.app.app_context():
        message_ids = set(db.session.scalars(select(OutboxMessage.message_id)))
        db.session.remove()

    first = workers("first", OUTBOX_LEASE_S="3")
    _wait(lambda: len(fake_fcm.messages()) >= 20, 180, f"fast sends: {first.text()}")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert _statuses(push.app) == {OutboxStatus.PENDING: 30}  # nothing was recorded

    for index in range(10):
        fake_fcm.set_token_error(f"phone-{index}", None)
    second = workers("second", OUTBOX_LEASE_S="3")
    _wait(lambda: _statuses(push.app) == {OutboxStatus.SENT: 30}, 180, "the second worker")
    assert second.stop() == 0  # SIGTERM: graceful

    delivered: dict[str, set[str]] = defaultdict(set)
    for record in fake_fcm.messages():
        delivered[record["token"]].add(record["message"]["data"]["message_id"])
    assert set().union(*delivered.values()) == message_ids  # nothing lost
    assert all(len(ids) == 1 for ids in delivered.values())  # a duplicate is the same message
    assert len(fake_fcm.messages()) > 30  # the killed batch really was sent again
    assert all(push.row(row).attempts == 2 for row in rows)
    assert "outbox batch: claimed=30" in second.text()


def test_two_workers_share_one_outbox_and_send_each_message_once(
    push: Push, factory: Factory, fake_fcm: FakeFcm, workers: Callable[..., Worker]
) -> None:
    members = _members_with_phones(push, factory, 300)
    for index in range(300):
        fake_fcm.set_token_error(f"phone-{index}", None, delay_s=0.1)
    # A send that times out is retried and may reach the phone twice (same message id): that
    # is at-least-once delivery, not two workers sharing a row. A generous timeout keeps a
    # busy machine from turning slow answers into such retries, so "once" is what is measured.
    one = workers("one", OUTBOX_BATCH_SIZE="25", FCM_TIMEOUT_S="60")
    two = workers("two", OUTBOX_BATCH_SIZE="25", FCM_TIMEOUT_S="60")
    one.wait_started()
    two.wait_started()

    for member in members:
        push.enqueue(member)
    _wait(lambda: _statuses(push.app) == {OutboxStatus.SENT: 300}, 240, "both workers")
    assert one.stop() == 0
    assert two.stop() == 0

    sent = [record["message"]["data"]["message_id"] for record in fake_fcm.messages()]
    assert len(sent) == 300 and len(set(sent)) == 300
    assert "outbox batch" in one.text() and "outbox batch" in two.text()


def test_singleton_lock_admits_one_holder_and_one_run_per_tick(push_app: Flask) -> None:
    tick = datetime(2026, 6, 1, 3, tzinfo=UTC)
    inside = threading.Event()
    release = threading.Event()
    seen: list[bool] = []

    def hold() -> None:
        with push_app.app_context(), singleton_lock("test.rollup") as mine:
            seen.append(mine)
            inside.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    with push_app.app_context(), singleton_lock("test.rollup") as mine:
        assert mine is False  # held by the other thread's connection
    release.set()
    holder.join(10)
    assert seen == [True]

    with push_app.app_context():
        with singleton_lock("test.rollup", tick=tick) as mine:
            assert mine is True
        with singleton_lock("test.rollup", tick=tick) as mine:
            assert mine is False  # another worker already ran this tick
        with singleton_lock("test.rollup", tick=tick + timedelta(hours=1)) as mine:
            assert mine is True
        with singleton_lock("test.rollup", tick=tick) as mine:
            assert mine is False  # an older tick never runs after a newer one
