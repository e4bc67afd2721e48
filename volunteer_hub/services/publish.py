"""Publishing a plan: one transaction writes the roster as published, each changed
volunteer's push and their reminders.

Only what changed since the last publish is told: a new assignment gets
`assignment_published`, a moved one (or a volunteer taken off one shift and put on another)
`assignment_changed`, a dropped one `assignment_cancelled` with its pending reminders cancelled.
Dedupe keys name the assignment (and the start time for moves and reminders), so publishing
twice sends nothing twice.

No volunteer may hold two overlapping active assignments across all plans: the check below
names the conflicts; on PostgreSQL the exclusion constraint also catches the race between two
publishers (the loser's INSERT waits for the winner's commit, then fails), on SQLite the check
runs inside the BEGIN IMMEDIATE write transaction, which serialises publishers.
"""

from __future__ import annotations

import enum
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, cast

from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from notifications.messages import new_message_id, render, shift_params
from volunteer_hub.auth.policy import Actor
from volunteer_hub.database import is_postgresql
from volunteer_hub.errors import Conflict
from volunteer_hub.models import Member
from volunteer_hub.models.notifications import InboxItem, OutboxMessage, OutboxStatus
from volunteer_hub.models.plans import (
    ACTIVE_STATUSES,
    Assignment,
    AssignmentStatus,
    Plan,
    PlanStatus,
    Post,
    Shift,
)
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit, outbox
from volunteer_hub.services.plans import ROSTER_STATUSES, _refuse_while_solving, managed_plan

DEFAULT_REMINDER_OFFSETS_H = (24, 2)
CHUNK = 5000


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    member_id: int
    shift_id: int
    status: AssignmentStatus
    pending_removal: bool
    starts_at: datetime  # as last published
    ends_at: datetime
    shift_starts_at: datetime  # the shift now
    shift_ends_at: datetime
    post: str


@dataclass(slots=True)
class Push:
    recipient_id: int
    kind: str
    params: dict[str, str]
    dedupe_key: str
    assignment_id: int
    deliver_after: datetime | None = None


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def _roster(session: Session, plan_id: int) -> list[_Row]:
    rows = session.execute(
        select(
            Assignment.id,
            Assignment.member_id,
            Assignment.shift_id,
            Assignment.status,
            Assignment.pending_removal,
            Assignment.starts_at,
            Assignment.ends_at,
            Shift.starts_at,
            Shift.ends_at,
            Post.name,
        )
        .join(Shift, Shift.id == Assignment.shift_id)
        .join(Post, Post.id == Shift.post_id)
        .where(Assignment.plan_id == plan_id, Assignment.status.in_(ROSTER_STATUSES))
    ).all()
    return [_Row(*cast(tuple[Any, ...], row)) for row in rows]


def find_conflicts(session: Session, plan_id: int, final: Sequence[_Row]) -> list[dict[str, Any]]:
    """Overlaps the published roster would create: within the plan, and with active
    assignments on other plans. Each names the volunteer and both shifts."""
    conflicts: list[dict[str, Any]] = []
    by_member: dict[int, list[tuple[datetime, datetime, int, int]]] = defaultdict(list)
    for row in final:
        by_member[row.member_id].append(
            (row.shift_starts_at, row.shift_ends_at, row.shift_id, plan_id)
        )
    if not by_member:
        return conflicts
    low = min(r.shift_starts_at for r in final)
    high = max(r.shift_ends_at for r in final)
    members = sorted(by_member)
    others: dict[int, list[tuple[datetime, datetime, int, int]]] = defaultdict(list)
    for chunk in _chunks(members):
        for member_id, start, end, shift_id, other_plan in session.execute(
            select(
                Assignment.member_id,
                Assignment.starts_at,
                Assignment.ends_at,
                Assignment.shift_id,
                Assignment.plan_id,
            ).where(
                Assignment.member_id.in_(chunk),
                Assignment.plan_id != plan_id,
                Assignment.status.in_(ACTIVE_STATUSES),
                Assignment.starts_at < high,
                Assignment.ends_at > low,
            )
        ):
            others[member_id].append((start, end, shift_id, other_plan))
    for member_id, mine in by_member.items():
        mine.sort()
        for a, b in pairwise(mine):
            if b[0] < a[1]:
                conflicts.append(_conflict(member_id, a, b))
        for other in others.get(member_id, ()):
            for own in mine:
                if own[0] < other[1] and other[0] < own[1]:
                    conflicts.append(_conflict(member_id, own, other))
    if conflicts:
        names = {
            row.id: row.name
            for row in session.execute(
                select(Member.id, Member.name).where(
                    Member.id.in_({c["member"] for c in conflicts})
                )
            )
        }
        for conflict in conflicts:
            conflict["name"] = names.get(conflict["member"], "")
    return conflicts


