"""The solve worker: a run whose worker died (stale heartbeat) is picked up again, or failed
with the reason once its attempts are spent; a queued run can be cancelled."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Factory
from tests.plans.conftest import World, create_plan, next_monday
from volunteer_hub.extensions import db
from volunteer_hub.jobs.solve import run_solve_jobs
from volunteer_hub.models.plans import SolveRun
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import solve_runs


def _queued_run(client: FlaskClient, factory: Factory, world: World) -> tuple[int, int]:
    headers = world.coordinator_headers(factory)
    for post in world.posts:
        client.post(
            f"/api/v1/posts/{post}/templates",
            json={
                "weekdays": [0, 1, 2],
                "start": "19:00",
                "end": "23:00",
                "kind": "night",
                "headcount": 2,
            },
            headers=headers,
        )
    plan = create_plan(client, headers, world, next_monday(), days=3)
    assert client.post(f"/api/v1/plans/{plan}/shifts/generate", headers=headers).status_code == 201
    run = client.post(f"/api/v1/plans/{plan}/solve", json={"time_limit_s": 3}, headers=headers)
    assert run.status_code == 202
    return plan, run.get_json()["id"]


def test_a_run_left_running_by_a_dead_worker_is_picked_up_again(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    plan, run_id = _queued_run(client, factory, world)
    with app.app_context():
        claimed_at = utcnow()
        # The worker claims the run, then dies: no heartbeat ever follows.
        assert solve_runs.claim_next(db.session(), "dead-host:1", claimed_at) == run_id
        # Still fresh: a second worker neither steals nor duplicates it.
        assert run_solve_jobs(claimed_at + timedelta(seconds=10), worker="live-host:2") == []
        assert db.session.get_one(SolveRun, run_id).status.value == "running"
        db.session.remove()
    with app.app_context():
        solved = run_solve_jobs(claimed_at + timedelta(minutes=5), worker="live-host:2")
        assert solved == [run_id]
    headers = world.coordinator_headers(factory)
    run = client.get(f"/api/v1/plans/{plan}/solve-runs/{run_id}", headers=headers).get_json()
    assert run["status"] == "done", run
    assert run["attempts"] == 2
    assert run["filled_slots"] == run["total_slots"] == 12
    assert client.get(f"/api/v1/plans/{plan}", headers=headers).get_json()["status"] == "solved"


def test_a_run_that_keeps_dying_is_failed_with_the_reason(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    plan, run_id = _queued_run(client, factory, world)
    start = utcnow()
    for attempt in range(3):
        with app.app_context():
            now = start + timedelta(minutes=5 * attempt)
            solve_runs.reap_stale(db.session(), now, timedelta(seconds=60), 3)
            assert solve_runs.claim_next(db.session(), f"dying:{attempt}", now) == run_id
            db.session.remove()
    with app.app_context():
        run_solve_jobs(start + timedelta(minutes=30), worker="survivor")
        run = db.session.get_one(SolveRun, run_id)
        assert run.status.value == "failed"
        assert run.attempts == 3
        assert "stopped responding" in (run.error or "")
        assert "gave up after 3 attempt(s)" in (run.error or "")
    headers = world.coordinator_headers(factory)
    assert client.get(f"/api/v1/plans/{plan}", headers=headers).get_json()["status"] == "draft"


def test_a_queued_run_can_be_cancelled_and_a_second_run_is_refused(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    plan, run_id = _queued_run(client, factory, world)
    headers = world.coordinator_headers(factory)
    again = client.post(f"/api/v1/plans/{plan}/solve", json={}, headers=headers)
    assert again.status_code == 409 and again.get_json()["solve_run"] == run_id
    cancelled = client.post(f"/api/v1/plans/{plan}/solve-runs/{run_id}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    with app.app_context():
        assert run_solve_jobs(worker="w") == []
    twice = client.post(f"/api/v1/plans/{plan}/solve-runs/{run_id}/cancel", headers=headers)
    assert twice.status_code == 409
    assert client.get(f"/api/v1/plans/{plan}", headers=headers).get_json()["status"] == "draft"


def test_a_running_run_cancelled_keeps_no_roster(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    plan, run_id = _queued_run(client, factory, world)
    headers = world.coordinator_headers(factory)
    with app.app_context():
        assert solve_runs.claim_next(db.session(), "w1", utcnow()) == run_id
        db.session.remove()
    cancel = client.post(f"/api/v1/plans/{plan}/solve-runs/{run_id}/cancel", headers=headers)
    assert cancel.get_json()["cancel_requested"] is True
    with app.app_context():
        from volunteer_hub.jobs.solve import execute_run

        assert execute_run(app, run_id, "w1") == "cancelled"
    assert client.get(f"/api/v1/plans/{plan}", headers=headers).get_json()["filled_slots"] == 0
