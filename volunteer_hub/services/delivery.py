"""Draining the outbox: claim due rows, send them through FCM, record what became of each.

One batch is three short steps, so no database transaction is open while FCM is called:

1. **claim** (one transaction): due rows (``status = pending AND next_attempt_at <= now``) are
   locked with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent workers take disjoint
   rows; on SQLite every transaction is ``BEGIN IMMEDIATE``, which makes the same
   select-then-update atomic. A claimed row gets a lease: ``claimed_by``, ``claimed_until``,
   and ``next_attempt_at = claimed_until``, so the row is not due for anybody else until the
   lease runs out, and a killed worker's rows come back by themselves. ``attempts`` counts
   claims, so a row that kills its worker every time still ends as ``failed``.
2. **send**: each row is expanded to its recipient's devices (minus devices that already got
   it on an earlier attempt) and handed to :meth:`notifications.fcm.FcmSender.send`.
3. **record** (one transaction): results are written only where ``claimed_by`` is still us
   and the row is still pending; a row whose lease ran out (and was taken over) or that was
   cancelled meanwhile keeps the other party's state. A push re-sent after a lost lease
   carries the same ``message_id``, so the phone drops the duplicate.

Per-device records (``outbox_delivery``) are written only for rows that stay pending, so a
retry skips devices that already have the push while a row settled in one go costs one
bulk UPDATE.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, select, update
from sqlalchemy.orm import Session

from notifications.fcm import Outcome, SendResult
from notifications.messages import Push, build_push
from volunteer_hub.models.notifications import (
    DeliveryStatus,
    Device,
    OutboxDelivery,
    OutboxMessage,
    OutboxStatus,
)
from volunteer_hub.models.types import utcnow

log = logging.getLogger(__name__)

_outbox = cast(Table, OutboxMessage.__table__)
_delivery = cast(Table, OutboxDelivery.__table__)


class Sender(Protocol):
    """What the drain needs of :class:`notifications.fcm.FcmSender`."""

    def send(self, pushes: list[Push]) -> list[SendResult]: ...


# The longest Retry-After honoured (a day): a longer one is taken as a day.
RETRY_AFTER_MAX_S = 86_400.0


@dataclass(frozen=True)
class DrainSettings:
    """How the drain batches, leases and retries; ``from_config`` reads ``OUTBOX_*`` keys."""

    batch_size: int = 500
    lease_s: float = 120.0
    max_attempts: int = 8
    backoff_base_s: float = 15.0
    backoff_max_s: float = 3600.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DrainSettings:
        """Settings from ``OUTBOX_BATCH_SIZE`` etc. in ``config``, else the environment.

        :raise ValueError: a value that is not a number or out of range.
        """
        values: dict[str, Any] = {}
        for item in fields(cls):
            key = f"OUTBOX_{item.name.upper()}"
            raw = config.get(key, os.environ.get(key))
            if raw is not None:
                values[item.name] = int(raw) if item.type == "int" else float(raw)
        settings = cls(**values)
        if not 1 <= settings.batch_size <= 500:
            raise ValueError("OUTBOX_BATCH_SIZE must be within 1..500")
        if settings.lease_s <= 0 or settings.max_attempts < 1 or settings.backoff_base_s < 0:
            raise ValueError("OUTBOX_LEASE_S, OUTBOX_MAX_ATTEMPTS must be positive")
        return settings


@dataclass
class BatchReport:
    """What one batch did; the worker logs it as one line."""

    claimed: int = 0
    pushes: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    no_device: int = 0
    dead_tokens: int = 0
    lost_lease: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        return (
            f"outbox batch: claimed={self.claimed} pushes={self.pushes} sent={self.sent} "
            f"retry={self.retried} failed={self.failed} no_device={self.no_device} "
            f"dead_tokens={self.dead_tokens} lost_lease={self.lost_lease} "
            f"in {self.seconds:.2f}s"
        )


@dataclass
class _Claimed:
    id: int
    message_id: str
    recipient_id: int
    kind: str
    params: dict[str, str]
    attempts: int
    devices: list[tuple[int, str]] = field(default_factory=list)
    # Some device got this row's push on an earlier attempt.
    reached_before: bool = False


def new_worker_id() -> str:
    """A name for one draining process, unique across hosts and restarts."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def backoff_seconds(
    attempts: int, retry_after_s: float | None, settings: DrainSettings, rng: random.Random
) -> float:
    """Delay before the next attempt: exponential with jitter, never less than Retry-After.

    "Equal jitter" (half fixed, half random) spreads the retries of a whole batch that failed
    together, so they don't hit FCM again in one burst; the cap bounds both parts. FCM's
    Retry-After is honoured beyond that cap (an earlier retry is refused again and spends an
    attempt), up to `RETRY_AFTER_MAX_S`, so that no header can put a push off indefinitely.
    """
    exponential = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** max(attempts - 1, 0))
    jittered = exponential / 2 + rng.uniform(0, exponential / 2)
    return max(jittered, min(retry_after_s or 0.0, RETRY_AFTER_MAX_S))