def _conflict(member_id: int, own: tuple[Any, ...], other: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "member": member_id,
        "shift": own[2],
        "other_shift": other[2],
        "other_plan": other[3],
        "starts_at": own[0].isoformat(),
        "other_starts_at": other[0].isoformat(),
    }


def _raise_conflicts(conflicts: list[dict[str, Any]]) -> None:
    described = "; ".join(
        f"{c['name'] or 'member ' + str(c['member'])} (member {c['member']}) on shift "
        f"{c['shift']} and shift {c['other_shift']} of plan {c['other_plan']}"
        for c in conflicts[:20]
    )
    more = f" and {len(conflicts) - 20} more" if len(conflicts) > 20 else ""
    raise Conflict(
        f"Publishing would double-book {len({c['member'] for c in conflicts})} volunteer(s): "
        f"{described}{more}.",
        extra={"conflicts": conflicts},
    )


def enqueue_pushes(session: Session, pushes: Sequence[Push], *, plan_id: int | None = None) -> int:
    """Write many outbox rows and inbox items in bulk (no commit); the same rows
    `outbox.enqueue` writes one by one, for a plan of thousands of assignments.

    :param plan_id: all pushes are about this plan's assignments: existing dedupe keys are
        then found through the assignments instead of a list of thousands of keys.
    :return: how many were added (rows whose dedupe key exists are skipped).
    """
    existing: set[str] = set()
    if plan_id is not None:
        existing.update(
            key
            for key in session.scalars(
                select(OutboxMessage.dedupe_key).where(
                    OutboxMessage.assignment_id.in_(
                        select(Assignment.id).where(Assignment.plan_id == plan_id)
                    )
                )
            )
            if key is not None
        )
    else:
        for chunk in _chunks([p.dedupe_key for p in pushes]):
            existing.update(
                session.scalars(
                    select(OutboxMessage.dedupe_key).where(OutboxMessage.dedupe_key.in_(chunk))
                )
            )
    now = utcnow()
    rows, inbox = [], []
    for push in pushes:
        if push.dedupe_key in existing:
            continue
        existing.add(push.dedupe_key)
        rendered = render(push.kind, push.params)
        due = push.deliver_after or now
        message_id = new_message_id()
        rows.append(
            {
                "message_id": message_id,
                "recipient_id": push.recipient_id,
                "kind": push.kind,
                "params": push.params,
                "status": OutboxStatus.PENDING,
                "deliver_after": due,
                "next_attempt_at": due,
                "attempts": 0,
                "dedupe_key": push.dedupe_key,
                "assignment_id": push.assignment_id,
                "created_at": now,
            }
        )
        inbox.append(
            {
                "member_id": push.recipient_id,
                "kind": push.kind,
                "title": rendered.title,
                "body": rendered.body,
                "data": {**rendered.data, "kind": push.kind, "message_id": message_id},
                "created_at": now,
                "visible_at": due,
            }
        )
    if rows and is_postgresql():
        _copy_pushes(session, rows, inbox)
        return len(rows)
    for start in range(0, len(rows), CHUNK):
        added = session.execute(
            insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True),
            rows[start : start + CHUNK],
        ).scalars()
        for item, outbox_id in zip(inbox[start : start + CHUNK], added, strict=True):
            item["outbox_id"] = outbox_id
        session.execute(insert(InboxItem), inbox[start : start + CHUNK])
    return len(rows)


OUTBOX_COLUMNS = (
    "id",
    "message_id",
    "recipient_id",
    "kind",
    "params",
    "status",
    "deliver_after",
    "next_attempt_at",
    "attempts",
    "dedupe_key",
    "assignment_id",
    "created_at",
)
INBOX_COLUMNS = (
    "member_id",
    "outbox_id",
    "kind",
    "title",
    "body",
    "data",
    "created_at",
    "visible_at",
)


