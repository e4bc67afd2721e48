"""Check-in, check-out, leaders' confirmations and corrections, and the attendance sweeps.

Every path that closes an attendance (check-out, a leader's correction, the worker closing a
forgotten check-out) writes the ledger entry in the same transaction, so minutes are credited
exactly when the attendance says they were.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from notifications.messages import shift_params
from volunteer_hub.errors import Conflict, NotFound, ValidationFailed
from volunteer_hub.models import Member, MemberStatus, Role, RoleGrant, Squad
from volunteer_hub.models.attendance import (
    Attendance,
    AttendanceStatus,
    HoursEntry,
    HoursKind,
    IdempotencyRecord,
)
from volunteer_hub.models.plans import Assignment, AssignmentStatus, Post, Shift
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit, hours, idempotency, outbox

EARTH_RADIUS_M = 6_371_008.8
CHECKABLE = (AssignmentStatus.PUBLISHED, AssignmentStatus.ACCEPTED, AssignmentStatus.NO_SHOW)


@dataclass(frozen=True)
class Rules:
    """The time and distance allowances; every one is configurable in app.config (minutes,
    metres or hours as named)."""

    opens_before: timedelta = timedelta(minutes=30)
    check_out_until: timedelta = timedelta(hours=2)
    accuracy_cap_m: float = 100.0
    max_sync_delay: timedelta = timedelta(hours=24)
    # A phone clock a little ahead of ours is normal; more than this is not a real tap time.
    clock_skew: timedelta = timedelta(minutes=2)
    # A tap that reaches us later than this was recorded offline: honour its time, flag it.
    offline_after: timedelta = timedelta(minutes=2)
    service_grace: timedelta = timedelta(minutes=15)
    no_show_grace: timedelta = timedelta(minutes=30)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Rules:
        def minutes(name: str, default: timedelta) -> timedelta:
            value = config.get(name)
            return default if value is None else timedelta(minutes=float(value))

        d = cls()
        return cls(
            opens_before=minutes("ATTENDANCE_OPENS_BEFORE_MIN", d.opens_before),
            check_out_until=minutes("ATTENDANCE_CHECK_OUT_AFTER_MIN", d.check_out_until),
            accuracy_cap_m=float(config.get("ATTENDANCE_ACCURACY_CAP_M", d.accuracy_cap_m)),
            max_sync_delay=minutes("ATTENDANCE_MAX_SYNC_DELAY_MIN", d.max_sync_delay),
            clock_skew=minutes("ATTENDANCE_CLOCK_SKEW_MIN", d.clock_skew),
            offline_after=minutes("ATTENDANCE_OFFLINE_AFTER_MIN", d.offline_after),
            service_grace=minutes("ATTENDANCE_SERVICE_GRACE_MIN", d.service_grace),
            no_show_grace=minutes("ATTENDANCE_NO_SHOW_GRACE_MIN", d.no_show_grace),
        )


@dataclass(frozen=True)
class Fix:
    """Where and when the phone says the tap happened."""

    lat: float
    lon: float
    accuracy_m: float | None
    client_time: datetime | None

    def payload(self) -> dict[str, Any]:
        return {
            "lat": self.lat,
            "lon": self.lon,
            "accuracy_m": self.accuracy_m,
            "client_time": self.client_time.isoformat() if self.client_time else None,
        }


# ---------------------------------------------------------------------- pure rules


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine) in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def service_minutes(
    check_in: datetime, check_out: datetime, start: datetime, end: datetime, grace: timedelta
) -> int:
    """Attended time clipped to the shift window widened by `grace`, in whole minutes."""
    begin = max(check_in, start - grace)
    finish = min(check_out, end + grace)
    return max(0, int((finish - begin).total_seconds() // 60))


def _local(moment: datetime) -> str:
    return moment.astimezone(hours.federation_tz()).strftime("%Y-%m-%d %H:%M")


def iso(moment: datetime | None, zone: ZoneInfo | None = None) -> str | None:
    """A moment as the API shows it: ISO 8601 in the federation's zone (`zone` when given,
    else the active app's)."""
    return moment.astimezone(zone or hours.federation_tz()).isoformat() if moment else None