def claim(
    session: Session, worker_id: str, now: datetime, settings: DrainSettings
) -> tuple[list[_Claimed], int]:
    """Lease up to ``batch_size`` due rows to ``worker_id`` and commit.

    Rows already claimed ``max_attempts`` times (their workers died each time) are marked
    failed instead of being claimed again.

    :return: the claimed rows with their devices, and how many rows were given up.
    """
    rows = session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.message_id,
            OutboxMessage.recipient_id,
            OutboxMessage.kind,
            OutboxMessage.params,
            OutboxMessage.attempts,
        )
        .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(settings.batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    exhausted = [row.id for row in rows if row.attempts >= settings.max_attempts]
    if exhausted:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(exhausted))
            .values(
                status=OutboxStatus.FAILED,
                last_error="gave up: the worker stopped mid-send on every attempt",
                claimed_by=None,
                claimed_until=None,
            )
        )
    claimed = [
        _Claimed(r.id, r.message_id, r.recipient_id, r.kind, dict(r.params), r.attempts + 1)
        for r in rows
        if r.attempts < settings.max_attempts
    ]
    if claimed:
        until = now + timedelta(seconds=settings.lease_s)
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_([row.id for row in claimed]))
            .values(
                claimed_by=worker_id,
                claimed_until=until,
                next_attempt_at=until,
                attempts=OutboxMessage.attempts + 1,
            )
        )
        _attach_devices(session, claimed)
    session.commit()
    return claimed, len(exhausted)


def _attach_devices(session: Session, claimed: list[_Claimed]) -> None:
    by_member: dict[int, list[tuple[int, str]]] = defaultdict(list)
    members = {row.recipient_id for row in claimed}
    for device_id, member_id, token in session.execute(
        select(Device.id, Device.member_id, Device.token)
        .where(Device.member_id.in_(members))
        .order_by(Device.id)
    ):
        by_member[member_id].append((device_id, token))
    retried = [row.id for row in claimed if row.attempts > 1]
    done: dict[int, set[int]] = defaultdict(set)
    reached: set[int] = set()
    if retried:
        for outbox_id, device_id, status in session.execute(
            select(OutboxDelivery.outbox_id, OutboxDelivery.device_id, OutboxDelivery.status).where(
                OutboxDelivery.outbox_id.in_(retried)
            )
        ):
            done[outbox_id].add(device_id)
            if status == DeliveryStatus.SENT:
                reached.add(outbox_id)
    for row in claimed:
        row.devices = [d for d in by_member.get(row.recipient_id, []) if d[0] not in done[row.id]]
        row.reached_before = row.id in reached


@dataclass
class _RowResult:
    """Per-device outcomes of one row in this attempt."""

    sent: list[tuple[int, SendResult]] = field(default_factory=list)
    retry: list[SendResult] = field(default_factory=list)
    dead: list[tuple[int, SendResult]] = field(default_factory=list)
    rejected: list[tuple[int, SendResult]] = field(default_factory=list)


