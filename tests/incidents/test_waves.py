"""Waves, expiry and escalation, driven by calling the job with a chosen `now`."""

from __future__ import annotations

import threading
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Factory
from tests.incidents.conftest import (
    Neighbourhood,
    incident_row,
    offers_of,
    pushes,
    report,
)
from volunteer_hub.extensions import db
from volunteer_hub.jobs.incidents import advance_incidents
from volunteer_hub.models import AuditLog
from volunteer_hub.models.types import utcnow


def _advance(app: Flask, minutes: float) -> dict[str, int]:
    with app.app_context():
        try:
            return advance_incidents(utcnow() + timedelta(minutes=minutes))
        finally:
            db.session.remove()


def _timeline(app: Flask, incident_id: int) -> list[tuple[str, str | None]]:
    with app.app_context():
        return [
            (row.action, row.reason)
            for row in db.session.scalars(
                select(AuditLog)
                .where(AuditLog.object_type == "incident", AuditLog.object_id == incident_id)
                .order_by(AuditLog.id)
            )
        ]


def test_nobody_answers_waves_run_out_and_the_coordinator_is_pushed(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    hood: Neighbourhood,
    incident_config: dict[str, object],
) -> None:
    incident_config["INCIDENT_MAX_WAVES"] = 2
    other_coordinator = factory.create_member(
        branches=("patrol",), roles=(("coordinator", "patrol", None),), home=None
    )
    incident = report(client, factory, hood.grid_worker, needed=1)
    first_wave = set(offers_of(app, incident["id"]))
    assert first_wave == set(hood.volunteers[:3])

    # Nothing is due before the wave interval.
    assert _advance(app, 1)["wave"] == 0
    assert incident_row(app, incident["id"])["wave"] == 1

    # Three minutes of silence: the offers lapse and the next three nearest are asked.
    assert _advance(app, 3.1)["wave"] == 1
    offers = offers_of(app, incident["id"])
    assert {m for m, o in offers.items() if o["status"] == "expired"} == first_wave
    assert {m for m, o in offers.items() if o["wave"] == 2} == set(hood.volunteers[3:6])

    # Silence again, and the waves are used up: escalated, the coordinator pushed.
    assert _advance(app, 6.2)["escalated"] == 1
    row = incident_row(app, incident["id"])
    assert row["status"] == "escalated"
    assert row["next_wave_at"] is None
    assert pushes(app, incident["id"], "incident_escalated") == [
        (hood.coordinator, "incident_escalated", "pending")
    ]
    assert other_coordinator not in {r for r, _, _ in pushes(app, incident["id"])}
    assert ("incident.escalated", "every wave went unanswered") in _timeline(app, incident["id"])
    # Escalated incidents get no more automatic waves.
    assert _advance(app, 20)["wave"] == 0

    shown = client.get(
        f"/api/v1/incidents/{incident['id']}", headers=factory.headers(hood.coordinator)
    ).get_json()
    assert shown["status"] == "escalated"
    assert shown["escalated_at"] is not None


def test_an_expired_offers_call_out_still_unsent_is_never_sent(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    """FCM was down while the first wave was offered: when those offers lapse, their call-outs
    must not reach the phones later, asking them to accept by a time already past."""
    incident = report(client, factory, hood.grid_worker, needed=1)
    first_wave = set(offers_of(app, incident["id"]))
    assert {s for r, _, s in pushes(app, incident["id"], "incident_offer")} == {"pending"}

    assert _advance(app, 3.1)["wave"] == 1

    offers = offers_of(app, incident["id"])
    assert {m for m, o in offers.items() if o["status"] == "expired"} == first_wave
    calls = pushes(app, incident["id"], "incident_offer")
    assert {(r, s) for r, _, s in calls if r in first_wave} == {
        (member, "cancelled") for member in first_wave
    }
    # The second wave's call-outs are untouched.
    assert {(r, s) for r, _, s in calls if r not in first_wave} == {
        (member, "pending") for member in hood.volunteers[3:6]
    }


def test_candidates_run_out_escalates(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, needed=3)
    assert len(offers_of(app, incident["id"])) == 8  # 9 wanted, only 8 qualify
    assert _advance(app, 3.1)["escalated"] == 1
    assert incident_row(app, incident["id"])["status"] == "escalated"
    assert ("incident.escalated", "no more qualified volunteers nearby") in _timeline(
        app, incident["id"]
    )


def test_nobody_qualified_escalates_at_once(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, skills=["water_rescue"])
    assert incident["status"] == "escalated"
    assert incident["offers"] == []
    assert pushes(app, incident["id"]) == [(hood.coordinator, "incident_escalated", "pending")]


def test_deadline_escalates_even_with_people_left(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    hood: Neighbourhood,
    incident_config: dict[str, object],
) -> None:
    incident_config["INCIDENT_DEADLINE_S"] = 120
    incident = report(client, factory, hood.grid_worker, needed=1)
    # The next wave is due at the deadline, not after it.
    assert incident_row(app, incident["id"])["next_wave_at"] is not None
    assert _advance(app, 2.1)["escalated"] == 1
    assert ("incident.escalated", "the deadline passed without enough volunteers") in _timeline(
        app, incident["id"]
    )


def test_last_decline_brings_the_next_wave_forward_and_decliners_are_not_asked_again(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, needed=1)
    offers = offers_of(app, incident["id"])
    for member in hood.volunteers[:3]:
        response = client.post(
            f"/api/v1/offers/{offers[member]['id']}/decline", headers=factory.headers(member)
        )
        assert response.status_code == 200
        assert response.get_json()["status"] == "declined"
    # All three said no: the next wave is due now, not in three minutes.
    assert _advance(app, 0.05)["wave"] == 1
    offers = offers_of(app, incident["id"])
    assert {m for m, o in offers.items() if o["wave"] == 2} == set(hood.volunteers[3:6])
    assert {offers[m]["status"] for m in hood.volunteers[:3]} == {"declined"}

    # Accepting after declining is refused; declining twice is harmless.
    member = hood.volunteers[0]
    again = client.post(
        f"/api/v1/offers/{offers[member]['id']}/accept", headers=factory.headers(member)
    )
    assert again.status_code == 409
    assert again.get_json()["reason"] == "declined"


def test_two_workers_advancing_at_once_send_one_wave(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, needed=1)
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []

    def worker() -> None:
        barrier.wait()
        results.append(_advance(app, 3.1))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(r["wave"] for r in results) == 1
    assert incident_row(app, incident["id"])["wave"] == 2
    waves = [o["wave"] for o in offers_of(app, incident["id"]).values()]
    assert sorted(waves) == [1, 1, 1, 2, 2, 2]
