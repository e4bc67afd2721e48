"""A database restart between two requests: the request that meets the dead connection gets a
503 problem with Retry-After (not a 500), nothing half-done is kept, and the next request
works on a fresh connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from tests.attendance.conftest import World, tap
from tests.conftest import Factory
from volunteer_hub.errors import DATABASE_RETRY_AFTER_S, database_unavailable
from volunteer_hub.extensions import db
from volunteer_hub.models.attendance import Attendance, HoursEntry
from volunteer_hub.services import check_in_fast


def drop_every_connection(app: Flask) -> int:
    """Cut the app's pooled connections the way a restart does; return how many were cut.

    PostgreSQL: the server ends every other backend of the database (pg_terminate_backend).
    SQLite has no server: the pooled sqlite3 connections are closed under the pool's feet.
    """
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "postgresql":
            admin = make_url(str(engine.url)).set(drivername="postgresql")
            with psycopg.connect(
                admin.render_as_string(hide_password=False), autocommit=True
            ) as conn:
                rows = conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
            return sum(1 for (ended,) in rows if ended)
        # The idle connections of the QueuePool (private, but there is no public handle).
        records = list(engine.pool._pool.queue)  # type: ignore[attr-defined]
        for record in records:
            record.dbapi_connection.close()
        return len(records)


def _admin_dsn(app: Flask) -> str:
    with app.app_context():
        url = make_url(str(db.engine.url)).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@contextmanager
def cut_before(app: Flask, marker: str) -> Iterator[list[str]]:
    """Kill the connection a request is using just before its first statement mentioning
    `marker` runs (PostgreSQL: pg_terminate_backend of that backend; SQLite: its sqlite3
    connection closed). Yields the statements that were cut."""
    cut: list[str] = []
    with app.app_context():
        engine = db.engine
    dsn = _admin_dsn(app) if engine.dialect.name == "postgresql" else ""

    def before(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if cut or marker not in statement:
            return
        cut.append(statement)
        raw = conn.connection.dbapi_connection
        if dsn:
            with psycopg.connect(dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (raw.info.backend_pid,))
        else:
            raw.close()

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield cut
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_a_restart_between_two_check_ins_gives_503_then_the_next_one_works(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    post = world.post()
    people = [factory.create_member(name=f"队员{i}") for i in range(2)]
    assignments = [world.assignment(m, post_id=post) for m in people]
    headers = [factory.headers(m) for m in people]
    assert tap(client, headers[0], assignments[0]).status_code == 201

    assert drop_every_connection(app) >= 1
    cut = tap(client, headers[1], assignments[1], key="after-restart")
    assert cut.status_code == 503, cut.get_data(as_text=True)
    assert cut.mimetype == "application/problem+json"
    assert cut.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
    problem = cut.get_json()
    assert problem["status"] == 503
    assert problem["type"].endswith("/database-unavailable")

    again = tap(client, headers[1], assignments[1], key="after-restart")
    assert again.status_code == 201, again.get_json()
    assert sorted(a.assignment_id for a in world.rows(Attendance)) == sorted(assignments)


def test_a_connection_killed_inside_a_check_out_gives_503_and_no_half_write(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """The full (ORM) path, which check-out always takes."""
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    assert tap(client, headers, assignment).status_code == 201
    with cut_before(app, "idempotency_record") as cut:
        response = tap(client, headers, assignment, action="check-out", key="in-flight")
    assert cut, "the check-out never reached its idempotency statement"
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
    assert world.rows(HoursEntry) == []
    assert world.rows(Attendance)[0].check_out_at is None

    again = tap(client, headers, assignment, action="check-out", key="in-flight")
    assert again.status_code == 200, again.get_json()
    assert len(world.rows(HoursEntry)) == 1


def test_a_connection_killed_inside_the_fast_check_in_gives_503_then_it_works(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL's check-in runs on its own statements (services.check_in_fast): its
    connection is killed just before its first statement. SQLite never takes that path."""
    volunteer = factory.create_member()
    assignment = world.assignment(volunteer, post_id=world.post())
    headers = factory.headers(volunteer)
    original = check_in_fast._run
    calls: list[int] = []

    def killed_first(cursor: Any, taps: Any) -> Any:
        pid = cursor.connection.info.backend_pid
        calls.append(pid)
        if len(calls) == 1:
            with psycopg.connect(_admin_dsn(app), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return original(cursor, taps)

    monkeypatch.setattr(check_in_fast, "_run", killed_first)
    first = tap(client, headers, assignment, key="in-flight")
    again = tap(client, headers, assignment, key="in-flight")
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        assert calls == []
        assert (first.status_code, again.status_code) == (201, 200)
        return
    assert len(calls) == 2 and calls[0] != calls[1]
    assert first.status_code == 503, first.get_data(as_text=True)
    assert first.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
    assert first.mimetype == "application/problem+json"
    assert again.status_code == 201, again.get_json()
    assert len(world.rows(Attendance)) == 1


class _Driver(Exception):
    def __init__(self, message: str, sqlstate: str | None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (OperationalError("SELECT 1", {}, _Driver("terminating connection", "57P01")), True),
        (OperationalError("SELECT 1", {}, _Driver("connection failure", "08006")), True),
        (OperationalError("SELECT 1", {}, _Driver("deadlock detected", "40P01")), False),
        (OperationalError("SELECT 1", {}, _Driver("no such table: x", None)), False),
        (InterfaceError("SELECT 1", {}, psycopg.InterfaceError("the connection is lost")), True),
        (OperationalError("SELECT 1", {}, psycopg.OperationalError("connection refused")), True),
        (IntegrityError("INSERT", {}, _Driver("duplicate key", "23505")), False),
        (
            OperationalError(
                "SELECT 1", {}, _Driver("server closed", None), connection_invalidated=True
            ),
            True,
        ),
        (ValueError("not a database error"), False),
        # psycopg's own, from a raw connection (the check-in fast path's): unwrapped.
        (psycopg.OperationalError("connection refused"), True),
        (psycopg.InterfaceError("the connection is closed"), True),
        (psycopg.errors.AdminShutdown("terminating connection"), True),
        (psycopg.errors.UniqueViolation("duplicate key"), False),
        (psycopg.DataError("invalid input"), False),
    ],
)
def test_which_database_errors_mean_unavailable(error: Exception, unavailable: bool) -> None:
    assert database_unavailable(error) is unavailable


