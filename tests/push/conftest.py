"""Fixtures for the app side of pushes: one fake FCM for the session, the app pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from notifications.fakefcm import FakeFcm
from volunteer_hub.extensions import db
from volunteer_hub.jobs.outbox import drain_outbox
from volunteer_hub.models.notifications import Device, OutboxMessage, Platform
from volunteer_hub.services import outbox
from volunteer_hub.services.delivery import BatchReport

SHIFT = {"post": "东湖花园南门", "date": "6月3日（周二）", "start": "06:00", "end": "21:00"}
FAST_DRAIN = {
    "OUTBOX_BACKOFF_BASE_S": 10,
    "OUTBOX_BACKOFF_MAX_S": 600,
    "OUTBOX_MAX_ATTEMPTS": 8,
    "OUTBOX_LEASE_S": 60,
    "OUTBOX_BATCH_SIZE": 500,
}


@pytest.fixture
def push_app(app: Flask, fake_fcm: FakeFcm, service_account: Path) -> Iterator[Flask]:
    """The test app sending to the fake FCM, with short backoff settings."""
    saved = {key: app.config.get(key) for key in ("FCM_CREDENTIALS", "FCM_URL", *FAST_DRAIN)}
    app.config.update(
        {"FCM_CREDENTIALS": str(service_account), "FCM_URL": fake_fcm.base_url, **FAST_DRAIN}
    )
    yield app
    for key, value in saved.items():
        if value is None:
            app.config.pop(key, None)
        else:
            app.config[key] = value


class Push:
    """Small helpers around the app for push tests; each opens and closes its own context."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def add_device(self, member_id: int, token: str) -> int:
        with self.app.app_context():
            device = Device(member_id=member_id, token=token, platform=Platform.ANDROID)
            db.session.add(device)
            db.session.commit()
            return device.id

    def enqueue(self, member_id: int, kind: str = "assignment_published", **kwargs: Any) -> int:
        params = kwargs.pop("params", None) or {"assignment_id": "7", **SHIFT}
        with self.app.app_context():
            message = outbox.enqueue(
                db.session(), recipient_id=member_id, kind=kind, params=params, **kwargs
            )
            db.session.commit()
            assert message is not None
            return message.id

    def drain(self, now: datetime | None = None) -> list[BatchReport]:
        with self.app.app_context():
            return drain_outbox(now=now)

    def row(self, outbox_id: int) -> OutboxMessage:
        with self.app.app_context():
            row = db.session.get_one(OutboxMessage, outbox_id)
            db.session.expunge(row)
            return row

    def run(self, work: Callable[[Any], Any]) -> Any:
        """``work(session)`` inside an app context, committed."""
        with self.app.app_context():
            result = work(db.session())
            db.session.commit()
            return result


@pytest.fixture
def push(push_app: Flask) -> Push:
    return Push(push_app)
