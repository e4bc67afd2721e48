"""Publishing late at night: pushes about shifts that are not soon wait for the morning, the
inbox shows them at once, and a shift removed before morning takes its held push with it."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Factory
from tests.plans.conftest import World, create_plan, next_monday, quiet_window_around_now
from volunteer_hub.auth.policy import load_actor
from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import InboxItem, OutboxMessage, OutboxStatus
from volunteer_hub.models.plans import Assignment, AssignmentStatus, Shift, ShiftKind
from volunteer_hub.services import my_shifts, publish
from volunteer_hub.services.quiet_hours import QuietHours

ZONE = ZoneInfo("Asia/Shanghai")
NIGHT = QuietHours(time(22), time(7), ZONE)


def sent_at_once(push: tuple[datetime, datetime, OutboxStatus]) -> bool:
    """Due and shown as soon as written (the outbox stamps the wall clock, not publish's
    `now`)."""
    clock = datetime.now(UTC)
    return push[0] == push[1] <= clock and push[2] == OutboxStatus.PENDING


def _assignment(
    plan: int, world: World, member: int, starts: datetime, status: AssignmentStatus
) -> Assignment:
    """A four-hour shift at the world's first post with one assignment (flushed, in the
    caller's app context)."""
    kind = ShiftKind.NIGHT if starts.astimezone(ZONE).hour >= 18 else ShiftKind.DAY
    shift = Shift(
        plan_id=plan,
        post_id=world.posts[0],
        kind=kind,
        headcount=1,
        starts_at=starts,
        ends_at=starts + timedelta(hours=4),
        skills={},
    )
    db.session.add(shift)
    db.session.flush()
    assignment = Assignment(
        plan_id=plan,
        shift_id=shift.id,
        member_id=member,
        status=status,
        starts_at=starts,
        ends_at=shift.ends_at,
    )
    db.session.add(assignment)
    db.session.flush()
    return assignment


def _week_plan(client: FlaskClient, factory: Factory, world: World) -> tuple[int, datetime]:
    """A week's plan from next Monday, and that Monday's local midnight."""
    start = next_monday()
    plan = create_plan(client, world.coordinator_headers(factory), world, start)
    return plan, datetime.combine(start, time(0), ZONE)


def _propose(app: Flask, world: World, plan: int, monday: datetime) -> dict[str, int]:
    """Three proposals: Monday 06:00 and Tuesday 19:00 for one volunteer, Monday 08:00 for
    another. Returns assignment ids by name."""
    slots = {
        "early": (world.volunteers[0], monday.replace(hour=6)),
        "tuesday": (world.volunteers[0], monday.replace(hour=19) + timedelta(days=1)),
        "morning": (world.volunteers[1], monday.replace(hour=8)),
    }
    ids = {}
    with app.app_context():
        for name, (member, starts) in slots.items():
            assignment = _assignment(plan, world, member, starts, AssignmentStatus.PROPOSED)
            ids[name] = assignment.id
        db.session.commit()
    return ids


def _pushes(app: Flask, assignment: int) -> dict[str, tuple[datetime, datetime, OutboxStatus]]:
    """kind (with the reminder's lead) -> (deliver_after, inbox visible_at, status)."""
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage, InboxItem.visible_at)
            .join(InboxItem, InboxItem.outbox_id == OutboxMessage.id)
            .where(OutboxMessage.assignment_id == assignment)
        ).all()
        found = {}
        for message, visible in rows:
            name = message.kind
            if name == "shift_reminder":
                name += ":" + (message.dedupe_key or "").rsplit(":", 1)[-1]
            found[name] = (message.deliver_after, visible, message.status)
        return found