def drain_batch(
    session: Session,
    sender: Sender,
    *,
    worker_id: str,
    now: datetime | None = None,
    settings: DrainSettings | None = None,
    rng: random.Random | None = None,
) -> BatchReport:
    """Claim, send and record one batch.

    :param now: the clock for due times, leases and backoff (tests drive it).
    :return: counts of what happened; ``claimed == 0`` means nothing was due.
    """
    started = time.perf_counter()
    settings = settings or DrainSettings()
    current = now or utcnow()
    claimed, exhausted = claim(session, worker_id, current, settings)
    report = BatchReport(claimed=len(claimed), failed=exhausted)
    if not claimed:
        report.seconds = time.perf_counter() - started
        return report
    pushes, owners, unbuildable = _expand(claimed)
    report.pushes = len(pushes)
    results = sender.send(pushes) if pushes else []
    outcomes: dict[int, _RowResult] = defaultdict(_RowResult)
    for (row_id, device_id), result in zip(owners, results, strict=True):
        bucket = outcomes[row_id]
        if result.outcome is Outcome.SENT:
            bucket.sent.append((device_id, result))
        elif result.outcome is Outcome.RETRY:
            bucket.retry.append(result)
        elif result.outcome is Outcome.TOKEN_DEAD:
            bucket.dead.append((device_id, result))
        else:
            bucket.rejected.append((device_id, result))
    _record(
        session,
        worker_id,
        current,
        settings,
        rng or random.Random(),
        claimed,
        outcomes,
        unbuildable,
        report,
    )
    report.seconds = time.perf_counter() - started
    return report


def _expand(
    claimed: list[_Claimed],
) -> tuple[list[Push], list[tuple[int, int]], dict[int, str]]:
    pushes: list[Push] = []
    owners: list[tuple[int, int]] = []
    unbuildable: dict[int, str] = {}
    for row in claimed:
        for device_id, token in row.devices:
            try:
                push = build_push(row.kind, row.params, token=token, message_id=row.message_id)
            except ValueError as error:  # unknown kind, missing params: never sendable
                unbuildable[row.id] = f"cannot render: {error}"[:2000]
                break
            pushes.append(push)
            owners.append((row.id, device_id))
    if unbuildable:
        keep = [i for i, (row_id, _) in enumerate(owners) if row_id not in unbuildable]
        pushes = [pushes[i] for i in keep]
        owners = [owners[i] for i in keep]
    return pushes, owners, unbuildable


