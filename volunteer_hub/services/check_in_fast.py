"""The check-in's fast path on PostgreSQL: an ordinary tap in two statements.

Most check-ins are the plain case: a valid token, a well-formed body, the volunteer's own
published or accepted assignment, inside the window and the geofence, a fresh key. For that
case this module does, on one pooled connection in autocommit mode:

1. one SELECT reading the caller (status, token version, whether the token's family was
   revoked), the assignment with its post, any attendance, and any stored response for the
   Idempotency-Key;
2. one INSERT with CTEs that locks the assignment (re-checking under the lock that it is still
   the caller's, still checkable and still has the times the window was judged on), inserts
   the attendance, its audit row and the idempotency record. A single statement is atomic and
   is committed (synchronous_commit as configured, so durable) before the 200/201 is sent.

Everything else returns None so the caller runs the full path (`services.attendance`), which
gives every refusal its usual problem document: a missing or bad token, a body marshmallow
would refuse, a revoked family or changed password, someone else's assignment, an existing
attendance, a no-show arrival, a tap outside the window or the geofence, a key used for
another request, and a race lost to a concurrent tap (a unique violation: the full path then
finds the winner and replays it). The fast path never writes anything it then abandons: its
only write is the one statement, which either commits whole or not at all.

A request that repeats a stored key for the same body is answered here from the stored
response (200, Idempotent-Replayed), as the full path would.

Replaces, on PostgreSQL, 7 round trips (BEGIN, the token check, the locked read, three ORM
INSERTs, COMMIT) and the ORM's flush machinery with 2 round trips.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import psycopg
from flask import current_app, request
from flask_jwt_extended.config import config as jwt_config
from marshmallow import ValidationError
from psycopg.types.json import Jsonb

from volunteer_hub.errors import DatabaseUnavailable, DomainError
from volunteer_hub.extensions import db
from volunteer_hub.models.types import utcnow
from volunteer_hub.schemas.attendance import FixArgs
from volunteer_hub.schemas.common import MAX_ID
from volunteer_hub.services import attendance, idempotency

log = logging.getLogger(__name__)

_FIELDS = FixArgs().fields
_KEYS = frozenset(_FIELDS)
_CHECKABLE = ("published", "accepted")

_LOAD = """
SELECT m.status, m.token_version,
       EXISTS (SELECT 1 FROM refresh_token r
               WHERE r.family = %(family)s AND r.revoked_at IS NOT NULL),
       a.member_id, a.status, a.starts_at, a.ends_at,
       p.lat, p.lon, p.radius_m,
       att.id,
       ir.endpoint, ir.request_hash, ir.response
FROM member m
LEFT JOIN assignment a ON a.id = %(assignment)s
LEFT JOIN shift s ON s.id = a.shift_id
LEFT JOIN post p ON p.id = s.post_id
LEFT JOIN attendance att ON att.assignment_id = a.id
LEFT JOIN idempotency_record ir ON ir.member_id = m.id AND ir.key = %(key)s
WHERE m.id = %(member)s
"""

_INSERT = """
WITH a AS (
    SELECT id FROM assignment
    WHERE id = %(assignment)s AND member_id = %(member)s
      AND status IN ('published', 'accepted')
      AND starts_at = %(starts_at)s AND ends_at = %(ends_at)s
    FOR UPDATE
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
)
INSERT INTO idempotency_record (
    member_id, key, endpoint, request_hash, status_code, response, created_at)
SELECT %(member)s, %(key)s, %(endpoint)s, %(hash)s, 201,
       jsonb_set(%(body)s, '{id}', to_jsonb(att.id)), %(now)s
