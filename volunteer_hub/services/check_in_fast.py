"""The check-in's fast path on PostgreSQL: an ordinary tap in one statement.

Most check-ins are the plain case: a valid token, a well-formed body, the volunteer's own
published or accepted assignment, inside the window and the geofence, a fresh key. For that
case this module sends one statement (`_TAP`) on a connection in autocommit mode. It
reads the caller (status, token version, whether the token's family was revoked), the
assignment with its post, any attendance and any stored response for the Idempotency-Key;
decides the plain case in SQL (the same comparisons as `services.attendance`, the geofence
with a micrometre to spare); locks the assignment, checking under the lock that it has not
changed since; and inserts the attendance, its audit row and the idempotency record. One
statement is atomic, and it is committed (synchronous_commit as configured, so durable)
before the 201 is sent.

When the statement inserted nothing, the row it read says whether this is a repeat of a
stored key with the same body (answered here, 200 and Idempotent-Replayed, as the full path
would). Everything else returns None and the caller runs the full path (`services.attendance`),
which gives every refusal its usual problem document: a missing or bad token, a body
marshmallow would refuse, a revoked family or changed password, someone else's assignment, an
existing attendance, a no-show arrival, a tap outside the window or the geofence, a key used
for another request, and a race lost to a concurrent tap (a unique violation: the full path
then finds the winner and replays it). The fast path never writes anything it then abandons:
its only write is the one statement, which either commits whole or not at all.

Replaces, on PostgreSQL, 7 round trips (BEGIN, the token check, the locked read, three ORM
INSERTs, COMMIT) and the ORM's flush machinery with 1 round trip.

The statement runs on the fast path's own few connections (`Connections`), kept in autocommit
mode with a cursor each, outside the engine's pool: the pool's checkout and return (events,
the rollback on return, switching autocommit on and off) cost a tenth of a check-in's Python.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from marshmallow import ValidationError
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, event

from volunteer_hub.errors import DatabaseUnavailable, DomainError, database_unavailable
from volunteer_hub.models.types import utcnow
from volunteer_hub.schemas.attendance import FixArgs
from volunteer_hub.schemas.common import MAX_ID
from volunteer_hub.services import attendance, hours, idempotency

log = logging.getLogger(__name__)

_KEYS = frozenset(FixArgs().fields)
_CLIENT_TIME = FixArgs().fields["client_time"]
_CHECKABLE = ("published", "accepted")

# One statement: `ctx` reads everything the decision needs; `go` is the whole decision of the
# Python rules for the plain case (signed in, fresh key, own checkable assignment, no
# attendance, inside the window and - with a micrometre to spare, so floating-point noise can
# never admit a tap Python would refuse - inside the geofence); `a` locks the assignment and
# checks again under the lock that it has not changed since `ctx` read it; then the three
# INSERTs. The SELECT returns what was read (for a replay) and the new attendance id, if any.
_TAP = """
WITH ctx AS (
    SELECT m.status AS member_status, m.token_version,
           EXISTS (SELECT 1 FROM refresh_token r
                   WHERE r.family = %(family)s AND r.revoked_at IS NOT NULL) AS revoked,
           a.member_id AS owner, a.status, a.starts_at, a.ends_at,
           p.lat, p.lon, p.radius_m,
           att.id AS attendance_id,
           ir.endpoint, ir.request_hash, ir.response
    FROM member m
    LEFT JOIN assignment a ON a.id = %(assignment)s
    LEFT JOIN shift s ON s.id = a.shift_id
    LEFT JOIN post p ON p.id = s.post_id
    LEFT JOIN attendance att ON att.assignment_id = a.id
    LEFT JOIN idempotency_record ir ON ir.member_id = m.id AND ir.key = %(key)s
    WHERE m.id = %(member)s
), go AS (
    SELECT starts_at, ends_at FROM ctx
    WHERE member_status = 'active' AND NOT revoked
      AND (%(tv)s::integer IS NULL OR token_version = %(tv)s::integer)
      AND endpoint IS NULL AND attendance_id IS NULL
      AND owner = %(member)s AND status IN ('published', 'accepted')
      AND starts_at - %(opens_before)s::interval <= %(at)s AND %(at)s <= ends_at
      AND 2 * 6371008.8 * asin(least(1.0, sqrt(
              power(sin((radians(lat) - radians(%(lat)s)) / 2), 2)
              + cos(radians(%(lat)s)) * cos(radians(lat))
                * power(sin(radians(lon - %(lon)s) / 2), 2)
          ))) - %(credit)s <= radius_m - 0.000001
), a AS (
    SELECT assignment.id FROM assignment, go
    WHERE assignment.id = %(assignment)s AND assignment.member_id = %(member)s
      AND assignment.status IN ('published', 'accepted')
      AND assignment.starts_at = go.starts_at AND assignment.ends_at = go.ends_at
    FOR UPDATE OF assignment
), att AS (
    INSERT INTO attendance (
        assignment_id, member_id, check_in_at, check_in_lat, check_in_lon,
        check_in_accuracy_m, check_in_client_time, check_in_received_at, synced_late, status,
        created_at, updated_at)
    SELECT a.id, %(member)s, %(at)s, %(lat)s, %(lon)s, %(accuracy)s, %(client_time)s, %(now)s,
           %(late)s, 'open', %(now)s, %(now)s
    FROM a
    RETURNING id
), audit AS (
    INSERT INTO audit_log (actor_id, action, object_type, object_id, before, after, at)
    SELECT %(member)s, 'attendance.check_in', 'attendance', att.id, 'null'::jsonb,
           'null'::jsonb, %(now)s
    FROM att
), record AS (
    INSERT INTO idempotency_record (
        member_id, key, endpoint, request_hash, status_code, response, created_at)
    SELECT %(member)s, %(key)s, %(endpoint)s, %(hash)s, 201,
           jsonb_set(%(body)s, '{id}', to_jsonb(att.id)), %(now)s
    FROM att
    RETURNING (response ->> 'id')::integer AS id
)
SELECT member_status, token_version, revoked, endpoint, request_hash, response,
       (SELECT id FROM record)
