"""Retry storms and crowds against the real database, with real threads and separate clients."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from werkzeug.test import TestResponse

from tests.attendance.conftest import World, tap
from tests.conftest import Factory
from volunteer_hub.models.attendance import Attendance, HoursEntry, IdempotencyRecord


def storm(app: Flask, count: int, send: Callable[[int], TestResponse]) -> list[TestResponse]:
    """Fire `count` requests at once: each thread has its own client and starts together."""
    barrier = threading.Barrier(count)

    def one(index: int) -> TestResponse:
        barrier.wait()
        return send(index)

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_twenty_retries_with_one_key_make_one_attendance(
    app: Flask, factory: Factory, world: World
) -> None:
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    responses = storm(
        app, 20, lambda _i: tap(app.test_client(), headers, assignment, key="one-bar-of-signal")
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200: 19}, [r.get_json() for r in responses]
    assert len({r.get_json()["id"] for r in responses}) == 1
    assert len(world.rows(Attendance)) == 1
    assert len(world.rows(IdempotencyRecord)) == 1


def test_twenty_taps_with_different_keys_make_one_attendance(
    app: Flask, factory: Factory, world: World
) -> None:
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    responses = storm(
        app, 20, lambda i: tap(app.test_client(), headers, assignment, key=f"tap-{i}")
    )
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 200: 19}, [r.get_json() for r in responses]
    assert len({r.get_json()["id"] for r in responses}) == 1
    assert len(world.rows(Attendance)) == 1


def test_twenty_check_outs_credit_once(app: Flask, factory: Factory, world: World) -> None:
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    assert tap(app.test_client(), headers, assignment).status_code == 201
    responses = storm(
        app,
        20,
        lambda i: tap(app.test_client(), headers, assignment, action="check-out", key=f"o{i % 3}"),
    )
    assert {r.status_code for r in responses} == {200}, [r.get_json() for r in responses]
    assert len({r.get_json()["check_out_at"] for r in responses}) == 1
    assert len(world.rows(HoursEntry)) == 1


def test_two_hundred_volunteers_checking_in_at_once_lose_nothing(
    app: Flask, factory: Factory, world: World
) -> None:
    post = world.post(radius_m=200)
    people = [factory.create_member(name=f"队员{i}") for i in range(200)]
    assignments = [world.assignment(m, post_id=post) for m in people]
    headers = [factory.headers(m) for m in people]
    barrier = threading.Barrier(50)

    def one(index: int) -> TestResponse:
        if index < 50:
            barrier.wait()
        return tap(app.test_client(), headers[index], assignments[index], key=f"k{index}")

    with ThreadPoolExecutor(max_workers=50) as pool:
        responses = list(pool.map(one, range(200)))
    assert Counter(r.status_code for r in responses) == {201: 200}
    rows = world.rows(Attendance)
    assert sorted(a.assignment_id for a in rows) == sorted(assignments)
    assert sorted(a.member_id for a in rows) == sorted(people)