def _record(
    session: Session,
    worker_id: str,
    now: datetime,
    settings: DrainSettings,
    rng: random.Random,
    claimed: list[_Claimed],
    outcomes: dict[int, _RowResult],
    unbuildable: dict[int, str],
    report: BatchReport,
) -> None:
    sent_ids: list[int] = []
    no_device_ids: list[int] = []
    changes: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    dead_devices: set[int] = set()
    for row in claimed:
        if row.id in unbuildable:
            changes.append(_settle(row.id, OutboxStatus.FAILED, unbuildable[row.id]))
            report.failed += 1
            continue
        result = outcomes.get(row.id, _RowResult())
        dead_devices.update(device_id for device_id, _ in result.dead)
        if not row.devices:
            # No device now; devices that already have it from an earlier attempt made it sent.
            if row.reached_before:
                sent_ids.append(row.id)
                report.sent += 1
            else:
                no_device_ids.append(row.id)
                report.no_device += 1
            continue
        if result.retry:
            error = _error_text(result.retry[0])
            if row.attempts >= settings.max_attempts:
                changes.append(_settle(row.id, OutboxStatus.FAILED, f"gave up: {error}"))
                report.failed += 1
                continue
            retry_after = max((r.retry_after_s or 0.0) for r in result.retry)
            delay = backoff_seconds(row.attempts, retry_after, settings, rng)
            changes.append(
                {
                    "b_id": row.id,
                    "status": OutboxStatus.PENDING,
                    "last_error": error,
                    "next_attempt_at": now + timedelta(seconds=delay),
                    "sent_at": None,
                }
            )
            report.retried += 1
            deliveries.extend(
                {
                    "outbox_id": row.id,
                    "device_id": device_id,
                    "status": DeliveryStatus.SENT,
                    "fcm_name": r.fcm_name,
                    "error": None,
                    "at": now,
                }
                for device_id, r in result.sent
            )
            deliveries.extend(
                {
                    "outbox_id": row.id,
                    "device_id": device_id,
                    "status": DeliveryStatus.REJECTED,
                    "fcm_name": None,
                    "error": _error_text(r),
                    "at": now,
                }
                for device_id, r in result.rejected
            )
            continue
        if result.sent or row.reached_before:
            if result.rejected or result.dead:
                other = (result.rejected + result.dead)[0][1]
                change = _settle(row.id, OutboxStatus.SENT, f"some devices: {_error_text(other)}")
                change["sent_at"] = now
                changes.append(change)
            else:
                sent_ids.append(row.id)
            report.sent += 1
        elif result.rejected:
            changes.append(_settle(row.id, OutboxStatus.FAILED, _error_text(result.rejected[0][1])))
            report.failed += 1
        else:  # every device's token is dead: the member has no phone to reach
            change = _settle(row.id, OutboxStatus.NO_DEVICE, _error_text(result.dead[0][1]))
            changes.append(change)
            report.no_device += 1
    report.dead_tokens = len(dead_devices)
    mine = (_outbox.c.claimed_by == worker_id) & (_outbox.c.status == OutboxStatus.PENDING)
    lost = 0
    if sent_ids:
        updated = session.execute(
            update(_outbox)
            .where(_outbox.c.id.in_(sent_ids), mine)
            .values(status=OutboxStatus.SENT, sent_at=now, claimed_by=None, claimed_until=None)
        )
        lost += len(sent_ids) - _rowcount(updated)
    if no_device_ids:
        updated = session.execute(
            update(_outbox)
            .where(_outbox.c.id.in_(no_device_ids), mine)
            .values(status=OutboxStatus.NO_DEVICE, claimed_by=None, claimed_until=None)
        )
        lost += len(no_device_ids) - _rowcount(updated)
    if changes:
        # Only rows still ours get per-device records; a row taken over is the new owner's.
        still_mine = set(
            session.scalars(
                select(_outbox.c.id)
                .where(_outbox.c.id.in_([c["b_id"] for c in changes]), mine)
                .with_for_update()
            )
        )
        lost += len(changes) - len(still_mine)
        changes = [c for c in changes if c["b_id"] in still_mine]
        deliveries = [d for d in deliveries if d["outbox_id"] in still_mine]
        if changes:
            session.execute(
                update(_outbox)
                .where(_outbox.c.id == bindparam("b_id"), mine)
                .values(
                    status=bindparam("status"),
                    last_error=bindparam("last_error"),
                    next_attempt_at=bindparam("next_attempt_at"),
                    sent_at=bindparam("sent_at"),
                    claimed_by=None,
                    claimed_until=None,
                ),
                [_complete(c, now) for c in changes],
            )
        if deliveries:
            session.execute(_delivery.insert(), deliveries)
    if dead_devices:
        # The token is gone for good (app reinstalled); a new one arrives by registration.
        session.execute(delete(Device).where(Device.id.in_(dead_devices)))
    report.lost_lease = lost
    session.commit()


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _settle(row_id: int, status: OutboxStatus, error: str | None) -> dict[str, Any]:
    return {"b_id": row_id, "status": status, "last_error": error, "sent_at": None}


def _complete(change: dict[str, Any], now: datetime) -> dict[str, Any]:
    # Executemany needs the same keys in every parameter set.
    return {"next_attempt_at": now, **change}


def _error_text(result: SendResult) -> str:
    return f"{result.error_code or result.outcome.value}: {result.detail or ''}"[:2000]


def drain(
    session: Session,
    sender: Sender,
    *,
    worker_id: str,
    now: datetime | None = None,
    settings: DrainSettings | None = None,
    max_batches: int | None = None,
    rng: random.Random | None = None,
) -> list[BatchReport]:
    """Drain batches until one comes back short (nothing more is due) or ``max_batches``.

    :return: one report per batch that claimed something.
    """
    settings = settings or DrainSettings()
    reports: list[BatchReport] = []
    while max_batches is None or len(reports) < max_batches:
        report = drain_batch(
            session, sender, worker_id=worker_id, now=now, settings=settings, rng=rng
        )
        if report.claimed or report.failed:
            log.info(report.line())
            reports.append(report)
        if report.claimed + report.failed < settings.batch_size:
            break
    return reports