def test_a_plan_published_at_23_00_tells_the_early_shift_now_and_the_rest_at_07_00(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    plan, monday = _week_plan(client, factory, world)
    ids = _propose(app, world, plan, monday)
    now = monday - timedelta(hours=1)  # Sunday 23:00
    seven = monday.replace(hour=7)
    with app.app_context():
        actor = load_actor(world.coordinator)
        publish.publish_plan(db.session(), actor, plan, now=now, quiet=NIGHT)

    early = _pushes(app, ids["early"])
    assert sent_at_once(early["assignment_published"])  # the 06:00 patrol: told now
    # Its 2-hour reminder (04:00) is about a shift starting before 09:00: not held.
    assert early["shift_reminder:7200"][0] == monday.replace(hour=4)
    assert "shift_reminder:86400" not in early  # already past at publish
    morning = _pushes(app, ids["morning"])
    assert sent_at_once(morning["assignment_published"])  # 08:00 is before 07:00 + 2 h
    tuesday = _pushes(app, ids["tuesday"])
    # Tuesday 19:00: the push waits for Monday 07:00; the inbox shows it at once.
    assert tuesday["assignment_published"] == (seven, now, OutboxStatus.PENDING)
    assert tuesday["shift_reminder:86400"][0] == monday.replace(hour=19)  # daytime: as due
    assert tuesday["shift_reminder:7200"][0] == monday.replace(hour=17) + timedelta(days=1)

    # Taken off the Tuesday patrol before morning: the held push goes with the shift (the
    # inbox item stays, already shown), and the cancellation waits for 07:00 too.
    with app.app_context():
        db.session.get_one(Assignment, ids["tuesday"]).pending_removal = True
        db.session.commit()
        publish.publish_plan(
            db.session(),
            load_actor(world.coordinator),
            plan,
            now=now + timedelta(minutes=20),
            quiet=NIGHT,
        )
    tuesday = _pushes(app, ids["tuesday"])
    assert tuesday["assignment_published"][2] == OutboxStatus.CANCELLED
    assert tuesday["shift_reminder:86400"][2] == OutboxStatus.CANCELLED
    assert tuesday["assignment_cancelled"][:2] == (seven, now + timedelta(minutes=20))


def test_without_quiet_hours_everything_goes_at_once(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    plan, monday = _week_plan(client, factory, world)
    ids = _propose(app, world, plan, monday)
    now = monday - timedelta(hours=1)
    with app.app_context():
        publish.publish_plan(db.session(), load_actor(world.coordinator), plan, now=now)
    assert sent_at_once(_pushes(app, ids["tuesday"])["assignment_published"])


def test_the_publish_endpoint_takes_the_configured_quiet_hours(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = quiet_window_around_now()
    monkeypatch.setitem(app.config, "PUSH_QUIET_HOURS", window)
    plan, monday = _week_plan(client, factory, world)
    ids = _propose(app, world, plan, monday)
    response = client.post(
        f"/api/v1/plans/{plan}/publish", headers=world.coordinator_headers(factory)
    )
    assert response.status_code == 200, response.get_json()
    due, visible, _ = _pushes(app, ids["tuesday"])["assignment_published"]
    quiet = QuietHours.from_config(app.config)
    assert quiet is not None
    assert due == quiet.ends_after(visible) and due > visible
    assert due.astimezone(ZONE).strftime("%H:%M") == window[-5:]


def _window_around_now() -> QuietHours:
    quiet = QuietHours.parse(quiet_window_around_now(), ZONE)
    assert quiet is not None
    return quiet


def test_replacement_offers_for_a_later_shift_wait_and_soon_ones_do_not(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    plan, monday = _week_plan(client, factory, world)
    quiet = _window_around_now()
    rules = my_shifts.VolunteerRules(quiet=quiet)
    clock = datetime.now(UTC)
    ends = quiet.ends_after(clock)
    assert ends is not None
    later = monday.replace(hour=19)  # days away: offers wait
    soon = ends + timedelta(hours=1)  # before the end + the 2-hour margin: offers go now
    with app.app_context():
        freed = {}
        for name, starts in (("later", later), ("soon", soon)):
            assignment = _assignment(
                plan, world, world.volunteers[0], starts, AssignmentStatus.DECLINED
            )
            offers = my_shifts.offer_replacements(db.session(), assignment, rules)
            assert offers, name
            freed[name] = assignment.id
        db.session.commit()
    held = _offers(app, freed["later"])
    assert held and all(due == ends and visible < ends for due, visible in held)
    assert all(due == visible <= datetime.now(UTC) for due, visible in _offers(app, freed["soon"]))


def _offers(app: Flask, freed: int) -> list[tuple[datetime, datetime]]:
    with app.app_context():
        return [
            (due, visible)
            for due, visible in db.session.execute(
                select(OutboxMessage.deliver_after, InboxItem.visible_at)
                .join(InboxItem, InboxItem.outbox_id == OutboxMessage.id)
                .where(OutboxMessage.assignment_id == freed, OutboxMessage.kind == "slot_offer")
            )
        ]
