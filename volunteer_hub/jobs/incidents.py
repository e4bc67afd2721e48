"""Incident waves, escalation and offer expiry, run by the worker every few seconds.

`advance_incidents(now)` is the job; tests call it directly with a chosen `now`. Several
workers may run it at once: each due incident is claimed with FOR UPDATE SKIP LOCKED on
PostgreSQL, so no incident gets two waves from two workers.
"""

from __future__ import annotations

import logging
from datetime import datetime

import click
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask, current_app
from flask.cli import AppGroup

from volunteer_hub.extensions import db
from volunteer_hub.models.types import utcnow
from volunteer_hub.services.incidents import DispatchSettings, advance_due_incidents

log = logging.getLogger(__name__)

# Waves are minutes apart, but the decline of a wave's last open offer makes the next wave
# due at once; a short tick keeps that delay small.
TICK_SECONDS = 10


def advance_incidents(now: datetime | None = None) -> dict[str, int]:
    """Send due waves, escalate exhausted or overdue incidents, expire lapsed offers.

    Runs inside an app context. :return: counts of what happened.
    """
    counts = advance_due_incidents(
        db.session(),
        now=now or utcnow(),
        settings=DispatchSettings.from_config(current_app.config),
    )
    if any(counts.values()):
        log.info("incidents: %s", counts)
    return counts


def schedule(scheduler: BaseScheduler, app: Flask) -> None:
    def tick() -> None:
        with app.app_context():
            try:
                advance_incidents()
            finally:
                db.session.remove()

    seconds = int(app.config.get("INCIDENT_TICK_S", TICK_SECONDS))
    scheduler.add_job(
        tick,
        "interval",
        seconds=seconds,
        id="incidents.advance",
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )


def register(group: AppGroup) -> None:
    @group.command("incidents-advance")
    def incidents_advance() -> None:
        """Run the incident wave/escalation/expiry step once."""
        click.echo(advance_incidents())
