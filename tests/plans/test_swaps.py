"""Swap requests between two volunteers: proposed, accepted or declined by the other, made at
once when every hard rule holds (checked like a coordinator's manual change), refused with
the checker's reasons otherwise, closed 3 hours before either shift, audited and pushed."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

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
    outbox_rows,
    quiet_window_around_now,
)
from volunteer_hub.extensions import db
from volunteer_hub.models.audit import AuditLog
from volunteer_hub.models.notifications import InboxItem, OutboxMessage, OutboxStatus
from volunteer_hub.models.plans import ACTIVE_STATUSES, Assignment, AssignmentStatus
from volunteer_hub.services.quiet_hours import QuietHours

OFFSET = "+08:00"


def _at(day: date, hour: int) -> str:
    return datetime.combine(day, time(hour)).isoformat() + OFFSET


@dataclass
class Roster:
    plan: int
    shifts: dict[str, int]
    assignments: dict[str, int]  # shift name -> assignment id
    day: date


def _shift(post: int, day: date, start: int, end: int) -> dict[str, Any]:
    return {
        "post": post,
        "starts_at": _at(day, start),
        "ends_at": _at(day, end),
        "kind": "day",
        "headcount": 1,
    }


def _published(
    client: FlaskClient,
    factory: Factory,
    world: World,
    people: dict[str, int],
    day: date | None = None,
) -> Roster:
    """A three-day plan: s1 day 0 08-12, s2 day 1 08-12, s3 day 0 10-14 (overlaps s1),
    s5 day 2 08-12; `people` maps a shift name to who is on it; published."""
    day = day or next_monday()
    headers = world.coordinator_headers(factory)
    plan = create_plan(client, headers, world, day, days=3)
    p0, p1 = world.posts
    layout = {
        "s1": _shift(p0, day, 8, 12),
        "s2": _shift(p1, day + timedelta(days=1), 8, 12),
        "s3": _shift(p1, day, 10, 14),
        "s5": _shift(p0, day + timedelta(days=2), 8, 12),
    }
    created = client.post(
        f"/api/v1/plans/{plan}/shifts", json={"shifts": list(layout.values())}, headers=headers
    )
    assert created.status_code == 201, created.get_json()
    shifts = {name: s["id"] for name, s in zip(layout, created.get_json(), strict=True)}
    assignments = {}
    for name, member in people.items():
        added = client.post(
            f"/api/v1/plans/{plan}/assignments",
            json={"member": member, "shift": shifts[name]},
            headers=headers,
        )
        assert added.status_code == 201, added.get_json()
        assignments[name] = added.get_json()["id"]
    published = client.post(f"/api/v1/plans/{plan}/publish", headers=headers)
    assert published.status_code == 200, published.get_json()
    return Roster(plan, shifts, assignments, day)


def _propose(client: FlaskClient, factory: Factory, volunteer: int, mine: int, **body: Any) -> Any:
    return client.post(
        f"/api/v1/assignments/{mine}/swap-requests",
        json=body,
        headers=factory.headers(volunteer),
    )


def _remove(client: FlaskClient, headers: dict[str, str], roster: Roster, shift: str) -> None:
    """The coordinator takes `shift`'s assignment away (a draft until the plan is published)."""
    removed = client.post(
        f"/api/v1/plans/{roster.plan}/assignments/{roster.assignments[shift]}/remove",
        json={"reason": "病假"},
        headers=headers,
    )
    assert removed.status_code == 200, removed.get_json()


def _active_shifts(app: Flask, member: int) -> set[int]:
    with app.app_context():
        return set(
            db.session.scalars(
                select(Assignment.shift_id).where(
                    Assignment.member_id == member, Assignment.status.in_(ACTIVE_STATUSES)
                )
            )
        )


