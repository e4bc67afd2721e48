"""The check-in's lane in front of Flask: an ordinary tap on PostgreSQL answered at the WSGI
level, everything else passed on to the app unchanged.

A check-in is the one request that arrives by the hundred at once (a whole town's night patrol
taps in within minutes), and its work is a share of one statement (`services.check_in_fast`,
which sends the taps waiting together). Under
Flask the request context, URL matching, the before-request hooks, the view decorators and the
response object cost about as much Python as the statement itself, so this lane answers the
plain case before any of it: `POST /api/v1/assignments/<id>/check-in` with no query string, a
JSON body of at most `MAX_BODY` bytes, on PostgreSQL, with `ATTENDANCE_FAST_LANE` on (the
default). Everything the fast path does not take on (a refusal, odd input, SQLite, a lost
race) goes to the app with the body put back, and the full path answers it in its usual words.

What the lane skips is safe to skip for the requests it answers: the text guard refuses control
characters and lone surrogates, and the fast path takes only a numeric body and a `client_time`
its own field parses (no such characters get through); the limiter has no limit on check-in
(the lane stands aside when a default or application-wide limit is configured); nothing else
hooks into requests. The answer is byte for byte the one the app would give (a test compares
them): the same JSON (the app's provider, keys sorted), the same headers.
"""

from __future__ import annotations

import io
import logging
import math
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.http import HTTP_STATUS_CODES

from volunteer_hub.errors import DatabaseUnavailable, domain_problem
from volunteer_hub.extensions import db
from volunteer_hub.services import check_in_fast, idempotency

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

log = logging.getLogger(__name__)

# The app's route, as the lane takes it: ids with leading zeros or a trailing slash go to the
# app, which judges them as it always has.
_PATH = re.compile(r"/api/v1/assignments/([1-9][0-9]{0,9})/check-in")
# A check-in body is under 200 bytes; anything larger goes to the app, unread.
MAX_BODY = 4096
# Limiter settings under which a check-in could be limited: the lane then stands aside.
_LIMITS = ("RATELIMIT_DEFAULT", "RATELIMIT_APPLICATION")
_KEY_ENVIRON = "HTTP_" + idempotency.HEADER.upper().replace("-", "_")


class CheckInLane:
    """WSGI middleware over `app.wsgi_app`; installed by `create_app`."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self._connections: check_in_fast.Connections | None = None  # on the first check-in
        self._checked = False
        self._opening = threading.Lock()  # the first check-ins may arrive together

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "POST" and not environ.get("QUERY_STRING"):
            match = _PATH.fullmatch(environ.get("PATH_INFO", ""))
            connections = self._open() if match is not None else None
            if match is not None and connections is not None:
                answered = self._answer(environ, start_response, connections, int(match[1]))
                if answered is not None:
                    return answered
        return self.wsgi_app(environ, start_response)

    def _open(self) -> check_in_fast.Connections | None:
        """The fast path's connections when the lane may answer (on, no limit that could
        apply, on PostgreSQL), else None."""
        config = self.app.config
        if not config.get("ATTENDANCE_FAST_LANE", True) or any(config.get(k) for k in _LIMITS):
            return None
        if not self._checked:
            with self._opening:
                if not self._checked:
                    self._connections = self._connections_of_app()
                    self._checked = True
        return self._connections

    def _connections_of_app(self) -> check_in_fast.Connections | None:
        with self.app.app_context():
            engine = db.engine
        if engine.dialect.name != "postgresql":
            return None
        options = self.app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})
        recycle = options.get("pool_recycle", -1)
        return check_in_fast.Connections(
            engine, size=options.get("pool_size", 5), recycle=recycle if recycle > 0 else math.inf
        )

    def _answer(
        self,
        environ: WSGIEnvironment,
        start_response: StartResponse,
        connections: check_in_fast.Connections,
        assignment_id: int,
    ) -> Iterable[bytes] | None:
        """The answer to a plain check-in, or None (the body put back) for the app."""
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return None
        if not 0 < length <= MAX_BODY:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        tap = check_in_fast.Tap(
            assignment_id=assignment_id,
            authorization=environ.get("HTTP_AUTHORIZATION", ""),
            key=environ.get(_KEY_ENVIRON),
            content_type=environ.get("CONTENT_TYPE", ""),
            body=body,
        )
        try:
            outcome = check_in_fast.check_in(self.app.config, connections, tap)
        except DatabaseUnavailable as exc:
            with self.app.app_context():
                return domain_problem(exc)(environ, start_response)
        except Exception:
            # The one statement either committed whole or not at all; the full path sees
            # which (a stored key replays) and answers in its own words.
            log.exception("check-in lane: handing the request to the app")
            environ["wsgi.input"] = io.BytesIO(body)
            return None
        if outcome is None:
            return None
        payload = self.app.json.dumps(outcome.body, ensure_ascii=False).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        if outcome.replayed:
            headers.append(("Idempotent-Replayed", "true"))
        start_response(f"{outcome.status} {HTTP_STATUS_CODES[outcome.status].upper()}", headers)
        return [payload]


def install(app: Flask) -> None:
    app.wsgi_app = CheckInLane(app, app.wsgi_app)  # type: ignore[method-assign]
