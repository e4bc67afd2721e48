"""The FCM sender the worker uses, built from the app's configuration.

- ``FCM_CREDENTIALS`` (path to a service-account JSON) alone: real FCM.
- ``FCM_CREDENTIALS`` and ``FCM_URL``: that service account, sending to ``FCM_URL``.
- ``FCM_URL`` alone: a fake FCM at that address (``python -m notifications.fakefcm``); a
  service account whose token endpoint is the fake is written into the instance folder.
- neither, in debug or testing (or with ``FCM_FAKE`` set): a fake FCM started in this process
  that prints what phones would receive. Anywhere else this is an error, because a worker
  that marks pushes sent into a fake would lose them.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from notifications.fakefcm import FakeFcm, make_service_account
from notifications.fcm import FcmSender

log = logging.getLogger(__name__)

_EXTENSION = "volunteer_hub.push"


class PushNotConfigured(RuntimeError):
    """Neither FCM credentials nor a fake FCM address, outside development."""


def get_sender(app: Flask) -> FcmSender:
    """The app's sender, built on first use and kept for the life of the process.

    :raise PushNotConfigured: see the module docstring.
    """
    state: dict[str, Any] = app.extensions.setdefault(_EXTENSION, {})
    sender = state.get("sender")
    if sender is None:
        sender, fake = build_sender(app)
        state["sender"] = sender
        state["fake"] = fake
    return sender


def build_sender(app: Flask) -> tuple[FcmSender, FakeFcm | None]:
    """A new sender from the app's configuration, and the fake it started, if any.

    :raise PushNotConfigured: see the module docstring.
    """
    credentials = app.config.get("FCM_CREDENTIALS")
    url = app.config.get("FCM_URL")
    timeout = float(app.config.get("FCM_TIMEOUT_S", 10))
    if credentials:
        return FcmSender(credentials, endpoint=url or None, timeout_s=timeout), None
    fake: FakeFcm | None = None
    if not url:
        if not (app.debug or app.testing or _truthy(app.config.get("FCM_FAKE"))):
            raise PushNotConfigured(
                "FCM_CREDENTIALS is not set; set it (or FCM_URL for a fake FCM) to send pushes"
            )
        fake = FakeFcm()
        url = fake.start()
        log.warning("FCM_CREDENTIALS not set: pushes go to a fake FCM at %s", url)
    path = os.path.join(app.instance_path, "fake-fcm-service-account.json")
    os.makedirs(app.instance_path, exist_ok=True)
    info = make_service_account(path, url.rstrip("/") + "/token")
    return FcmSender(info, endpoint=url, timeout_s=timeout), fake


def close_sender(app: Flask) -> None:
    """Release the sender and stop a fake started for it (worker shutdown)."""
    state: dict[str, Any] = app.extensions.get(_EXTENSION, {})
    sender = state.pop("sender", None)
    fake = state.pop("fake", None)
    if sender is not None:
        sender.close()
    if fake is not None:
        fake.stop()


def _truthy(value: Any) -> bool:
    if value is None:
        return bool(os.environ.get("FCM_FAKE"))
    return str(value).lower() in {"1", "true", "yes", "on"}
