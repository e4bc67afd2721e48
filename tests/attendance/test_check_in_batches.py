"""Check-ins arriving together are sent together (`check_in_fast.Batcher`): every tap is
answered with its own row, never two taps on one assignment or with one key share a batch, no
more batches run at once than the batcher's leaders, and whatever befalls a batch reaches each
of its taps. First with the statement replaced (the batching alone, many threads), then
through the app on the real database."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from flask import Flask
from werkzeug.test import TestResponse

from tests.attendance.conftest import World, tap
from tests.conftest import Factory
from volunteer_hub.errors import DatabaseUnavailable
from volunteer_hub.models.attendance import Attendance, IdempotencyRecord
from volunteer_hub.services import check_in_fast


@dataclass
class _Held:
    cursor: Any = None


class _Connections:
    """Stands in for `check_in_fast.Connections` where the statement itself is replaced."""

    def __init__(self, free: bool = True, lend_error: Exception | None = None) -> None:
        self.free = free
        self.lend_error = lend_error
        self.lent = 0

    def lend(self) -> _Held | None:
        if self.lend_error is not None:
            raise self.lend_error
        if not self.free:
            return None
        self.lent += 1
        return _Held()

    def give(self, _held: _Held) -> None:
        self.lent -= 1

    def lost(self, _held: _Held) -> bool:
        return False


class _Statement:
    """Replaces `check_in_fast._run`: records each batch and how many ran at once, and answers
    each tap with a row naming it."""

    def __init__(self, pause: Callable[[], float] = lambda: 0.001) -> None:
        self.pause = pause
        self.batches: list[list[dict[str, Any]]] = []
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def __call__(self, _cursor: Any, taps: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        with self._lock:
            self.batches.append(list(taps))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        time.sleep(self.pause())
        with self._lock:
            self.running -= 1
        return [(idx, tap["name"]) for idx, tap in enumerate(taps)]


def _tap(name: str, assignment: int, member: int = 1, key: str | None = None) -> dict[str, Any]:
    return {"name": name, "assignment": assignment, "member": member, "key": key or name}


def _together(count: int, send: Callable[[int], Any]) -> list[Any]:
    """`send(i)` for each i from `count` threads started together; exceptions returned."""
    barrier = threading.Barrier(count)

    def one(index: int) -> Any:
        barrier.wait()
        try:
            return send(index)
        except Exception as exc:  # the test looks at what each tap got
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_taps_arriving_together_share_batches_and_each_gets_its_own_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statement = _Statement(pause=lambda: random.uniform(0.0005, 0.004))
    monkeypatch.setattr(check_in_fast, "_run", statement)
    batcher = check_in_fast.Batcher(_Connections(), leaders=2, size=16)  # type: ignore[arg-type]
    # 40 assignments for 200 taps, a member's key reused by one in ten: many must wait.
    taps = [
        _tap(f"t{i}", assignment=i % 40, member=i % 7, key=f"k{i % 20}" if i % 10 == 0 else None)
        for i in range(200)
    ]
    rows = _together(len(taps), lambda i: batcher.run(taps[i]))
    assert rows == [(tap["name"],) for tap in taps]
    assert sum(len(batch) for batch in statement.batches) == len(taps)
    assert statement.most_running <= 2
    assert max(len(batch) for batch in statement.batches) > 1
    for batch in statement.batches:
        assert len(batch) <= 16
        assert len({tap["assignment"] for tap in batch}) == len(batch)
        assert len({(tap["member"], tap["key"]) for tap in batch}) == len(batch)
    assert batcher._leading == 0 and not batcher._queue  # nothing left behind


def test_a_lone_tap_is_sent_at_once_in_a_batch_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statement = _Statement()
    monkeypatch.setattr(check_in_fast, "_run", statement)
    batcher = check_in_fast.Batcher(_Connections())  # type: ignore[arg-type]
    assert batcher.run(_tap("only", 1)) == ("only",)
    assert batcher.run(_tap("next", 1)) == ("next",)  # the same assignment, later: fine
    assert [len(batch) for batch in statement.batches] == [1, 1]


def test_a_failed_batch_fails_each_of_its_taps_and_the_next_batches_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statement = _Statement(pause=lambda: 0.02)
    first = threading.Event()

    def failing_first(cursor: Any, taps: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        if not first.is_set():
            first.set()
            time.sleep(0.02)  # the other taps queue meanwhile
            raise psycopg.errors.UniqueViolation("a concurrent tap won")
        return statement(cursor, taps)

    monkeypatch.setattr(check_in_fast, "_run", failing_first)
    batcher = check_in_fast.Batcher(_Connections(), leaders=1)  # type: ignore[arg-type]
    answers = _together(12, lambda i: batcher.run(_tap(f"t{i}", i)))
    failed = [a for a in answers if isinstance(a, psycopg.errors.UniqueViolation)]
    assert len(failed) >= 1
    assert all(isinstance(a, tuple) for a in answers if a not in failed)
    assert len(failed) + sum(len(batch) for batch in statement.batches) == 12
    assert batcher._leading == 0 and not batcher._queue


def test_with_no_fast_connection_free_each_tap_is_left_to_the_full_path() -> None:
    batcher = check_in_fast.Batcher(_Connections(free=False))  # type: ignore[arg-type]
    assert _together(5, lambda i: batcher.run(_tap(f"t{i}", i))) == [None] * 5


def test_when_no_connection_can_be_made_each_tap_hears_the_database_is_unavailable() -> None:
    down = psycopg.OperationalError("connection refused")
    batcher = check_in_fast.Batcher(_Connections(lend_error=down))  # type: ignore[arg-type]
    answers = _together(5, lambda i: batcher.run(_tap(f"t{i}", i)))
    assert all(isinstance(a, DatabaseUnavailable) for a in answers), answers


# ----------------------------------------------------- through the app, on the real database


def _is_postgresql(app: Flask) -> bool:
    return str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql")


def _watch_batches(monkeypatch: pytest.MonkeyPatch, *, lose_one: bool = False) -> list[int]:
    """The size of each batch the fast path sends. The first two are held back 50 ms, so
    that the taps arriving meanwhile queue behind them, as they do under load; with
    `lose_one`, the first batch of several taps then fails as on a unique violation (a tap of
    another worker won a race), and its size is recorded negated."""
    sizes: list[int] = []
    original = check_in_fast._run

    def spy(cursor: Any, taps: list[dict[str, Any]]) -> Any:
        if len(sizes) < 2:
            time.sleep(0.05)
        if lose_one and len(taps) > 1 and all(size > 0 for size in sizes):
            sizes.append(-len(taps))
            raise psycopg.errors.UniqueViolation("lost to a concurrent tap")
        sizes.append(len(taps))
        return original(cursor, taps)

    monkeypatch.setattr(check_in_fast, "_run", spy)
    return sizes


def _crowd(app: Flask, factory: Factory, world: World, count: int) -> list[TestResponse]:
    """`count` volunteers, each with an assignment at one post, checking in at once."""
    post = world.post(radius_m=200)
    people = [factory.create_member(name=f"队员{i}") for i in range(count)]
    assignments = [world.assignment(m, post_id=post) for m in people]
    headers = [factory.headers(m) for m in people]
    responses: list[TestResponse] = _together(
        count, lambda i: tap(app.test_client(), headers[i], assignments[i], key=f"k{i}")
    )
    # Each answer names its own attendance, and each attendance its idempotency record.
    assert Counter(r.status_code for r in responses) == {201: count}
    rows = {a.assignment_id: a for a in world.rows(Attendance)}
    assert sorted(rows) == sorted(assignments)
    for response, assignment, person in zip(responses, assignments, people, strict=True):
        body = response.get_json()
        assert body["assignment"] == assignment and body["member"] == person
        assert body["id"] == rows[assignment].id
    records = world.rows(IdempotencyRecord)
    assert sorted(r.response["id"] for r in records) == sorted(a.id for a in rows.values())
    return responses


def test_forty_volunteers_at_once_are_stored_in_shared_statements(
    app: Flask, factory: Factory, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = _watch_batches(monkeypatch)
    _crowd(app, factory, world, 40)
    if _is_postgresql(app):
        assert sum(batches) == 40 and max(batches) > 1, batches
    else:
        assert batches == []  # SQLite has no fast path


def test_a_batch_that_loses_a_race_leaves_each_of_its_taps_to_the_full_path(
    app: Flask, factory: Factory, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing of the lost batch is stored by it, and each of its taps is answered by the full
    path: every volunteer is still checked in once, told so, with its record."""
    batches = _watch_batches(monkeypatch, lose_one=True)
    _crowd(app, factory, world, 12)
    if _is_postgresql(app):
        lost = [-size for size in batches if size < 0]
        assert len(lost) == 1 and lost[0] > 1, batches
        assert sum(size for size in batches if size > 0) == 12 - lost[0]
    else:
        assert batches == []