def _copy_pushes(session: Session, rows: list[dict[str, Any]], inbox: list[dict[str, Any]]) -> None:
    """PostgreSQL: ids drawn from the sequence in one query, then COPY into both tables, in
    the session's transaction. A multi-row INSERT of 30,000 rows spends most of its time
    building the statement; COPY streams them."""
    ids = session.scalars(
        text(
            "SELECT nextval(pg_get_serial_sequence('outbox_message', 'id'))"
            " FROM generate_series(1, :n)"
        ),
        {"n": len(rows)},
    ).all()
    for row, item, outbox_id in zip(rows, inbox, ids, strict=True):
        row["id"] = item["outbox_id"] = outbox_id
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor:
        for table, columns, items in (
            ("outbox_message", OUTBOX_COLUMNS, rows),
            ("inbox_item", INBOX_COLUMNS, inbox),
        ):
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for start in range(0, len(items), 2000):
                    copy.write(
                        "".join(
                            "\t".join(_copy_text(item.get(column)) for column in columns) + "\n"
                            for item in items[start : start + 2000]
                        )
                    )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@lru_cache(maxsize=8192)
def _iso(moment: datetime) -> str:
    # Thousands of rows share a few dozen times (created_at, each shift's reminder times).
    return moment.isoformat()


def _copy_text(value: Any) -> str:
    """One field in COPY's text format (the translate only for text that needs it: most
    fields are numbers, times and codes)."""
    if value is None:
        return "\\N"
    if isinstance(value, str):
        text_value = value
    elif isinstance(value, int):
        return str(value)
    elif isinstance(value, datetime):
        return _iso(value)
    elif isinstance(value, dict):
        text_value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif isinstance(value, enum.Enum):
        text_value = str(value.value)
    else:
        text_value = str(value)
    if "\\" in text_value or "\t" in text_value or "\n" in text_value or "\r" in text_value:
        return text_value.translate(_COPY_ESCAPES)
    return text_value


def _params(row: _Row, reason: str = "") -> dict[str, str]:
    params = {
        "assignment_id": str(row.id),
        "post": row.post,
        **shift_params(row.shift_starts_at, row.shift_ends_at),
    }
    if reason:
        params["reason"] = reason
    return params


def reminder_pushes(
    row: _Row, offsets_h: Sequence[float], now: datetime, params: dict[str, str] | None = None
) -> list[Push]:
    """`shift_reminder`s before the shift (those already due are skipped); the key carries the
    start, so a moved shift gets fresh reminders."""
    pushes = []
    for hours in sorted(offsets_h, reverse=True):
        lead = timedelta(hours=hours)
        due = row.shift_starts_at - lead
        if due <= now:
            continue
        pushes.append(
            Push(
                row.member_id,
                "shift_reminder",
                params or _params(row),
                f"reminder:{row.id}:{int(row.shift_starts_at.timestamp())}:"
                f"{int(lead.total_seconds())}",
                row.id,
                due,
            )
        )
    return pushes


def _pushes(
    new: Sequence[_Row],
    moved: Sequence[_Row],
    removed: Sequence[_Row],
    offsets_h: Sequence[float],
    now: datetime,
) -> list[Push]:
    moved_members = {r.member_id for r in removed}
    added_members = {r.member_id for r in new}
    pushes: list[Push] = []
    for row in new:
        # Taken off one shift and put on another in the same publish: that is one change.
        kind = "assignment_changed" if row.member_id in moved_members else "assignment_published"
        params = _params(row)
        pushes.append(Push(row.member_id, kind, params, f"assignment:{row.id}:{kind}", row.id))
        pushes.extend(reminder_pushes(row, offsets_h, now, params))
    for row in moved:
        key = f"assignment:{row.id}:changed:{int(row.shift_starts_at.timestamp())}"
        pushes.append(Push(row.member_id, "assignment_changed", _params(row), key, row.id))
        pushes.extend(reminder_pushes(row, offsets_h, now))
    for row in removed:
        if row.member_id not in added_members:
            pushes.append(
                Push(
                    row.member_id,
                    "assignment_cancelled",
                    _params(row),
                    f"assignment:{row.id}:cancelled",
                    row.id,
                )
            )
    return pushes


