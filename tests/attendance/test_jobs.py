"""Worker sweeps, called directly with `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.attendance.conftest import World, iso, tap
from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.jobs import attendance as jobs
from volunteer_hub.models import AuditLog, Member, MemberStatus
from volunteer_hub.models.attendance import (
    Attendance,
    AttendanceStatus,
    HoursEntry,
    IdempotencyRecord,
)
from volunteer_hub.models.notifications import InboxItem, OutboxMessage
from volunteer_hub.models.plans import Assignment, AssignmentStatus
from volunteer_hub.models.types import utcnow


def run(app: Flask, function, now) -> int:
    with app.app_context():
        return function(now)


def test_forgotten_check_outs_close_at_the_shift_end(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    volunteer = factory.create_member()
    now = utcnow()
    starts, ends = now - timedelta(hours=3), now + timedelta(hours=1)
    assignment = world.assignment(volunteer, post_id=world.post(), starts_at=starts, ends_at=ends)
    tap(client, factory.headers(volunteer), assignment, client_time=iso(starts))
    # Still inside the check-out window: nothing happens.
    assert run(app, jobs.close_forgotten_check_outs, ends + timedelta(hours=1)) == 0
    assert run(app, jobs.close_forgotten_check_outs, ends + timedelta(hours=2, minutes=1)) == 1
    (att,) = world.rows(Attendance)
    assert att.status == AttendanceStatus.AUTO_CLOSED
    assert att.check_out_at == ends
    assert att.service_minutes == 4 * 60
    (entry,) = world.rows(HoursEntry)
    assert entry.minutes == 240 and entry.turns == 1
    (row,) = world.rows(Assignment)
    assert row.status == AssignmentStatus.COMPLETED
    assert world.rows(AuditLog, AuditLog.action == "attendance.auto_close")
    # Idempotent: a second sweep finds nothing.
    assert run(app, jobs.close_forgotten_check_outs, ends + timedelta(hours=3)) == 0


def test_no_shows_are_marked_and_the_squad_leader_told(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    town = factory.create_town("东胜街道")
    leader = factory.create_member(name="队长", roles=(("squad_leader", "patrol", town),))
    factory.create_squad("patrol", town, leader_id=leader)
    absent = factory.create_member(name="缺勤者")
    present = factory.create_member(name="到岗者")
    post = world.post(town_id=town, name="东胜路口")
    starts = utcnow() - timedelta(minutes=10)
    missed = world.assignment(absent, post_id=post, starts_at=starts)
    came = world.assignment(present, post_id=post, starts_at=starts)
    tap(client, factory.headers(present), came)

    assert run(app, jobs.mark_no_shows, starts + timedelta(minutes=29)) == 0
    assert run(app, jobs.mark_no_shows, starts + timedelta(minutes=31)) == 1
    assert run(app, jobs.mark_no_shows, starts + timedelta(minutes=45)) == 0
    statuses = {a.id: a.status for a in world.rows(Assignment)}
    assert statuses[missed] == AssignmentStatus.NO_SHOW
    assert statuses[came] == AssignmentStatus.ACCEPTED
    (push,) = world.rows(OutboxMessage)
    assert push.recipient_id == leader and push.kind == "no_show_notice"
    assert push.params["volunteer"] == "缺勤者" and push.params["post"] == "东胜路口"
    (item,) = world.rows(InboxItem)
    assert "缺勤者" in item.title
    assert world.rows(AuditLog, AuditLog.action == "assignment.no_show")


def test_a_check_in_the_sweeps_read_missed_is_not_marked_a_no_show(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sweep's read takes its snapshot before it locks the rows it returns, so a check-in
    that commits in between is missing from it (on PostgreSQL the lock does not re-read the
    attendance). Marking must look again under the locks, or the leader is told of a no-show
    by a volunteer at the post."""
    from volunteer_hub.services import attendance as service

    town = factory.create_town("东胜街道")
    leader = factory.create_member(roles=(("squad_leader", "patrol", town),))
    factory.create_squad("patrol", town, leader_id=leader)
    volunteer = factory.create_member()
    assignment = world.assignment(
        volunteer, post_id=world.post(town_id=town), starts_at=utcnow() - timedelta(minutes=40)
    )
    assert tap(client, factory.headers(volunteer), assignment).status_code == 201
    reads: list[int] = []
    fresh_read = service._due_no_shows

    def read_before_the_check_in(session, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(1)
        if len(reads) == 1:  # as a read whose snapshot predates the check-in's commit
            return [session.get_one(Assignment, assignment)]
        return fresh_read(session, **kwargs)

    monkeypatch.setattr(service, "_due_no_shows", read_before_the_check_in)

    assert run(app, jobs.mark_no_shows, utcnow()) == 0
    assert len(reads) == 2
    (row,) = world.rows(Assignment, Assignment.id == assignment)
    assert row.status == AssignmentStatus.ACCEPTED
    assert world.rows(OutboxMessage) == []
    assert world.rows(AuditLog, AuditLog.action == "assignment.no_show") == []


def test_a_no_show_notice_gives_the_shift_in_the_configured_zone(
    app: Flask, factory: Factory, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(app.config, "HUB_TIMEZONE", "Asia/Urumqi")  # UTC+6, not the default
    town = factory.create_town("东胜街道")
    leader = factory.create_member(roles=(("squad_leader", "patrol", town),))
    factory.create_squad("patrol", town, leader_id=leader)
    starts = datetime(2026, 6, 2, 12, 0, tzinfo=UTC)
    world.assignment(
        factory.create_member(),
        post_id=world.post(town_id=town),
        starts_at=starts,
        ends_at=starts + timedelta(hours=10),
    )
    assert run(app, jobs.mark_no_shows, starts + timedelta(minutes=31)) == 1
    (push,) = world.rows(OutboxMessage)
    assert (push.params["date"], push.params["start"], push.params["end"]) == (
        "6月2日（周二）",
        "18:00",
        "次日04:00",
    )


def test_idempotency_records_are_kept_48_hours(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    tap(client, factory.headers(volunteer), assignment, key="keep-me")
    now = utcnow()
    assert run(app, jobs.purge_idempotency_records, now + timedelta(hours=47)) == 0
    assert len(world.rows(IdempotencyRecord)) == 1
    assert run(app, jobs.purge_idempotency_records, now + timedelta(hours=49)) == 1
    assert world.rows(IdempotencyRecord) == []


def test_the_sweep_command_runs(runner, factory: Factory) -> None:
    result = runner.invoke(args=["hub", "attendance-sweep"])
    assert result.exit_code == 0, result.output
    assert "auto_closed" in result.output


def test_no_show_notices_go_to_the_leaders_the_policy_knows(
    app: Flask, factory: Factory, world: World
) -> None:
    """A leader appointed by a role grant (not recorded on the squad) is told; a suspended
    one is not; with no grant at all, the leader recorded on the squad is told."""
    town = factory.create_town("东胜街道")
    recorded = factory.create_member(name="旧队长")
    factory.create_squad("patrol", town, leader_id=recorded)
    appointed = factory.create_member(name="新队长", roles=(("squad_leader", "patrol", town),))
    away = factory.create_member(name="停用队长", roles=(("squad_leader", "patrol", town),))
    elsewhere = factory.create_member(roles=(("squad_leader", "rescue", town),))
    with app.app_context():
        db.session.get_one(Member, away).status = MemberStatus.SUSPENDED
        db.session.commit()
    starts = utcnow() - timedelta(minutes=10)
    world.assignment(factory.create_member(), post_id=world.post(town_id=town), starts_at=starts)
    assert run(app, jobs.mark_no_shows, starts + timedelta(minutes=31)) == 1
    told = {m.recipient_id for m in world.rows(OutboxMessage) if m.kind == "no_show_notice"}
    assert told == {appointed}
    assert elsewhere not in told and recorded not in told

    other_town = factory.create_town("西城街道")
    factory.create_squad("patrol", other_town, leader_id=recorded)
    world.assignment(
        factory.create_member(), post_id=world.post(town_id=other_town), starts_at=starts
    )
    assert run(app, jobs.mark_no_shows, starts + timedelta(minutes=31)) == 1
    told = [m.recipient_id for m in world.rows(OutboxMessage) if m.kind == "no_show_notice"]
    assert sorted(told) == sorted([appointed, recorded])