FROM ctx
"""


_BEARER = re.compile(r"Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
_HEADER = {"alg": "HS256", "typ": "JWT"}
# Header segments already seen to decode to `_HEADER` (a token issuer writes one or two).
_HEADS: set[str] = set()
_MOST_HEADS = 8


@dataclass(frozen=True, slots=True)
class Tap:
    """What the fast path reads of a check-in request: no Flask request is needed."""

    assignment_id: int
    authorization: str  # the Authorization header, "" when absent
    key: str | None  # the Idempotency-Key header
    content_type: str  # the Content-Type header, "" when absent
    body: bytes


def _segment(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims(config: Mapping[str, Any], header: str) -> Mapping[str, Any] | None:
    """The claims of a valid access token in the Authorization header, or None for anything
    the full path (flask-jwt-extended over PyJWT) should judge.

    Only the shape this app issues is accepted here: HS256 signed with the app's key, header
    `{"alg": "HS256", "typ": "JWT"}`, a string `sub`, `type` "access", and `exp`, `nbf`, `iat`
    checked as PyJWT does (with the configured leeway); under any other JWT configuration
    (another algorithm, an audience or issuer, other token locations) everything goes to the
    full path. PyJWT's decode scans the token character by character three times over
    (~0.2 ms a request here); one HMAC and three small JSON documents cost a tenth of that.
    A token this check accepts, PyJWT accepts too; a token it refuses may still be fine, and
    the full path decides.
    """
    secret = config.get("JWT_SECRET_KEY")
    if (
        config.get("JWT_ALGORITHM") != "HS256"
        or config.get("JWT_DECODE_ALGORITHMS") not in (None, ["HS256"], ("HS256",))
        or config.get("JWT_DECODE_AUDIENCE") is not None
        or config.get("JWT_DECODE_ISSUER") is not None
        or "headers" not in config.get("JWT_TOKEN_LOCATION", ())
        or config.get("JWT_HEADER_NAME") != "Authorization"
        or config.get("JWT_HEADER_TYPE") != "Bearer"
        or config.get("JWT_IDENTITY_CLAIM") != "sub"
        or not isinstance(secret, str)
        or not secret
    ):
        return None
    match = _BEARER.fullmatch(header)
    if match is None:
        return None
    head, body, signature = match.groups()
    try:
        expected = hmac.digest(secret.encode(), f"{head}.{body}".encode("ascii"), "sha256")
        if not hmac.compare_digest(expected, _segment(signature)):
            return None
        if head not in _HEADS:
            if json.loads(_segment(head)) != _HEADER:
                return None
            if len(_HEADS) < _MOST_HEADS:
                _HEADS.add(head)
        claims = json.loads(_segment(body))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not isinstance(claims, dict) or claims.get("type") != "access":
        return None
    if not isinstance(claims.get("sub"), str):
        return None
    if not isinstance(claims.get("jti", ""), str):
        return None
    if any(name in claims and type(claims[name]) is not int for name in ("exp", "nbf", "iat")):
        return None  # PyJWT truncates other numbers; let it judge them
    leeway = config.get("JWT_DECODE_LEEWAY", 0)
    margin = leeway.total_seconds() if isinstance(leeway, timedelta) else float(leeway)
    now = time.time()
    if "exp" in claims and claims["exp"] <= now - margin:
        return None
    if any(name in claims and claims[name] > now + margin for name in ("nbf", "iat")):
        return None
    return claims


def _number(value: Any, low: float, high: float) -> float | None:
    """What FixArgs' Number fields load (a JSON number, not a boolean, finite, within the
    range, as a float), or None when they would refuse it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    if not (math.isfinite(number) and low <= number <= high):
        return None
    return number


