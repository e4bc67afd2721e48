"""Who to call out to an incident: ranking the nearest free, qualified volunteers.

Eligible: active members of the incident's branch holding every required skill (certificate
not expired), not on leave now, not already engaged (an accepted offer on a live incident, or
a shift of theirs overlapping the next two hours), never offered this incident before.

Position: where a member checked in if they are on duty now, else their home. Distances are
exact haversine, computed in Python over a small set found with a bounding box on the indexed
`member.home_lat/home_lon` columns (ix_member_home); the box grows (2, 5, 10, 20, 50 km) until
enough candidates lie inside the circle, so a typical call reads a few hundred rows of 40,000.

Order: by distance in 500 m bands, then by call-outs accepted in the last 30 days (rested
volunteers first), then exact distance. Banding is deliberate: 120 m against 180 m makes no
difference on foot, and without it the recent-call-outs rule would never decide anything.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session

from volunteer_hub.models import Leave, Member, MemberBranch, MemberSkill, MemberStatus
from volunteer_hub.models.attendance import Attendance, AttendanceStatus
from volunteer_hub.models.incidents import LIVE_STATUSES, Incident, Offer, OfferStatus
from volunteer_hub.models.plans import ACTIVE_STATUSES, Assignment

EARTH_RADIUS_M = 6_371_008.8
RADII_M = (2_000, 5_000, 10_000, 20_000, 50_000)
DISTANCE_BAND_M = 500
RECENT_WINDOW = timedelta(days=30)
# A shift starting within this horizon keeps a volunteer from being sent elsewhere.
SHIFT_HORIZON = timedelta(hours=2)


@dataclass(frozen=True)
class Candidate:
    member_id: int
    distance_m: int
    callouts_30d: int
    on_duty: bool


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) containing the circle; clamped at the poles."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    cos_lat = max(math.cos(math.radians(lat)), 1e-6)
    dlon = min(180.0, math.degrees(radius_m / (EARTH_RADIUS_M * cos_lat)))
    return max(-90.0, lat - dlat), min(90.0, lat + dlat), lon - dlon, lon + dlon


def _eligibility(
    *,
    branch_id: int,
    skill_ids: Sequence[int],
    now: datetime,
    incident_id: int | None,
) -> list[ColumnElement[bool]]:
    """The WHERE clauses every candidate passes, whatever their position."""
    today = now.date()
    clauses: list[ColumnElement[bool]] = [
        Member.status == MemberStatus.ACTIVE,
        exists().where(MemberBranch.member_id == Member.id, MemberBranch.branch_id == branch_id),
        ~exists().where(Leave.member_id == Member.id, Leave.starts_at <= now, Leave.ends_at > now),
        ~exists().where(
            Offer.member_id == Member.id,
            Offer.status == OfferStatus.ACCEPTED,
            Offer.incident_id == Incident.id,
            Incident.status.in_(LIVE_STATUSES),
        ),
    ]
    for skill_id in skill_ids:
        clauses.append(
            exists().where(
                MemberSkill.member_id == Member.id,
                MemberSkill.skill_id == skill_id,
                or_(MemberSkill.expires_on.is_(None), MemberSkill.expires_on >= today),
            )
        )
    if incident_id is not None:
        # Never the same incident twice: declined, withdrawn and expired offers all count.
        clauses.append(
            ~exists().where(Offer.member_id == Member.id, Offer.incident_id == incident_id)
        )
    clauses.extend(_shift_clauses(now))
    return clauses


def _shift_clauses(now: datetime) -> list[ColumnElement[bool]]:
    """Not on a published or accepted shift overlapping now .. now + 2 h.

    The shift a volunteer is checked in on right now is the exception: someone on duty near
    the scene (a patrol, a checkpoint) is exactly who a call-out should reach, and they are
    placed at their check-in position.
    """
    checked_in = exists().where(
        Attendance.assignment_id == Assignment.id,
        Attendance.status == AttendanceStatus.OPEN,
        Attendance.check_out_at.is_(None),
    )
    return [
        ~exists().where(
            Assignment.member_id == Member.id,
            Assignment.status.in_(ACTIVE_STATUSES),
            Assignment.starts_at < now + SHIFT_HORIZON,
            Assignment.ends_at > now,
            ~checked_in,
        )
    ]


def on_duty_positions(
    session: Session, branch_id: int, now: datetime
) -> dict[int, tuple[float, float]]:
    """Members of the branch checked in right now, and where they checked in."""
    rows = session.execute(
        select(Attendance.member_id, Attendance.check_in_lat, Attendance.check_in_lon).where(
            Attendance.status == AttendanceStatus.OPEN,
            Attendance.check_out_at.is_(None),
            Attendance.check_in_at <= now,
            Attendance.check_in_lat.is_not(None),
            Attendance.check_in_lon.is_not(None),
            exists().where(
                MemberBranch.member_id == Attendance.member_id,
                MemberBranch.branch_id == branch_id,
            ),
        )
    ).all()
    return {
        int(member_id): (lat, lon)
        for member_id, lat, lon in rows
        if lat is not None and lon is not None
    }


def _callouts(session: Session, member_ids: Collection[int], now: datetime) -> dict[int, int]:
    if not member_ids:
        return {}
    rows = session.execute(
        select(Offer.member_id, func.count())
        .where(
            Offer.member_id.in_(list(member_ids)),
            Offer.status == OfferStatus.ACCEPTED,
            Offer.answered_at >= now - RECENT_WINDOW,
        )
        .group_by(Offer.member_id)
    ).all()
    return {int(member_id): int(count) for member_id, count in rows}


def rank_candidates(
    session: Session,
    *,
    branch_id: int,
    skill_ids: Sequence[int],
    lat: float,
    lon: float,
    limit: int,
    now: datetime,
    incident_id: int | None = None,
    radii_m: Sequence[int] = RADII_M,
) -> list[Candidate]:
    """The best `limit` candidates for an incident at (lat, lon), best first.

    :param skill_ids: every one is required of each candidate.
    :param incident_id: members already offered this incident are left out.
    :return: at most `limit` candidates; fewer when the largest radius holds fewer.
    """
    if limit <= 0:
        return []
    eligible = _eligibility(
        branch_id=branch_id, skill_ids=skill_ids, now=now, incident_id=incident_id
    )
    duty = on_duty_positions(session, branch_id, now)
    duty_ok: dict[int, tuple[float, float]] = {}
    if duty:
        ids = select(Member.id).where(Member.id.in_(list(duty)), *eligible)
        duty_ok = {member_id: duty[member_id] for member_id in session.scalars(ids)}

    found: dict[int, tuple[float, bool]] = {}
    for radius in radii_m:
        min_lat, max_lat, min_lon, max_lon = bounding_box(lat, lon, radius)
        rows = session.execute(
            select(Member.id, Member.home_lat, Member.home_lon).where(
                and_(
                    Member.home_lat.between(min_lat, max_lat),
                    Member.home_lon.between(min_lon, max_lon),
                ),
                *eligible,
            )
        ).all()
        found = {}
        for member_id, home_lat, home_lon in rows:
            if member_id in duty or home_lat is None or home_lon is None:
                continue  # on duty: placed at their check-in, below
            distance = haversine_m(lat, lon, home_lat, home_lon)
            if distance <= radius:
                found[member_id] = (distance, False)
        for member_id, (duty_lat, duty_lon) in duty_ok.items():
            distance = haversine_m(lat, lon, duty_lat, duty_lon)
            if distance <= radius:
                found[member_id] = (distance, True)
        if len(found) >= limit:
            break

    callouts = _callouts(session, found, now)
    ranked = sorted(
        found.items(),
        key=lambda item: (
            int(item[1][0] // DISTANCE_BAND_M),
            callouts.get(item[0], 0),
            item[1][0],
            item[0],
        ),
    )
    return [
        Candidate(
            member_id=member_id,
            distance_m=round(distance),
            callouts_30d=callouts.get(member_id, 0),
            on_duty=on_duty,
        )
        for member_id, (distance, on_duty) in ranked[:limit]
    ]
