"""What each publish tells a volunteer whose shifts changed since the last one: a move, a
move back, a removal (alone or beside a new shift), with the times they were told; and that
every moved assignment is left with reminders for its new time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Factory
from tests.plans.conftest import (
    World,
    create_plan,
    max_outbox_id,
    next_monday,
    quiet_window_around_now,
)
from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import OutboxMessage

OFFSET = "+08:00"


def _at(day: date, hour: int) -> str:
    return datetime.combine(day, time(hour)).isoformat() + OFFSET


@dataclass
class Push:
    kind: str
    assignment: int | None
    status: str
    start: str
    end: str


def _pushes(app: Flask, after_id: int = 0, assignment: int | None = None) -> list[Push]:
    """Outbox rows written after `after_id`, oldest first, with the times they name."""
    query = select(OutboxMessage).where(OutboxMessage.id > after_id)
    if assignment is not None:
        query = query.where(OutboxMessage.assignment_id == assignment)
    with app.app_context():
        return [
            Push(m.kind, m.assignment_id, m.status.value, m.params["start"], m.params["end"])
            for m in db.session.scalars(query.order_by(OutboxMessage.id))
        ]


def _pending_reminders(app: Flask, assignment: int) -> list[tuple[str, str]]:
    return [
        (p.start, p.end)
        for p in _pushes(app, assignment=assignment)
        if p.kind == "shift_reminder" and p.status == "pending"
    ]


def _shifts(
    client: FlaskClient, headers: dict[str, str], world: World, hours: list[tuple[int, int]]
) -> tuple[int, list[int], date]:
    """A plan with a 08:00-12:00 shift on each of the given days, times as (day, start)."""
    day = next_monday()
    plan = create_plan(client, headers, world, day, days=3)
    created = client.post(
        f"/api/v1/plans/{plan}/shifts",
        json={
            "shifts": [
                {
                    "post": world.posts[0],
                    "starts_at": _at(day + timedelta(days=offset), start),
                    "ends_at": _at(day + timedelta(days=offset), start + 4),
                    "kind": "day",
                    "headcount": 1,
                }
                for offset, start in hours
            ]
        },
        headers=headers,
    )
    assert created.status_code == 201, created.get_json()
    return plan, [s["id"] for s in created.get_json()], day


def _assign(
    client: FlaskClient, headers: dict[str, str], plan: int, member: int, shift: int
) -> int:
    added = client.post(
        f"/api/v1/plans/{plan}/assignments",
        json={"member": member, "shift": shift},
        headers=headers,
    )
    assert added.status_code == 201, added.get_json()
    return int(added.get_json()["id"])


def _publish(client: FlaskClient, headers: dict[str, str], plan: int) -> None:
    published = client.post(f"/api/v1/plans/{plan}/publish", headers=headers)
    assert published.status_code == 200, published.get_json()


def _move(
    client: FlaskClient, headers: dict[str, str], plan: int, shift: int, day: date, start: int
) -> None:
    moved = client.patch(
        f"/api/v1/plans/{plan}/shifts/{shift}",
        json={"starts_at": _at(day, start), "ends_at": _at(day, start + 4)},
        headers=headers,
    )
    assert moved.status_code == 200, moved.get_json()


def _remove(client: FlaskClient, headers: dict[str, str], plan: int, assignment: int) -> None:
    removed = client.post(
        f"/api/v1/plans/{plan}/assignments/{assignment}/remove", json={}, headers=headers
    )
    assert removed.status_code == 200, removed.get_json()


@dataclass
class OneShift:
    plan: int
    shift: int
    assignment: int
    day: date
    headers: dict[str, str]


@pytest.fixture
def one_shift(client: FlaskClient, factory: Factory, world: World) -> OneShift:
    """The first volunteer on one 08:00-12:00 shift, not yet published."""
    headers = world.coordinator_headers(factory)
    plan, (shift,), day = _shifts(client, headers, world, [(0, 8)])
    assignment = _assign(client, headers, plan, world.volunteers[0], shift)
    return OneShift(plan, shift, assignment, day, headers)


def test_every_move_is_told_and_reminded_even_back_to_an_earlier_time(
    app: Flask, client: FlaskClient, one_shift: OneShift
) -> None:
    s = one_shift
    _publish(client, s.headers, s.plan)
    for start in (10, 8, 10):  # back to the first time, then to the second again
        mark = max_outbox_id(app)
        _move(client, s.headers, s.plan, s.shift, s.day, start)
        _publish(client, s.headers, s.plan)
        told = _pushes(app, mark)
        times = (f"{start:02d}:00", f"{start + 4:02d}:00")
        assert [(p.kind, p.start, p.end) for p in told] == [
            ("assignment_changed", *times),
            ("shift_reminder", *times),
            ("shift_reminder", *times),
        ], start
        assert _pending_reminders(app, s.assignment) == [times, times], start
    # Publishing again tells nobody anything.
    mark = max_outbox_id(app)
    _publish(client, s.headers, s.plan)
    assert _pushes(app, mark) == []


def test_the_taker_of_a_moved_shift_keeps_reminders_after_the_next_publish(
    app: Flask, client: FlaskClient, factory: Factory, world: World, one_shift: OneShift
) -> None:
    """An approved swap of a shift moved but not yet published gives the taker reminders for
    the new time; the next publish tells the taker of the move and must leave reminders."""
    s = one_shift
    giver, taker = world.volunteers[0], world.volunteers[2]
    _publish(client, s.headers, s.plan)
    _move(client, s.headers, s.plan, s.shift, s.day, 10)
    proposed = client.post(
        f"/api/v1/assignments/{s.assignment}/swap-requests",
        json={"member": taker},
        headers=factory.headers(giver),
    )
    assert proposed.status_code == 201, proposed.get_json()
    accepted = client.post(
        f"/api/v1/swap-requests/{proposed.get_json()['id']}/accept",
        headers=factory.headers(taker),
    )
    assert accepted.status_code == 200, accepted.get_json()
    taken = accepted.get_json()["target_new_assignment"]
    _publish(client, s.headers, s.plan)
    assert _pending_reminders(app, taken) == [("10:00", "14:00")] * 2
    told = [p for p in _pushes(app, assignment=taken) if p.kind != "shift_reminder"]
    assert [(p.kind, p.start) for p in told] == [("assignment_changed", "10:00")]


def test_taken_off_two_shifts_and_put_on_one_is_told_one_change_and_one_cancellation(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """Only one removal is told as the change to the new shift (the earliest, in start
    order); the other is told as a cancellation."""
    member = world.volunteers[0]
    headers = world.coordinator_headers(factory)
    plan, (first, second, third), _ = _shifts(client, headers, world, [(0, 8), (1, 8), (2, 8)])
    dropped = [_assign(client, headers, plan, member, shift) for shift in (first, second)]
    _publish(client, headers, plan)
    for assignment in dropped:
        _remove(client, headers, plan, assignment)
    given = _assign(client, headers, plan, member, third)
    mark = max_outbox_id(app)
    _publish(client, headers, plan)
    told = [(p.kind, p.assignment) for p in _pushes(app, mark) if p.kind != "shift_reminder"]
    assert sorted(told) == [
        ("assignment_cancelled", dropped[1]),
        ("assignment_changed", given),
    ]


def test_a_cancellation_names_the_time_the_volunteer_was_told(
    app: Flask, client: FlaskClient, one_shift: OneShift
) -> None:
    """Told of 08:00-12:00, the shift then moved to 10:00 and the volunteer taken off it in
    the same round: the cancellation names their 08:00 shift, not a 10:00 one never told."""
    s = one_shift
    _publish(client, s.headers, s.plan)
    _move(client, s.headers, s.plan, s.shift, s.day, 10)
    _remove(client, s.headers, s.plan, s.assignment)
    mark = max_outbox_id(app)
    _publish(client, s.headers, s.plan)
    assert [(p.kind, p.start, p.end) for p in _pushes(app, mark)] == [
        ("assignment_cancelled", "08:00", "12:00")
    ]


def _kinds(pushes: list[Push]) -> list[tuple[str, str, str]]:
    return [(p.kind, p.start, p.status) for p in pushes if p.kind != "shift_reminder"]


def test_a_move_while_the_announcement_is_held_announces_the_new_time_instead(
    app: Flask, client: FlaskClient, one_shift: OneShift, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Published in quiet hours, the `assignment_published` waits for the morning; a move
    before then cancels it, and the volunteer, never told of the shift, is told of it once,
    at the new time."""
    monkeypatch.setitem(app.config, "PUSH_QUIET_HOURS", quiet_window_around_now())
    s = one_shift
    _publish(client, s.headers, s.plan)
    _move(client, s.headers, s.plan, s.shift, s.day, 10)
    _publish(client, s.headers, s.plan)
    assert _kinds(_pushes(app, assignment=s.assignment)) == [
        ("assignment_published", "08:00", "cancelled"),
        ("assignment_published", "10:00", "pending"),
    ]
    assert _pending_reminders(app, s.assignment) == [("10:00", "14:00")] * 2


def test_a_move_while_a_change_is_held_replaces_it_and_leaves_what_went_out(
    app: Flask, client: FlaskClient, one_shift: OneShift, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The announcement went out at once (not held: it stays pending only until the worker
    runs); the change published in quiet hours waits, and a second move before morning
    replaces it with a change to the latest time."""
    s = one_shift
    _publish(client, s.headers, s.plan)
    monkeypatch.setitem(app.config, "PUSH_QUIET_HOURS", quiet_window_around_now())
    for start in (10, 12):
        _move(client, s.headers, s.plan, s.shift, s.day, start)
        _publish(client, s.headers, s.plan)
    assert _kinds(_pushes(app, assignment=s.assignment)) == [
        ("assignment_published", "08:00", "pending"),
        ("assignment_changed", "10:00", "cancelled"),
        ("assignment_changed", "12:00", "pending"),
    ]