_iso = iso


def tap_time(
    client_time: datetime | None, now: datetime, rules: Rules, field: str = "client_time"
) -> tuple[datetime, bool]:
    """The time a tap counts at, and whether it was synced late.

    The server clock decides for a tap that arrives at once (phone clocks drift); an offline
    tap that arrives within `max_sync_delay` counts at the time the phone recorded.

    :raise ValidationFailed: the client time is in the future or too old to honour.
    """
    if client_time is None:
        return now, False
    if client_time > now + rules.clock_skew:
        raise ValidationFailed(
            "The phone's time is in the future; check the phone's clock.",
            errors={field: ["Later than the server's time."]},
        )
    delay = now - client_time
    if delay > rules.max_sync_delay:
        hours_allowed = rules.max_sync_delay.total_seconds() / 3600
        raise ValidationFailed(
            f"This tap was recorded {delay.total_seconds() / 3600:.1f} h ago; offline taps are "
            f"accepted for {hours_allowed:g} h. Ask your squad leader to correct the record.",
            errors={field: ["Too old to sync."]},
        )
    if delay <= rules.offline_after:
        return now, False
    return client_time, True


def check_geofence(post: Post, fix: Fix, rules: Rules) -> None:
    """Accept when `distance - min(accuracy, cap) <= radius`.

    :raise ValidationFailed: too far, saying how far and what is allowed.
    """
    credit = min(max(fix.accuracy_m or 0.0, 0.0), rules.accuracy_cap_m)
    distance = distance_m(fix.lat, fix.lon, post.lat, post.lon)
    if distance - credit <= post.radius_m:
        return
    raise ValidationFailed(
        f"You are {distance:.0f} m from {post.name}; taps are accepted within {post.radius_m} m "
        f"of the post, plus up to {rules.accuracy_cap_m:.0f} m for GPS accuracy "
        f"(this fix counted {credit:.0f} m).",
        errors={"lat": ["Too far from the post."], "lon": ["Too far from the post."]},
        extra={
            "distance_m": round(distance),
            "radius_m": post.radius_m,
            "accuracy_credit_m": round(credit),
            "allowed_m": round(post.radius_m + credit),
        },
    )


# ---------------------------------------------------------------------- views


def attendance_view(att: Attendance) -> dict[str, Any]:
    """The Attendance of the API, JSON-ready (stored as the idempotent response)."""
    check_out = None
    if att.check_out_at is not None:
        check_out = {
            "lat": att.check_out_lat,
            "lon": att.check_out_lon,
            "accuracy_m": att.check_out_accuracy_m,
            "client_time": _iso(att.check_out_client_time),
        }
    return {
        "id": att.id,
        "assignment": att.assignment_id,
        "member": att.member_id,
        "status": att.status.value,
        "check_in_at": _iso(att.check_in_at),
        "check_out_at": _iso(att.check_out_at),
        "check_in": {
            "lat": att.check_in_lat,
            "lon": att.check_in_lon,
            "accuracy_m": att.check_in_accuracy_m,
            "client_time": _iso(att.check_in_client_time),
        },
        "check_out": check_out,
        "synced_late": att.synced_late,
        "service_minutes": att.service_minutes,
        "confirmed_by": att.confirmed_by,
        "confirmed_at": _iso(att.confirmed_at),
    }


def _snapshot(att: Attendance | None) -> dict[str, Any] | None:
    if att is None:
        return None
    return {
        "status": att.status.value,
        "check_in_at": _iso(att.check_in_at),
        "check_out_at": _iso(att.check_out_at),
        "service_minutes": att.service_minutes,
    }


