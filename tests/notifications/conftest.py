"""Fixtures for the notifications tests: one fake FCM per session, a fresh sender per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from notifications.fakefcm import FakeFcm
from notifications.fcm import FcmSender
from notifications.messages import Push, new_message_id, shift_reminder

PushFactory = Callable[..., Push]


@pytest.fixture
def sender(fake_fcm: FakeFcm, service_account: Path) -> Iterator[FcmSender]:
    fcm_sender = FcmSender(service_account, endpoint=fake_fcm.base_url, timeout_s=5)
    fcm_sender.warm_up()
    yield fcm_sender
    fcm_sender.close()


@pytest.fixture
def create_push() -> PushFactory:
    """A reminder push for ``token``; keyword arguments override its params."""

    def create(token: str, **params: str) -> Push:
        values = {
            "assignment_id": "a-1",
            "post": "东湖花园南门",
            "date": "6月3日（周二）",
            "start": "06:00",
            "end": "21:00",
            **params,
        }
        return shift_reminder(token=token, message_id=new_message_id(), **values)

    return create
