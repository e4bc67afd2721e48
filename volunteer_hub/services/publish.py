"""Publishing a plan: one transaction writes the roster as published, each changed
volunteer's push and their reminders.

Only what changed since the last publish is told: a new assignment gets
`assignment_published`, a moved one `assignment_changed`, a dropped one `assignment_cancelled`
naming the times the volunteer was told (the assignment's published times, even if the shift
has moved since), with its pending reminders cancelled. A volunteer taken off one shift and
put on another is told of one `assignment_changed`: each new assignment is paired with at most
one removal of the same volunteer, in start order, and a removal left over still gets its
`assignment_cancelled`.

A moved assignment's pending reminders are cancelled and new ones queued for its new time, and
so is a push about it still held for quiet hours (naming the old time): if that was its
`assignment_published`, the volunteer was never told of the shift, so the move is told as an
`assignment_published` at the new time rather than an `assignment_changed`.

Dedupe keys name the assignment; those of a moved assignment's push and reminders also name
the plan version being published, since outbox keys stay taken by cancelled rows too: a shift
moved back to a time it had before (or whose swap taker already has reminders for the new
time) gets fresh rows rather than keys already used. Publishing twice sends nothing twice: the
publish that sends the pushes also records the roster as told, in one transaction (retried
whole, with the same version), so the next publish finds nothing new.

No volunteer may hold two overlapping active assignments across all plans: the check below
names the conflicts; on PostgreSQL the exclusion constraint also catches the race between two
publishers (the loser's INSERT waits for the winner's commit, then fails), on SQLite the check
runs inside the BEGIN IMMEDIATE write transaction, which serialises publishers.

A plan has thousands of assignments on a few thousand shifts, so everything about a shift
(its times, post name, push params) is read and formatted once per shift, rows are read as
plain tuples, and the overlap check is one SQL statement.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from notifications.messages import shift_params
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
from volunteer_hub.models.types import UTCDateTime, utcnow
from volunteer_hub.services import audit, outbox
from volunteer_hub.services.hours import federation_tz
from volunteer_hub.services.outbox import BulkPush
from volunteer_hub.services.plans import ROSTER_STATUSES, _refuse_while_solving, managed_plan
from volunteer_hub.services.quiet_hours import QuietHours, held

DEFAULT_REMINDER_OFFSETS_H = (24, 2)
CHUNK = 5000
_TOLD_OF_SHIFT = ["assignment_published", "assignment_changed"]
_CANCELLED_WITH_SHIFT = ["shift_reminder", *_TOLD_OF_SHIFT]


@dataclass(frozen=True, slots=True)
class ShiftInfo:
    """A shift as its pushes describe it; `params` is shared by all of its assignments."""

    id: int
    starts_at: datetime
    ends_at: datetime
    post: str
    params: dict[str, str]  # post, date, start, end
    # (offsets, now) -> [(lead in seconds, due)], shared by the shift's assignments
    _reminders: dict[tuple[tuple[float, ...], datetime], list[tuple[int, datetime]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def reminder_times(
        self, offsets_h: Sequence[float], now: datetime
    ) -> list[tuple[int, datetime]]:
        """When to remind (latest lead first), leaving out times already past."""
        key = (tuple(offsets_h), now)
        found = self._reminders.get(key)
        if found is None:
            found = self._reminders[key] = [
                (int(lead.total_seconds()), self.starts_at - lead)
                for lead in sorted((timedelta(hours=h) for h in offsets_h), reverse=True)
                if self.starts_at - lead > now
            ]
        return found


def shift_info(shift_id: int, starts_at: datetime, ends_at: datetime, post: str) -> ShiftInfo:
    return ShiftInfo(
        shift_id,
        starts_at,
        ends_at,
        post,
        {"post": post, **shift_params(starts_at, ends_at, federation_tz())},
    )


@dataclass(frozen=True, slots=True)
class _Row:
    id: int
    member_id: int
    status: AssignmentStatus
    pending_removal: bool
    moved: bool  # the shift's times differ from those last published
    shift: ShiftInfo


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for index in range(0, len(items), size):
        yield items[index : index + size]


def _shifts(session: Session, plan_id: int) -> dict[int, ShiftInfo]:
    return {
        shift_id: shift_info(shift_id, starts_at, ends_at, post)
        for shift_id, starts_at, ends_at, post in session.execute(
            select(Shift.id, Shift.starts_at, Shift.ends_at, Post.name)
            .join(Post, Post.id == Shift.post_id)
            .where(Shift.plan_id == plan_id)
        )
    }


def _moved() -> ColumnElement[bool]:
    return or_(Assignment.starts_at != Shift.starts_at, Assignment.ends_at != Shift.ends_at)


def _roster(session: Session, plan_id: int) -> list[_Row]:
    """The plan's roster as plain rows; a moved shift is found by the database, so no
    assignment's times are read."""
    shifts = _shifts(session, plan_id)
    rows = session.execute(
        select(
            Assignment.id,
            Assignment.member_id,
            Assignment.shift_id,
            Assignment.status,
            Assignment.pending_removal,
            _moved(),
        )
        .join(Shift, Shift.id == Assignment.shift_id)
        .where(Assignment.plan_id == plan_id, Assignment.status.in_(ROSTER_STATUSES))
    )
    return [
        _Row(assignment_id, member_id, status, pending, bool(moved), shifts[shift_id])
        for assignment_id, member_id, shift_id, status, pending, moved in rows
    ]