# ---------------------------------------------------------------------- loading


def _is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def load_assignment(session: Session, assignment_id: int, *, lock: bool) -> Assignment:
    """The assignment, row-locked on PostgreSQL when `lock` (SQLite's BEGIN IMMEDIATE
    already serialises writers).

    :raise NotFound: no such assignment.
    """
    query = select(Assignment).where(Assignment.id == assignment_id)
    if lock and _is_postgresql(session):
        query = query.with_for_update(of=Assignment)
    assignment = session.scalar(query)
    if assignment is None:
        raise NotFound("No such assignment.")
    return assignment


def attendance_of(session: Session, assignment_id: int) -> Attendance | None:
    return session.scalar(select(Attendance).where(Attendance.assignment_id == assignment_id))


def post_of(session: Session, assignment: Assignment) -> Post:
    """The post of the assignment's shift, in one round trip."""
    return session.scalars(
        select(Post).join(Shift, Shift.post_id == Post.id).where(Shift.id == assignment.shift_id)
    ).one()


@dataclass
class Tap:
    """What a check-in or check-out reads, in one locked query: the assignment, its post, its
    attendance if any, and the caller's stored response for this Idempotency-Key if any."""

    assignment: Assignment | None = None
    post: Post | None = None
    attendance: Attendance | None = None

    def load(
        self,
        session: Session,
        member_id: int,
        assignment_id: int,
        key: str,
        *,
        checked_in: bool = False,
    ) -> Any:
        """Fill in the rows; return the idempotency record (what `idempotency.run` asks).

        The assignment row is locked on PostgreSQL, so two taps for one assignment run one
        after the other. After waiting for a lock, PostgreSQL re-reads only the locked rows:
        a check-in may see a stale "no attendance yet" (its insert then hits the unique
        assignment and is retried), but a check-out updates the attendance, so with
        `checked_in` the attendance is inner-joined and locked too, and read fresh.
        """
        query = (
            select(Assignment, Post, Attendance, IdempotencyRecord)
            .join(Shift, Shift.id == Assignment.shift_id)
            .join(Post, Post.id == Shift.post_id)
            .join(
                Attendance,
                Attendance.assignment_id == Assignment.id,
                isouter=not checked_in,
            )
            .outerjoin(
                IdempotencyRecord,
                and_(IdempotencyRecord.member_id == member_id, IdempotencyRecord.key == key),
            )
            .where(Assignment.id == assignment_id)
        )
        if _is_postgresql(session):
            query = query.with_for_update(of=[Assignment, Attendance] if checked_in else Assignment)
        row = session.execute(query).one_or_none()
        if row is None and checked_in:
            # No attendance (or no assignment): read what there is, to say which.
            return self.load(session, member_id, assignment_id, key)
        if row is None:
            self.assignment = self.post = self.attendance = None
            return idempotency.find_record(session, member_id, key)
        self.assignment, self.post, self.attendance, record = row
        return record

    def own(self, member_id: int) -> tuple[Assignment, Post]:
        """:raise NotFound: no such assignment, or someone else's (it looks absent)."""
        if self.assignment is None or self.post is None or self.assignment.member_id != member_id:
            raise NotFound("No such assignment.")
        return self.assignment, self.post


def credit_entry(session: Session, attendance_id: int) -> HoursEntry | None:
    """The attendance's original credit, which corrections and reversals reference."""
    return session.scalar(
        select(HoursEntry)
        .where(
            HoursEntry.attendance_id == attendance_id,
            HoursEntry.kind == HoursKind.ATTENDANCE,
        )
        .order_by(HoursEntry.id)
        .limit(1)
    )


# ---------------------------------------------------------------------- check-in/out


