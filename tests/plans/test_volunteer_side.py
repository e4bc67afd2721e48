"""Decline frees the slot and offers it to ranked replacements; the first to take it gets it;
declining close to the start needs a coordinator; manual changes are checked by the checker."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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
from volunteer_hub.models.plans import (
    ACTIVE_STATUSES,
    Assignment,
    SlotOffer,
    SlotOfferStatus,
    SolveRun,
    SolveRunStatus,
)
from volunteer_hub.services.my_shifts import ics_escape, ics_fold

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _published_shift(
    client: FlaskClient, factory: Factory, world: World, start: datetime, people: list[int]
) -> tuple[int, int, list[int]]:
    headers = world.coordinator_headers(factory)
    plan = create_plan(client, headers, world, start.astimezone(SHANGHAI).date(), days=1)
    shift = client.post(
        f"/api/v1/plans/{plan}/shifts",
        json={
            "shifts": [
                {
                    "post": world.posts[0],
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=4)).isoformat(),
                    "kind": "day",
                    "headcount": len(people),
                }
            ]
        },
        headers=headers,
    ).get_json()[0]["id"]
    ids = []
    for person in people:
        added = client.post(
            f"/api/v1/plans/{plan}/assignments",
            json={"member": person, "shift": shift},
            headers=headers,
        )
        assert added.status_code == 201, added.get_json()
        ids.append(added.get_json()["id"])
    assert client.post(f"/api/v1/plans/{plan}/publish", headers=headers).status_code == 200
    return plan, shift, ids


def test_decline_offers_the_slot_and_the_first_replacement_takes_it(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    start = datetime.combine(next_monday(), datetime.min.time(), UTC) + timedelta(hours=1)
    _, _, (assignment,) = _published_shift(client, factory, world, start, [world.volunteers[0]])
    mark = max_outbox_id(app)
    mine = factory.headers(world.volunteers[0])
    declined = client.post(
        f"/api/v1/assignments/{assignment}/decline", json={"reason": "家里有事"}, headers=mine
    )
    assert declined.status_code == 200 and declined.get_json()["status"] == "declined"
    offers = [p for p in outbox_rows(app, mark) if p["kind"] == "slot_offer"]
    offered = [p["recipient"] for p in offers]
    assert len(offered) == 3 and world.volunteers[0] not in offered
    # Least loaded, then nearest: the coordinator (a patrol member living at the post) and
    # volunteers 1 and 2 live closest to it.
    assert offered == [world.coordinator, *world.volunteers[1:3]]
    first, second = offered[0], offered[1]
    first_offer = client.get("/api/v1/me/slot-offers", headers=factory.headers(first)).get_json()
    taken = client.post(
        f"/api/v1/slot-offers/{first_offer['items'][0]['id']}/accept",
        headers=factory.headers(first),
    )
    assert taken.status_code == 200 and taken.get_json()["status"] == "accepted"
    late = client.get("/api/v1/me/slot-offers", headers=factory.headers(second)).get_json()
    assert late["items"] == []
    with app.app_context():
        actions = set(db.session.scalars(select(AuditLog.action)))
    assert {"assignment.decline", "assignment.take_offer"} <= actions


def test_no_decline_within_three_hours_of_the_start(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    _, _, (assignment,) = _published_shift(client, factory, world, soon, [world.volunteers[1]])
    mine = factory.headers(world.volunteers[1])
    response = client.post(
        f"/api/v1/assignments/{assignment}/decline", json={"reason": "临时有事"}, headers=mine
    )
    assert response.status_code == 409
    assert "coordinator" in response.get_json()["detail"]
    # Another volunteer cannot touch it at all.
    other = factory.headers(world.volunteers[2])
    assert client.post(f"/api/v1/assignments/{assignment}/accept", headers=other).status_code == 404


def test_manual_add_is_checked_and_an_override_is_audited(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    headers = world.coordinator_headers(factory)
    day = next_monday()
    plan = create_plan(client, headers, world, day, days=1)
    base = datetime.combine(day, datetime.min.time(), UTC)
    shifts = client.post(
        f"/api/v1/plans/{plan}/shifts",
        json={
            "shifts": [
                {
                    "post": world.posts[0],
                    "starts_at": (base + timedelta(hours=1)).isoformat(),
                    "ends_at": (base + timedelta(hours=5)).isoformat(),
                    "kind": "day",
                    "headcount": 2,
                },
                {
                    "post": world.posts[1],
                    "starts_at": (base + timedelta(hours=3)).isoformat(),
                    "ends_at": (base + timedelta(hours=7)).isoformat(),
                    "kind": "day",
                    "headcount": 2,
                },
            ]
        },
        headers=headers,
    ).get_json()
    person = world.volunteers[0]
    first = client.post(
        f"/api/v1/plans/{plan}/assignments",
        json={"member": person, "shift": shifts[0]["id"]},
        headers=headers,
    )
    assert first.status_code == 201
    overlapping = client.post(
        f"/api/v1/plans/{plan}/assignments",
        json={"member": person, "shift": shifts[1]["id"]},
        headers=headers,
    )
    assert overlapping.status_code == 409
    assert overlapping.get_json()["violations"], overlapping.get_json()
    no_reason = client.post(
        f"/api/v1/plans/{plan}/assignments",
        json={"member": person, "shift": shifts[1]["id"], "override": True},
        headers=headers,
    )
    assert no_reason.status_code == 422 and "reason" in no_reason.get_json()["errors"]
    outsider = factory.create_member(name="外人", branches=("rescue",))
    refused = client.post(
        f"/api/v1/plans/{plan}/assignments",
        json={"member": outsider, "shift": shifts[1]["id"]},
        headers=headers,
    )
    assert refused.status_code == 422 and "member" in refused.get_json()["errors"]
    swapped = client.post(
        f"/api/v1/plans/{plan}/assignments/{first.get_json()['id']}/swap",
        json={"member": world.volunteers[1]},
        headers=headers,
    )
    assert swapped.status_code == 200 and swapped.get_json()["member"]["id"] == world.volunteers[1]
    forced = client.post(
        f"/api/v1/plans/{plan}/assignments",
        json={
            "member": world.volunteers[1],
            "shift": shifts[1]["id"],
            "override": True,
            "reason": "人手不足，队员同意",
        },
        headers=headers,
    )
    assert forced.status_code == 201
    with app.app_context():
        entry = db.session.scalar(
            select(AuditLog).where(AuditLog.action == "assignment.add_override")
        )
        assert entry is not None and entry.reason == "人手不足，队员同意"
    # Publishing a roster that double-books someone (the override) is refused by publish.
    blocked = client.post(f"/api/v1/plans/{plan}/publish", headers=headers)
    assert blocked.status_code == 409
    assert blocked.get_json()["conflicts"][0]["member"] == world.volunteers[1]


def _decline(client: FlaskClient, factory: Factory, member: int, assignment: int) -> None:
    declined = client.post(
        f"/api/v1/assignments/{assignment}/decline",
        json={"reason": "家里有事"},
        headers=factory.headers(member),
    )
    assert declined.status_code == 200, declined.get_json()


def test_a_decline_cancels_the_push_still_held_about_the_shift(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DESIGN.md: cancelling an assignment cancels its pending rows. The "new assignment" push
    held for quiet hours must not reach the volunteer after they gave the shift back."""
    monkeypatch.setitem(app.config, "PUSH_QUIET_HOURS", quiet_window_around_now())
    start = datetime.combine(next_monday(), datetime.min.time(), UTC) + timedelta(hours=1)
    member = world.volunteers[0]
    _, _, (assignment,) = _published_shift(client, factory, world, start, [member])
    held = [
        row
        for row in outbox_rows(app)
        if row["assignment"] == assignment and row["kind"] == "assignment_published"
    ]
    assert [row["status"] for row in held] == ["pending"]  # waiting for the end of quiet hours
    _decline(client, factory, member, assignment)
    still = [
        row
        for row in outbox_rows(app)
        if row["assignment"] == assignment
        and row["recipient"] == member
        and row["status"] == "pending"
    ]
    assert still == [], still


