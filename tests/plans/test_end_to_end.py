"""The coordinator's week, end to end through the API: posts and templates, a plan, a solve by
the worker job, publish; a volunteer's shifts, calendar feed and accept; an amend that moves one
shift and tells only that shift's volunteer."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Factory
from tests.plans.conftest import (
    World,
    create_plan,
    max_outbox_id,
    next_monday,
    outbox_rows,
    solve_now,
)


def test_week_plan_from_posts_to_phone_and_amend(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    coordinator = world.coordinator_headers(factory)
    for post in world.posts:
        response = client.post(
            f"/api/v1/posts/{post}/templates",
            json={
                "weekdays": list(range(7)),
                "start": "08:00",
                "end": "12:00",
                "kind": "day",
                "headcount": 1,
            },
            headers=coordinator,
        )
        assert response.status_code == 201, response.get_json()
        assert len(response.get_json()) == 7
    plan = create_plan(client, coordinator, world, next_monday())
    generated = client.post(f"/api/v1/plans/{plan}/shifts/generate", headers=coordinator)
    assert generated.status_code == 201
    assert len(generated.get_json()["items"]) == 14
    # Generating twice adds nothing: the same post and times are already there.
    again = client.post(f"/api/v1/plans/{plan}/shifts/generate", headers=coordinator)
    assert again.get_json()["items"] == []

    queued = client.post(
        f"/api/v1/plans/{plan}/solve", json={"time_limit_s": 5}, headers=coordinator
    )
    assert queued.status_code == 202
    run = queued.get_json()
    assert run["status"] == "queued"
    assert (
        client.get(f"/api/v1/plans/{plan}", headers=coordinator).get_json()["status"] == "solving"
    )
    assert solve_now(app) == [run["id"]]
    done = client.get(
        f"/api/v1/plans/{plan}/solve-runs/{run['id']}", headers=coordinator
    ).get_json()
    assert done["status"] == "done", done
    assert (done["filled_slots"], done["total_slots"]) == (14, 14)
    assert done["shortfalls"] == []
    assert done["objective"] is not None and done["bound"] is not None and done["wall_s"] > 0

    view = client.get(f"/api/v1/plans/{plan}", headers=coordinator).get_json()
    assert (view["status"], view["shifts"], view["slots"], view["filled_slots"]) == (
        "solved",
        14,
        14,
        14,
    )
    before_publish = max_outbox_id(app)
    published = client.post(f"/api/v1/plans/{plan}/publish", headers=coordinator)
    assert published.status_code == 200, published.get_json()
    assert published.get_json()["status"] == "published"
    pushes = outbox_rows(app, before_publish)
    kinds = Counter(p["kind"] for p in pushes)
    assert kinds == {"assignment_published": 14, "shift_reminder": 28}

    # Publishing again changes nothing and tells nobody twice.
    mark = max_outbox_id(app)
    assert client.post(f"/api/v1/plans/{plan}/publish", headers=coordinator).status_code == 200
    assert outbox_rows(app, mark) == []

    roster = client.get(
        f"/api/v1/plans/{plan}/assignments?page_size=100", headers=coordinator
    ).get_json()
    assert roster["total"] == 14
    first = roster["items"][0]
    volunteer = first["member"]["id"]
    mine = factory.headers(volunteer)
    shifts = client.get("/api/v1/me/shifts", headers=mine).get_json()
    assert first["id"] in {a["id"] for a in shifts}
    assert all(a["member"]["id"] == volunteer for a in shifts)
    assert shifts[0]["shift"]["post"]["radius_m"] == 200

    feed = client.get("/api/v1/me/shifts.ics", headers=mine)
    assert feed.status_code == 200 and feed.mimetype == "text/calendar"
    text = feed.get_data(as_text=True)
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert f"UID:assignment-{first['id']}@volunteer-hub\r\n" in text
    start = datetime.fromisoformat(first["shift"]["starts_at"])
    assert "DTSTART:" + start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") + "\r\n" in text
    link = client.get("/api/v1/me/calendar", headers=mine).get_json()
    public = client.get(link["url"])
    assert public.status_code == 200
    assert f"UID:assignment-{first['id']}@volunteer-hub" in public.get_data(as_text=True)
    assert client.get("/api/v1/calendar/" + "x" * 43 + ".ics").status_code == 404

    accepted = client.post(f"/api/v1/assignments/{first['id']}/accept", headers=mine)
    assert accepted.status_code == 200 and accepted.get_json()["status"] == "accepted"

    # Amend: move one shift that belongs to somebody else by an hour, re-solve, re-publish.
    other = next(a for a in roster["items"] if a["member"]["id"] != volunteer)
    moved_start = datetime.fromisoformat(other["shift"]["starts_at"]) + timedelta(hours=1)
    moved = client.patch(
        f"/api/v1/plans/{plan}/shifts/{other['shift']['id']}",
        json={
            "starts_at": moved_start.isoformat(),
            "ends_at": (moved_start + timedelta(hours=4)).isoformat(),
            "reason": "活动调整",
        },
        headers=coordinator,
    )
    assert moved.status_code == 200, moved.get_json()
    assert (
        client.get(f"/api/v1/plans/{plan}", headers=coordinator).get_json()["pending_changes"] == 1
    )
    run2 = client.post(f"/api/v1/plans/{plan}/solve", json={"time_limit_s": 5}, headers=coordinator)
    assert run2.status_code == 202
    solve_now(app)
    assert (
        client.get(
            f"/api/v1/plans/{plan}/solve-runs/{run2.get_json()['id']}", headers=coordinator
        ).get_json()["status"]
        == "done"
    )
    mark = max_outbox_id(app)
    republished = client.post(f"/api/v1/plans/{plan}/publish", headers=coordinator)
    assert republished.status_code == 200, republished.get_json()
    assert republished.get_json()["version"] == 2
    told = outbox_rows(app, mark)
    assert {p["recipient"] for p in told} == {other["member"]["id"]}
    assert Counter(p["kind"] for p in told) == {"assignment_changed": 1, "shift_reminder": 2}
    # The old reminders of the moved assignment were cancelled.
    old = [p for p in outbox_rows(app) if p["assignment"] == other["id"] and p["id"] <= mark]
    assert {p["status"] for p in old if p["kind"] == "shift_reminder"} == {"cancelled"}
    # The accepted assignment is still accepted and still the volunteer's.
    still = client.get("/api/v1/me/shifts", headers=mine).get_json()
    assert {a["id"]: a["status"] for a in still}[first["id"]] == "accepted"