def check_in(
    session: Session,
    *,
    member_id: int,
    assignment_id: int,
    fix: Fix,
    key: str,
    now: datetime,
    rules: Rules,
) -> idempotency.Outcome:
    """Check the member in at their assignment's post; commits.

    A repeat with the same key, or another key once an attendance exists, returns the
    attendance with 200; the first check-in returns 201.

    :return: the outcome (status and Attendance body).
    :raise NotFound: no such assignment, or someone else's.
    :raise Conflict: the assignment was cancelled, declined or never published.
    :raise ValidationFailed: outside the window, too far from the post, an implausible
        client time, or a key reused for a different request.
    """

    tap = Tap()

    def action() -> tuple[int, dict[str, Any]]:
        assignment, post = tap.own(member_id)
        if tap.attendance is not None:
            return 200, attendance_view(tap.attendance)
        if assignment.status not in CHECKABLE:
            raise Conflict(
                f"This assignment is {assignment.status.value}; there is nothing to check in to.",
                extra={"assignment_status": assignment.status.value},
            )
        at, late = tap_time(fix.client_time, now, rules)
        opens, closes = assignment.starts_at - rules.opens_before, assignment.ends_at
        if not opens <= at <= closes:
            raise ValidationFailed(
                f"Check-in is open from {_local(opens)} to {_local(closes)} "
                f"({rules.opens_before.total_seconds() / 60:g} min before the shift until its "
                f"end); this tap counts at {_local(at)}.",
                errors={"client_time" if late else "_schema": ["Outside the check-in window."]},
                extra={"opens_at": _iso(opens), "closes_at": _iso(closes), "tap_at": _iso(at)},
            )
        check_geofence(post, fix, rules)
        att = Attendance(
            assignment_id=assignment.id,
            member_id=member_id,
            check_in_at=at,
            check_in_lat=fix.lat,
            check_in_lon=fix.lon,
            check_in_accuracy_m=fix.accuracy_m,
            check_in_client_time=fix.client_time,
            check_in_received_at=now,
            synced_late=late,
            status=AttendanceStatus.OPEN,
            created_at=now,
            updated_at=now,
        )
        session.add(att)
        if assignment.status == AssignmentStatus.NO_SHOW:
            # Marked absent at start + grace, then arrived within the shift: they came.
            assignment.status = AssignmentStatus.ACCEPTED
            audit.record(
                session,
                member_id,
                "assignment.late_arrival",
                "assignment",
                assignment.id,
                before={"status": "no_show"},
                after={"status": "accepted"},
            )
        session.flush()
        audit.record(session, member_id, "attendance.check_in", "attendance", att.id)
        return 201, attendance_view(att)

    return idempotency.run(
        session,
        member_id=member_id,
        key=key,
        endpoint=f"check-in:{assignment_id}",
        payload=fix.payload(),
        action=action,
        now=now,
        find=lambda: tap.load(session, member_id, assignment_id, key),
    )


def _close(
    session: Session,
    att: Attendance,
    assignment: Assignment,
    at: datetime,
    rules: Rules,
    *,
    status: AttendanceStatus,
    actor_id: int | None,
    reason: str | None,
    post: Post | None = None,
) -> None:
    """Close the attendance at `at`, credit its minutes, and complete the assignment."""
    post = post or post_of(session, assignment)
    minutes = service_minutes(
        att.check_in_at, at, assignment.starts_at, assignment.ends_at, rules.service_grace
    )
    att.check_out_at = at
    att.status = status
    att.service_minutes = minutes
    att.updated_at = utcnow()
    assignment.status = AssignmentStatus.COMPLETED
    session.flush()
    hours.add_entry(
        session,
        member_id=att.member_id,
        kind=HoursKind.ATTENDANCE,
        minutes=minutes,
        occurred_at=assignment.starts_at,
        branch_id=post.branch_id,
        town_id=post.town_id,
        reason=reason,
        actor_id=actor_id,
        assignment_id=assignment.id,
        attendance_id=att.id,
    )