def _two_freed_slots_offered_to_one_volunteer(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> tuple[int, int, dict[int, int]]:
    """A plan with shifts 08-12 and 14-18 on one day (2 h apart; the rules want 8 h of rest),
    volunteers 0 and 1 on one each, published, then both declined. Returns the plan, a
    volunteer offered both slots and their offers (shift id -> offer id)."""
    headers = world.coordinator_headers(factory)
    day = next_monday()
    plan = create_plan(client, headers, world, day, days=1)
    created = client.post(
        f"/api/v1/plans/{plan}/shifts",
        json={
            "shifts": [
                {
                    "post": world.posts[0],
                    "starts_at": datetime.combine(day, time(start), SHANGHAI).isoformat(),
                    "ends_at": datetime.combine(day, time(start + 4), SHANGHAI).isoformat(),
                    "kind": "day",
                    "headcount": 1,
                }
                for start in (8, 14)
            ]
        },
        headers=headers,
    )
    assert created.status_code == 201, created.get_json()
    shifts = [s["id"] for s in created.get_json()]
    people = world.volunteers[:2]
    assignments = []
    for member, shift in zip(people, shifts, strict=True):
        added = client.post(
            f"/api/v1/plans/{plan}/assignments",
            json={"member": member, "shift": shift},
            headers=headers,
        )
        assert added.status_code == 201, added.get_json()
        assignments.append(added.get_json()["id"])
    assert client.post(f"/api/v1/plans/{plan}/publish", headers=headers).status_code == 200
    for member, assignment in zip(people, assignments, strict=True):
        _decline(client, factory, member, assignment)
    with app.app_context():
        offers: dict[int, dict[int, int]] = {}
        for offer in db.session.scalars(select(SlotOffer)):
            offers.setdefault(offer.member_id, {})[offer.shift_id] = offer.id
    both = next(member for member, mine in offers.items() if set(mine) == set(shifts))
    return plan, both, offers[both]


def test_taking_a_slot_offer_is_refused_when_it_breaks_the_minimum_rest(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """DESIGN.md: minimum rest between shifts is a hard rule. Taking an offered slot is
    checked like a coordinator's manual add: one 2 h after a shift already taken is refused
    with 409 and the checker's violations, and the offer stays open."""
    plan, member, offers = _two_freed_slots_offered_to_one_volunteer(app, client, factory, world)
    early, late = sorted(offers)
    first = client.post(
        f"/api/v1/slot-offers/{offers[early]}/accept", headers=factory.headers(member)
    )
    assert first.status_code == 200, first.get_json()
    # The coordinator putting them on the other shift by hand is refused for the same rule.
    by_hand = client.post(
        f"/api/v1/plans/{plan}/assignments",
        json={"member": member, "shift": late},
        headers=world.coordinator_headers(factory),
    )
    assert by_hand.status_code == 409, by_hand.get_json()
    assert "min_rest" in {v["rule"] for v in by_hand.get_json()["violations"]}
    second = client.post(
        f"/api/v1/slot-offers/{offers[late]}/accept", headers=factory.headers(member)
    )
    assert second.status_code == 409, second.get_json()
    assert "min_rest" in {v["rule"] for v in second.get_json()["violations"]}
    with app.app_context():
        held = set(
            db.session.scalars(
                select(Assignment.shift_id).where(
                    Assignment.member_id == member, Assignment.status.in_(ACTIVE_STATUSES)
                )
            )
        )
        assert held == {early}
        assert db.session.get_one(SlotOffer, offers[late]).status == SlotOfferStatus.OPEN


def test_two_slot_offers_taken_at_once_by_one_volunteer_keep_the_minimum_rest(
    app: Flask, factory: Factory, world: World
) -> None:
    """The same volunteer accepts both offers at the same moment: one is taken, the other
    refused for the minimum rest; they never end up on both."""
    client = app.test_client()
    _, member, offers = _two_freed_slots_offered_to_one_volunteer(app, client, factory, world)
    barrier = threading.Barrier(2)
    results: dict[int, tuple[int, Any]] = {}

    def take(offer_id: int) -> None:
        own = app.test_client()
        barrier.wait()
        response = own.post(
            f"/api/v1/slot-offers/{offer_id}/accept", headers=factory.headers(member)
        )
        results[offer_id] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=take, args=(offer,)) for offer in offers.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(code for code, _ in results.values()) == [200, 409], results
    refused = next(body for code, body in results.values() if code == 409)
    assert "min_rest" in {v["rule"] for v in refused["violations"]}, refused
    with app.app_context():
        held = db.session.scalars(
            select(Assignment.shift_id).where(
                Assignment.member_id == member, Assignment.status.in_(ACTIVE_STATUSES)
            )
        ).all()
    assert len(held) == 1, held


def test_a_taken_slot_cancels_the_other_offers_pushes_still_held(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a replacement takes the slot the other offers close, and their `slot_offer`
    pushes held for quiet hours must not go out afterwards for a slot that is gone."""
    monkeypatch.setitem(app.config, "PUSH_QUIET_HOURS", quiet_window_around_now())
    start = datetime.combine(next_monday(), datetime.min.time(), UTC) + timedelta(hours=1)
    member = world.volunteers[0]
    _, _, (assignment,) = _published_shift(client, factory, world, start, [member])
    mark = max_outbox_id(app)
    _decline(client, factory, member, assignment)
    offered = [row for row in outbox_rows(app, mark) if row["kind"] == "slot_offer"]
    assert len(offered) == 3 and all(row["status"] == "pending" for row in offered)
    first = offered[0]["recipient"]
    mine = client.get("/api/v1/me/slot-offers", headers=factory.headers(first)).get_json()
    taken = client.post(
        f"/api/v1/slot-offers/{mine['items'][0]['id']}/accept", headers=factory.headers(first)
    )
    assert taken.status_code == 200, taken.get_json()
    still = [
        row
        for row in outbox_rows(app, mark)
        if row["kind"] == "slot_offer" and row["status"] == "pending"
    ]
    assert still == [], still


def test_taking_a_slot_offer_waits_while_a_solve_run_works_on_the_plan(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """As a swap and a coordinator's manual add do: the solver's result would not know of
    the slot just taken. The offer stays open and can be taken once the run is over."""
    start = datetime.combine(next_monday(), datetime.min.time(), UTC) + timedelta(hours=1)
    plan, _, (assignment,) = _published_shift(client, factory, world, start, [world.volunteers[0]])
    _decline(client, factory, world.volunteers[0], assignment)
    taker = world.volunteers[1]
    offers = client.get("/api/v1/me/slot-offers", headers=factory.headers(taker)).get_json()
    offer = offers["items"][0]["id"]
    for status in (SolveRunStatus.QUEUED, SolveRunStatus.RUNNING):
        with app.app_context():
            run = SolveRun(plan_id=plan, status=status, time_limit_s=10)
            db.session.add(run)
            db.session.commit()
            run_id = run.id
        refused = client.post(f"/api/v1/slot-offers/{offer}/accept", headers=factory.headers(taker))
        assert refused.status_code == 409, refused.get_json()
        body = refused.get_json()
        assert body["detail"] == "The plan is being re-planned; try again in a few minutes."
        assert body["solve_run"] == run_id
        still = client.get("/api/v1/me/slot-offers", headers=factory.headers(taker)).get_json()
        assert [item["id"] for item in still["items"]] == [offer]
        with app.app_context():
            db.session.get_one(SolveRun, run_id).status = SolveRunStatus.DONE
            db.session.commit()
    taken = client.post(f"/api/v1/slot-offers/{offer}/accept", headers=factory.headers(taker))
    assert taken.status_code == 200, taken.get_json()


def test_ics_text_is_escaped_and_folded() -> None:
    assert ics_escape("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    folded = ics_fold("SUMMARY:" + "值班" * 40)
    lines = folded.split("\r\n")
    assert all(len(line.encode()) <= 75 for line in lines)
    assert all(line.startswith(" ") for line in lines[1:])
    assert (
        "".join(line[1:] if i else line for i, line in enumerate(lines)) == "SUMMARY:" + "值班" * 40
    )
