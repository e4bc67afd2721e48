"""The volunteer's side of a plan: their shifts, a calendar feed, accept and decline, and
taking a slot someone else freed.

A decline frees the slot and offers it to a few ranked replacements (eligible by the
scheduling checker, nearby, least loaded); the first to accept takes it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload

from notifications.messages import shift_params
from scheduling.checker import haversine_km
from scheduling.problem import Location
from volunteer_hub.auth.policy import require_visible
from volunteer_hub.database import is_postgresql
from volunteer_hub.errors import Conflict, NotFound
from volunteer_hub.models import Member, MemberBranch
from volunteer_hub.models.members import Leave, MemberStatus
from volunteer_hub.models.plans import (
    ACTIVE_STATUSES,
    Assignment,
    AssignmentStatus,
    Plan,
    Shift,
    SlotOffer,
    SlotOfferStatus,
)
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit, outbox
from volunteer_hub.services.hours import federation_tz
from volunteer_hub.services.outbox import BulkPush
from volunteer_hub.services.plans import (
    ROSTER_STATUSES,
    _Change,
    _refuse_while_solving,
    violations_of,
)
from volunteer_hub.services.problem_builder import KM_PER_DEGREE, BuilderSettings
from volunteer_hub.services.publish import _CANCELLED_WITH_SHIFT, reminder_pushes, shift_info
from volunteer_hub.services.quiet_hours import QuietHours, held

# What a volunteer sees: never a proposal nobody has published.
VISIBLE_STATUSES = (
    AssignmentStatus.PUBLISHED,
    AssignmentStatus.ACCEPTED,
    AssignmentStatus.DECLINED,
    AssignmentStatus.CANCELLED,
    AssignmentStatus.COMPLETED,
    AssignmentStatus.NO_SHOW,
)
CALENDAR_STATUSES = (
    AssignmentStatus.PUBLISHED,
    AssignmentStatus.ACCEPTED,
    AssignmentStatus.COMPLETED,
)


@dataclass(frozen=True, slots=True)
class VolunteerRules:
    decline_cutoff: timedelta = timedelta(hours=3)
    replacement_offers: int = 3
    reminder_offsets_h: tuple[float, ...] = (24, 2)
    builder: BuilderSettings = field(default_factory=BuilderSettings)
    quiet: QuietHours | None = None  # offers and reminders due in them wait (quiet_hours)


def my_shifts(
    session: Session, member_id: int, start: datetime | None, end: datetime | None
) -> list[Assignment]:
    """The member's published assignments (with shift and post) overlapping [start, end)."""
    query = (
        select(Assignment)
        .options(joinedload(Assignment.shift).joinedload(Shift.post), joinedload(Assignment.member))
        .where(
            Assignment.member_id == member_id,
            Assignment.status.in_(VISIBLE_STATUSES),
            Assignment.published_at.is_not(None),
        )
        .order_by(Assignment.starts_at, Assignment.id)
    )
    if start is not None:
        query = query.where(Assignment.ends_at > start)
    if end is not None:
        query = query.where(Assignment.starts_at < end)
    return list(session.scalars(query).unique())


# -------------------------------------------------------------------- iCalendar


def ics_escape(text: str) -> str:
    """RFC 5545 TEXT: backslash, semicolon, comma and newlines escaped."""
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def ics_fold(line: str) -> str:
    """Fold a content line at 75 octets without splitting a UTF-8 character."""
    parts: list[str] = []
    current, size, limit = "", 0, 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            parts.append(current)
            current, size, limit = " ", 1, 75
        current += char
        size += width
    parts.append(current)
    return "\r\n".join(parts)