def _recredit(
    session: Session,
    att: Attendance,
    assignment: Assignment,
    credit: HoursEntry,
    check_out_at: datetime,
    rules: Rules,
    actor_id: int | None,
    reason: str | None,
    status: AttendanceStatus = AttendanceStatus.CLOSED,
) -> None:
    """Close an attendance already credited at `check_out_at` instead: the ledger gets a
    correction entry with the difference, referencing the original credit.

    :param status: AUTO_CLOSED when `check_out_at` is still the sweep's guess.
    :raise Conflict: the credit was reversed.
    """
    net, reversed_ = hours.net_minutes(session, credit)
    if reversed_:
        raise Conflict("These hours were reversed; award them again instead.")
    minutes = service_minutes(
        att.check_in_at, check_out_at, assignment.starts_at, assignment.ends_at, rules.service_grace
    )
    att.check_out_at, att.service_minutes = check_out_at, minutes
    att.status = status
    att.confirmed_by = att.confirmed_at = None
    att.updated_at = utcnow()
    if minutes != net:
        hours.add_entry(
            session,
            member_id=att.member_id,
            kind=HoursKind.CORRECTION,
            minutes=minutes - net,
            occurred_at=credit.occurred_at,
            branch_id=credit.branch_id,
            town_id=credit.town_id,
            reason=reason,
            actor_id=actor_id,
            assignment_id=assignment.id,
            attendance_id=att.id,
            references_id=credit.id,
        )


def _record_tap_out(att: Attendance, fix: Fix, now: datetime, late: bool) -> None:
    """Where and when the check-out tap was made, and whether it arrived late."""
    att.check_out_lat, att.check_out_lon = fix.lat, fix.lon
    att.check_out_accuracy_m = fix.accuracy_m
    att.check_out_client_time = fix.client_time
    att.check_out_received_at = now
    att.synced_late = att.synced_late or late


def check_out(
    session: Session,
    *,
    member_id: int,
    assignment_id: int,
    fix: Fix,
    key: str,
    now: datetime,
    rules: Rules,
) -> idempotency.Outcome:
    """Check the member out; credits the service minutes to the ledger; commits.

    :return: the outcome (200 and the Attendance with `service_minutes`).
    :raise NotFound: no such assignment, or someone else's.
    :raise Conflict: not checked in yet.
    :raise ValidationFailed: before the check-in, after the window, too far, or a bad key.
    """

    tap = Tap()

    def action() -> tuple[int, dict[str, Any]]:
        assignment, post = tap.own(member_id)
        att = tap.attendance
        if att is None:
            raise Conflict("You have not checked in for this shift; check in first.")
        if att.check_out_at is not None:
            if att.status == AttendanceStatus.AUTO_CLOSED:
                return _replace_guess(session, member_id, assignment, post, att, fix, now, rules)
            return 200, attendance_view(att)
        at, late = tap_time(fix.client_time, now, rules)
        if at < att.check_in_at:
            raise ValidationFailed(
                f"A check-out at {_local(at)} would be before the check-in at "
                f"{_local(att.check_in_at)}.",
                errors={"client_time": ["Before the check-in."]},
            )
        closes = assignment.ends_at + rules.check_out_until
        if at > closes:
            raise ValidationFailed(
                f"Check-out closed at {_local(closes)}; ask your squad leader to record it.",
                errors={"client_time" if late else "_schema": ["Outside the check-out window."]},
                extra={"closes_at": _iso(closes), "tap_at": _iso(at)},
            )
        check_geofence(post, fix, rules)
        _record_tap_out(att, fix, now, late)
        _close(
            session,
            att,
            assignment,
            at,
            rules,
            status=AttendanceStatus.CLOSED,
            actor_id=None,
            reason=None,
            post=post,
        )
        audit.record(
            session,
            member_id,
            "attendance.check_out",
            "attendance",
            att.id,
            after={"service_minutes": att.service_minutes},
        )
        return 200, attendance_view(att)

    return idempotency.run(
        session,
        member_id=member_id,
        key=key,
        endpoint=f"check-out:{assignment_id}",
        payload=fix.payload(),
        action=action,
        now=now,
        find=lambda: tap.load(session, member_id, assignment_id, key, checked_in=True),
    )


