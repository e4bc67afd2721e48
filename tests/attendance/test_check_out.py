"""Check-out: service minutes clipped to the shift plus grace, the ledger credit, offline
sync of client times, and the check-out window."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.attendance.conftest import World, iso, tap
from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models import AuditLog
from volunteer_hub.models.attendance import Attendance, AttendanceStatus, HoursEntry, HoursKind
from volunteer_hub.models.plans import Assignment, AssignmentStatus
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import attendance, hours


@pytest.fixture
def volunteer(factory: Factory) -> int:
    return factory.create_member(name="王小明")


@pytest.fixture
def post(world: World) -> int:
    return world.post(radius_m=100)


def test_check_out_before_check_in_is_a_conflict(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    response = tap(client, factory.headers(volunteer), assignment, action="check-out")
    assert response.status_code == 409
    assert "check in first" in response.get_json()["detail"]


def test_check_out_credits_clipped_minutes_and_completes_the_assignment(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    now = utcnow()
    # Arrived 40 min before a shift that began 3 h ago (recorded offline), leaves now, 1 h
    # after it ended: the credit is the shift plus 15 min of grace at each end.
    starts, ends = now - timedelta(hours=3), now - timedelta(hours=1)
    assignment = world.assignment(volunteer, post_id=post, starts_at=starts, ends_at=ends)
    headers = factory.headers(volunteer)
    arrived = tap(client, headers, assignment, client_time=iso(starts - timedelta(minutes=25)))
    assert arrived.status_code == 201, arrived.get_json()
    assert arrived.get_json()["synced_late"] is True
    out = tap(client, headers, assignment, action="check-out", key="out-1")
    assert out.status_code == 200, out.get_json()
    body = out.get_json()
    assert body["status"] == "closed"
    assert body["service_minutes"] == 120 + 15 + 15
    assert body["check_out"]["lat"] is not None

    (entry,) = world.rows(HoursEntry)
    assert entry.kind == HoursKind.ATTENDANCE
    assert entry.minutes == 150 and entry.turns == 1
    assert entry.member_id == volunteer
    assert entry.assignment_id == assignment and entry.attendance_id == body["id"]
    assert entry.squad_id is None
    (row,) = world.rows(Assignment, Assignment.id == assignment)
    assert row.status == AssignmentStatus.COMPLETED

    # A retried check-out changes nothing and credits nothing twice.
    again = tap(client, headers, assignment, action="check-out", key="out-1")
    assert again.status_code == 200 and again.get_json() == body
    fresh_key = tap(client, headers, assignment, action="check-out")
    assert fresh_key.status_code == 200 and fresh_key.get_json()["id"] == body["id"]
    assert len(world.rows(HoursEntry)) == 1


def test_leaving_early_counts_only_time_served(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    now = utcnow()
    assignment = world.assignment(
        volunteer,
        post_id=post,
        starts_at=now - timedelta(hours=2),
        ends_at=now + timedelta(hours=2),
    )
    headers = factory.headers(volunteer)
    tap(client, headers, assignment, client_time=iso(now - timedelta(minutes=90)))
    out = tap(client, headers, assignment, action="check-out")
    assert out.get_json()["service_minutes"] == 90


def test_the_squad_of_the_post_is_credited(
    client: FlaskClient, factory: Factory, world: World, volunteer: int
) -> None:
    town = factory.create_town("钟公庙街道")
    squad = factory.create_squad("patrol", town)
    post = world.post(town_id=town)
    assignment = world.assignment(volunteer, post_id=post)
    headers = factory.headers(volunteer)
    tap(client, headers, assignment)
    tap(client, headers, assignment, action="check-out")
    (entry,) = world.rows(HoursEntry)
    assert (entry.town_id, entry.squad_id) == (town, squad)


def test_check_out_time_before_check_in_is_refused(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    now = utcnow()
    assignment = world.assignment(volunteer, post_id=post, starts_at=now - timedelta(hours=1))
    headers = factory.headers(volunteer)
    tap(client, headers, assignment, client_time=iso(now - timedelta(minutes=30)))
    response = tap(
        client,
        headers,
        assignment,
        action="check-out",
        client_time=iso(now - timedelta(minutes=40)),
    )
    assert response.status_code == 422
    assert "client_time" in response.get_json()["errors"]
    assert world.rows(HoursEntry) == []


def test_check_out_window_closes_two_hours_after_the_end(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    now = utcnow()
    assignment = world.assignment(
        volunteer,
        post_id=post,
        starts_at=now - timedelta(hours=8),
        ends_at=now - timedelta(hours=3),
    )
    headers = factory.headers(volunteer)
    assert (
        tap(client, headers, assignment, client_time=iso(now - timedelta(hours=7))).status_code
        == 201
    )
    late = tap(client, headers, assignment, action="check-out")
    assert late.status_code == 422
    assert "closes_at" in late.get_json()
    # The phone recorded the check-out in time and synced later: honoured and flagged.
    synced = tap(
        client, headers, assignment, action="check-out", client_time=iso(now - timedelta(hours=2))
    )
    assert synced.status_code == 200, synced.get_json()
    assert synced.get_json()["synced_late"] is True
    assert synced.get_json()["service_minutes"] == 4 * 60 + 15


def test_offline_times_must_be_plausible(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    now = utcnow()
    assignment = world.assignment(volunteer, post_id=post, starts_at=now - timedelta(hours=1))
    headers = factory.headers(volunteer)
    future = tap(client, headers, assignment, client_time=iso(now + timedelta(minutes=30)))
    assert future.status_code == 422
    assert "client_time" in future.get_json()["errors"]
    ancient = tap(client, headers, assignment, client_time=iso(now - timedelta(hours=30)))
    assert ancient.status_code == 422
    assert "24 h" in ancient.get_json()["detail"]
    # A time with another offset is the same instant and fine.
    shanghai = (now - timedelta(minutes=20)).astimezone(ZoneInfo("Asia/Shanghai")).isoformat()
    ok = tap(client, headers, assignment, client_time=shanghai)
    assert ok.status_code == 201
    assert ok.get_json()["synced_late"] is True


def test_a_small_phone_clock_drift_uses_the_server_time(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    response = tap(
        client,
        factory.headers(volunteer),
        assignment,
        client_time=iso(utcnow() + timedelta(seconds=50)),
    )
    assert response.status_code == 201
    assert response.get_json()["synced_late"] is False
    (att,) = world.rows(Attendance)
    assert att.check_in_client_time is not None
    assert abs((att.check_in_at - att.check_in_received_at).total_seconds()) < 1


def test_check_out_far_from_the_post_is_refused(
    client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment = world.assignment(volunteer, post_id=post)
    headers = factory.headers(volunteer)
    tap(client, headers, assignment)
    response = tap(client, headers, assignment, action="check-out", lat=30.5)
    assert response.status_code == 422
    assert response.get_json()["distance_m"] > 70_000


def swept(
    app: Flask, client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> tuple[int, dict[str, str], datetime]:
    """A two-hour shift that ended three hours ago, checked in at its start and never checked
    out, which the sweep has closed at its end (credited 120 minutes): the assignment, the
    volunteer's headers and the shift's end."""
    now = utcnow()
    starts, ends = now - timedelta(hours=5), now - timedelta(hours=3)
    assignment = world.assignment(volunteer, post_id=post, starts_at=starts, ends_at=ends)
    headers = factory.headers(volunteer)
    assert tap(client, headers, assignment, client_time=iso(starts)).status_code == 201
    with app.app_context():
        rules = attendance.Rules.from_config(app.config)
        assert attendance.close_forgotten(db.session(), now=now, rules=rules) == 1
    return assignment, headers, ends


def test_an_offline_check_out_synced_after_the_sweep_replaces_its_guess(
    app: Flask, client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    """The sweep closes a forgotten check-out at the shift end, a guess. A phone that tapped
    out an hour early without signal, and syncs after the sweep, is the truth: the credit is
    corrected to the time served (a correction entry referencing the original), not left an
    hour too high."""
    assignment, headers, ends = swept(app, client, factory, world, volunteer, post)
    (guessed,) = world.rows(Attendance)
    assert (guessed.status, guessed.service_minutes) == (AttendanceStatus.AUTO_CLOSED, 120)

    left = ends - timedelta(hours=1)
    synced = tap(client, headers, assignment, action="check-out", key="out", client_time=iso(left))
    assert synced.status_code == 200, synced.get_json()
    body = synced.get_json()
    assert (body["status"], body["service_minutes"], body["synced_late"]) == ("closed", 60, True)
    assert datetime.fromisoformat(body["check_out_at"]) == left
    entries = world.rows(HoursEntry)
    assert [(e.kind, e.minutes) for e in entries] == [
        (HoursKind.ATTENDANCE, 120),
        (HoursKind.CORRECTION, -60),
    ]
    assert entries[1].references_id == entries[0].id
    assert (
        entries[1].reason
        == "Check-out tapped offline, synced after the shift was closed at its end."
    )
    assert world.rows(AuditLog, AuditLog.action == "attendance.check_out")
    # A retry of the same tap replays it; another tap later changes nothing.
    again = tap(client, headers, assignment, action="check-out", key="out", client_time=iso(left))
    assert (again.status_code, again.get_json()) == (200, body)
    later = tap(client, headers, assignment, action="check-out", client_time=iso(ends))
    assert later.status_code == 200 and later.get_json()["service_minutes"] == 60
    assert len(world.rows(HoursEntry)) == 2


def test_a_tap_after_the_sweep_outside_the_window_leaves_its_close_alone(
    app: Flask, client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    assignment, headers, _ends = swept(app, client, factory, world, volunteer, post)
    late = tap(client, headers, assignment, action="check-out")  # now: the window has closed
    assert late.status_code == 200, late.get_json()
    assert (late.get_json()["status"], late.get_json()["service_minutes"]) == ("auto_closed", 120)
    assert len(world.rows(HoursEntry)) == 1


def test_a_tap_after_the_sweep_leaves_a_reversed_credit_to_the_reviewers(
    app: Flask, client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    """A volunteer's tap never meets the reviewers' refusal ("these hours were reversed"): the
    attendance stays as the reviewer left it."""
    assignment, headers, ends = swept(app, client, factory, world, volunteer, post)
    reviewer = factory.create_member(roles=(("admin", None, None),))
    with app.app_context():
        session = db.session()
        (credit,) = session.query(HoursEntry).all()
        hours.reverse_entry(session, actor_id=reviewer, entry=credit, reason="不在岗")
    left = ends - timedelta(hours=1)
    synced = tap(client, headers, assignment, action="check-out", client_time=iso(left))
    assert synced.status_code == 200, synced.get_json()
    assert (synced.get_json()["status"], synced.get_json()["service_minutes"]) == (
        "auto_closed",
        120,
    )
    assert [e.kind for e in world.rows(HoursEntry)] == [HoursKind.ATTENDANCE, HoursKind.REVERSAL]


def correct(client: FlaskClient, factory: Factory, who: int, assignment: int, **body):
    return client.post(
        f"/api/v1/assignments/{assignment}/attendance/correction",
        json=body,
        headers=factory.headers(who),
    )


def test_correcting_only_the_check_in_leaves_the_sweeps_guess_flagged(
    app: Flask, client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    """A leader who fixes only the check-in leaves the check-out as the sweep's guess, so it
    stays auto_closed and the volunteer's offline check-out that syncs later still replaces
    it, as it would have without the leader's fix."""
    assignment, headers, ends = swept(app, client, factory, world, volunteer, post)
    coordinator = factory.create_member(name="协调员", roles=(("coordinator", "patrol", None),))
    came = ends - timedelta(hours=1, minutes=30)  # half an hour late to the two-hour shift
    fixed = correct(
        client, factory, coordinator, assignment, check_in_at=iso(came), reason="实际迟到半小时"
    )
    assert fixed.status_code == 200, fixed.get_json()
    assert (fixed.get_json()["status"], fixed.get_json()["service_minutes"]) == ("auto_closed", 90)

    left = ends - timedelta(minutes=30)
    synced = tap(client, headers, assignment, action="check-out", client_time=iso(left))
    assert synced.status_code == 200, synced.get_json()
    assert (synced.get_json()["status"], synced.get_json()["service_minutes"]) == ("closed", 60)
    assert [(e.kind, e.minutes) for e in world.rows(HoursEntry)] == [
        (HoursKind.ATTENDANCE, 120),
        (HoursKind.CORRECTION, -30),
        (HoursKind.CORRECTION, -30),
    ]


def test_a_leaders_check_out_time_replaces_the_sweeps_guess(
    app: Flask, client: FlaskClient, factory: Factory, world: World, volunteer: int, post: int
) -> None:
    """A check-out time the leader gives is no longer a guess: the attendance is closed, and a
    tap synced afterwards changes nothing."""
    assignment, headers, ends = swept(app, client, factory, world, volunteer, post)
    coordinator = factory.create_member(name="协调员", roles=(("coordinator", "patrol", None),))
    fixed = correct(
        client,
        factory,
        coordinator,
        assignment,
        check_out_at=iso(ends - timedelta(minutes=45)),
        reason="队长核实离岗时间",
    )
    assert fixed.status_code == 200, fixed.get_json()
    assert (fixed.get_json()["status"], fixed.get_json()["service_minutes"]) == ("closed", 75)
    left = ends - timedelta(minutes=30)
    synced = tap(client, headers, assignment, action="check-out", client_time=iso(left))
    assert synced.status_code == 200, synced.get_json()
    assert (synced.get_json()["status"], synced.get_json()["service_minutes"]) == ("closed", 75)
