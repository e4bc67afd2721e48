"""Helpers for the shift-plan tests: a town with patrol posts, a coordinator and volunteers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import OutboxMessage


@dataclass
class World:
    town: int
    coordinator: int
    volunteers: list[int]
    posts: list[int]

    def coordinator_headers(self, factory: Factory) -> dict[str, str]:
        return factory.headers(self.coordinator)


def next_monday(after_days: int = 3) -> date:
    day = date.today() + timedelta(days=after_days)
    return day + timedelta(days=(7 - day.weekday()) % 7)


def make_world(
    client: FlaskClient,
    factory: Factory,
    *,
    volunteers: int = 6,
    posts: int = 2,
    branch: str = "patrol",
) -> World:
    town = factory.create_town("鄞州测试镇", 29.82, 121.55)
    coordinator = factory.create_member(
        name="协调员", roles=(("coordinator", branch, None),), branches=(branch,), town_id=town
    )
    people = [
        factory.create_member(
            name=f"队员{i}",
            branches=(branch,),
            skills=("first_aid",) if i % 2 == 0 else (),
            town_id=town,
            home=(29.82 + i * 0.001, 121.55),
        )
        for i in range(volunteers)
    ]
    headers = factory.headers(coordinator)
    post_ids = []
    for i in range(posts):
        response = client.post(
            "/api/v1/posts",
            json={
                "name": f"巡逻点{i}",
                "town": town,
                "lat": 29.82 + i * 0.01,
                "lon": 121.55,
                "radius_m": 200,
                "branch": branch,
            },
            headers=headers,
        )
        assert response.status_code == 201, response.get_json()
        post_ids.append(response.get_json()["id"])
    return World(town, coordinator, people, post_ids)


def create_plan(
    client: FlaskClient,
    headers: dict[str, str],
    world: World,
    start: date,
    days: int = 7,
    branch: str = "patrol",
) -> int:
    response = client.post(
        "/api/v1/plans",
        json={
            "branch": branch,
            "name": "一周巡逻",
            "starts_on": start.isoformat(),
            "ends_on": (start + timedelta(days=days - 1)).isoformat(),
            "town": world.town,
        },
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def solve_now(app: Flask) -> list[int]:
    from volunteer_hub.jobs.solve import run_solve_jobs

    with app.app_context():
        return run_solve_jobs(limit=5)


def outbox_rows(app: Flask, after_id: int = 0) -> list[dict[str, Any]]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.id > after_id).order_by(OutboxMessage.id)
        ).all()
        return [
            {
                "id": r.id,
                "recipient": r.recipient_id,
                "kind": r.kind,
                "assignment": r.assignment_id,
                "status": r.status.value,
                "deliver_after": r.deliver_after,
            }
            for r in rows
        ]


def quiet_window_around_now(zone: str = "Asia/Shanghai") -> str:
    """`PUSH_QUIET_HOURS` from an hour ago to an hour from now (in the federation's zone), so
    that whatever the hour the suite runs, a request made now falls inside them."""
    local = datetime.now(ZoneInfo(zone))
    return f"{local - timedelta(hours=1):%H:%M}-{local + timedelta(hours=1):%H:%M}"


def max_outbox_id(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.coalesce(func.max(OutboxMessage.id), 0))) or 0)


@pytest.fixture
def world(client: FlaskClient, factory: Factory) -> World:
    return make_world(client, factory)