def _replace_guess(
    session: Session,
    member_id: int,
    assignment: Assignment,
    post: Post,
    att: Attendance,
    fix: Fix,
    now: datetime,
    rules: Rules,
) -> tuple[int, dict[str, Any]]:
    """A check-out tap on an attendance the sweep closed at the shift end (its guess). A tap
    it would have taken in time - recorded offline inside the window and the geofence, and
    synced after the sweep - is the truth: the attendance closes at the tap and the credit is
    corrected. Any other tap changes nothing and gets the attendance as it is, as a repeat
    check-out does."""
    try:
        at, late = tap_time(fix.client_time, now, rules)
        check_geofence(post, fix, rules)
    except ValidationFailed:
        return 200, attendance_view(att)
    credit = credit_entry(session, att.id)
    closes = assignment.ends_at + rules.check_out_until
    if not att.check_in_at <= at <= closes or credit is None:
        return 200, attendance_view(att)
    if hours.net_minutes(session, credit)[1]:  # a reviewer reversed the credit: theirs to redo
        return 200, attendance_view(att)
    before = _snapshot(att)
    _record_tap_out(att, fix, now, late)
    reason = "Check-out tapped offline, synced after the shift was closed at its end."
    _recredit(session, att, assignment, credit, at, rules, None, reason)
    audit.record(
        session,
        member_id,
        "attendance.check_out",
        "attendance",
        att.id,
        before=before,
        after=_snapshot(att),
    )
    return 200, attendance_view(att)


# ---------------------------------------------------------------------- leaders


def scope_of(session: Session, assignment: Assignment) -> tuple[int, int]:
    """(branch id, town id) of the assignment's post: whose leaders manage it."""
    post = post_of(session, assignment)
    return post.branch_id, post.town_id


def get_attendance(session: Session, attendance_id: int) -> Attendance:
    """:raise NotFound: no such attendance."""
    att = session.get(Attendance, attendance_id)
    if att is None:
        raise NotFound("No such attendance.")
    return att


def confirm(session: Session, *, actor_id: int, att: Attendance, now: datetime) -> Attendance:
    """A leader confirms a closed attendance; commits.

    :return: the attendance. :raise Conflict: it is still open.
    """
    if att.status == AttendanceStatus.CONFIRMED:
        return att
    if att.status == AttendanceStatus.OPEN:
        raise Conflict("The volunteer has not checked out; correct the check-out first.")
    before = _snapshot(att)
    att.status = AttendanceStatus.CONFIRMED
    att.confirmed_by = actor_id
    att.confirmed_at = now
    att.updated_at = now
    audit.record(
        session,
        actor_id,
        "attendance.confirm",
        "attendance",
        att.id,
        before=before,
        after=_snapshot(att),
    )
    session.commit()
    return att