def publish_plan(
    session: Session,
    actor: Actor,
    plan_id: int,
    *,
    reminder_offsets_h: Sequence[float] = DEFAULT_REMINDER_OFFSETS_H,
    now: datetime | None = None,
) -> Plan:
    """Publish the plan's roster and its pushes in one transaction.

    :return: the Plan, status published (unchanged if there was nothing new to publish).
    :raise Conflict: a volunteer would hold two overlapping active assignments (409 naming
        volunteers and shifts), or a solve run is working on the plan.
    """
    now = now or utcnow()
    plan = managed_plan(session, actor, plan_id, lock=True)
    _refuse_while_solving(session, plan)
    roster = _roster(session, plan.id)
    removed = [r for r in roster if r.status in ACTIVE_STATUSES and r.pending_removal]
    kept = [r for r in roster if r.status in ACTIVE_STATUSES and not r.pending_removal]
    moved = [r for r in kept if (r.starts_at, r.ends_at) != (r.shift_starts_at, r.shift_ends_at)]
    new = [r for r in roster if r.status == AssignmentStatus.PROPOSED]
    if not (removed or moved or new) and plan.status == PlanStatus.PUBLISHED:
        session.commit()
        return plan
    conflicts = find_conflicts(session, plan.id, kept + new)
    if conflicts:
        session.rollback()
        _raise_conflicts(conflicts)
    try:
        _apply(session, plan, removed, moved, now)
        pushes = _pushes(new, moved, removed, reminder_offsets_h, now)
        sent = enqueue_pushes(session, pushes, plan_id=plan.id)
        plan.status = PlanStatus.PUBLISHED
        plan.published_at = now
        plan.version += 1
        audit.record(
            session,
            actor.member_id,
            "plan.publish",
            "plan",
            plan.id,
            after={
                "version": plan.version,
                "published": len(new),
                "moved": len(moved),
                "cancelled": len(removed),
                "pushes": sent,
            },
        )
        session.flush()
    except IntegrityError:
        # Another publisher committed an overlapping assignment after our check.
        session.rollback()
        conflicts = find_conflicts(session, plan_id, _final_rows(session, plan_id))
        session.rollback()
        _raise_conflicts(
            conflicts or [{"member": 0, "name": "", "shift": 0, "other_shift": 0, "other_plan": 0}]
        )
    session.commit()
    return plan


def _final_rows(session: Session, plan_id: int) -> list[_Row]:
    return [
        r
        for r in _roster(session, plan_id)
        if r.status == AssignmentStatus.PROPOSED or not r.pending_removal
    ]


def _apply(
    session: Session, plan: Plan, removed: Sequence[_Row], moved: Sequence[_Row], now: datetime
) -> None:
    """Cancel first, so a volunteer moved between overlapping shifts never holds both."""
    for chunk in _chunks([r.id for r in removed]):
        session.execute(
            update(Assignment)
            .where(Assignment.id.in_(chunk))
            .values(status=AssignmentStatus.CANCELLED, pending_removal=False, updated_at=now)
        )
    for row in removed:
        outbox.cancel_pending(session, assignment_id=row.id, kinds=["shift_reminder"])
    if moved:
        session.execute(
            update(Assignment),
            [
                {
                    "id": r.id,
                    "starts_at": r.shift_starts_at,
                    "ends_at": r.shift_ends_at,
                    "updated_at": now,
                }
                for r in moved
            ],
        )
    for row in moved:
        outbox.cancel_pending(session, assignment_id=row.id, kinds=["shift_reminder"])
    shift_times = select(Shift.starts_at).where(Shift.id == Assignment.shift_id).scalar_subquery()
    shift_ends = select(Shift.ends_at).where(Shift.id == Assignment.shift_id).scalar_subquery()
    session.execute(
        update(Assignment)
        .where(Assignment.plan_id == plan.id, Assignment.status == AssignmentStatus.PROPOSED)
        .values(
            status=AssignmentStatus.PUBLISHED,
            published_at=now,
            starts_at=shift_times,
            ends_at=shift_ends,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def reminder_offsets(config: Mapping[str, Any]) -> tuple[float, ...]:
    """`REMINDER_OFFSETS_H` from the config: hours before a shift to remind (default 24, 2)."""
    value = config.get("REMINDER_OFFSETS_H", DEFAULT_REMINDER_OFFSETS_H)
    return tuple(float(v) for v in value)
