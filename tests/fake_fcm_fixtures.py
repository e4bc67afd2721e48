"""The fake FCM server as fixtures, for every test folder that sends pushes (loaded by the root
conftest.py): one server a session, reset around each test, and a service-account file whose
token endpoint is the fake's, so the real firebase-admin code path is what runs.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from notifications.fakefcm import FakeFcm

PROJECT_ID = "vh-test"


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeFcm]:
    fake = FakeFcm(log=io.StringIO(), project_id=PROJECT_ID)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def service_account(fake_server: FakeFcm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fcm") / "service-account.json"
    fake_server.write_service_account(path)
    return path


@pytest.fixture
def fake_fcm(fake_server: FakeFcm) -> Iterator[FakeFcm]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()
