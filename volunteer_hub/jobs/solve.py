"""Queued solve runs, run off the request thread by the worker.

Each tick first re-queues (or fails) runs whose worker died, then claims one queued run and
solves it. While the solver works a heartbeat thread, with its own app context and session,
records that the worker is alive and the solver's latest objective and bound, and notices a
cancel request. The main thread holds no transaction while solving, so on SQLite the
heartbeat's short writes never wait on it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import click
from apscheduler.schedulers.base import BaseScheduler
from flask import Flask, current_app
from flask.cli import AppGroup

from scheduling.solver import ProgressEvent, SolveOptions, solve
from volunteer_hub.extensions import db
from volunteer_hub.models.plans import Plan, SolveRun
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import solve_runs
from volunteer_hub.services.problem_builder import build_problem, settings_from_config

log = logging.getLogger(__name__)

POLL_SECONDS = 5
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 60
MAX_ATTEMPTS = 3


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class _Heartbeat(threading.Thread):
    """Beats every `interval` seconds until stopped; remembers whether the run was cancelled
    or taken from us."""

    def __init__(self, app: Flask, run_id: int, worker: str, interval: float) -> None:
        super().__init__(name=f"solve-heartbeat-{run_id}", daemon=True)
        self.app, self.run_id, self.worker, self.interval = app, run_id, worker, interval
        self.stopped = threading.Event()
        self.progress: dict[str, Any] = {}
        self.lost = False

    def on_progress(self, event: ProgressEvent) -> None:
        self.progress = {
            "objective": event.objective,
            "bound": event.bound,
            "wall_s": round(event.wall_s, 2),
            "part": event.part,
        }

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.app.app_context():
                try:
                    ours = solve_runs.heartbeat(
                        db.session(), self.run_id, self.worker, utcnow(), self.progress
                    )
                except Exception:  # a database blip must not kill the run; the next beat retries
                    log.exception("solve run %s: heartbeat failed", self.run_id)
                    db.session.rollback()
                    continue
                finally:
                    db.session.remove()
            if not ours:
                self.lost = True


def execute_run(app: Flask, run_id: int, worker: str) -> str:
    """Solve one claimed run and store the result.

    :return: the run's final status.
    """
    config = app.config
    session = db.session()
    run = session.get_one(SolveRun, run_id)
    plan = session.get_one(Plan, run.plan_id)
    time_limit = float(run.time_limit_s)
    try:
        built = build_problem(session, plan, settings_from_config(config))
    except Exception as exc:
        session.rollback()
        log.exception("solve run %s: building the problem failed", run_id)
        solve_runs.fail_run(session, run_id, worker, f"building the problem failed: {exc}")
        return "failed"
    session.commit()  # hold no transaction while solving
    beat = _Heartbeat(
        app, run_id, worker, float(config.get("SOLVE_HEARTBEAT_S", HEARTBEAT_SECONDS))
    )
    beat.start()
    try:
        solution = solve(
            built.problem,
            SolveOptions(
                time_limit_s=time_limit,
                workers=int(config.get("SOLVER_WORKERS", 2)),
                seed=int(config.get("SOLVER_SEED", 0)),
                progress=beat.on_progress,
            ),
        )
    except Exception as exc:
        log.exception("solve run %s: the solver failed", run_id)
        beat.stopped.set()
        beat.join()
        solve_runs.fail_run(session, run_id, worker, f"the solver failed: {exc}")
        return "failed"
    beat.stopped.set()
    beat.join()
    solve_runs.finish_run(session, run_id, worker, built, solution)
    return session.get_one(SolveRun, run_id).status.value


def run_solve_jobs(
    now: datetime | None = None, *, worker: str | None = None, limit: int = 1
) -> list[int]:
    """One worker tick, inside an app context: reap dead runs, then solve up to `limit`.

    :return: ids of the runs this call solved.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now = now or utcnow()
    worker = worker or worker_name()
    session = db.session()
    solve_runs.reap_stale(
        session,
        now,
        timedelta(seconds=int(app.config.get("SOLVE_STALE_S", STALE_SECONDS))),
        int(app.config.get("SOLVE_MAX_ATTEMPTS", MAX_ATTEMPTS)),
    )
    done = []
    for _ in range(limit):
        run_id = solve_runs.claim_next(session, worker, utcnow())
        if run_id is None:
            break
        status = execute_run(app, run_id, worker)
        log.info("solve run %s: %s", run_id, status)
        done.append(run_id)
    return done


def _job(app: Flask, function: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        with app.app_context():
            try:
                function()
            finally:
                db.session.remove()

    return run


def schedule(scheduler: BaseScheduler, app: Flask) -> None:
    scheduler.add_job(
        _job(app, run_solve_jobs),
        "interval",
        seconds=int(app.config.get("SOLVE_POLL_S", POLL_SECONDS)),
        id="plans.solve",
        max_instances=1,
        coalesce=True,
        replace_existing=True,
    )


def register(group: AppGroup) -> None:
    @group.command("solve-runs")
    @click.option("--limit", default=1, show_default=True, help="Runs to solve at most.")
    def solve_once(limit: int) -> None:
        """Reap dead solve runs, then claim and solve queued ones."""
        click.echo({"solved": run_solve_jobs(limit=limit)})
