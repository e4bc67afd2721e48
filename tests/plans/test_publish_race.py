"""Two coordinators publish overlapping plans at the same moment: nobody is double-booked
and the loser gets 409 naming the volunteers and shifts. On PostgreSQL the exclusion
constraint decides the race; on SQLite the check inside BEGIN IMMEDIATE does."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Factory
from tests.plans.conftest import next_monday
from volunteer_hub.extensions import db
from volunteer_hub.models.plans import ACTIVE_STATUSES, Assignment

TZ_OFFSET = "+08:00"


def _plan_with_people(
    client: FlaskClient, factory: Factory, branch: str, town: int, people: list[int], day: Any
) -> tuple[int, dict[str, str]]:
    coordinator = factory.create_member(
        name=f"{branch}协调员", branches=(branch,), roles=(("coordinator", branch, None),)
    )
    headers = factory.headers(coordinator)
    post = client.post(
        "/api/v1/posts",
        json={
            "name": f"{branch}点",
            "town": town,
            "lat": 29.82,
            "lon": 121.55,
            "radius_m": 150,
            "branch": branch,
        },
        headers=headers,
    ).get_json()["id"]
    plan = client.post(
        "/api/v1/plans",
        json={
            "branch": branch,
            "name": "周末",
            "starts_on": day.isoformat(),
            "ends_on": day.isoformat(),
        },
        headers=headers,
    ).get_json()["id"]
    start = datetime.combine(day, time(8, 0)).isoformat() + TZ_OFFSET
    end = datetime.combine(day, time(12, 0)).isoformat() + TZ_OFFSET
    shift = client.post(
        f"/api/v1/plans/{plan}/shifts",
        json={
            "shifts": [
                {
                    "post": post,
                    "starts_at": start,
                    "ends_at": end,
                    "kind": "day",
                    "headcount": len(people),
                }
            ]
        },
        headers=headers,
    ).get_json()[0]["id"]
    for person in people:
        added = client.post(
            f"/api/v1/plans/{plan}/assignments",
            json={"member": person, "shift": shift},
            headers=headers,
        )
        assert added.status_code == 201, added.get_json()
    return plan, headers


def test_simultaneous_overlapping_publishes_never_double_book(
    app: Flask, factory: Factory, backend: str
) -> None:
    client = app.test_client()
    town = factory.create_town("竞争镇", 29.82, 121.55)
    for round_number in range(3):
        day = next_monday() + timedelta(days=round_number)
        people = [
            factory.create_member(
                name=f"双会员{round_number}-{i}", branches=("patrol", "rescue"), town_id=town
            )
            for i in range(4)
        ]
        patrol, patrol_headers = _plan_with_people(client, factory, "patrol", town, people, day)
        rescue, rescue_headers = _plan_with_people(client, factory, "rescue", town, people, day)
        barrier = threading.Barrier(2)
        results: dict[int, Any] = {}

        def publish(
            plan: int,
            headers: dict[str, str],
            barrier: threading.Barrier = barrier,
            results: dict[int, Any] = results,
        ) -> None:
            own = app.test_client()
            barrier.wait()
            response = own.post(f"/api/v1/plans/{plan}/publish", headers=headers)
            results[plan] = (response.status_code, response.get_json())

        threads = [
            threading.Thread(target=publish, args=(patrol, patrol_headers)),
            threading.Thread(target=publish, args=(rescue, rescue_headers)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        statuses = sorted(code for code, _ in results.values())
        assert statuses == [200, 409], results
        loser = next(body for code, body in results.values() if code == 409)
        assert loser["status"] == 409
        assert {c["member"] for c in loser["conflicts"]} == set(people), loser
        assert "double-book" in loser["detail"]
        with app.app_context():
            active = db.session.scalars(
                select(Assignment).where(
                    Assignment.member_id.in_(people), Assignment.status.in_(ACTIVE_STATUSES)
                )
            ).all()
            assert sorted(a.member_id for a in active) == sorted(people)
            assert len({a.plan_id for a in active}) == 1
        assert backend in ("sqlite", "postgresql")


def test_exclusion_constraint_holds_even_without_the_service(
    app: Flask, factory: Factory, backend: str
) -> None:
    """On PostgreSQL the database itself refuses an overlapping active assignment."""
    client = app.test_client()
    town = factory.create_town("约束镇", 29.82, 121.55)
    person = factory.create_member(name="约束", branches=("patrol", "rescue"), town_id=town)
    day = next_monday()
    patrol, patrol_headers = _plan_with_people(client, factory, "patrol", town, [person], day)
    rescue, _ = _plan_with_people(client, factory, "rescue", town, [person], day)
    assert client.post(f"/api/v1/plans/{patrol}/publish", headers=patrol_headers).status_code == 200
    with app.app_context():
        other = db.session.scalar(select(Assignment).where(Assignment.plan_id == rescue))
        assert other is not None
        other.status = ACTIVE_STATUSES[0]
        other.published_at = datetime.now(UTC)
        if backend == "postgresql":
            from sqlalchemy.exc import IntegrityError

            try:
                db.session.commit()
            except IntegrityError as exc:
                assert "ex_assignment_no_double_booking" in str(exc)
                db.session.rollback()
            else:
                raise AssertionError("the exclusion constraint let a double booking through")
        else:
            # SQLite has no such constraint: the publish service is the guard there.
            db.session.rollback()
