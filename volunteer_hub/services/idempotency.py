"""Idempotency keys: a repeated request returns the first response instead of acting twice.

A phone with one bar of signal retries "check in" until it hears back. Each tap carries an
`Idempotency-Key`; the first request with a key acts and stores its response, in the same
transaction as the change itself, so the record exists exactly when the change does. A repeat
with the same key and the same body gets the stored response; the same key with a different
body is refused (the client reused a key by mistake). Keys are per member and kept at least
48 hours (see `purge`). Refused requests (4xx) store nothing, so a retry after fixing the
cause is evaluated afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from volunteer_hub.errors import ValidationFailed
from volunteer_hub.models.attendance import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200
KEEP_FOR = timedelta(hours=48)


@dataclass(frozen=True)
class Outcome:
    """What to send back: the status, the JSON body, and whether it is a replay."""

    status: int
    body: dict[str, Any]
    replayed: bool


def request_hash(endpoint: str, payload: Mapping[str, Any]) -> str:
    """A stable fingerprint of what was asked (key order and spacing do not matter)."""
    canonical = json.dumps(
        {"endpoint": endpoint, "payload": payload}, sort_keys=True, default=str, allow_nan=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str | None) -> str:
    """:raise ValidationFailed: the header is missing, empty, too long or not printable ASCII."""
    if key is None or not key.strip():
        raise ValidationFailed(
            f"The {HEADER} header is required: send a fresh random key with each tap.",
            errors={HEADER: ["Missing header."]},
        )
    key = key.strip()
    if len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            f"The {HEADER} header must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.",
            errors={HEADER: ["Not a valid key."]},
        )
    return key


def find_record(session: Session, member_id: int, key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.member_id == member_id, IdempotencyRecord.key == key
        )
    )


def _replay(record: IdempotencyRecord, endpoint: str, fingerprint: str) -> Outcome:
    if record.endpoint != endpoint or record.request_hash != fingerprint:
        raise ValidationFailed(
            f"This {HEADER} was already used for a different request; use a new key.",
            errors={HEADER: ["Already used with a different request."]},
        )
    # A repeat is answered 200 even when the first answer was 201: nothing new was created.
    return Outcome(status=200, body=dict(record.response), replayed=True)


def run(
    session: Session,
    *,
    member_id: int,
    key: str,
    endpoint: str,
    payload: Mapping[str, Any],
    action: Callable[[], tuple[int, dict[str, Any]]],
    now: datetime,
    find: Callable[[], IdempotencyRecord | None] | None = None,
) -> Outcome:
    """Do `action` once per (member, key); commits.

    `action` makes its change in `session` without committing and returns (status, body); the
    body must be JSON-ready. If two requests with one key race, the unique (member, key)
    constraint lets one commit; the other rolls back and replays the winner's response.

    :param endpoint: names the operation and its object, e.g. ``check-in:42``.
    :param payload: the parsed request body, fingerprinted to spot a reused key.
    :param find: looks up the stored record of (member, key); a caller may read it in the
        same query as the rows its action needs (see `attendance.check_in`).
    :return: the outcome to send.
    :raise ValidationFailed: the key was used for a different request.
    :raise DomainError: whatever `action` raises (nothing is stored then).
    """
    fingerprint = request_hash(endpoint, payload)
    lookup = find or (lambda: find_record(session, member_id, key))
    for _attempt in range(2):
        existing = lookup()
        if existing is not None:
            outcome = _replay(existing, endpoint, fingerprint)
            session.rollback()
            return outcome
        try:
            status, body = action()
            session.add(
                IdempotencyRecord(
                    member_id=member_id,
                    key=key,
                    endpoint=endpoint,
                    request_hash=fingerprint,
                    status_code=status,
                    response=body,
                    created_at=now,
                )
            )
            session.commit()
            return Outcome(status=status, body=body, replayed=False)
        except IntegrityError:
            # Lost a race: to the same key (replayed on the next pass), or to another key
            # creating the same object (the action sees it on the next pass and returns it).
            session.rollback()
        except Exception:
            session.rollback()
            raise
    existing = find_record(session, member_id, key)
    if existing is not None:
        outcome = _replay(existing, endpoint, fingerprint)
        session.rollback()
        return outcome
    raise RuntimeError("idempotent action lost its race twice without a stored response")


def purge(session: Session, *, now: datetime, keep: timedelta = KEEP_FOR) -> int:
    """Delete records older than `keep` (at least 48 h); commits.

    :return: how many were deleted.
    """
    if keep < KEEP_FOR:
        raise ValueError("idempotency records are kept at least 48 hours")
    result = session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - keep)
    )
    session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
