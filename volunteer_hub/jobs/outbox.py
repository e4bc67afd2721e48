"""The outbox jobs: drain due pushes every few seconds, finish announcements cut short."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from flask import Flask, current_app

from volunteer_hub.extensions import db
from volunteer_hub.push import get_sender
from volunteer_hub.services.announcements import resume_stale
from volunteer_hub.services.delivery import BatchReport, DrainSettings, drain, new_worker_id

log = logging.getLogger(__name__)

DEFAULT_DRAIN_INTERVAL_S = 2.0
ANNOUNCEMENT_CHECK_S = 30


def worker_id() -> str:
    """This process's name in ``claimed_by``, fixed for the life of the app."""
    state: dict[str, Any] = current_app.extensions.setdefault("volunteer_hub.worker", {})
    if "id" not in state:
        state["id"] = new_worker_id()
    return str(state["id"])


def drain_outbox(now: datetime | None = None, max_batches: int | None = None) -> list[BatchReport]:
    """Send every due push (in an app context); one log line per batch.

    :param now: the clock for due times and backoff; tests pass it, the scheduler does not.
    :return: one report per batch that did something.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        return drain(
            db.session(),
            get_sender(app),
            worker_id=worker_id(),
            now=now,
            settings=DrainSettings.from_config(app.config),
            max_batches=max_batches,
            rng=random.Random(),
        )
    finally:
        db.session.remove()


def finish_announcements(now: datetime | None = None) -> int:
    """Complete fan-outs left unfinished for a minute (the request that began them died).

    :return: how many announcements were completed.
    """
    try:
        return resume_stale(db.session(), now=now)
    finally:
        db.session.remove()


def _in_context(app: Flask, job: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with app.app_context():
            try:
                job()
            except Exception:
                # One bad tick must not stop the scheduler; the next tick tries again.
                log.exception("job %s failed", job.__name__)

    run.__name__ = job.__name__
    return run


def schedule(scheduler: BaseScheduler, app: Flask) -> None:
    interval = float(app.config.get("OUTBOX_DRAIN_INTERVAL_S", DEFAULT_DRAIN_INTERVAL_S))
    start = datetime.now(UTC)
    scheduler.add_job(
        _in_context(app, drain_outbox),
        "interval",
        seconds=interval,
        id="outbox.drain",
        max_instances=1,
        coalesce=True,
        next_run_time=start,
    )
    scheduler.add_job(
        _in_context(app, finish_announcements),
        "interval",
        seconds=ANNOUNCEMENT_CHECK_S,
        id="outbox.announcements",
        max_instances=1,
        coalesce=True,
        next_run_time=start + timedelta(seconds=1),
    )
