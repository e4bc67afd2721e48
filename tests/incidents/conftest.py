"""Fixtures for the incidents tests: a small hazard-branch neighbourhood and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models import Leave
from volunteer_hub.models.attendance import Attendance, AttendanceStatus
from volunteer_hub.models.incidents import Incident, Offer
from volunteer_hub.models.notifications import OutboxMessage
from volunteer_hub.models.plans import (
    Assignment,
    AssignmentStatus,
    Plan,
    PlanStatus,
    Post,
    PostKind,
    Shift,
    ShiftKind,
)
from volunteer_hub.models.types import utcnow

# The scene: a lane in a town of Yinzhou. 0.001 degree of latitude is about 111 m.
SCENE = (29.8200, 121.5500)


def north_of_scene(metres: float) -> tuple[float, float]:
    return SCENE[0] + metres / 111_195.0, SCENE[1]


@dataclass
class Neighbourhood:
    """Who lives around the scene; volunteers are listed nearest first."""

    town: int
    coordinator: int
    grid_worker: int
    volunteers: list[int] = field(default_factory=list)


@pytest.fixture
def hood(factory: Factory) -> Neighbourhood:
    """A hazard-branch coordinator, a grid worker, and eight first-aiders 100 m apart."""
    town = factory.create_town("鄞州中河街道", *SCENE)
    coordinator = factory.create_member(
        name="协调员", branches=("hazard",), roles=(("coordinator", "hazard", None),), home=None
    )
    grid_worker = factory.create_member(
        name="网格员", branches=("hazard",), roles=(("grid_worker", "hazard", town),), home=None
    )
    volunteers = [
        factory.create_member(
            name=f"志愿者{i}",
            branches=("hazard",),
            skills=("first_aid",),
            town_id=town,
            home=north_of_scene(100 * (i + 1)),
        )
        for i in range(8)
    ]
    return Neighbourhood(town, coordinator, grid_worker, volunteers)


def report_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "hazard",
        "branch": "hazard",
        "lat": SCENE[0],
        "lon": SCENE[1],
        "description": "老旧小区燃气管道疑似泄漏，需要排查并疏散",
        "needed": 2,
        "skills": ["first_aid"],
    }
    body.update(overrides)
    return body


def report(
    client: FlaskClient, factory: Factory, reporter: int, **overrides: Any
) -> dict[str, Any]:
    response = client.post(
        "/api/v1/incidents", json=report_body(**overrides), headers=factory.headers(reporter)
    )
    assert response.status_code == 201, response.get_json()
    return dict(response.get_json())


def offers_of(app: Flask, incident_id: int) -> dict[int, dict[str, Any]]:
    """member id -> offer fields, read straight from the database."""
    with app.app_context():
        rows = db.session.scalars(select(Offer).where(Offer.incident_id == incident_id))
        return {
            o.member_id: {
                "id": o.id,
                "status": o.status.value,
                "wave": o.wave,
                "distance_m": o.distance_m,
                "minutes": o.minutes_credited,
            }
            for o in rows
        }


def incident_row(app: Flask, incident_id: int) -> dict[str, Any]:
    with app.app_context():
        incident = db.session.get_one(Incident, incident_id)
        return {
            "status": incident.status.value,
            "wave": incident.wave,
            "accepted": incident.accepted_count,
            "next_wave_at": incident.next_wave_at,
        }


def pushes(app: Flask, incident_id: int, kind: str | None = None) -> list[tuple[int, str, str]]:
    """(recipient, kind, status) of the incident's outbox rows, in order."""
    with app.app_context():
        query = select(OutboxMessage).where(OutboxMessage.incident_id == incident_id)
        if kind:
            query = query.where(OutboxMessage.kind == kind)
        return [
            (m.recipient_id, m.kind, m.status.value)
            for m in db.session.scalars(query.order_by(OutboxMessage.id))
        ]


def add_leave(app: Flask, member_id: int, starts: datetime, ends: datetime) -> None:
    with app.app_context():
        db.session.add(Leave(member_id=member_id, starts_at=starts, ends_at=ends))
        db.session.commit()


def add_assignment(
    app: Flask,
    factory: Factory,
    member_id: int,
    town: int,
    starts: datetime,
    ends: datetime,
    *,
    post_at: tuple[float, float] = SCENE,
    checked_in_at: tuple[float, float] | None = None,
) -> int:
    """A published patrol assignment; with `checked_in_at`, the member is on duty there now."""
    with app.app_context():
        post = Post(
            branch_id=factory.branch_id("hazard"),
            town_id=town,
            name="巡查点",
            lat=post_at[0],
            lon=post_at[1],
            radius_m=200,
            kind=PostKind.POINT,
        )
        plan = Plan(
            branch_id=factory.branch_id("hazard"),
            name="本周",
            starts_on=starts.date() - timedelta(days=1),
            ends_on=ends.date() + timedelta(days=1),
            status=PlanStatus.PUBLISHED,
        )
        db.session.add_all([post, plan])
        db.session.flush()
        shift = Shift(
            plan_id=plan.id,
            post_id=post.id,
            starts_at=starts,
            ends_at=ends,
            kind=ShiftKind.DAY,
            headcount=1,
        )
        db.session.add(shift)
        db.session.flush()
        assignment = Assignment(
            plan_id=plan.id,
            shift_id=shift.id,
            member_id=member_id,
            status=AssignmentStatus.PUBLISHED,
            starts_at=starts,
            ends_at=ends,
        )
        db.session.add(assignment)
        db.session.flush()
        if checked_in_at is not None:
            db.session.add(
                Attendance(
                    assignment_id=assignment.id,
                    member_id=member_id,
                    check_in_at=max(starts, utcnow() - timedelta(minutes=30)),
                    check_in_lat=checked_in_at[0],
                    check_in_lon=checked_in_at[1],
                    status=AttendanceStatus.OPEN,
                )
            )
        db.session.commit()
        return assignment.id


@pytest.fixture
def incident_config(app: Flask) -> Iterator[dict[str, Any]]:
    """Change INCIDENT_* settings for one test; restored afterwards (the app is shared)."""
    saved = {k: v for k, v in app.config.items() if k.startswith("INCIDENT_")}
    yield app.config
    for key in [k for k in app.config if k.startswith("INCIDENT_")]:
        del app.config[key]
    app.config.update(saved)