def _is_json(content_type: str) -> bool:
    """Werkzeug's `Request.is_json`: application/json or application/*+json."""
    mimetype = content_type.split(";", 1)[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def _fix(content_type: str, data: bytes) -> attendance.Fix | None:
    """The body as FixArgs would load it (the same values, so the same request fingerprint),
    or None when FixArgs might refuse it. `client_time` is loaded by FixArgs' own field."""
    if not _is_json(content_type):
        return None
    try:
        body = json.loads(data)
    except ValueError:  # not JSON, or not UTF-8/16/32 (UnicodeDecodeError is a ValueError)
        return None
    if not isinstance(body, dict) or not body.keys() <= _KEYS:
        return None
    lat = _number(body.get("lat"), -90, 90)
    lon = _number(body.get("lon"), -180, 180)
    if lat is None or lon is None:
        return None
    accuracy = body.get("accuracy_m")
    if accuracy is not None:
        accuracy = _number(accuracy, 0, 100_000)
        if accuracy is None:
            return None
    client_time = body.get("client_time")
    if client_time is not None:
        try:
            client_time = _CLIENT_TIME.deserialize(client_time)
        except (ValidationError, ValueError, TypeError, OverflowError):
            return None
    return attendance.Fix(lat, lon, accuracy, client_time)


class Connections:
    """The fast path's connections: at most `size` at once, each in autocommit mode with its
    cursor, made by the engine (its URL and connect arguments) but kept outside its pool.

    `lend` lends one, or None when all are lent (the caller then runs the full path, whose
    pool queues). Connections older than `recycle` seconds are replaced, as the pool recycles
    its own; when one breaks, or the engine is disposed, every connection made before is
    closed (the idle ones at once, the lent ones when returned), as the pool invalidates
    its own after a disconnect.
    """

    def __init__(self, engine: Engine, size: int, recycle: float) -> None:
        self.engine = engine
        self.recycle = recycle
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[_Held] = []
        self._generation = 0
        event.listen(engine, "engine_disposed", self._on_disposed)

    def _on_disposed(self, _engine: Engine) -> None:
        self.close()

    def close(self) -> None:
        """Close every idle connection; lent ones are closed when they come back."""
        self._generation += 1
        while (held := self._pop_idle()) is not None:
            held.conn.close()

    def lend(self) -> _Held | None:
        """A connection for one statement, or None when all are lent; `give` it back."""
        if not self._slots.acquire(blocking=False):
            return None
        try:
            return self._lend()
        except BaseException:
            self._slots.release()
            raise

    def give(self, held: _Held) -> None:
        try:
            self._return(held)
        finally:
            self._slots.release()

    def lost(self, held: _Held) -> bool:
        """Whether `held`'s connection has died. If it has, as SQLAlchemy does on a
        disconnect, the engine is disposed and every connection made before is renewed: they
        are from before the restart too, so renew them rather than fail on each of them."""
        if not (held.conn.broken or held.conn.closed):
            return False
        self.engine.dispose()  # and so `close`: `give` then closes this one
        return True

    def _pop_idle(self) -> _Held | None:
        try:
            return self._idle.pop()  # atomic: other threads lend and give meanwhile
        except IndexError:
            return None

    def _lend(self) -> _Held:
        while (held := self._pop_idle()) is not None:
            if held.generation == self._generation and time.monotonic() < held.until:
                return held
            held.conn.close()
        fairy = self.engine.raw_connection()
        conn: psycopg.Connection[Any] = fairy.driver_connection  # type: ignore[assignment]
        fairy.detach()
        try:
            conn.autocommit = True
            # `_TAP` reads only by key. Its plan is cached on the connection, made once from
            # the statistics of the moment: made when the idempotency records were few (a new
            # database, a purge after a quiet spell), it scanned them whole, a scan that grew
            # with every tap until the next ANALYZE. A sequential scan is never right here.
            conn.execute("SET enable_seqscan = off")
            return _Held(conn, conn.cursor(), self._generation, time.monotonic() + self.recycle)
        except BaseException:
            conn.close()
            raise

    def _return(self, held: _Held) -> None:
        conn = held.conn
        if (
            held.generation == self._generation
            and conn.pgconn.transaction_status == _IDLE  # UNKNOWN once closed or broken
        ):
            self._idle.append(held)
        else:
            conn.close()


_IDLE = psycopg.pq.TransactionStatus.IDLE


@dataclass(slots=True)
class _Held:
    conn: psycopg.Connection[Any]
    cursor: psycopg.Cursor[Any]
    generation: int
    until: float  # monotonic time after which it is recycled


def check_in(
    config: Mapping[str, Any], connections: Connections, tap: Tap
) -> idempotency.Outcome | None:
    """The outcome of an ordinary check-in, or None to run the full path.

    :param config: the app's configuration (JWT settings and the attendance rules).
    :param connections: the fast path's connections to the app's PostgreSQL database.
    :raise DatabaseUnavailable: the connection died (the connections are renewed), or none
        could be made.
    """
    if tap.assignment_id > MAX_ID:
        return None
    claims = _claims(config, tap.authorization)
    if claims is None:
        return None
    try:
        member_id = int(claims["sub"])
        key = idempotency.check_key(tap.key)
    except (KeyError, TypeError, ValueError, DomainError):
        return None
    fix = _fix(tap.content_type, tap.body)
    if fix is None:
        return None
    family = claims.get("fam")
    try:
        held = connections.lend()
    except Exception as exc:
        if database_unavailable(exc):  # no connection can be made: restarting, failing over
            raise DatabaseUnavailable() from exc
        raise
    if held is None:
        return None  # all lent: the full path queues for the engine's pool
    try:
        return _check_in(
            held.cursor,
            config=config,
            member_id=member_id,
            token_version=claims.get("tv"),
            family=family if isinstance(family, str) else None,
            assignment_id=tap.assignment_id,
            key=key,
            fix=fix,
        )
    except psycopg.IntegrityError:
        return None  # lost a race to a concurrent tap: the full path replays the winner
    except psycopg.DataError:
        # A value PostgreSQL cannot take as given (only a token this app did not issue could
        # carry one): the full path judges the request and refuses it in its own words.
        log.warning("check-in fast path: value refused by the database", exc_info=True)
        return None
    except psycopg.Error as exc:
        if connections.lost(held):
            raise DatabaseUnavailable() from exc
        raise
    finally:
        connections.give(held)


def _check_in(
    cursor: psycopg.Cursor[Any],
    *,
    config: Mapping[str, Any],
    member_id: int,
    token_version: Any,
    family: str | None,
    assignment_id: int,
    key: str,
    fix: attendance.Fix,
) -> idempotency.Outcome | None:
    if token_version is not None and type(token_version) is not int:
        return None  # the full path compares it as it is; SQL would cast it
    now = utcnow()
    rules = attendance.Rules.from_config(config)
    try:
        at, late = attendance.tap_time(fix.client_time, now, rules)
    except DomainError:
        return None
    endpoint = f"check-in:{assignment_id}"
    fingerprint = idempotency.request_hash(endpoint, fix.payload())
    body = _view(assignment_id, member_id, at, fix, late, hours.zone_of(config))
    row = cursor.execute(
        _TAP,
        {
            "member": member_id,
            "assignment": assignment_id,
            "key": key,
            "family": family,
            "tv": token_version,
            "opens_before": rules.opens_before,
            "at": at,
            "lat": fix.lat,
            "lon": fix.lon,
            "credit": min(max(fix.accuracy_m or 0.0, 0.0), rules.accuracy_cap_m),
            "accuracy": fix.accuracy_m,
            "client_time": fix.client_time,
            "now": now,
            "late": late,
            "endpoint": endpoint,
            "hash": fingerprint,
            "body": Jsonb(body),
        },
    ).fetchone()
    if row is None:
        return None  # no such member: the full path refuses the token
    member_status, current_version, revoked, stored_endpoint, stored_hash, stored, new_id = row
    if new_id is not None:
        body["id"] = new_id
        return idempotency.Outcome(status=201, body=body, replayed=False)
    if member_status != "active" or revoked:
        return None
    if token_version is not None and token_version != current_version:
        return None
    if stored_endpoint == endpoint and stored_hash == fingerprint:
        return idempotency.Outcome(status=200, body=dict(stored), replayed=True)
    return None  # refused, or not the plain case: the full path judges and explains


def _view(
    assignment_id: int,
    member_id: int,
    at: datetime,
    fix: attendance.Fix,
    late: bool,
    zone: ZoneInfo,
) -> dict[str, Any]:
    """`attendance.attendance_view` of the attendance about to be inserted (id set later); no
    app context is active here, so the federation's zone is given."""
    return {
        "id": None,
        "assignment": assignment_id,
        "member": member_id,
        "status": "open",
        "check_in_at": attendance.iso(at, zone),
        "check_out_at": None,
        "check_in": {
            "lat": fix.lat,
            "lon": fix.lon,
            "accuracy_m": fix.accuracy_m,
            "client_time": attendance.iso(fix.client_time, zone),
        },
        "check_out": None,
        "synced_late": late,
        "service_minutes": None,
        "confirmed_by": None,
        "confirmed_at": None,
    }