def _as_told(session: Session, removed: Sequence[_Row]) -> list[_Row]:
    """Removed rows with the times their volunteers were told: a shift moved since the last
    publish was never announced at its new time, so its cancellation names the assignment's
    own (published) times. Those are read for moved removals only."""
    stale = [r.id for r in removed if r.moved]
    if not stale:
        return list(removed)
    told: dict[int, tuple[datetime, datetime]] = {}
    for chunk in _chunks(stale):
        told.update(
            (assignment_id, (starts_at, ends_at))
            for assignment_id, starts_at, ends_at in session.execute(
                select(Assignment.id, Assignment.starts_at, Assignment.ends_at).where(
                    Assignment.id.in_(chunk)
                )
            )
        )
    shifts: dict[tuple[int, datetime, datetime], ShiftInfo] = {}
    rows = []
    for row in removed:
        times = told.get(row.id)
        if times is not None:
            ident = (row.shift.id, *times)
            info = shifts.get(ident)
            if info is None:
                info = shifts[ident] = shift_info(row.shift.id, *times, row.shift.post)
            row = replace(row, shift=info)
        rows.append(row)
    return rows


def _has_changes(session: Session, plan_id: int) -> bool:
    """Anything a publish would do: a proposal, a removal or a moved shift."""
    active = Assignment.status.in_(ACTIVE_STATUSES)
    return bool(
        session.scalar(
            select(
                exists()
                .where(Assignment.plan_id == plan_id, Shift.id == Assignment.shift_id)
                .where(
                    or_(
                        Assignment.status == AssignmentStatus.PROPOSED,
                        and_(active, or_(Assignment.pending_removal.is_(True), _moved())),
                    )
                )
            )
        )
    )


def _overlaps(
    left_start: Any, left_end: Any, right_start: Any, right_end: Any
) -> ColumnElement[bool]:
    """Half-open ranges overlap. On PostgreSQL as `tstzrange && tstzrange`, the operator of
    the exclusion constraint, whose gist index then finds the other assignments."""
    if is_postgresql():
        return func.tstzrange(left_start, left_end).op("&&")(func.tstzrange(right_start, right_end))
    return and_(left_start < right_end, right_start < left_end)


