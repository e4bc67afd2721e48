"""Domain errors and the one place that turns any error into an RFC 9457 problem document."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from flask import Flask, Response, json
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://volunteer-hub.example/problems/"
PROBLEM_MIMETYPE = "application/problem+json"
# How long a client is asked to wait after the database went away (a restart or failover
# takes seconds; the pool reconnects on the next request).
DATABASE_RETRY_AFTER_S = 2
# PostgreSQL SQLSTATEs that mean "the server or the connection is gone", not "the statement is
# wrong": class 08 (connection exception) and 57P01-57P03 (shutdown, crash, not yet accepting).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03")


class DomainError(Exception):
    """Raised by services; `status` and `slug` decide the problem document."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Mapping[str, list[str]] | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = dict(errors) if errors else None
        self.extra = dict(extra) if extra else {}
        self.headers = dict(headers) if headers else {}


class ValidationFailed(DomainError):
    status = 422
    slug = "validation"
    title = "The request is not valid"


class Unauthorized(DomainError):
    status = 401
    slug = "unauthorized"
    title = "Sign-in required"


class Forbidden(DomainError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(DomainError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class DatabaseUnavailable(DomainError):
    """The database went away mid-request (restart, failover): send the request again."""

    status = 503
    slug = "database-unavailable"
    title = "Service unavailable"

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            detail or "The database is briefly unavailable; send the request again in a moment.",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )


class TooManyRequests(DomainError):
    status = 429
    slug = "too-many-requests"
    title = "Too many requests"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    errors: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update(extra)
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_MIMETYPE
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs nests messages by location and field; the API speaks `field -> [messages]`."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = str(key)
            if (
                name in {"json", "query", "form", "headers", "files", "view_args", "path"}
                and not prefix
            ):
                flat.update(_flatten(value, ""))
            else:
                flat.update(_flatten(value, f"{prefix}.{name}" if prefix else name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        flat[prefix or "_schema"] = list(messages)
    elif isinstance(messages, list):
        for index, item in enumerate(messages):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
    else:
        flat[prefix or "_schema"] = [str(messages)]
    return flat


def _http_problem(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    errors = _flatten(data["messages"]) if "messages" in data else None
    detail = exc.description or ""
    if status == 422 and errors:
        detail = "Some fields are not valid: " + ", ".join(sorted(errors))
    headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    return problem(status, exc.name, detail, errors=errors, headers=headers)


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database went away (restart, failover, killed connection) rather
    than that a statement was wrong: such a request may simply be sent again.

    SQLAlchemy flags the errors it recognises as disconnects (`connection_invalidated`; it then
    drops the pool's older connections). Besides those: the pool's timeout (every connection
    busy for `pool_timeout`); a driver error with a connection-class SQLSTATE, or a psycopg
    client-side OperationalError/InterfaceError (no SQLSTATE: connection refused, connection
    closed). SQLite's OperationalError (a missing table, a locked file) carries no such meaning
    and stays a 500. The exceptions `exc` was raised from count too: a rollback after a
    disconnect raises PendingRollbackError, whose context is the disconnect.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if _disconnect(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _disconnect(exc: BaseException) -> bool:
    # A pool whose every connection stayed busy for `pool_timeout`: under gevent workers a
    # worker serves many requests at once, and in a crowd (or with the database slow) one may
    # wait that long. It may simply be sent again, like a request that met a restart.
    if isinstance(exc, DisconnectionError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return _driver_disconnect(exc)
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    if isinstance(exc, OperationalError | InterfaceError):
        return type(exc.orig).__module__.split(".")[0] == "psycopg"
    return False


def _driver_disconnect(exc: BaseException) -> bool:
    """psycopg's own error, not wrapped by SQLAlchemy (a raw connection's, as the check-in fast
    path's): a connection-class SQLSTATE, or an OperationalError/InterfaceError without one
    (connection refused, closed, the server starting up)."""
    if not isinstance(exc, psycopg.Error):
        return False
    if isinstance(exc.sqlstate, str):
        return exc.sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def _discard_session() -> None:
    """Roll the request's session back now, where a failure is expected and harmless.

    After a disconnect the session's transaction is invalid until rolled back. Left to the
    app-context teardown, that rollback runs the engine's rollback listeners against the dead
    connection, and an error there escapes the request after the response was chosen: the
    client would see a 500 after all. Errors of this rollback are swallowed (the connection is
    gone; the pool has already replaced it).
    """
    from volunteer_hub.extensions import db  # extensions imports this module

    try:
        db.session.rollback()
    except Exception:  # the connection is dead; nothing to save
        log.debug("rollback after a disconnect failed", exc_info=True)


def _database_problem(exc: BaseException) -> Response:
    log.warning("database unavailable: %s", exc.__class__.__name__, exc_info=exc)
    _discard_session()
    return domain_problem(DatabaseUnavailable())


def domain_problem(exc: DomainError) -> Response:
    """The problem document of a domain error (inside an app context, for the app's JSON)."""
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        errors=exc.errors,
        extra=exc.extra,
        headers=exc.headers,
    )


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(DomainError, domain_problem)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return _http_problem(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        if database_unavailable(exc):
            return _database_problem(exc)
        log.exception("unhandled error")
        return _http_problem(InternalServerError())
