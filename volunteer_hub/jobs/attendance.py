"""Attendance sweeps run by the worker: close forgotten check-outs, mark no-shows, and purge
old idempotency records. Each is a function of `now` that tests call directly."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import click
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask, current_app
from flask.cli import AppGroup

from volunteer_hub.extensions import db
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import attendance, idempotency

log = logging.getLogger(__name__)

SWEEP_SECONDS = 60
PURGE_SECONDS = 3600


def _rules() -> attendance.Rules:
    return attendance.Rules.from_config(current_app.config)


def close_forgotten_check_outs(now: datetime | None = None) -> int:
    """Close attendances whose check-out window has passed (inside an app context).

    :return: how many were closed.
    """
    count = attendance.close_forgotten(db.session(), now=now or utcnow(), rules=_rules())
    if count:
        log.info("attendance: auto-closed %d forgotten check-outs", count)
    return count


def mark_no_shows(now: datetime | None = None) -> int:
    """Mark assignments nobody checked in to by start + grace; squad leaders are told.

    :return: how many were marked.
    """
    count = attendance.mark_no_shows(db.session(), now=now or utcnow(), rules=_rules())
    if count:
        log.info("attendance: marked %d no-shows", count)
    return count


def purge_idempotency_records(now: datetime | None = None) -> int:
    """Delete idempotency records past their 48 h.

    :return: how many were deleted.
    """
    return idempotency.purge(db.session(), now=now or utcnow())


def _job(app: Flask, function: Callable[[], int]) -> Callable[[], None]:
    def run() -> None:
        with app.app_context():
            try:
                function()
            finally:
                db.session.remove()

    return run


def schedule(scheduler: BaseScheduler, app: Flask) -> None:
    seconds = int(app.config.get("ATTENDANCE_SWEEP_S", SWEEP_SECONDS))
    for name, function, every in (
        ("attendance.close_forgotten", close_forgotten_check_outs, seconds),
        ("attendance.no_shows", mark_no_shows, seconds),
        ("attendance.purge_idempotency", purge_idempotency_records, PURGE_SECONDS),
    ):
        scheduler.add_job(
            _job(app, function),
            "interval",
            seconds=every,
            id=name,
            max_instances=1,
            coalesce=True,
            replace_existing=True,
        )


def register(group: AppGroup) -> None:
    @group.command("attendance-sweep")
    def attendance_sweep() -> None:
        """Close forgotten check-outs, mark no-shows and purge old idempotency keys once."""
        click.echo(
            {
                "auto_closed": close_forgotten_check_outs(),
                "no_shows": mark_no_shows(),
                "idempotency_purged": purge_idempotency_records(),
            }
        )
