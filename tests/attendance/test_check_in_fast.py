"""The check-in's fast path (PostgreSQL, `services.check_in_fast`, reached through the WSGI lane
of `volunteer_hub.check_in_lane`) answers exactly as the full path does, and hands everything
else to it: a signed-out, suspended or re-passworded caller, and an offline tap, are judged the
same on both backends."""

from __future__ import annotations

import base64
import json
import math
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event

from tests.attendance.conftest import POST_LAT, POST_LON, World, tap
from tests.conftest import Factory
from volunteer_hub.auth.tokens import revoke_family
from volunteer_hub.check_in_lane import CheckInLane
from volunteer_hub.errors import DATABASE_RETRY_AFTER_S
from volunteer_hub.extensions import db
from volunteer_hub.models import AuditLog, Member, MemberStatus
from volunteer_hub.models.attendance import Attendance, IdempotencyRecord
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import attendance, check_in_fast


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each call of the fast path returned (None: handed to the full path)."""
    seen: list[Any] = []
    original = check_in_fast.check_in

    def spy(*args: Any) -> Any:
        outcome = original(*args)
        seen.append(outcome)
        return outcome

    monkeypatch.setattr(check_in_fast, "check_in", spy)
    return seen


def is_postgresql(app: Flask) -> bool:
    return str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql")


def test_an_ordinary_check_in_is_stored_as_the_full_path_stores_it(
    app: Flask, client: FlaskClient, factory: Factory, world: World, outcomes: list[Any]
) -> None:
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    first = tap(client, headers, assignment, key="k1", accuracy_m=12)
    assert first.status_code == 201, first.get_json()
    again = tap(client, headers, assignment, key="k1", accuracy_m=12)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    if is_postgresql(app):
        assert [o.status for o in outcomes] == [201, 200]
    else:
        assert outcomes == []

    body = first.get_json()
    assert again.get_json() == body

    def stored(session: Any) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
        att = session.query(Attendance).one()
        record = session.query(IdempotencyRecord).one()
        audits = [
            (a.actor_id, a.action, a.object_type, a.object_id, a.before, a.after, a.reason)
            for a in session.query(AuditLog).all()
        ]
        return attendance.attendance_view(att), dict(record.response), audits

    view, response, audits = world.read(stored)
    assert view == body
    assert response == body
    assert body["check_in"]["accuracy_m"] == 12.0
    assert audits == [
        (volunteer, "attendance.check_in", "attendance", body["id"], None, None, None)
    ]


def test_an_offline_tap_replays_with_its_key(
    client: FlaskClient, factory: Factory, world: World
) -> None:
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    when = (utcnow() - timedelta(minutes=7)).isoformat()
    first = tap(client, headers, assignment, key="offline", client_time=when)
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["synced_late"] is True
    again = tap(client, headers, assignment, key="offline", client_time=when)
    assert (again.status_code, again.get_json()) == (200, first.get_json())
    other = tap(client, headers, assignment, key="offline")
    assert other.status_code == 422


def test_times_are_shown_in_the_configured_zone(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    outcomes: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lane answers outside any app context; its times still follow HUB_TIMEZONE, as the
    full path's do, in the answer, its replay and the stored response."""
    monkeypatch.setitem(app.config, "HUB_TIMEZONE", "Asia/Urumqi")  # UTC+6, not the default
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    when = (utcnow() - timedelta(minutes=7)).isoformat()
    first = tap(client, headers, assignment, key="zone", client_time=when)
    assert first.status_code == 201, first.get_json()
    again = tap(client, headers, assignment, key="zone", client_time=when)
    assert (again.status_code, again.get_json()) == (200, first.get_json())
    if is_postgresql(app):
        assert [o.status for o in outcomes] == [201, 200]
    body = first.get_json()
    assert body["check_in_at"].endswith("+06:00")
    assert body["check_in"]["client_time"].endswith("+06:00")

    def stored(session: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        att = session.query(Attendance).one()
        record = session.query(IdempotencyRecord).one()
        return attendance.attendance_view(att), dict(record.response)

    view, response = world.read(stored)
    assert view == body
    assert response == body


def _set(app: Flask, member_id: int, **values: Any) -> None:
    with app.app_context():
        member = db.session.get_one(Member, member_id)
        for name, value in values.items():
            setattr(member, name, value)
        db.session.commit()


@pytest.mark.parametrize("change", ["password", "suspended", "signed-out"])
def test_a_caller_who_may_no_longer_sign_in_is_refused(
    app: Flask, client: FlaskClient, factory: Factory, world: World, change: str
) -> None:
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    if change == "password":
        _set(app, volunteer, token_version=5)
    elif change == "suspended":
        _set(app, volunteer, status=MemberStatus.SUSPENDED)
    else:
        from flask_jwt_extended import decode_token
        from sqlalchemy import insert

        from volunteer_hub.models import RefreshToken

        with app.app_context():
            family = decode_token(headers["Authorization"][7:])["fam"]
            db.session.execute(
                insert(RefreshToken).values(
                    jti="j-" + family,
                    family=family,
                    member_id=volunteer,
                    expires_at=utcnow() + timedelta(days=1),
                )
            )
            revoke_family(family)
            db.session.commit()
    response = tap(client, headers, assignment)
    assert response.status_code == 401, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert world.rows(Attendance) == []


def test_an_expired_or_refresh_token_is_refused(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    from flask_jwt_extended import create_access_token, create_refresh_token

    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    with app.app_context():
        expired = create_access_token(
            identity=str(volunteer),
            additional_claims={"fam": "f", "tv": 0},
            expires_delta=timedelta(seconds=-60),
        )
        refresh = create_refresh_token(identity=str(volunteer), additional_claims={"tv": 0})
    for token in (expired, refresh, "not-a-token"):
        response = tap(client, {"Authorization": f"Bearer {token}"}, assignment)
        assert response.status_code in (401, 422), response.get_json()
        assert response.mimetype == "application/problem+json"
    assert world.rows(Attendance) == []


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_forged_tokens_are_refused(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """The fast path checks the signature itself; none of these may check anyone in."""
    import jwt as pyjwt

    victim = factory.create_member()
    attacker = factory.create_member()
    assignment = world.assignment(victim, post_id=world.post())
    own = factory.headers(attacker)["Authorization"][7:]
    head, body, signature = own.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    as_victim = {**claims, "sub": str(victim)}
    forged = [
        f"{head}.{_b64(as_victim)}.{signature}",  # someone else's id, the attacker's signature
        f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(as_victim)}.",  # unsigned
        pyjwt.encode(as_victim, "another-key-" + "z" * 32, algorithm="HS256"),  # wrong key
        f"{head}.{_b64(as_victim)}.{signature}==",  # padding games
        f"{head}.{body}.{signature[:-2]}",  # truncated signature
    ]
    for token in forged:
        response = tap(client, {"Authorization": f"Bearer {token}"}, assignment)
        assert response.status_code in (401, 422), (token, response.get_json())
        assert response.mimetype == "application/problem+json"
    assert world.rows(Attendance) == []


def test_a_valid_token_of_another_shape_still_works_through_the_full_path(
    app: Flask, client: FlaskClient, factory: Factory, world: World, outcomes: list[Any]
) -> None:
    """A header with a key id is not what this app issues, but PyJWT accepts it: the fast
    path hands it over instead of refusing it."""
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    from flask_jwt_extended import create_access_token

    with app.app_context():
        token = create_access_token(
            identity=str(volunteer),
            additional_claims={"fam": "f-kid", "tv": 0},
            additional_headers={"kid": "k1"},
        )
    response = tap(client, {"Authorization": f"Bearer {token}"}, assignment)
    assert response.status_code == 201, response.get_json()
    assert all(outcome is None for outcome in outcomes)


@pytest.mark.parametrize(
    ("metres", "starts_in", "late_by", "status"),
    [
        (99.8, timedelta(minutes=-10), None, 201),  # just inside the fence
        (100.2, timedelta(minutes=-10), None, 422),  # just outside it
        (0.0, timedelta(minutes=29, seconds=50), None, 201),  # window just open
        (0.0, timedelta(minutes=30, seconds=10), None, 422),  # not yet open
        (0.0, timedelta(minutes=-10), timedelta(minutes=5), 201),  # offline, within the shift
        (0.0, timedelta(minutes=-3), timedelta(minutes=5), 201),  # offline, 2 min before start
        (0.0, timedelta(minutes=40), timedelta(minutes=11), 422),  # offline, before opening
    ],
)
def test_fence_and_window_edges_agree_with_the_full_path(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    outcomes: list[Any],
    metres: float,
    starts_in: timedelta,
    late_by: timedelta | None,
    status: int,
) -> None:
    """The fast path decides the plain case in SQL; at each edge it must take exactly the taps
    the full path takes (and leave the rest to it, which refuses them)."""
    volunteer = factory.create_member()
    post = world.post(radius_m=100)
    assignment = world.assignment(volunteer, post_id=post, starts_at=utcnow() + starts_in)
    lat = POST_LAT + metres / 111_195
    assert abs(attendance.distance_m(lat, POST_LON, POST_LAT, POST_LON) - metres) < 0.05
    when = (utcnow() - late_by).isoformat() if late_by else None
    response = tap(
        client, factory.headers(volunteer), assignment, lat=lat, accuracy_m=0, client_time=when
    )
    assert response.status_code == status, response.get_json()
    if is_postgresql(app):
        taken = [o.status for o in outcomes if o is not None]
        assert taken == ([201] if status == 201 else [])
    if status == 201:
        assert response.get_json()["synced_late"] is (late_by is not None)


def test_a_token_version_beyond_the_column_is_refused_not_a_500(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    from flask_jwt_extended import create_access_token

    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    with app.app_context():
        token = create_access_token(
            identity=str(volunteer), additional_claims={"fam": "f", "tv": 2**40}
        )
    response = tap(client, {"Authorization": f"Bearer {token}"}, assignment)
    assert response.status_code == 401, response.get_json()
    assert world.rows(Attendance) == []


# ------------------------------------------------------------------ the lane in front of Flask


def test_the_lane_answers_as_the_app_would(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    outcomes: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same status line, headers and JSON text (the app's provider: keys sorted) from the
    lane as from the app, for a first tap and for a replay."""
    post = world.post()
    one, two = factory.create_member(), factory.create_member()
    first, second = world.assignment(one, post_id=post), world.assignment(two, post_id=post)
    lane = [tap(client, factory.headers(one), first, key="k") for _ in range(2)]
    monkeypatch.setitem(app.config, "ATTENDANCE_FAST_LANE", False)
    full = [tap(client, factory.headers(two), second, key="k") for _ in range(2)]
    if is_postgresql(app):
        assert [o.status for o in outcomes] == [201, 200]
    else:
        assert outcomes == []
    for ours, theirs in zip(lane, full, strict=True):
        assert ours.status == theirs.status
        assert sorted(ours.headers.items()) == sorted(
            (name, value if name != "Content-Length" else ours.headers[name])
            for name, value in theirs.headers.items()
        )
        text = ours.get_data(as_text=True)
        assert text == app.json.dumps(json.loads(text), ensure_ascii=False)
        mine, other = ours.get_json(), theirs.get_json()
        assert mine.keys() == other.keys()
        assert (mine["assignment"], other["assignment"]) == (first, second)


def test_what_the_lane_does_not_take_reaches_the_app_with_its_body(
    app: Flask, client: FlaskClient, factory: Factory, world: World, outcomes: list[Any]
) -> None:
    """A refusal, a query string, a padded id and an oversized body all go to the app, which
    reads the same body and answers in its own words."""
    post = world.post()

    def someone() -> tuple[int, dict[str, str]]:
        volunteer = factory.create_member()
        headers = {**factory.headers(volunteer), "Idempotency-Key": "k"}
        return world.assignment(volunteer, post_id=post), headers

    far, headers = someone()
    refused = tap(client, headers, far, key="k", lat=0.0, lon=0.0)
    assert refused.status_code == 422
    assert "m" in refused.get_json()["detail"], refused.get_json()
    assert outcomes in ([], [None])

    body = {"lat": POST_LAT, "lon": POST_LON, "accuracy_m": 5}
    queried, headers = someone()
    answer = client.post(f"/api/v1/assignments/{queried}/check-in?x=1", json=body, headers=headers)
    assert answer.status_code == 201, answer.get_json()
    padded, headers = someone()
    answer = client.post(f"/api/v1/assignments/00{padded}/check-in", json=body, headers=headers)
    assert answer.status_code == 201, answer.get_json()
    large, headers = someone()
    answer = client.post(
        f"/api/v1/assignments/{large}/check-in",
        data=json.dumps(body) + " " * 5000,
        content_type="application/json",
        headers=headers,
    )
    assert answer.status_code == 201, answer.get_json()
    assert len(outcomes) == (1 if is_postgresql(app) else 0)
    assert len(world.rows(Attendance)) == 3


def test_the_lane_stands_aside_when_a_limit_could_apply(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    outcomes: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "RATELIMIT_DEFAULT", "1000/minute")
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    response = tap(client, factory.headers(volunteer), assignment)
    assert response.status_code == 201, response.get_json()
    assert outcomes == []


def test_an_unexpected_error_in_the_lane_leaves_the_tap_to_the_app(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in the fast path")

    monkeypatch.setattr(check_in_fast, "_run", broken)
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    response = tap(client, factory.headers(volunteer), assignment, key="k")
    assert response.status_code == 201, response.get_json()
    assert len(world.rows(Attendance)) == 1
    if is_postgresql(app):
        assert "check-in lane: handing the request to the app" in caplog.text


def _lane_connections(app: Flask) -> check_in_fast.Connections | None:
    lane = app.wsgi_app
    assert isinstance(lane, CheckInLane)
    return lane._open()


def _retire(made: check_in_fast.Connections) -> None:
    """Close a test's own connections and unhook them from the engine they listen to."""
    made.close()
    event.remove(made.engine, "engine_disposed", made._on_disposed)


@contextmanager
def _own_connections(app: Flask, size: int, recycle: float) -> Iterator[check_in_fast.Connections]:
    """Connections of the fast path's kind on the app's engine, retired afterwards."""
    with app.app_context():
        engine = db.engine
    made = check_in_fast.Connections(engine, size=size, recycle=recycle)
    try:
        yield made
    finally:
        _retire(made)


@pytest.fixture
def connections(app: Flask) -> Iterator[check_in_fast.Connections | None]:
    """Two connections of the fast path's own on PostgreSQL (None on SQLite, which has none),
    closed and unhooked from the engine afterwards."""
    if not is_postgresql(app):
        assert _lane_connections(app) is None
        yield None
        return
    with _own_connections(app, size=2, recycle=math.inf) as made:
        yield made


def test_the_fast_path_lends_at_most_its_size_and_reuses_what_comes_back(
    connections: check_in_fast.Connections | None,
) -> None:
    if connections is None:
        return
    first, second = connections.lend(), connections.lend()
    assert first is not None and second is not None
    assert connections.lend() is None  # all lent
    connections.give(second)
    again = connections.lend()
    assert again is second and not second.conn.closed  # the same connection, kept open
    assert again.conn.autocommit
    connections.give(again)
    connections.give(first)


def test_the_tap_never_scans_a_table_whole_even_when_its_plan_is_made_on_empty_tables(
    app: Flask, connections: check_in_fast.Connections | None
) -> None:
    """The statement's plan is cached on the connection from the statistics of the moment it
    is made. Made when the idempotency records had just been analysed empty (a new database,
    or a purge after a quiet spell), it scanned them whole, and went on scanning them as taps
    filled them (measured: PostgreSQL's CPU per check-in grew from 0.25 to 0.8 ms in a
    minute). The fast path's connections plan it with index lookups only."""
    if connections is None:
        return
    held = connections.lend()
    assert held is not None
    # Its one parameter, the taps as a JSON array, is sent as text and cast in the statement.
    assert re.findall(r"%\((\w+)\)s", check_in_fast._TAPS) == ["taps"]
    statement = check_in_fast._TAPS.replace("%(taps)s", "$1")
    try:
        with held.conn.transaction():
            held.conn.execute("ANALYZE idempotency_record, attendance, audit_log, refresh_token")
            held.conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            held.conn.execute(f"PREPARE tap_plan (text) AS {statement}")  # type: ignore[arg-type]
            plan = "\n".join(
                row[0] for row in held.conn.execute("EXPLAIN (COSTS OFF) EXECUTE tap_plan (NULL)")
            )
            held.conn.execute("DEALLOCATE tap_plan")
    finally:
        connections.give(held)
    assert "Index Scan using uq_idempotency_record_member_id_key" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_tap_while_every_fast_connection_is_lent_is_answered_by_the_full_path(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    outcomes: list[Any],
) -> None:
    held = []
    lane = _lane_connections(app)
    if lane is not None:
        while (one := lane.lend()) is not None:
            held.append(one)
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    try:
        response = tap(client, factory.headers(volunteer), assignment, key="k")
    finally:
        for one in held:
            lane.give(one)  # type: ignore[union-attr]
    assert response.status_code == 201, response.get_json()
    assert len(world.rows(Attendance)) == 1
    assert outcomes == ([None] if is_postgresql(app) else [])


def test_old_fast_connections_are_replaced(app: Flask) -> None:
    if not is_postgresql(app):
        assert _lane_connections(app) is None
        return
    with _own_connections(app, size=1, recycle=0.0) as connections:
        first = connections.lend()
        assert first is not None
        pid = first.conn.info.backend_pid
        connections.give(first)
        second = connections.lend()
        assert second is not None
        assert first.conn.closed and second.conn.info.backend_pid != pid
        connections.give(second)


def test_disposing_the_engine_closes_idle_fast_connections_and_lent_ones_on_return(
    app: Flask, connections: check_in_fast.Connections | None
) -> None:
    if connections is None:
        return
    lent, idle = connections.lend(), connections.lend()
    assert lent is not None and idle is not None
    connections.give(idle)
    with app.app_context():
        db.engine.dispose()
    assert idle.conn.closed and not lent.conn.closed
    connections.give(lent)
    assert lent.conn.closed
    fresh = connections.lend()
    assert fresh is not None and fresh is not lent and fresh is not idle
    assert fresh.conn.execute("SELECT 1").fetchone() == (1,)
    connections.give(fresh)


def test_check_ins_arriving_together_first_share_one_set_of_fast_connections(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane = CheckInLane(app, app.wsgi_app)
    start = threading.Barrier(8)
    seen: list[check_in_fast.Connections | None] = []
    made_times: list[float] = []
    making = lane._connections_of_app

    def slow_making() -> check_in_fast.Connections | None:
        made_times.append(time.monotonic())
        time.sleep(0.05)  # long enough for every other first tap to arrive meanwhile
        return making()

    monkeypatch.setattr(lane, "_connections_of_app", slow_making)

    def first_tap() -> None:
        start.wait()
        seen.append(lane._open())

    threads = [threading.Thread(target=first_tap) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(seen) == 8 and len(made_times) == 1
    made = seen[0]
    assert all(one is made for one in seen)
    assert (made is not None) == is_postgresql(app)
    if made is not None:
        _retire(made)


def test_a_tap_when_no_connection_can_be_made_is_a_503_to_send_again(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The database is down (nothing listens where the fast path connects): the lane answers
    503 with Retry-After itself, as the full path would, without logging a failure."""
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    if not is_postgresql(app):
        assert _lane_connections(app) is None
        return
    down = create_engine("postgresql+psycopg://postgres@127.0.0.1:9/hub")
    lane = app.wsgi_app
    monkeypatch.setattr(lane, "_checked", True)
    monkeypatch.setattr(lane, "_connections", check_in_fast.Connections(down, 2, math.inf))
    try:
        response = tap(client, factory.headers(volunteer), assignment, key="k")
    finally:
        down.dispose()
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
    assert response.mimetype == "application/problem+json"
    assert "handing the request to the app" not in caplog.text
    assert world.rows(Attendance) == []