def correct(
    session: Session,
    *,
    actor_id: int,
    assignment: Assignment,
    check_in_at: datetime | None,
    check_out_at: datetime | None,
    reason: str,
    now: datetime,
    rules: Rules,
) -> Attendance:
    """A leader records or fixes a check-in and/or check-out; commits.

    Creates the attendance when the volunteer never checked in. The ledger gets the original
    credit if none was written yet, otherwise a correction entry with the difference that
    references the original; the attendance change is audited with the reason.

    :return: the attendance.
    :raise ValidationFailed: a time in the future, a check-out before the check-in, or no
        check-in time for an assignment without one.
    :raise Conflict: the assignment is cancelled/declined, or its credit was reversed.
    """
    if assignment.status not in (*CHECKABLE, AssignmentStatus.COMPLETED):
        raise Conflict(f"This assignment is {assignment.status.value}.")
    att = attendance_of(session, assignment.id)
    new_in = check_in_at or (att.check_in_at if att else None)
    new_out = check_out_at or (att.check_out_at if att else None)
    for field, value in (("check_in_at", check_in_at), ("check_out_at", check_out_at)):
        if value is not None and value > now + rules.clock_skew:
            raise ValidationFailed("A time in the future.", errors={field: ["In the future."]})
    if new_in is None:
        raise ValidationFailed(
            "There is no check-in; give check_in_at.", errors={"check_in_at": ["Required."]}
        )
    if new_out is not None and new_out < new_in:
        raise ValidationFailed(
            "The check-out is before the check-in.",
            errors={"check_out_at": ["Before the check-in."]},
        )
    before = _snapshot(att)
    was = assignment.status
    if att is None:
        att = Attendance(
            assignment_id=assignment.id,
            member_id=assignment.member_id,
            check_in_at=new_in,
            status=AttendanceStatus.OPEN,
            synced_late=False,
            created_at=now,
        )
        session.add(att)
    att.check_in_at = new_in
    att.updated_at = now
    session.flush()
    credit = credit_entry(session, att.id)
    if new_out is not None and credit is None:
        _close(
            session,
            att,
            assignment,
            new_out,
            rules,
            status=AttendanceStatus.CLOSED,
            actor_id=actor_id,
            reason=reason,
        )
    elif new_out is not None and credit is not None:
        # Without a check-out time the check-out stays the sweep's guess, still flagged, so
        # the volunteer's own check-out synced later can replace it.
        guessed = check_out_at is None and att.status == AttendanceStatus.AUTO_CLOSED
        status = AttendanceStatus.AUTO_CLOSED if guessed else AttendanceStatus.CLOSED
        _recredit(session, att, assignment, credit, new_out, rules, actor_id, reason, status)
    elif assignment.status == AssignmentStatus.NO_SHOW:
        assignment.status = AssignmentStatus.ACCEPTED
    if was == AssignmentStatus.NO_SHOW and assignment.status != was:
        audit.record(
            session,
            actor_id,
            "assignment.no_show_cleared",
            "assignment",
            assignment.id,
            before={"status": was.value},
            after={"status": assignment.status.value},
            reason=reason,
        )
    audit.record(
        session,
        actor_id,
        "attendance.correct",
        "attendance",
        att.id,
        before=before,
        after=_snapshot(att),
        reason=reason,
    )
    session.commit()
    return att


# ---------------------------------------------------------------------- worker sweeps

BATCH = 500


def close_forgotten(session: Session, *, now: datetime, rules: Rules) -> int:
    """Close attendances still open after the check-out window, credited to the shift end
    and flagged auto_closed; commits per batch.

    Rows are claimed with SKIP LOCKED on PostgreSQL so several workers share the work.

    :return: how many were closed.
    """
    closed = 0
    while True:
        query = (
            select(Attendance, Assignment)
            .join(Assignment, Assignment.id == Attendance.assignment_id)
            .where(
                Attendance.status == AttendanceStatus.OPEN,
                Assignment.ends_at < now - rules.check_out_until,
            )
            .order_by(Attendance.id)
            .limit(BATCH)
        )
        if _is_postgresql(session):
            query = query.with_for_update(skip_locked=True)
        rows = session.execute(query).all()
        if not rows:
            session.rollback()
            return closed
        for att, assignment in rows:
            at = max(assignment.ends_at, att.check_in_at)
            _close(
                session,
                att,
                assignment,
                at,
                rules,
                status=AttendanceStatus.AUTO_CLOSED,
                actor_id=None,
                reason="Check-out missing: closed at the shift end.",
            )
            audit.record(
                session,
                None,
                "attendance.auto_close",
                "attendance",
                att.id,
                after=_snapshot(att),
                reason="No check-out within the window.",
            )
        session.commit()
        closed += len(rows)