def test_a_request_that_waits_out_the_pool_gets_503_then_the_next_one_works(
    app: Flask, factory: Factory, tmp_path: Any
) -> None:
    """A gevent worker serves many requests at once, every one but the plain check-in from its
    pool (10 connections and 20 more). One that waits out `pool_timeout` for a connection (the
    database slow, a crowd of check-outs) is told to send again: 503 with Retry-After, not a
    500. Here the pool has one connection, held elsewhere, and a wait of 0.1 s."""
    from tests.conftest import make_test_config
    from volunteer_hub.app import create_app

    volunteer = factory.create_member()
    headers = factory.headers(volunteer)
    config = make_test_config(str(app.config["SQLALCHEMY_DATABASE_URI"]), tmp_path)
    config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 1, "max_overflow": 0, "pool_timeout": 0.1}
    small = create_app(config)
    client = small.test_client()
    with small.app_context():
        engine = db.engine
    try:
        held = engine.connect()
        try:
            busy = client.get("/api/v1/me", headers=headers)
        finally:
            held.close()
        assert busy.status_code == 503, busy.get_data(as_text=True)
        assert busy.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_S)
        assert busy.mimetype == "application/problem+json"
        again = client.get("/api/v1/me", headers=headers)
        assert again.status_code == 200, again.get_json()
    finally:
        engine.dispose()