def _audit_actions(app: Flask) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def test_a_swap_both_agree_to_is_made_moved_reminders_pushed_and_audited(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    a, b = world.volunteers[0], world.volunteers[1]
    roster = _published(client, factory, world, {"s1": a, "s2": b})
    mark = max_outbox_id(app)
    proposed = _propose(
        client,
        factory,
        a,
        roster.assignments["s1"],
        assignment=roster.assignments["s2"],
        message="周一家里有事，换一下？",
    )
    assert proposed.status_code == 201, proposed.get_json()
    swap = proposed.get_json()
    assert swap["status"] == "pending"
    assert swap["requester"]["id"] == a and swap["target"]["id"] == b
    assert swap["requester_assignment"]["shift"]["id"] == roster.shifts["s1"]
    assert swap["target_assignment"]["shift"]["id"] == roster.shifts["s2"]
    asked = [p for p in outbox_rows(app, mark) if p["kind"] == "swap_request"]
    assert [p["recipient"] for p in asked] == [b]

    mark = max_outbox_id(app)
    accepted = client.post(f"/api/v1/swap-requests/{swap['id']}/accept", headers=factory.headers(b))
    assert accepted.status_code == 200, accepted.get_json()
    done = accepted.get_json()
    assert done["status"] == "approved" and done["decided_at"]
    assert _active_shifts(app, a) == {roster.shifts["s2"]}
    assert _active_shifts(app, b) == {roster.shifts["s1"]}
    with app.app_context():
        old = db.session.scalars(
            select(Assignment).where(Assignment.id.in_(roster.assignments.values()))
        ).all()
        assert {o.status for o in old} == {AssignmentStatus.CANCELLED}
        new = {
            db.session.get_one(Assignment, done["requester_new_assignment"]).member_id,
            db.session.get_one(Assignment, done["target_new_assignment"]).member_id,
        }
        assert new == {a, b}
    pushes = outbox_rows(app, mark)
    decided = sorted(p["recipient"] for p in pushes if p["kind"] == "swap_decided")
    assert decided == sorted([a, b])
    reminders = {p["assignment"] for p in pushes if p["kind"] == "shift_reminder"}
    assert reminders == {done["requester_new_assignment"], done["target_new_assignment"]}
    old_reminders = [
        p
        for p in outbox_rows(app)
        if p["kind"] == "shift_reminder" and p["assignment"] in roster.assignments.values()
    ]
    assert old_reminders and {p["status"] for p in old_reminders} == {"cancelled"}
    mine = client.get("/api/v1/me/shifts", headers=factory.headers(a)).get_json()
    assert [s["shift"]["id"] for s in mine if s["status"] == "accepted"] == [roster.shifts["s2"]]
    assert {"swap.propose", "swap.approve"} <= set(_audit_actions(app))
    # Accepting again is harmless and changes nothing.
    again = client.post(f"/api/v1/swap-requests/{swap['id']}/accept", headers=factory.headers(b))
    assert again.status_code == 200 and again.get_json()["status"] == "approved"
    assert _active_shifts(app, b) == {roster.shifts["s1"]}


def test_a_hand_over_to_a_named_volunteer(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    a, c = world.volunteers[0], world.volunteers[2]
    roster = _published(client, factory, world, {"s1": a})
    proposed = _propose(client, factory, a, roster.assignments["s1"], member=c)
    assert proposed.status_code == 201, proposed.get_json()
    assert proposed.get_json()["target_assignment"] is None
    accepted = client.post(
        f"/api/v1/swap-requests/{proposed.get_json()['id']}/accept", headers=factory.headers(c)
    )
    assert accepted.status_code == 200, accepted.get_json()
    assert accepted.get_json()["requester_new_assignment"] is None
    assert _active_shifts(app, a) == set()
    assert _active_shifts(app, c) == {roster.shifts["s1"]}


def test_a_swap_that_breaks_a_rule_is_refused_with_the_reason(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    a, b, c = world.volunteers[:3]
    roster = _published(client, factory, world, {"s1": a, "s2": b, "s3": c})
    # C already patrols 10-14 that day: taking 08-12 overlaps. Refused before C is asked.
    mark = max_outbox_id(app)
    refused = _propose(client, factory, a, roster.assignments["s1"], member=c)
    assert refused.status_code == 409, refused.get_json()
    body = refused.get_json()
    assert body["violations"] and "hard rules" in body["detail"]
    assert all(v["message"] for v in body["violations"])
    assert [p for p in outbox_rows(app, mark) if p["kind"] == "swap_request"] == []

    # A rule that breaks between the request and the answer: the coordinator puts B on a
    # shift overlapping A's before B accepts. The swap is refused, both are told.
    proposed = _propose(
        client, factory, a, roster.assignments["s1"], assignment=roster.assignments["s2"]
    )
    assert proposed.status_code == 201, proposed.get_json()
    headers = world.coordinator_headers(factory)
    extra = client.post(
        f"/api/v1/plans/{roster.plan}/shifts",
        json={"shifts": [_shift(world.posts[1], roster.day, 9, 11)]},
        headers=headers,
    ).get_json()[0]["id"]
    assert (
        client.post(
            f"/api/v1/plans/{roster.plan}/assignments",
            json={"member": b, "shift": extra},
            headers=headers,
        ).status_code
        == 201
    )
    assert client.post(f"/api/v1/plans/{roster.plan}/publish", headers=headers).status_code == 200
    mark = max_outbox_id(app)
    answer = client.post(
        f"/api/v1/swap-requests/{proposed.get_json()['id']}/accept", headers=factory.headers(b)
    )
    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["violations"]
    detail = client.get(
        f"/api/v1/swap-requests/{proposed.get_json()['id']}", headers=factory.headers(a)
    ).get_json()
    assert detail["status"] == "refused" and detail["violations"] and detail["refusal"]
    told = sorted(p["recipient"] for p in outbox_rows(app, mark) if p["kind"] == "swap_decided")
    assert told == sorted([a, b])
    assert _active_shifts(app, a) == {roster.shifts["s1"]}
    assert _active_shifts(app, b) == {roster.shifts["s2"], extra}
    assert "swap.refuse" in _audit_actions(app)


def test_no_swap_within_three_hours_of_either_shift(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    a, b = world.volunteers[0], world.volunteers[1]
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    headers = world.coordinator_headers(factory)
    local_day = soon.astimezone(datetime.now().astimezone().tzinfo).date()
    plan = create_plan(client, headers, world, local_day - timedelta(days=1), days=4)
    shifts = client.post(
        f"/api/v1/plans/{plan}/shifts",
        json={
            "shifts": [
                {
                    "post": world.posts[0],
                    "starts_at": soon.isoformat(),
                    "ends_at": (soon + timedelta(hours=4)).isoformat(),
                    "kind": "day",
                    "headcount": 1,
                },
                {
                    "post": world.posts[1],
                    "starts_at": (soon + timedelta(days=1)).isoformat(),
                    "ends_at": (soon + timedelta(days=1, hours=4)).isoformat(),
                    "kind": "day",
                    "headcount": 1,
                },
            ]
        },
        headers=headers,
    )
    assert shifts.status_code == 201, shifts.get_json()
    ids = []
    for member, shift in zip((a, b), shifts.get_json(), strict=True):
        added = client.post(
            f"/api/v1/plans/{plan}/assignments",
            json={"member": member, "shift": shift["id"]},
            headers=headers,
        )
        assert added.status_code == 201, added.get_json()
        ids.append(added.get_json()["id"])
    assert client.post(f"/api/v1/plans/{plan}/publish", headers=headers).status_code == 200
    # B's shift is tomorrow, but A's starts in 2 hours: neither way round is allowed.
    late = _propose(client, factory, b, ids[1], assignment=ids[0])
    assert late.status_code == 409 and "3 hours" in late.get_json()["detail"]
    late = _propose(client, factory, a, ids[0], member=world.volunteers[2])
    assert late.status_code == 409 and "coordinator" in late.get_json()["detail"]


def test_decline_and_cancel_tell_the_other_and_close_the_request(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    a, b, c = world.volunteers[:3]
    roster = _published(client, factory, world, {"s1": a, "s2": b})
    first = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    # One open request per shift at a time.
    second = _propose(client, factory, a, roster.assignments["s1"], member=b)
    assert second.status_code == 409 and second.get_json()["swap_request"] == first["id"]
    mark = max_outbox_id(app)
    declined = client.post(
        f"/api/v1/swap-requests/{first['id']}/decline",
        json={"reason": "那天要上班"},
        headers=factory.headers(c),
    )
    assert declined.status_code == 200 and declined.get_json()["status"] == "declined"
    told = [p for p in outbox_rows(app, mark) if p["kind"] == "swap_decided"]
    assert [p["recipient"] for p in told] == [a]
    late = client.post(f"/api/v1/swap-requests/{first['id']}/accept", headers=factory.headers(c))
    assert late.status_code == 409

    again = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    mark = max_outbox_id(app)
    cancelled = client.post(
        f"/api/v1/swap-requests/{again['id']}/cancel", headers=factory.headers(a)
    )
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    told = [p for p in outbox_rows(app, mark) if p["kind"] == "swap_decided"]
    assert [p["recipient"] for p in told] == [c]
    late = client.post(f"/api/v1/swap-requests/{again['id']}/accept", headers=factory.headers(c))
    assert late.status_code == 409
    # Declining with no body at all is fine too.
    third = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    bare = client.post(f"/api/v1/swap-requests/{third['id']}/decline", headers=factory.headers(c))
    assert bare.status_code == 200, bare.get_json()
    assert {"swap.decline", "swap.cancel"} <= set(_audit_actions(app))

    listed = client.get("/api/v1/me/swap-requests", headers=factory.headers(a)).get_json()
    assert listed["total"] == 3 and listed["items"][0]["id"] == third["id"]
    asked = client.get(
        "/api/v1/me/swap-requests?role=target&status=declined", headers=factory.headers(c)
    ).get_json()
    assert {s["id"] for s in asked["items"]} == {first["id"], third["id"]}
    assert (
        client.get("/api/v1/me/swap-requests", headers=factory.headers(b)).get_json()["total"] == 0
    )


def test_other_peoples_ids_are_absent_and_the_wrong_party_is_forbidden(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    a, b, c = world.volunteers[:3]
    roster = _published(client, factory, world, {"s1": a, "s2": b})
    # Proposing with somebody else's assignment as one's own.
    assert _propose(client, factory, c, roster.assignments["s1"], member=b).status_code == 404
    # A member of another branch, and an assignment of another branch's plan.
    outsider = factory.create_member(name="救援队员", branches=("rescue",), town_id=world.town)
    assert (
        _propose(client, factory, a, roster.assignments["s1"], member=outsider).status_code == 404
    )
    assert (
        _propose(client, factory, a, roster.assignments["s1"], member=2_000_000).status_code == 404
    )
    assert (
        _propose(client, factory, a, roster.assignments["s1"], assignment=2_000_000).status_code
        == 404
    )
    swap = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    path = f"/api/v1/swap-requests/{swap['id']}"
    stranger = factory.headers(b)
    assert client.get(path, headers=stranger).status_code == 404
    for action in ("accept", "decline", "cancel"):
        assert client.post(f"{path}/{action}", headers=stranger).status_code == 404
    # The requester may not answer for the other; the asked may not cancel.
    assert client.post(f"{path}/accept", headers=factory.headers(a)).status_code == 403
    assert client.post(f"{path}/decline", headers=factory.headers(a)).status_code == 403
    assert client.post(f"{path}/cancel", headers=factory.headers(c)).status_code == 403
    # The branch's coordinator may look; another branch's may not.
    assert client.get(path, headers=world.coordinator_headers(factory)).status_code == 200
    rescue_lead = factory.create_member(
        name="救援协调员", branches=("rescue",), roles=(("coordinator", "rescue", None),)
    )
    assert client.get(path, headers=factory.headers(rescue_lead)).status_code == 404
    assert (
        client.post(f"{path}/accept", headers=world.coordinator_headers(factory)).status_code == 404
    )
    assert client.get(path).status_code == 401
    with app.app_context():
        assert db.session.get_one(Assignment, roster.assignments["s1"]).status == (
            AssignmentStatus.PUBLISHED
        )


@pytest.mark.parametrize(
    "raw, field",
    [
        ("{}", "assignment"),
        ('{"assignment": 1, "member": 2}', "assignment"),
        ('{"member": "2"}', "member"),
        ('{"member": 0}', "member"),
        ('{"member": 2147483648}', "member"),
        ('{"member": 1.5}', "member"),
        ('{"assignment": NaN}', "assignment"),
        ('{"member": 2, "message": "' + "x" * 501 + '"}', "message"),
        ('{"member": 2, "message": "a\\u0000b"}', "message"),
        ('{"member": 2, "message": "\\ud800"}', "message"),
        ('{"member": 2, "colour": "red"}', "colour"),
    ],
)
def test_bad_proposals_are_422_naming_the_field(
    client: FlaskClient, factory: Factory, world: World, raw: str, field: str
) -> None:
    response = client.post(
        "/api/v1/assignments/1/swap-requests",
        data=raw,
        headers={**factory.headers(world.volunteers[0]), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"], response.get_json()


def test_bad_paths_and_queries(client: FlaskClient, factory: Factory, world: World) -> None:
    me = factory.headers(world.volunteers[0])
    assert client.post("/api/v1/swap-requests/99999999999/accept", headers=me).status_code == 404
    assert client.post("/api/v1/swap-requests/-1/accept", headers=me).status_code == 404
    assert client.get("/api/v1/swap-requests/7", headers=me).status_code == 404
    for query, field in (
        ("page_size=0", "page_size"),
        ("page_size=501", "page_size"),
        ("role=boss", "role"),
        ("status=maybe", "status"),
    ):
        response = client.get(f"/api/v1/me/swap-requests?{query}", headers=me)
        assert response.status_code == 422 and field in response.get_json()["errors"], query
    surrogate = client.post(
        "/api/v1/swap-requests/1/decline",
        data='{"reason": "\\ud800"}',
        headers={**me, "Content-Type": "application/json"},
    )
    assert surrogate.status_code == 422 and "reason" in surrogate.get_json()["errors"]


def test_own_assignment_and_oneself_are_refused(
    client: FlaskClient, factory: Factory, world: World
) -> None:
    a = world.volunteers[0]
    roster = _published(client, factory, world, {"s1": a, "s5": a})
    assert _propose(client, factory, a, roster.assignments["s1"], member=a).status_code == 422
    own = _propose(
        client, factory, a, roster.assignments["s1"], assignment=roster.assignments["s5"]
    )
    assert own.status_code == 422 and "assignment" in own.get_json()["errors"]


def test_two_answers_at_once_swap_the_shared_shift_only_once(
    app: Flask, factory: Factory, world: World
) -> None:
    """Two volunteers ask B for B's one shift; B accepts both at the same moment: one swap is
    made, the other refused, and nobody holds two shifts or loses theirs twice."""
    client = app.test_client()
    a, b, d = world.volunteers[0], world.volunteers[1], world.volunteers[3]
    roster = _published(client, factory, world, {"s1": a, "s2": b, "s5": d})
    first = _propose(
        client, factory, a, roster.assignments["s1"], assignment=roster.assignments["s2"]
    ).get_json()
    second = _propose(
        client, factory, d, roster.assignments["s5"], assignment=roster.assignments["s2"]
    ).get_json()
    barrier = threading.Barrier(2)
    results: dict[int, tuple[int, Any]] = {}

    def answer(swap_id: int) -> None:
        own = app.test_client()
        barrier.wait()
        response = own.post(f"/api/v1/swap-requests/{swap_id}/accept", headers=factory.headers(b))
        results[swap_id] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=answer, args=(s["id"],)) for s in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(code for code, _ in results.values()) == [200, 409], results
    winner = next(i for i, (code, _) in results.items() if code == 200)
    loser = next(i for i, (code, _) in results.items() if code == 409)
    gave = roster.assignments["s1"] if winner == first["id"] else roster.assignments["s5"]
    with app.app_context():
        b_active = db.session.scalars(
            select(Assignment).where(
                Assignment.member_id == b, Assignment.status.in_(ACTIVE_STATUSES)
            )
        ).all()
        assert len(b_active) == 1
        assert b_active[0].shift_id == db.session.get_one(Assignment, gave).shift_id
        s2_holders = db.session.scalars(
            select(Assignment.member_id).where(
                Assignment.shift_id == roster.shifts["s2"],
                Assignment.status.in_(ACTIVE_STATUSES),
            )
        ).all()
        assert len(s2_holders) == 1
    lost = client.get(f"/api/v1/swap-requests/{loser}", headers=factory.headers(b)).get_json()
    assert lost["status"] == "refused"


def _quiet_now(app: Flask, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Configure quiet hours around now; when they end."""
    monkeypatch.setitem(app.config, "PUSH_QUIET_HOURS", quiet_window_around_now())
    quiet = QuietHours.from_config(app.config)
    assert quiet is not None
    ends = quiet.ends_after(datetime.now(UTC))
    assert ends is not None
    return ends


def test_swap_pushes_wait_for_the_end_of_quiet_hours_the_inbox_shows_them_at_once(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Quiet hours around now; the shift is days away.
    ends = _quiet_now(app, monkeypatch)
    a, c = world.volunteers[0], world.volunteers[2]
    roster = _published(client, factory, world, {"s1": a})
    after = max_outbox_id(app)
    proposed = _propose(client, factory, a, roster.assignments["s1"], member=c)
    assert proposed.status_code == 201, proposed.get_json()
    accepted = client.post(
        f"/api/v1/swap-requests/{proposed.get_json()['id']}/accept", headers=factory.headers(c)
    )
    assert accepted.status_code == 200, accepted.get_json()
    rows = outbox_rows(app, after)
    kinds = {row["kind"] for row in rows}
    assert {"swap_request", "swap_decided", "shift_reminder"} <= kinds
    for row in rows:
        if row["kind"] != "shift_reminder":
            assert row["deliver_after"] == ends, row
    with app.app_context():
        shown = db.session.scalars(
            select(InboxItem.visible_at).where(
                InboxItem.outbox_id.in_([r["id"] for r in rows if r["kind"] == "swap_request"])
            )
        ).all()
    assert shown and all(moment < ends for moment in shown)


def _declined_cancelled_refused(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    roster: Roster,
    people: tuple[int, int, int],
) -> tuple[list[int], int]:
    """Three of A's requests settled three ways, during quiet hours: declined by C, cancelled
    by A, and refused when the plan is published with B's shift taken away (B's accepting
    afterwards is a 409). Returns their ids and the last outbox row before the refusal."""
    a, b, c = people
    first = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    assert _request_pushes(app, first["id"]) == [OutboxStatus.PENDING]
    declined = client.post(
        f"/api/v1/swap-requests/{first['id']}/decline", headers=factory.headers(c)
    )
    assert declined.status_code == 200, declined.get_json()
    second = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    cancelled = client.post(
        f"/api/v1/swap-requests/{second['id']}/cancel", headers=factory.headers(a)
    )
    assert cancelled.status_code == 200, cancelled.get_json()
    third = _propose(
        client, factory, a, roster.assignments["s1"], assignment=roster.assignments["s2"]
    ).get_json()
    headers = world.coordinator_headers(factory)
    _remove(client, headers, roster, "s2")
    mark = max_outbox_id(app)
    assert client.post(f"/api/v1/plans/{roster.plan}/publish", headers=headers).status_code == 200
    refused = client.post(f"/api/v1/swap-requests/{third['id']}/accept", headers=factory.headers(b))
    assert refused.status_code == 409, refused.get_json()
    assert refused.get_json()["detail"] == "This swap request is refused."
    return [first["id"], second["id"], third["id"]], mark


def test_declined_cancelled_and_refused_swap_pushes_wait_for_the_end_of_quiet_hours(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ends = _quiet_now(app, monkeypatch)
    a, b, c = world.volunteers[:3]
    roster = _published(client, factory, world, {"s1": a, "s2": b})
    after = max_outbox_id(app)
    _, mark = _declined_cancelled_refused(app, client, factory, world, roster, (a, b, c))
    decided = [row for row in outbox_rows(app, after) if row["kind"] == "swap_decided"]
    assert sorted(row["recipient"] for row in decided) == sorted([a, c, a, b])
    assert len([row for row in outbox_rows(app, mark) if row["kind"] == "swap_decided"]) == 2
    assert all(row["deliver_after"] == ends for row in decided), decided


def test_a_swap_cancels_the_pushes_still_held_about_the_shifts_that_changed_hands(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DESIGN.md: cancelling an assignment cancels its pending rows. The "new assignment" push
    held for quiet hours must not reach a volunteer who has since swapped that shift away; the
    new holders' reminders stay."""
    _quiet_now(app, monkeypatch)
    a, b = world.volunteers[0], world.volunteers[1]
    roster = _published(client, factory, world, {"s1": a, "s2": b})
    given, taken = roster.assignments["s1"], roster.assignments["s2"]
    held = {
        row["assignment"]
        for row in outbox_rows(app)
        if row["kind"] == "assignment_published" and row["status"] == "pending"
    }
    assert held == {given, taken}  # waiting for the end of quiet hours
    proposed = _propose(client, factory, a, given, assignment=taken)
    assert proposed.status_code == 201, proposed.get_json()
    accepted = client.post(
        f"/api/v1/swap-requests/{proposed.get_json()['id']}/accept", headers=factory.headers(b)
    )
    assert accepted.status_code == 200, accepted.get_json()
    swap = accepted.get_json()
    rows = outbox_rows(app)
    still = [
        row
        for row in rows
        if row["assignment"] in (given, taken)
        and row["status"] == "pending"
        and row["kind"] in ("assignment_published", "assignment_changed", "shift_reminder")
    ]
    assert still == [], still
    for new in (swap["target_new_assignment"], swap["requester_new_assignment"]):
        reminders = [
            row
            for row in rows
            if row["assignment"] == new
            and row["kind"] == "shift_reminder"
            and row["status"] == "pending"
        ]
        assert len(reminders) == 2, reminders


def _request_pushes(app: Flask, swap_id: int) -> list[str]:
    """The statuses of the `swap_request` pushes asking about swap request `swap_id`."""
    with app.app_context():
        return list(
            db.session.scalars(
                select(OutboxMessage.status)
                .where(OutboxMessage.dedupe_key == f"swap:{swap_id}:request")
                .order_by(OutboxMessage.id)
            )
        )


def test_a_settled_request_cancels_its_push_still_held_for_quiet_hours(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The `swap_request` push waiting for the end of quiet hours asks the other volunteer to
    answer: once the request is approved, declined, cancelled or refused it must not go out."""
    _quiet_now(app, monkeypatch)
    a, b, c, d = world.volunteers[:4]
    roster = _published(client, factory, world, {"s1": a, "s2": b, "s5": d})
    settled, _ = _declined_cancelled_refused(app, client, factory, world, roster, (a, b, c))
    # Approved, and with it D's request about the shift that changed hands refused.
    fourth = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    other = _propose(
        client, factory, d, roster.assignments["s5"], assignment=roster.assignments["s1"]
    ).get_json()
    assert _request_pushes(app, other["id"]) == [OutboxStatus.PENDING]
    approved = client.post(
        f"/api/v1/swap-requests/{fourth['id']}/accept", headers=factory.headers(c)
    )
    assert approved.status_code == 200, approved.get_json()
    closed = client.get(f"/api/v1/swap-requests/{other['id']}", headers=factory.headers(d))
    assert closed.get_json()["status"] == "refused"
    settled += [fourth["id"], other["id"]]
    for swap_id in settled:
        assert _request_pushes(app, swap_id) == [OutboxStatus.CANCELLED], swap_id


def test_declining_a_shift_refuses_its_open_swap_requests_and_cancels_their_held_pushes(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shift given back can no longer be swapped: a request offering it, or asking for it,
    is refused with the reason and audited, and its push held for quiet hours withdrawn."""
    _quiet_now(app, monkeypatch)
    a, b, c = world.volunteers[:3]
    roster = _published(client, factory, world, {"s1": a, "s2": b})
    offering = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    asking = _propose(
        client, factory, b, roster.assignments["s2"], assignment=roster.assignments["s1"]
    ).get_json()
    declined = client.post(
        f"/api/v1/assignments/{roster.assignments['s1']}/decline",
        json={"reason": "家里有事"},
        headers=factory.headers(a),
    )
    assert declined.status_code == 200, declined.get_json()
    for swap_id, who in ((offering["id"], c), (asking["id"], b)):
        swap = client.get(f"/api/v1/swap-requests/{swap_id}", headers=factory.headers(who))
        assert swap.get_json()["status"] == "refused", swap.get_json()
        assert _request_pushes(app, swap_id) == [OutboxStatus.CANCELLED], swap_id
    late = client.post(f"/api/v1/swap-requests/{offering['id']}/accept", headers=factory.headers(c))
    assert late.status_code == 409
    with app.app_context():
        refusals = db.session.scalars(
            select(AuditLog.object_id).where(AuditLog.action == "swap.refuse")
        ).all()
    assert set(refusals) == {offering["id"], asking["id"]}
    # B's shift, still theirs, may be offered again.
    again = _propose(client, factory, b, roster.assignments["s2"], member=c)
    assert again.status_code == 201, again.get_json()


def _decided(app: Flask, after: int) -> dict[int, dict[str, Any]]:
    """The `swap_decided` pushes queued after outbox row `after`: recipient → params."""
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.id > after, OutboxMessage.kind == "swap_decided"
            )
        ).all()
        return {row.recipient_id: dict(row.params) for row in rows}


def test_a_request_refused_by_someone_elses_step_tells_its_other_volunteer(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """A shift given back, or one that changed hands in another swap, refuses the open
    requests about it; the volunteer on the other side of each is told ("未通过", and why),
    not left to find out by answering. Whoever took the step is not told of it."""
    a, b, c, d = world.volunteers[:4]
    roster = _published(client, factory, world, {"s1": a, "s2": b, "s5": d})
    offering = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    asking = _propose(
        client, factory, b, roster.assignments["s2"], assignment=roster.assignments["s1"]
    ).get_json()
    mark = max_outbox_id(app)
    declined = client.post(
        f"/api/v1/assignments/{roster.assignments['s1']}/decline",
        json={"reason": "家里有事"},
        headers=factory.headers(a),
    )
    assert declined.status_code == 200, declined.get_json()
    told = _decided(app, mark)
    assert set(told) == {c, b}  # not A, who gave the shift back
    assert told[c]["swap_request_id"] == str(offering["id"])
    assert told[b]["swap_request_id"] == str(asking["id"])
    for params in told.values():
        assert params["outcome"] == "未通过"
        assert params["detail"] == "其中一个班次已被其志愿者退回，本请求自动失效。"

    # B's shift changes hands (B to C): D's open request asking B for it is refused, and D
    # told; B and C made that swap and are not.
    other = _propose(
        client, factory, d, roster.assignments["s5"], assignment=roster.assignments["s2"]
    ).get_json()
    handover = _propose(client, factory, b, roster.assignments["s2"], member=c).get_json()
    mark = max_outbox_id(app)
    accepted = client.post(
        f"/api/v1/swap-requests/{handover['id']}/accept", headers=factory.headers(c)
    )
    assert accepted.status_code == 200, accepted.get_json()
    refused = client.get(f"/api/v1/swap-requests/{other['id']}", headers=factory.headers(d))
    assert refused.get_json()["status"] == "refused"
    told = _decided(app, mark)
    assert told[d]["swap_request_id"] == str(other["id"])
    assert told[d]["outcome"] == "未通过"
    assert told[d]["detail"] == "其中一个班次已通过另一换班请求易手，本请求自动失效。"
    # The swap made tells its requester; nobody else hears of the refused one.
    assert {m for m, p in told.items() if p["swap_request_id"] == str(other["id"])} == {d}


def test_publishing_a_removal_refuses_the_open_requests_about_it_and_tells_both(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """A coordinator takes a shift away: once published, the open requests offering it are
    refused at once and both volunteers told, not left open until one of them tries to
    accept. Requests about other shifts stay open; before the publish nothing changes."""
    a, b, c = world.volunteers[:3]
    roster = _published(client, factory, world, {"s1": a, "s2": b})
    doomed = _propose(client, factory, a, roster.assignments["s1"], member=c).get_json()
    other = _propose(client, factory, b, roster.assignments["s2"], member=c).get_json()
    headers = world.coordinator_headers(factory)
    _remove(client, headers, roster, "s1")

    def status(swap_id: int) -> str:
        answer = client.get(f"/api/v1/swap-requests/{swap_id}", headers=factory.headers(c))
        return str(answer.get_json()["status"])

    assert status(doomed["id"]) == "pending"  # the removal is not out yet
    mark = max_outbox_id(app)
    published = client.post(f"/api/v1/plans/{roster.plan}/publish", headers=headers)
    assert published.status_code == 200, published.get_json()
    assert (status(doomed["id"]), status(other["id"])) == ("refused", "pending")
    told = _decided(app, mark)
    assert set(told) == {a, c}
    for params in told.values():
        assert params["swap_request_id"] == str(doomed["id"])
        assert (params["outcome"], params["detail"]) == (
            "未通过",
            "其中一个班次已被协调员取消，本请求自动失效。",
        )
    assert _request_pushes(app, doomed["id"]) != [OutboxStatus.PENDING]
    with app.app_context():
        refusal = db.session.scalars(
            select(AuditLog).where(
                AuditLog.action == "swap.refuse", AuditLog.object_id == doomed["id"]
            )
        ).one()
        assert refusal.actor_id == world.coordinator