def _ics_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def calendar_feed(assignments: Iterable[Assignment], name: str, now: datetime) -> str:
    """An iCalendar document of the member's shifts: one VEVENT per assignment, UTC times."""
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Volunteer Hub//Shift plans//ZH",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{ics_escape(name)}",
    ]
    for assignment in assignments:
        if assignment.status not in CALENDAR_STATUSES:
            continue
        shift, post = assignment.shift, assignment.shift.post
        lines += [
            "BEGIN:VEVENT",
            f"UID:assignment-{assignment.id}@volunteer-hub",
            f"DTSTAMP:{_ics_time(now)}",
            f"DTSTART:{_ics_time(assignment.starts_at)}",
            f"DTEND:{_ics_time(assignment.ends_at)}",
            f"SUMMARY:{ics_escape('值班：' + post.name)}",
            f"LOCATION:{ics_escape(post.name)}",
            f"GEO:{post.lat:.6f};{post.lon:.6f}",
            "DESCRIPTION:"
            + ics_escape(f"{shift.kind.value} shift; check in within {post.radius_m} m."),
            "STATUS:"
            + ("CONFIRMED" if assignment.status != AssignmentStatus.PUBLISHED else "TENTATIVE"),
            f"LAST-MODIFIED:{_ics_time(assignment.updated_at)}",
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return "".join(ics_fold(line) + "\r\n" for line in lines)


def calendar_secret(session: Session, member_id: int, *, rotate: bool = False) -> str:
    """The member's calendar secret, generated on first use (or replaced on `rotate`)."""
    member = session.get_one(Member, member_id)
    if member.calendar_secret is None or rotate:
        member.calendar_secret = secrets.token_urlsafe(32)
        session.commit()
    return member.calendar_secret


def member_by_calendar_secret(session: Session, secret: str) -> Member:
    """:raise NotFound: no active member has this secret."""
    member = session.scalar(select(Member).where(Member.calendar_secret == secret))
    if member is None or member.status != MemberStatus.ACTIVE:
        raise NotFound("No such calendar.")
    return member


# -------------------------------------------------------------- accept / decline


def _own_assignment(session: Session, member_id: int, assignment_id: int) -> Assignment:
    query = select(Assignment).where(Assignment.id == assignment_id)
    if is_postgresql():
        query = query.with_for_update()
    assignment = session.scalar(query)
    require_visible(
        assignment is not None
        and assignment.member_id == member_id
        and assignment.published_at is not None,
        "assignment",
    )
    assert assignment is not None
    return assignment


def accept(session: Session, member_id: int, assignment_id: int) -> Assignment:
    """Confirm a published assignment; accepting twice is harmless.

    :raise NotFound: not the caller's. :raise Conflict: cancelled, declined or over.
    """
    assignment = _own_assignment(session, member_id, assignment_id)
    if assignment.status == AssignmentStatus.ACCEPTED:
        session.commit()
        return assignment
    if assignment.status != AssignmentStatus.PUBLISHED or assignment.pending_removal:
        raise Conflict(f"This assignment is {assignment.status.value}; it cannot be accepted.")
    if assignment.ends_at <= utcnow():
        raise Conflict("This shift is over.")
    assignment.status = AssignmentStatus.ACCEPTED
    assignment.responded_at = utcnow()
    audit.record(
        session,
        member_id,
        "assignment.accept",
        "assignment",
        assignment.id,
        before={"status": "published"},
        after={"status": "accepted"},
    )
    session.commit()
    return assignment


def decline(
    session: Session, member_id: int, assignment_id: int, reason: str, rules: VolunteerRules
) -> Assignment:
    """Give a shift back. The slot is offered to ranked replacements; open swap requests
    offering or asking for it are refused (their held `swap_request` pushes cancelled, the
    volunteer on their other side told).

    :raise NotFound: not the caller's.
    :raise Conflict: already over, cancelled or declined, or too close to the start (the
        volunteer must ask a coordinator, who can take them off the shift).
    """
    assignment = _own_assignment(session, member_id, assignment_id)
    if assignment.status == AssignmentStatus.DECLINED:
        session.commit()
        return assignment
    if assignment.status not in ACTIVE_STATUSES:
        raise Conflict(f"This assignment is {assignment.status.value}; it cannot be declined.")
    now = utcnow()
    if assignment.starts_at - now < rules.decline_cutoff:
        hours = rules.decline_cutoff.total_seconds() / 3600
        raise Conflict(
            f"The shift starts in less than {hours:g} hours; it can no longer be declined in "
            "the app. Call your coordinator, who can take you off it and find a replacement.",
            extra={"starts_at": assignment.starts_at.isoformat()},
        )
    before = assignment.status.value
    assignment.status = AssignmentStatus.DECLINED
    assignment.decline_reason = reason.strip()
    assignment.responded_at = now
    # Its reminders, and a push about it still held for quiet hours (published or changed):
    # either would tell the volunteer of a shift they gave back.
    outbox.cancel_pending(session, assignment_id=assignment.id, kinds=_CANCELLED_WITH_SHIFT)
    # Imported here: swaps builds on this module (VolunteerRules).
    from volunteer_hub.services.swaps import refuse_open_about_declined

    # Open swap requests offering or asking for it can no longer be made.
    refuse_open_about_declined(session, assignment, now, rules.quiet)
    audit.record(
        session,
        member_id,
        "assignment.decline",
        "assignment",
        assignment.id,
        before={"status": before},
        after={"status": "declined"},
        reason=assignment.decline_reason,
    )
    session.flush()
    offer_replacements(session, assignment, rules)
    session.commit()
    return assignment


# ------------------------------------------------------------------ replacements


def rank_replacements(
    session: Session, assignment: Assignment, rules: VolunteerRules, limit: int
) -> list[int]:
    """Members who could take the freed slot: in the branch, free at that time, within
    reach, least loaded this plan first, then nearest; each confirmed by the checker."""
    shift = session.get_one(Shift, assignment.shift_id, options=[joinedload(Shift.post)])
    plan = session.get_one(Plan, assignment.plan_id)
    post = shift.post
    reach = rules.builder.max_distance_km or 50.0
    degrees = reach / KM_PER_DEGREE
    busy = select(Assignment.member_id).where(
        Assignment.status.in_(ROSTER_STATUSES),
        Assignment.starts_at < shift.ends_at,
        Assignment.ends_at > shift.starts_at,
    )
    declined = select(Assignment.member_id).where(
        Assignment.shift_id == shift.id, Assignment.status == AssignmentStatus.DECLINED
    )
    on_leave = select(Leave.member_id).where(
        Leave.starts_at < shift.ends_at, Leave.ends_at > shift.starts_at
    )
    load = (
        select(Assignment.member_id, func.count(Assignment.id).label("n"))
        .where(Assignment.plan_id == plan.id, Assignment.status.in_(ROSTER_STATUSES))
        .group_by(Assignment.member_id)
        .subquery()
    )
    rows = session.execute(
        select(Member.id, Member.home_lat, Member.home_lon, func.coalesce(load.c.n, 0))
        .join(MemberBranch, MemberBranch.member_id == Member.id)
        .outerjoin(load, load.c.member_id == Member.id)
        .where(
            MemberBranch.branch_id == plan.branch_id,
            Member.status == MemberStatus.ACTIVE,
            Member.id.not_in(busy),
            Member.id.not_in(declined),
            Member.id.not_in(on_leave),
            Member.home_lat.between(post.lat - 2 * degrees, post.lat + 2 * degrees),
        )
    ).all()
    here = Location(post.lat, post.lon)
    candidates = []
    for member_id, lat, lon, count in rows:
        distance = haversine_km(here, Location(lat, lon)) if lat is not None else reach
        if distance <= reach:
            candidates.append((int(count), distance, member_id))
    candidates.sort()
    chosen: list[int] = []
    for _, _, member_id in candidates[: limit * 5]:
        change = _Change(add=((member_id, shift.id),), remove=(assignment.id,))
        if not violations_of(session, plan, change, rules.builder):
            chosen.append(member_id)
        if len(chosen) == limit:
            break
    return chosen


def offer_replacements(
    session: Session, freed: Assignment, rules: VolunteerRules
) -> list[SlotOffer]:
    """Offer the freed slot to the ranked replacements, with a push each (no commit)."""
    if rules.replacement_offers <= 0 or freed.starts_at <= utcnow():
        return []
    ranked = rank_replacements(session, freed, rules, rules.replacement_offers)
    offers = [
        SlotOffer(
            declined_assignment_id=freed.id,
            shift_id=freed.shift_id,
            member_id=member_id,
            rank=rank,
            status=SlotOfferStatus.OPEN,
        )
        for rank, member_id in enumerate(ranked, start=1)
    ]
    session.add_all(offers)
    session.flush()
    shift = session.get_one(Shift, freed.shift_id)
    when = {
        "post": shift.post.name,
        **shift_params(shift.starts_at, shift.ends_at, federation_tz()),
    }
    deliver_after, visible_at = held(rules.quiet, utcnow(), shift.starts_at)
    outbox.enqueue_bulk(
        session,
        [
            BulkPush(
                offer.member_id,
                "slot_offer",
                {"offer_id": str(offer.id), **when},
                dedupe_key=f"slot-offer:{offer.id}",
                assignment_id=freed.id,
                deliver_after=deliver_after,
                visible_at=visible_at,
            )
            for offer in offers
        ],
    )
    return offers


def my_offers(session: Session, member_id: int) -> list[SlotOffer]:
    return list(
        session.scalars(
            select(SlotOffer)
            .options(joinedload(SlotOffer.shift).joinedload(Shift.post))
            .where(
                SlotOffer.member_id == member_id,
                SlotOffer.status == SlotOfferStatus.OPEN,
            )
            .order_by(SlotOffer.id)
        )
    )


def take_offer(
    session: Session, member_id: int, offer_id: int, rules: VolunteerRules
) -> Assignment:
    """Take an offered slot: the first replacement to accept gets it, accepted at once.

    Checked like a coordinator's manual add (`plans.violations_of`): the hard rules must
    still hold for the caller with the slot (rest between shifts, caps, ...), since the
    caller's roster may have changed since the offer, by another offer taken, for one. The
    plan is locked first, as publishing, a coordinator's change and a swap do, so two offers
    taken at once in one plan are checked one after the other. While a solve run is queued or
    running on the plan the slot is not taken (its result would not know of it), as a swap
    and a manual add are not; the offer stays open.

    :raise NotFound: not the caller's offer. :raise Conflict: a solve run is working on the
        plan (`solve_run`; try again later), already taken or closed, the slot is full
        again, it would double-book the caller, or it would break a hard rule (the
        checker's `violations`).
    """
    offer = session.get(SlotOffer, offer_id)
    require_visible(offer is not None and offer.member_id == member_id, "offer")
    assert offer is not None
    plan_id = session.scalar(select(Shift.plan_id).where(Shift.id == offer.shift_id))
    plan_query = select(Plan).where(Plan.id == plan_id)
    if is_postgresql():
        plan_query = plan_query.with_for_update(of=Plan)
    plan = session.scalar(plan_query)
    assert plan is not None
    try:
        _refuse_while_solving(session, plan)
    except Conflict as solving:
        raise Conflict(
            "The plan is being re-planned; try again in a few minutes.", extra=solving.extra
        ) from None
    shift_query = select(Shift).where(Shift.id == offer.shift_id)
    if is_postgresql():
        shift_query = shift_query.with_for_update(of=Shift)
    shift = session.scalar(shift_query.options(joinedload(Shift.post)))
    assert shift is not None
    session.refresh(offer)
    if offer.status != SlotOfferStatus.OPEN:
        raise Conflict(f"This offer is {offer.status.value}.")
    taken = session.scalar(
        select(func.count(Assignment.id)).where(
            Assignment.shift_id == shift.id,
            Assignment.status.in_(ROSTER_STATUSES),
            Assignment.pending_removal.is_(False),
        )
    )
    if (taken or 0) >= shift.headcount or shift.starts_at <= utcnow():
        _close_offers(session, offer.declined_assignment_id)
        session.commit()
        raise Conflict("Someone else took this slot first.")
    if overlapping_active(session, member_id, shift.starts_at, shift.ends_at):
        raise Conflict("You are already on an overlapping shift.")
    violations = violations_of(session, plan, _Change(add=((member_id, shift.id),)), rules.builder)
    if violations:
        raise Conflict(
            "Taking this slot would break hard rules: "
            + "; ".join(v["message"] for v in violations)
            + ".",
            extra={"violations": violations},
        )
    now = utcnow()
    assignment = Assignment.taken_over(
        shift.plan_id, shift.id, member_id, shift.starts_at, shift.ends_at, now
    )
    session.add(assignment)
    session.flush()
    offer.status = SlotOfferStatus.TAKEN
    offer.responded_at = now
    _close_offers(session, offer.declined_assignment_id)
    info = shift_info(shift.id, shift.starts_at, shift.ends_at, shift.post.name)
    outbox.enqueue_bulk(
        session,
        reminder_pushes(
            assignment.id, member_id, info, rules.reminder_offsets_h, now, quiet=rules.quiet
        ),
    )
    audit.record(
        session,
        member_id,
        "assignment.take_offer",
        "assignment",
        assignment.id,
        after={"shift": shift.id, "offer": offer.id, "replaces": offer.declined_assignment_id},
    )
    session.commit()
    return assignment


def overlapping_active(
    session: Session,
    member_id: int,
    starts_at: datetime,
    ends_at: datetime,
    *,
    ignore: Iterable[int] = (),
) -> list[int]:
    """The member's active assignments overlapping [starts_at, ends_at), but `ignore`d ones."""
    query = select(Assignment.id).where(
        Assignment.member_id == member_id,
        Assignment.status.in_(ACTIVE_STATUSES),
        Assignment.starts_at < ends_at,
        Assignment.ends_at > starts_at,
    )
    ignored = list(ignore)
    if ignored:
        query = query.where(Assignment.id.not_in(ignored))
    return list(session.scalars(query))


def _close_offers(session: Session, declined_assignment_id: int) -> None:
    """Close the slot's open offers, and cancel its `slot_offer` pushes still held for quiet
    hours (the taker's too), withdrawing their inbox items not yet shown: they would invite
    people to a slot that is gone."""
    outbox.cancel_pending(session, assignment_id=declined_assignment_id, kinds=["slot_offer"])
    for other in session.scalars(
        select(SlotOffer).where(
            SlotOffer.declined_assignment_id == declined_assignment_id,
            SlotOffer.status == SlotOfferStatus.OPEN,
        )
    ):
        other.status = SlotOfferStatus.CLOSED


def feed_window(now: datetime) -> tuple[datetime, datetime]:
    """What a subscribed calendar gets: the last 30 days and the next 180."""
    return now - timedelta(days=30), now + timedelta(days=180)