FROM att
RETURNING (response ->> 'id')::integer
"""


_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")


def _segment(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _claims() -> Mapping[str, Any] | None:
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
    if (
        jwt_config.algorithm != "HS256"
        or list(jwt_config.decode_algorithms) != ["HS256"]
        or jwt_config.decode_audience is not None
        or jwt_config.decode_issuer is not None
        or "headers" not in jwt_config.token_location
        or jwt_config.header_name != "Authorization"
        or jwt_config.header_type != "Bearer"
        or jwt_config.identity_claim_key != "sub"
    ):
        return None
    secret = jwt_config.decode_key
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not isinstance(secret, str) or not secret:
        return None
    parts = header[7:].split(".")
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(part) for part in parts):
        return None
    head, body, signature = parts
    try:
        expected = hmac.digest(secret.encode(), f"{head}.{body}".encode("ascii"), "sha256")
        if not hmac.compare_digest(expected, _segment(signature)):
            return None
        if json.loads(_segment(head)) != {"alg": "HS256", "typ": "JWT"}:
            return None
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
    leeway = jwt_config.leeway
    margin = leeway.total_seconds() if isinstance(leeway, timedelta) else float(leeway)
    now = time.time()
    if "exp" in claims and claims["exp"] <= now - margin:
        return None
    if any(name in claims and claims[name] > now + margin for name in ("nbf", "iat")):
        return None
    return claims


def _fix() -> attendance.Fix | None:
    """The body as FixArgs would load it (the same fields, so the same values and the same
    request fingerprint), or None when FixArgs might refuse it."""
    if not request.is_json:
        return None
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body.keys() <= _KEYS or not {"lat", "lon"} <= body.keys():
        return None
    values: dict[str, Any] = {"accuracy_m": None, "client_time": None}
    try:
        for name, raw in body.items():
            values[name] = None if raw is None else _FIELDS[name].deserialize(raw)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return None
    lat, lon = values["lat"], values["lon"]
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return None
    return attendance.Fix(lat, lon, values["accuracy_m"], values["client_time"])


def check_in(assignment_id: int) -> idempotency.Outcome | None:
    """The outcome of an ordinary check-in, or None to run the full path.

    :raise DatabaseUnavailable: the connection died (the pool is renewed).
    """
    if assignment_id > MAX_ID:
        return None
    claims = _claims()
    if claims is None:
        return None
    try:
        member_id = int(claims["sub"])
        key = idempotency.check_key(request.headers.get(idempotency.HEADER))
    except (KeyError, TypeError, ValueError, DomainError):
        return None
    fix = _fix()
    if fix is None:
        return None
    family = claims.get("fam")
    raw = db.engine.raw_connection()
    conn: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
    try:
        conn.autocommit = True
        try:
            return _check_in(
                conn,
                member_id=member_id,
                token_version=claims.get("tv"),
                family=family if isinstance(family, str) else None,
                assignment_id=assignment_id,
                key=key,
                fix=fix,
            )
        finally:
            if not conn.closed:
                conn.autocommit = False
    except psycopg.IntegrityError:
        return None  # lost a race to a concurrent tap: the full path replays the winner
    except psycopg.Error as exc:
        if conn.broken or conn.closed:
            raw.invalidate(exc)
            # As SQLAlchemy does on a disconnect: the pool's other connections are from
            # before the restart too, so start a new pool rather than fail on each of them.
            db.engine.dispose()
            raise DatabaseUnavailable() from exc
        raise
    finally:
        raw.close()


def _check_in(
    conn: psycopg.Connection[Any],
    *,
    member_id: int,
    token_version: Any,
    family: str | None,
    assignment_id: int,
    key: str,
    fix: attendance.Fix,
) -> idempotency.Outcome | None:
    endpoint = f"check-in:{assignment_id}"
    row = conn.execute(
        _LOAD, {"member": member_id, "assignment": assignment_id, "key": key, "family": family}
    ).fetchone()
    if row is None:
        return None
    (
        member_status,
        current_version,
        revoked,
        owner,
        status,
        starts_at,
        ends_at,
        post_lat,
        post_lon,
        radius_m,
        attendance_id,
        stored_endpoint,
        stored_hash,
        stored_response,
    ) = row
    if member_status != "active" or revoked:
        return None
    if token_version is not None and token_version != current_version:
        return None
    fingerprint = idempotency.request_hash(endpoint, fix.payload())
    if stored_endpoint is not None:
        if stored_endpoint != endpoint or stored_hash != fingerprint:
            return None
        return idempotency.Outcome(status=200, body=dict(stored_response), replayed=True)
    if owner != member_id or attendance_id is not None or status not in _CHECKABLE:
        return None
    now = utcnow()
    rules = attendance.Rules.from_config(current_app.config)
    try:
        at, late = attendance.tap_time(fix.client_time, now, rules)
    except DomainError:
        return None
    if not starts_at - rules.opens_before <= at <= ends_at:
        return None
    credit = min(max(fix.accuracy_m or 0.0, 0.0), rules.accuracy_cap_m)
    if attendance.distance_m(fix.lat, fix.lon, post_lat, post_lon) - credit > radius_m:
        return None
    body = _view(assignment_id, member_id, at, fix, late)
    inserted = conn.execute(
        _INSERT,
        {
            "assignment": assignment_id,
            "member": member_id,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "at": at,
            "lat": fix.lat,
            "lon": fix.lon,
            "accuracy": fix.accuracy_m,
            "client_time": fix.client_time,
            "now": now,
            "late": late,
            "key": key,
            "endpoint": endpoint,
            "hash": fingerprint,
            "body": Jsonb(body),
        },
    ).fetchone()
    if inserted is None:
        return None  # the assignment changed since it was read: judge it again in full
    body["id"] = inserted[0]
    return idempotency.Outcome(status=201, body=body, replayed=False)


def _view(
    assignment_id: int, member_id: int, at: datetime, fix: attendance.Fix, late: bool
) -> dict[str, Any]:
    """`attendance.attendance_view` of the attendance about to be inserted (id set later)."""
    return {
        "id": None,
        "assignment": assignment_id,
        "member": member_id,
        "status": "open",
        "check_in_at": attendance.iso(at),
        "check_out_at": None,
        "check_in": {
            "lat": fix.lat,
            "lon": fix.lon,
            "accuracy_m": fix.accuracy_m,
            "client_time": attendance.iso(fix.client_time),
        },
        "check_out": None,
        "synced_late": late,
        "service_minutes": None,
        "confirmed_by": None,
        "confirmed_at": None,
    }