def find_conflicts(session: Session, plan_id: int) -> list[dict[str, Any]]:
    """Overlaps the published roster would create, in one statement: two of the plan's final
    assignments of one volunteer, or one of them and an active assignment on another plan.
    Each names the volunteer and both shifts.

    Within the plan, each assignment is compared with the volunteer's previous one in time (a
    window, not a self-join: a fresh roster has no statistics yet and a misjudged self-join
    compares every pair); other plans' assignments are found through the exclusion
    constraint's index on PostgreSQL.
    """
    order = (Shift.starts_at, Assignment.id)
    final = (
        select(
            Assignment.member_id.label("member_id"),
            Assignment.shift_id.label("shift_id"),
            Shift.starts_at.label("starts_at"),
            Shift.ends_at.label("ends_at"),
            func.lag(Assignment.shift_id)
            .over(partition_by=Assignment.member_id, order_by=order)
            .label("prev_shift"),
            func.lag(Shift.starts_at, type_=UTCDateTime)
            .over(partition_by=Assignment.member_id, order_by=order)
            .label("prev_starts_at"),
            func.lag(Shift.ends_at, type_=UTCDateTime)
            .over(partition_by=Assignment.member_id, order_by=order)
            .label("prev_ends_at"),
        )
        .join(Shift, Shift.id == Assignment.shift_id)
        .where(
            Assignment.plan_id == plan_id,
            or_(
                Assignment.status == AssignmentStatus.PROPOSED,
                and_(Assignment.status.in_(ACTIVE_STATUSES), Assignment.pending_removal.is_(False)),
            ),
        )
        .cte("final")
    )
    other = aliased(Assignment, name="other")
    within = select(
        final.c.member_id,
        final.c.prev_shift,
        final.c.shift_id,
        literal(plan_id),
        final.c.prev_starts_at,
        final.c.starts_at,
    ).where(final.c.prev_ends_at > final.c.starts_at)
    elsewhere = select(
        final.c.member_id,
        final.c.shift_id,
        other.shift_id,
        other.plan_id,
        final.c.starts_at,
        other.starts_at,
    ).join(
        other,
        and_(
            other.member_id == final.c.member_id,
            other.plan_id != plan_id,
            other.status.in_(ACTIVE_STATUSES),
            _overlaps(other.starts_at, other.ends_at, final.c.starts_at, final.c.ends_at),
        ),
    )
    found = union_all(within, elsewhere).subquery("found")
    member, starts = found.c[0], found.c[4]
    rows = session.execute(
        select(found, Member.name).join(Member, Member.id == member).order_by(member, starts)
    ).all()
    return [
        {
            "member": member_id,
            "name": name or "",
            "shift": shift_id,
            "other_shift": other_shift,
            "other_plan": other_plan,
            "starts_at": starts_at.isoformat(),
            "other_starts_at": other_starts_at.isoformat(),
        }
        for member_id, shift_id, other_shift, other_plan, starts_at, other_starts_at, name in rows
    ]


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


def _params(row: _Row) -> dict[str, str]:
    return {"assignment_id": str(row.id), **row.shift.params}


def reminder_pushes(
    assignment_id: int,
    member_id: int,
    shift: ShiftInfo,
    offsets_h: Sequence[float],
    now: datetime,
    params: Mapping[str, str] | None = None,
    quiet: QuietHours | None = None,
    version: int | None = None,
) -> list[BulkPush]:
    """`shift_reminder`s before the shift (those already due are skipped; one due in quiet
    hours waits until they end unless the shift is soon after). The key carries the start and,
    from publishing a move, the plan `version`: a shift moved back to an earlier time has
    used that start's keys on reminders since cancelled."""
    start = int(shift.starts_at.timestamp())
    stem = (
        f"reminder:{assignment_id}" if version is None else f"reminder:{assignment_id}:v{version}"
    )
    shared = params or {"assignment_id": str(assignment_id), **shift.params}
    return [
        BulkPush(
            member_id,
            "shift_reminder",
            shared,
            f"{stem}:{start}:{lead}",
            assignment_id,
            None,
            due if quiet is None else quiet.release(due, shift.starts_at),
        )
        for lead, due in shift.reminder_times(offsets_h, now)
    ]


def _told(
    kind: str,
    params: Mapping[str, str],
    key: str,
    row: _Row,
    now: datetime,
    quiet: QuietHours | None,
) -> BulkPush:
    """A push telling the volunteer of a change now, or when the quiet hours end."""
    deliver_after, visible_at = held(quiet, now, row.shift.starts_at)
    return BulkPush(
        row.member_id,
        kind,
        params,
        dedupe_key=key,
        assignment_id=row.id,
        deliver_after=deliver_after,
        visible_at=visible_at,
    )


