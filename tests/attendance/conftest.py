"""Fixtures for attendance tests: posts, published plans and assignments made through the
models (not the plans API), a check-in helper, and direct database reads."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from tests.conftest import Factory
from volunteer_hub.extensions import db
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

POST_LAT, POST_LON = 29.8200, 121.5500
T = TypeVar("T")


class World:
    """Creates the plan side of attendance; every method commits and returns ids."""

    def __init__(self, app: Flask, factory: Factory) -> None:
        self.app = app
        self.factory = factory

    def post(
        self,
        *,
        branch: str = "patrol",
        town_id: int | None = None,
        lat: float = POST_LAT,
        lon: float = POST_LON,
        radius_m: int = 100,
        name: str = "鄞州公园东门",
    ) -> int:
        town_id = town_id or self.factory.create_town()
        with self.app.app_context():
            post = Post(
                branch_id=self.factory.branch_id(branch),
                town_id=town_id,
                name=name,
                lat=lat,
                lon=lon,
                radius_m=radius_m,
                kind=PostKind.POINT,
            )
            db.session.add(post)
            db.session.commit()
            return post.id

    def assignment(
        self,
        member_id: int,
        *,
        post_id: int,
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        status: AssignmentStatus = AssignmentStatus.ACCEPTED,
    ) -> int:
        starts_at = starts_at or utcnow() - timedelta(minutes=10)
        ends_at = ends_at or starts_at + timedelta(hours=4)
        with self.app.app_context():
            post = db.session.get_one(Post, post_id)
            plan = Plan(
                branch_id=post.branch_id,
                town_id=post.town_id,
                name=f"plan {uuid.uuid4().hex[:6]}",
                starts_on=starts_at.date() - timedelta(days=1),
                ends_on=ends_at.date() + timedelta(days=1),
                status=PlanStatus.PUBLISHED,
            )
            db.session.add(plan)
            db.session.flush()
            shift = Shift(
                plan_id=plan.id,
                post_id=post_id,
                starts_at=starts_at,
                ends_at=ends_at,
                kind=ShiftKind.DAY,
                headcount=1,
                skills={},
            )
            db.session.add(shift)
            db.session.flush()
            assignment = Assignment(
                plan_id=plan.id,
                shift_id=shift.id,
                member_id=member_id,
                status=status,
                starts_at=starts_at,
                ends_at=ends_at,
            )
            db.session.add(assignment)
            db.session.commit()
            return assignment.id

    def read(self, fn: Callable[[Any], T]) -> T:
        """Run `fn(session)` in a fresh app context (never held across client calls)."""
        with self.app.app_context():
            try:
                return fn(db.session)
            finally:
                db.session.remove()

    def rows(self, model: Any, *where: Any) -> list[Any]:
        def fetch(session: Any) -> list[Any]:
            objects = list(session.scalars(select(model).where(*where).order_by(model.id)))
            session.expunge_all()
            return objects

        return self.read(fetch)


@pytest.fixture
def world(app: Flask, factory: Factory) -> World:
    return World(app, factory)


def tap(
    client: FlaskClient,
    headers: dict[str, str],
    assignment_id: int,
    *,
    action: str = "check-in",
    key: str | None = "auto",
    lat: Any = POST_LAT,
    lon: Any = POST_LON,
    accuracy_m: Any = 10,
    client_time: Any = None,
    body: Any = None,
) -> TestResponse:
    """POST a check-in or check-out; `key="auto"` sends a fresh key, None sends none."""
    request_headers = dict(headers)
    if key == "auto":
        key = uuid.uuid4().hex
    if key is not None:
        request_headers["Idempotency-Key"] = key
    if body is None:
        body = {"lat": lat, "lon": lon, "accuracy_m": accuracy_m}
        if client_time is not None:
            body["client_time"] = client_time
    return client.post(
        f"/api/v1/assignments/{assignment_id}/{action}", json=body, headers=request_headers
    )


def iso(moment: datetime) -> str:
    return moment.isoformat()


def day(moment: datetime) -> date:
    return moment.date()
