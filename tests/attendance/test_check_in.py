"""Check-in: windows, geofence, idempotency keys, offline sync and bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from tests.attendance.conftest import POST_LAT, POST_LON, World, tap
from tests.conftest import Factory
from volunteer_hub.models import AuditLog
from volunteer_hub.models.attendance import Attendance, IdempotencyRecord
from volunteer_hub.models.plans import AssignmentStatus
from volunteer_hub.models.types import utcnow

# About 111 m per 0.001 degree of latitude.
METRES_PER_DEG_LAT = 111_195


def north(metres: float) -> float:
    return POST_LAT + metres / METRES_PER_DEG_LAT


@pytest.fixture
def volunteer(factory: Factory) -> int:
    return factory.create_member(name="王小明")


@pytest.fixture
def post(world: World) -> int:
    return world.post(radius_m=100)


def test_check_in_creates_attendance_and_a_repeat_returns_it(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    headers = factory.headers(volunteer)
    first = tap(client, headers, assignment, key="tap-1")
    assert first.status_code == 201, first.get_json()
    body = first.get_json()
    assert body["assignment"] == assignment
    assert body["member"] == volunteer
    assert body["status"] == "open"
    assert body["check_in"]["lat"] == POST_LAT
    assert body["synced_late"] is False
    assert body["check_in_at"].endswith("+08:00")

    again = tap(client, headers, assignment, key="tap-1")
    assert again.status_code == 200
    assert again.get_json() == body
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(world.rows(Attendance)) == 1
    assert len(world.rows(IdempotencyRecord)) == 1
    assert [a.action for a in world.rows(AuditLog)] == ["attendance.check_in"]


def test_another_key_after_check_in_returns_the_same_attendance(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    headers = factory.headers(volunteer)
    first = tap(client, headers, assignment)
    second = tap(client, headers, assignment, lat=north(20))
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.get_json()["id"] == first.get_json()["id"]
    assert second.get_json()["check_in"]["lat"] == POST_LAT
    assert len(world.rows(Attendance)) == 1


def test_same_key_with_a_different_body_is_refused(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    headers = factory.headers(volunteer)
    assert tap(client, headers, assignment, key="k").status_code == 201
    reused = tap(client, headers, assignment, key="k", lat=north(10))
    assert reused.status_code == 422
    assert reused.mimetype == "application/problem+json"
    assert "Idempotency-Key" in reused.get_json()["errors"]
    # The same key on the check-out endpoint is a different request too.
    other = tap(client, headers, assignment, key="k", action="check-out")
    assert other.status_code == 422
    assert "Idempotency-Key" in other.get_json()["errors"]


@pytest.mark.parametrize("key", [None, "", "   ", "x" * 201, "ключ"])
def test_a_missing_or_bad_key_is_named(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int, key: str | None
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    headers = factory.headers(volunteer)
    if key is not None and not key.isascii():
        # HTTP headers are latin-1; send raw bytes the way a broken client would.
        key = key.encode().decode("latin-1")
    response = tap(client, headers, assignment, key=key)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert world.rows(Attendance) == []


def test_keys_are_per_member(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    other = factory.create_member(name="李四")
    mine = world.assignment(volunteer, post_id=post)
    theirs = world.assignment(other, post_id=post)
    assert tap(client, factory.headers(volunteer), mine, key="same").status_code == 201
    assert tap(client, factory.headers(other), theirs, key="same").status_code == 201
    assert len(world.rows(Attendance)) == 2


def test_window_opens_before_the_shift_and_closes_at_its_end(
    client: FlaskClient, factory: Factory, world: World, post: int
) -> None:
    now = utcnow()
    # One member per shift: PostgreSQL refuses overlapping active assignments of one member.
    early, ok, late = (factory.create_member(name=n) for n in ("甲", "乙", "丙"))
    too_early = world.assignment(early, post_id=post, starts_at=now + timedelta(minutes=45))
    response = tap(client, factory.headers(early), too_early)
    assert response.status_code == 422
    problem = response.get_json()
    assert "opens_at" in problem and "closes_at" in problem
    assert "30 min before" in problem["detail"]

    early_ok = world.assignment(ok, post_id=post, starts_at=now + timedelta(minutes=25))
    assert tap(client, factory.headers(ok), early_ok).status_code == 201

    over = world.assignment(
        late,
        post_id=post,
        starts_at=now - timedelta(hours=9),
        ends_at=now - timedelta(minutes=1),
    )
    assert tap(client, factory.headers(late), over).status_code == 422
    assert world.rows(Attendance, Attendance.member_id != ok) == []


def test_window_is_configurable(
    app, client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(
        volunteer, post_id=post, starts_at=utcnow() + timedelta(minutes=45)
    )
    app.config["ATTENDANCE_OPENS_BEFORE_MIN"] = 60
    try:
        assert tap(client, factory.headers(volunteer), assignment).status_code == 201
    finally:
        del app.config["ATTENDANCE_OPENS_BEFORE_MIN"]


def test_geofence_says_how_far_and_what_is_allowed(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    headers = factory.headers(volunteer)
    far = tap(client, headers, assignment, lat=north(500), accuracy_m=20)
    assert far.status_code == 422
    problem = far.get_json()
    assert problem["distance_m"] == pytest.approx(500, abs=2)
    assert problem["radius_m"] == 100
    assert problem["accuracy_credit_m"] == 20
    assert problem["allowed_m"] == 120
    assert "500 m" in problem["detail"] and "100 m" in problem["detail"]
    assert set(problem["errors"]) == {"lat", "lon"}
    assert world.rows(Attendance) == []


def test_accuracy_is_credited_up_to_the_cap(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    # 180 m away: radius 100 + accuracy 90 covers it.
    ok = world.assignment(volunteer, post_id=post)
    response = tap(client, factory.headers(volunteer), ok, lat=north(180), accuracy_m=90)
    assert response.status_code == 201
    # 250 m away with a 5 km "accuracy": only the 100 m cap counts.
    other = factory.create_member(name="李四")
    capped = world.assignment(other, post_id=post)
    response = tap(client, factory.headers(other), capped, lat=north(250), accuracy_m=5000)
    assert response.status_code == 422
    assert response.get_json()["accuracy_credit_m"] == 100
    assert response.get_json()["allowed_m"] == 200


def test_someone_elses_assignment_looks_absent(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    other = factory.create_member(name="李四")
    theirs = world.assignment(other, post_id=post)
    headers = factory.headers(volunteer)
    for action in ("check-in", "check-out"):
        response = tap(client, headers, theirs, action=action)
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"
    assert tap(client, headers, 2**31 - 1).status_code == 404
    assert tap(client, headers, 10**30).status_code == 404
    assert world.rows(Attendance) == []


def test_needs_a_token(client: FlaskClient, world: World, volunteer: int, post: int) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    assert tap(client, {}, assignment).status_code == 401


@pytest.mark.parametrize(
    "status", [AssignmentStatus.CANCELLED, AssignmentStatus.DECLINED, AssignmentStatus.PROPOSED]
)
def test_no_check_in_to_a_cancelled_assignment(
    client: FlaskClient,
    factory: Factory,
    world: World,
    volunteer: int,
    post: int,
    status: AssignmentStatus,
) -> None:
    assignment = world.assignment(volunteer, post_id=post, status=status)
    response = tap(client, factory.headers(volunteer), assignment)
    assert response.status_code == 409
    assert response.get_json()["assignment_status"] == status.value


def test_a_late_arrival_after_a_no_show_counts(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post, status=AssignmentStatus.NO_SHOW)
    assert tap(client, factory.headers(volunteer), assignment).status_code == 201
    from volunteer_hub.models.plans import Assignment

    (row,) = world.rows(Assignment, Assignment.id == assignment)
    assert row.status == AssignmentStatus.ACCEPTED


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lon": POST_LON}, "lat"),
        ({"lat": POST_LAT}, "lon"),
        ({"lat": "29.82", "lon": POST_LON}, "lat"),
        ({"lat": "north", "lon": POST_LON}, "lat"),
        ({"lat": True, "lon": POST_LON}, "lat"),
        ({"lat": None, "lon": POST_LON}, "lat"),
        ({"lat": 91, "lon": POST_LON}, "lat"),
        ({"lat": -90.5, "lon": POST_LON}, "lat"),
        ({"lat": POST_LAT, "lon": 181}, "lon"),
        ({"lat": POST_LAT, "lon": POST_LON, "accuracy_m": -1}, "accuracy_m"),
        ({"lat": POST_LAT, "lon": POST_LON, "client_time": "2026-03-01T08:00:00"}, "client_time"),
        ({"lat": POST_LAT, "lon": POST_LON, "client_time": "yesterday"}, "client_time"),
        ({"lat": POST_LAT, "lon": POST_LON, "client_time": 1700000000}, "client_time"),
        ({"lat": POST_LAT, "lon": POST_LON, "extra": 1}, "extra"),
    ],
)
def test_bad_bodies_are_named_4xx(
    client: FlaskClient,
    factory: Factory,
    world: World,
    volunteer: int,
    post: int,
    body: dict,
    field: str,
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    response = tap(client, factory.headers(volunteer), assignment, body=body)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_literals_are_refused(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int, literal: str
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    headers = {**factory.headers(volunteer), "Idempotency-Key": "nan"}
    for raw in (
        f'{{"lat": {literal}, "lon": 121.55, "accuracy_m": 5}}',
        f'{{"lat": 29.82, "lon": 121.55, "accuracy_m": {literal}}}',
    ):
        response = client.post(
            f"/api/v1/assignments/{assignment}/check-in",
            data=raw,
            headers=headers,
            content_type="application/json",
        )
        assert response.status_code == 422, raw
        assert response.mimetype == "application/problem+json"
    assert world.rows(Attendance) == []


def test_not_json_is_a_4xx(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    headers = {**factory.headers(volunteer), "Idempotency-Key": "x"}
    for data in ("{", "[]", '"lat"'):
        response = client.post(
            f"/api/v1/assignments/{assignment}/check-in",
            data=data,
            headers=headers,
            content_type="application/json",
        )
        assert 400 <= response.status_code < 500