def _paired(new: Sequence[_Row], removed: Sequence[_Row]) -> tuple[set[int], set[int]]:
    """A volunteer taken off one shift and put on another in the same publish is told of one
    change. Each of a volunteer's new assignments is paired with at most one of their removed
    ones, both in start order; a removal left over is told as a cancellation.

    :return: the ids of the new assignments told as changes, and of the removals they tell.
    """
    dropped: dict[int, list[_Row]] = {}
    for row in removed:
        dropped.setdefault(row.member_id, []).append(row)
    if not dropped:
        return set(), set()
    given: dict[int, list[_Row]] = {}
    for row in new:
        if row.member_id in dropped:
            given.setdefault(row.member_id, []).append(row)
    changed: set[int] = set()
    told: set[int] = set()
    for member_id, rows in given.items():
        gone_in_order = sorted(dropped[member_id], key=_start_order)
        # Unequal lengths on purpose: what is left over is not paired.
        for added, gone in zip(sorted(rows, key=_start_order), gone_in_order, strict=False):
            changed.add(added.id)
            told.add(gone.id)
    return changed, told


def _start_order(row: _Row) -> tuple[datetime, int]:
    return row.shift.starts_at, row.id


def _pushes(
    new: Sequence[_Row],
    moved: Sequence[_Row],
    removed: Sequence[_Row],
    offsets_h: Sequence[float],
    now: datetime,
    version: int,
    quiet: QuietHours | None = None,
    unannounced: Collection[int] = (),
) -> list[BulkPush]:
    """The publish's pushes; `version` is the plan version being published, `unannounced`
    the moved assignments whose announcement was withdrawn before it went out."""
    changed, told_by_change = _paired(new, removed)
    pushes: list[BulkPush] = []
    for row in new:
        kind = "assignment_changed" if row.id in changed else "assignment_published"
        params = _params(row)
        key = f"assignment:{row.id}:{kind}"
        pushes.append(_told(kind, params, key, row, now, quiet))
        pushes.extend(
            reminder_pushes(row.id, row.member_id, row.shift, offsets_h, now, params, quiet)
        )
    for row in moved:
        params = _params(row)
        kind = "assignment_published" if row.id in unannounced else "assignment_changed"
        key = f"assignment:{row.id}:{kind}:v{version}"
        pushes.append(_told(kind, params, key, row, now, quiet))
        pushes.extend(
            reminder_pushes(
                row.id, row.member_id, row.shift, offsets_h, now, params, quiet, version
            )
        )
    for row in removed:
        if row.id not in told_by_change:
            key = f"assignment:{row.id}:cancelled"
            pushes.append(_told("assignment_cancelled", _params(row), key, row, now, quiet))
    return pushes


def _used_keys(session: Session, plan_id: int) -> set[str]:
    """Dedupe keys already written for the plan's assignments (every key publishing writes
    names one of them), found through the assignments rather than thousands of keys."""
    return {
        key
        for key in session.scalars(
            select(OutboxMessage.dedupe_key).where(
                OutboxMessage.assignment_id.in_(
                    select(Assignment.id).where(Assignment.plan_id == plan_id)
                )
            )
        )
        if key is not None
    }