def mark_no_shows(
    session: Session, *, now: datetime, rules: Rules, lookback: timedelta = timedelta(days=2)
) -> int:
    """Mark assignments with no check-in by start + grace as no_show and tell the squad
    leader; commits per batch.

    Only shifts that started within `lookback` are considered, so a long-stopped worker does
    not page leaders about last month.

    :return: how many were marked.
    """
    marked = 0
    while True:
        assignments = _due_no_shows(session, now=now, rules=rules, lookback=lookback)
        if not assignments:
            session.rollback()
            return marked
        # The read's snapshot is taken before it locks: a check-in that committed in between
        # (after the snapshot, before the lock) is not in it. A new statement sees it; none can
        # commit now, since a check-in locks its assignment first.
        checked_in = set(
            session.scalars(
                select(Attendance.assignment_id).where(
                    Attendance.assignment_id.in_([a.id for a in assignments])
                )
            )
        )
        for assignment in assignments:
            if assignment.id not in checked_in:
                _mark_no_show(session, assignment)
                marked += 1
        session.commit()


def _due_no_shows(
    session: Session, *, now: datetime, rules: Rules, lookback: timedelta
) -> list[Assignment]:
    """A batch of assignments with no check-in by start + grace, locked (on PostgreSQL,
    skipping those a check-in or another worker holds)."""
    query = (
        select(Assignment)
        .outerjoin(Attendance, Attendance.assignment_id == Assignment.id)
        .where(
            Assignment.status.in_([AssignmentStatus.PUBLISHED, AssignmentStatus.ACCEPTED]),
            Assignment.starts_at <= now - rules.no_show_grace,
            Assignment.starts_at > now - lookback,
            Attendance.id.is_(None),
        )
        .order_by(Assignment.id)
        .limit(BATCH)
    )
    if _is_postgresql(session):
        query = query.with_for_update(of=Assignment, skip_locked=True)
    return list(session.scalars(query))


def _mark_no_show(session: Session, assignment: Assignment) -> None:
    before = assignment.status.value
    assignment.status = AssignmentStatus.NO_SHOW
    audit.record(
        session,
        None,
        "assignment.no_show",
        "assignment",
        assignment.id,
        before={"status": before},
        after={"status": "no_show"},
        reason="No check-in by the shift start plus grace.",
    )
    post = post_of(session, assignment)
    volunteer = session.get_one(Member, assignment.member_id)
    for leader_id in _squad_leaders(session, post.branch_id, post.town_id):
        outbox.enqueue(
            session,
            recipient_id=leader_id,
            kind="no_show_notice",
            params={
                "assignment_id": str(assignment.id),
                "volunteer": volunteer.name,
                "post": post.name,
                **shift_params(assignment.starts_at, assignment.ends_at, hours.federation_tz()),
            },
            dedupe_key=f"no_show:{assignment.id}:{leader_id}",
            assignment_id=assignment.id,
        )


def _squad_leaders(session: Session, branch_id: int, town_id: int | None) -> list[int]:
    """Who is told of a no-show at a post: the active members granted squad leader of the
    post's branch and town (those the policy lets confirm and correct attendance there), or,
    when nobody holds that grant, the leader recorded on the squad."""
    granted = session.scalars(
        select(RoleGrant.member_id)
        .join(Member, Member.id == RoleGrant.member_id)
        .where(
            RoleGrant.role == Role.SQUAD_LEADER,
            RoleGrant.branch_id == branch_id,
            RoleGrant.town_id == town_id,
            Member.status == MemberStatus.ACTIVE,
        )
    ).all()
    if granted:
        return sorted(set(granted))
    recorded = session.scalar(
        select(Squad.leader_id)
        .join(Member, Member.id == Squad.leader_id)
        .where(
            Squad.branch_id == branch_id,
            Squad.town_id == town_id,
            Member.status == MemberStatus.ACTIVE,
        )
    )
    return [recorded] if recorded is not None else []
