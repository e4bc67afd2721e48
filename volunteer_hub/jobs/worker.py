"""The worker process: ``flask hub worker`` runs every job module's ``schedule()`` under
APScheduler, never inside the API's gunicorn workers (each would run every job).

Job modules are the other modules of ``volunteer_hub.jobs`` that define
``schedule(scheduler, app)``; the outbox drain is one of them (``jobs/outbox.py``). Cron jobs
that must run once per tick across several workers wrap their body in :func:`singleton_lock`.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import pkgutil
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType, ModuleType
from typing import cast

import click
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import JobTick
from volunteer_hub.push import close_sender

log = logging.getLogger(__name__)

_local_locks: dict[str, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def job_modules(only: Iterable[str] = ()) -> list[ModuleType]:
    """Modules of ``volunteer_hub.jobs`` with a ``schedule`` function, this one excepted.

    :param only: module names to keep (``outbox``); empty keeps all.
    """
    import volunteer_hub.jobs as package

    wanted = set(only)
    found = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name == "worker" or (wanted and info.name not in wanted):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if callable(getattr(module, "schedule", None)):
            found.append(module)
    return found


def configure(scheduler: BaseScheduler, app: Flask, only: Iterable[str] = ()) -> list[str]:
    """Add every job module's jobs to ``scheduler``; returns the module names."""
    names = []
    for module in job_modules(only):
        module.schedule(scheduler, app)
        names.append(module.__name__.rsplit(".", 1)[-1])
    return names


def run_worker(app: Flask, only: Iterable[str] = (), stop: threading.Event | None = None) -> None:
    """Run the scheduler until SIGTERM/SIGINT (or ``stop`` is set), then finish running jobs.

    A job interrupted by SIGKILL instead loses nothing: its claimed outbox rows come back
    when their lease runs out.
    """
    stop = stop or threading.Event()
    scheduler = BackgroundScheduler(timezone=UTC)
    names = configure(scheduler, app, only)

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("worker: signal %s, finishing running jobs", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
    scheduler.start()
    log.info("worker: started with jobs from %s", ", ".join(names) or "no modules")
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        close_sender(app)
        log.info("worker: stopped")


def start_worker_thread(app: Flask, only: Iterable[str] = ()) -> BackgroundScheduler:
    """Run the jobs on background threads of this process (the local demo on SQLite).

    Stop with ``scheduler.shutdown()``. Not for gunicorn: every worker would run every job.
    """
    scheduler = BackgroundScheduler(timezone=UTC, daemon=True)
    configure(scheduler, app, only)
    scheduler.start()
    return scheduler


def register(group: AppGroup) -> None:
    @group.command("worker")
    @click.option(
        "--interval",
        type=click.FloatRange(0.05, 3600),
        default=None,
        help="Seconds between outbox drains (OUTBOX_DRAIN_INTERVAL_S, default 2).",
    )
    @click.option("--only", multiple=True, help="Run only these job modules, e.g. --only outbox.")
    def worker(interval: float | None, only: tuple[str, ...]) -> None:
        """Run the periodic jobs (outbox drain, roll-ups, ...) until SIGTERM."""
        app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        if interval is not None:
            app.config["OUTBOX_DRAIN_INTERVAL_S"] = interval
        run_worker(app, only)


# ---------------------------------------------------------------------- singleton jobs


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def singleton_lock(name: str, tick: datetime | None = None) -> Iterator[bool]:
    """Hold the cluster-wide lock ``name`` for the body; yields whether this process has it.

    PostgreSQL: a session advisory lock on a connection of its own (``pg_try_advisory_lock``,
    never waiting). SQLite: a lock within this process (one worker is enough there).

    A lock alone does not make a job run once per tick: a second worker whose trigger fires
    just after the first one finished would get the lock too. Pass ``tick`` (the run's
    scheduled time, e.g. the hour floored) and the body runs only if no worker has run
    ``name`` for that tick or a later one yet::

        with singleton_lock("hours.rollup", tick=hour) as mine:
            if mine:
                roll_up(...)

    Enter it before the job opens its session: on SQLite a second transaction in the same
    thread would wait on the first.
    """
    if db.engine.dialect.name != "postgresql":
        with _local_locks_guard:
            lock = _local_locks.setdefault(name, threading.Lock())
        acquired = lock.acquire(blocking=False)
        try:
            mine = acquired
            if acquired and tick is not None:
                with db.engine.connect() as conn:
                    mine = _claim_tick(conn, name, tick)
            yield mine
        finally:
            if acquired:
                lock.release()
        return
    key = _lock_key(name)
    with db.engine.connect() as conn:
        acquired = bool(conn.execute(select(func.pg_try_advisory_lock(key))).scalar())
        conn.commit()
        try:
            mine = acquired and (tick is None or _claim_tick(conn, name, tick))
            yield mine
        finally:
            if acquired:
                conn.execute(select(func.pg_advisory_unlock(key)))
                conn.commit()


def _claim_tick(conn: Connection, name: str, tick: datetime) -> bool:
    """Move ``name``'s last tick to ``tick`` if it is earlier; False if already there."""
    table = cast(Table, JobTick.__table__)
    with conn.begin():
        moved = conn.execute(
            update(table)
            .where(table.c.name == name, table.c.last_tick < tick)
            .values(last_tick=tick)
        ).rowcount
        if moved:
            return True
        if conn.execute(select(table.c.name).where(table.c.name == name)).first():
            return False
        try:
            with conn.begin_nested():
                conn.execute(insert(table).values(name=name, last_tick=tick))
        except IntegrityError:
            return False
        return True