def publish_plan(
    session: Session,
    actor: Actor,
    plan_id: int,
    *,
    reminder_offsets_h: Sequence[float] = DEFAULT_REMINDER_OFFSETS_H,
    now: datetime | None = None,
    quiet: QuietHours | None = None,
) -> Plan:
    """Publish the plan's roster and its pushes in one transaction.

    :param quiet: quiet hours, during which pushes about shifts not starting soon wait.
    :return: the Plan, status published (unchanged if there was nothing new to publish).
    :raise Conflict: a volunteer would hold two overlapping active assignments (409 naming
        volunteers and shifts), or a solve run is working on the plan.
    """
    now = now or utcnow()
    plan = managed_plan(session, actor, plan_id, lock=True)
    _refuse_while_solving(session, plan)
    if plan.status == PlanStatus.PUBLISHED and not _has_changes(session, plan.id):
        session.commit()
        return plan
    roster = _roster(session, plan.id)
    removed = _as_told(
        session, [r for r in roster if r.status in ACTIVE_STATUSES and r.pending_removal]
    )
    kept = [r for r in roster if r.status in ACTIVE_STATUSES and not r.pending_removal]
    moved = [r for r in kept if r.moved]
    new = [r for r in roster if r.status == AssignmentStatus.PROPOSED]
    conflicts = find_conflicts(session, plan.id)
    if conflicts:
        session.rollback()
        _raise_conflicts(conflicts)
    try:
        _apply(session, plan, removed, moved, now)
        if removed:
            # Imported here: swaps builds on this module.
            from volunteer_hub.services.swaps import refuse_open_about_removed

            # Open swap requests about a shift taken away can no longer be made.
            ids = [r.id for r in removed]
            refuse_open_about_removed(session, ids, actor.member_id, now, quiet)
        unannounced = _withdraw_held(session, moved, now)
        version = plan.version + 1
        pushes = _pushes(new, moved, removed, reminder_offsets_h, now, version, quiet, unannounced)
        sent = outbox.enqueue_bulk(session, pushes, existing_keys=_used_keys(session, plan.id))
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
        conflicts = find_conflicts(session, plan_id)
        session.rollback()
        _raise_conflicts(
            conflicts or [{"member": 0, "name": "", "shift": 0, "other_shift": 0, "other_plan": 0}]
        )
    session.commit()
    return plan


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
        # Reminders, and a push still held for quiet hours: it would tell of a shift now gone.
        outbox.cancel_pending(session, assignment_id=row.id, kinds=_CANCELLED_WITH_SHIFT)
    if moved:
        session.execute(
            update(Assignment),
            [
                {
                    "id": r.id,
                    "starts_at": r.shift.starts_at,
                    "ends_at": r.shift.ends_at,
                    "updated_at": now,
                }
                for r in moved
            ],
        )
    for row in moved:
        outbox.cancel_pending(session, assignment_id=row.id, kinds=["shift_reminder"])
    # One UPDATE ... FROM shift (PostgreSQL, SQLite >= 3.33) rather than two correlated
    # subqueries per row.
    session.execute(
        update(Assignment)
        .where(
            Assignment.plan_id == plan.id,
            Assignment.status == AssignmentStatus.PROPOSED,
            Shift.id == Assignment.shift_id,
        )
        .values(
            status=AssignmentStatus.PUBLISHED,
            published_at=now,
            starts_at=Shift.starts_at,
            ends_at=Shift.ends_at,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def _withdraw_held(session: Session, moved: Sequence[_Row], now: datetime) -> set[int]:
    """Cancel the pushes about moved assignments still held for quiet hours: they name the
    old time and would go out beside the change. (A push already due is left to the worker,
    which may be sending it.)

    :return: the assignments whose held push was their announcement: the volunteer has not
        been told of the shift, so the publish announces it at the new time.
    """
    held: list[int] = []
    unannounced: set[int] = set()
    for chunk in _chunks([r.id for r in moved]):
        for outbox_id, assignment_id, kind in session.execute(
            select(OutboxMessage.id, OutboxMessage.assignment_id, OutboxMessage.kind).where(
                OutboxMessage.assignment_id.in_(chunk),
                OutboxMessage.status == OutboxStatus.PENDING,
                OutboxMessage.kind.in_(_TOLD_OF_SHIFT),
                OutboxMessage.deliver_after > now,
            )
        ):
            held.append(outbox_id)
            if kind == "assignment_published" and assignment_id is not None:
                unannounced.add(assignment_id)
    clock = utcnow()
    for chunk in _chunks(held):
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(chunk), OutboxMessage.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.CANCELLED)
        )
        # As outbox.cancel_pending: an inbox item already shown stays.
        session.execute(
            update(InboxItem)
            .where(InboxItem.outbox_id.in_(chunk), InboxItem.visible_at > clock)
            .values(withdrawn_at=clock)
        )
    return unannounced


def reminder_offsets(config: Mapping[str, Any]) -> tuple[float, ...]:
    """`REMINDER_OFFSETS_H` from the config: hours before a shift to remind (default 24, 2)."""
    value = config.get("REMINDER_OFFSETS_H", DEFAULT_REMINDER_OFFSETS_H)
    return tuple(float(v) for v in value)
