"""Build the scheduling `Problem` of a plan from the database.

Volunteers are the branch's active members (for a town plan: those living within reach of the
plan's posts, or registered in its town). What keeps a member off a shift becomes an
`unavailable` window: time outside their weekly availability, leave, and active assignments on
other plans. Fairness targets spread the plan's minutes so that those who served less in the
last four weeks are asked first. Accepted assignments are pinned; on an amend the published
roster is `previous`, so a re-solve changes few people.

Queries read plain columns, never ORM objects, because a branch has thousands of members.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session

from scheduling.problem import (
    Limits,
    Location,
    Pair,
    Problem,
    Rules,
    Volunteer,
    Weights,
    Window,
)
from scheduling.problem import (
    Shift as ProblemShift,
)
from volunteer_hub.models import Availability, Leave, Member, MemberBranch, MemberSkill, Skill
from volunteer_hub.models.members import MemberStatus
from volunteer_hub.models.plans import (
    ACTIVE_STATUSES,
    Assignment,
    AssignmentStatus,
    Plan,
    Post,
    Shift,
)

LEADER_SKILL = "leader"
KM_PER_DEGREE = 111.19
FAIRNESS_LOOKBACK = timedelta(days=28)


@dataclass(frozen=True, slots=True)
class BuilderSettings:
    """Branch rules for the solver; the worker fills these from the app config."""

    timezone: str = "Asia/Shanghai"
    min_rest_minutes: int = 480
    one_shift_per_day: bool = True
    max_minutes_per_week: int | None = 20 * 60
    max_distance_km: float | None = 20.0
    weights: Weights = field(
        default_factory=lambda: Weights(
            under=10_000, over=0, skill_under=2_000, fairness=1, distance=10, change=3_000
        )
    )


@dataclass(frozen=True, slots=True)
class BuiltProblem:
    problem: Problem
    plan_id: int

    @staticmethod
    def volunteer_key(member_id: int) -> str:
        return f"m{member_id}"

    @staticmethod
    def shift_key(shift_id: int) -> str:
        return f"s{shift_id}"

    @staticmethod
    def member_id(key: str) -> int:
        return int(key[1:])

    @staticmethod
    def shift_id(key: str) -> int:
        return int(key[1:])


def _period(plan: Plan, tz: ZoneInfo, shift_ends: Iterable[datetime]) -> tuple[datetime, datetime]:
    start = datetime.combine(plan.starts_on, datetime.min.time(), tz).astimezone(UTC)
    end = datetime.combine(plan.ends_on + timedelta(days=1), datetime.min.time(), tz)
    return start, max([end.astimezone(UTC), *shift_ends])


def _shifts(session: Session, plan_id: int) -> list[ProblemShift]:
    rows = session.execute(
        select(
            Shift.id,
            Shift.starts_at,
            Shift.ends_at,
            Shift.kind,
            Shift.headcount,
            Shift.skills,
            Shift.leader_required,
            Post.lat,
            Post.lon,
        )
        .join(Post, Post.id == Shift.post_id)
        .where(Shift.plan_id == plan_id)
        .order_by(Shift.starts_at, Shift.id)
    ).all()
    shifts = []
    for row in rows:
        skills = {code: int(count) for code, count in (row.skills or {}).items()}
        if row.leader_required:
            skills[LEADER_SKILL] = max(1, skills.get(LEADER_SKILL, 0))
        shifts.append(
            ProblemShift(
                id=BuiltProblem.shift_key(row.id),
                start=row.starts_at,
                end=row.ends_at,
                kind=row.kind.value,
                location=Location(row.lat, row.lon),
                required=row.headcount,
                capacity=row.headcount,
                skills=skills,
            )
        )
    return shifts


def _member_scope(
    session: Session, plan: Plan, settings: BuilderSettings, member_ids: Collection[int] | None
) -> Select[Any]:
    """The plan's volunteers as a query, used as a subquery by every other read so that no
    query carries thousands of ids as parameters."""
    query = (
        select(Member.id)
        .join(MemberBranch, MemberBranch.member_id == Member.id)
        .where(MemberBranch.branch_id == plan.branch_id, Member.status == MemberStatus.ACTIVE)
    )
    if member_ids is not None:
        query = query.where(Member.id.in_(list(member_ids)))
    elif plan.town_id is not None:
        query = query.where(
            or_(Member.town_id == plan.town_id, _near_posts(session, plan, settings))
        )
    return query


def _members(session: Session, scope: Select[Any]) -> list[tuple[int, float | None, float | None]]:
    rows = session.execute(
        select(Member.id, Member.home_lat, Member.home_lon)
        .where(Member.id.in_(scope))
        .order_by(Member.id)
    )
    return [(row.id, row.home_lat, row.home_lon) for row in rows]


def _near_posts(session: Session, plan: Plan, settings: BuilderSettings) -> ColumnElement[bool]:
    """A bounding box around the plan's posts, widened by the distance limit: the members who
    can reach some post, found with the home-location index instead of a scan."""
    box = session.execute(
        select(Post.lat, Post.lon)
        .join(Shift, Shift.post_id == Post.id)
        .where(Shift.plan_id == plan.id)
    ).all()
    if not box or settings.max_distance_km is None:
        return Member.town_id == plan.town_id
    reach = settings.max_distance_km / KM_PER_DEGREE
    lats = [row.lat for row in box]
    lons = [row.lon for row in box]
    widen = reach / max(0.1, math.cos(math.radians(max(abs(v) for v in lats))))
    return and_(
        Member.home_lat.between(min(lats) - reach, max(lats) + reach),
        Member.home_lon.between(min(lons) - widen, max(lons) + widen),
    )


def _skills(session: Session, scope: Select[Any], valid_on: date) -> dict[int, set[str]]:
    found: dict[int, set[str]] = defaultdict(set)
    rows = session.execute(
        select(MemberSkill.member_id, Skill.code)
        .join(Skill, Skill.id == MemberSkill.skill_id)
        .where(
            MemberSkill.member_id.in_(scope),
            or_(MemberSkill.expires_on.is_(None), MemberSkill.expires_on >= valid_on),
        )
    )
    for member_id, code in rows:
        found[member_id].add(code)
    return found


def _availability(
    session: Session, scope: Select[Any]
) -> dict[int, tuple[tuple[int, int, int], ...]]:
    patterns: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    rows = session.execute(
        select(
            Availability.member_id,
            Availability.weekday,
            Availability.start_minute,
            Availability.end_minute,
        ).where(Availability.member_id.in_(scope))
    )
    for member_id, weekday, start, end in rows:
        patterns[member_id].append((weekday, start, end))
    return {member_id: tuple(sorted(windows)) for member_id, windows in patterns.items()}


def outside_weekly_windows(
    pattern: tuple[tuple[int, int, int], ...], start: datetime, end: datetime, tz: ZoneInfo
) -> tuple[Window, ...]:
    """The complement of weekly local windows (weekday, start minute, end minute) within
    [start, end): the times a member said they cannot serve."""
    free: list[tuple[datetime, datetime]] = []
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    while day <= last:
        midnight = datetime.combine(day, datetime.min.time(), tz)
        for weekday, first, final in pattern:
            if weekday == day.weekday():
                free.append(
                    (midnight + timedelta(minutes=first), midnight + timedelta(minutes=final))
                )
        day += timedelta(days=1)
    free.sort()
    blocked: list[Window] = []
    cursor = start
    for window_start, window_end in free:
        window_start_utc, window_end_utc = window_start.astimezone(UTC), window_end.astimezone(UTC)
        if window_start_utc > cursor:
            blocked.append(Window(cursor, min(window_start_utc, end)))
        cursor = max(cursor, window_end_utc)
        if cursor >= end:
            break
    if cursor < end:
        blocked.append(Window(cursor, end))
    return tuple(w for w in blocked if w.end > w.start)


def _leave(
    session: Session, scope: Select[Any], start: datetime, end: datetime
) -> dict[int, list[Window]]:
    found: dict[int, list[Window]] = defaultdict(list)
    rows = session.execute(
        select(Leave.member_id, Leave.starts_at, Leave.ends_at).where(
            Leave.member_id.in_(scope), Leave.starts_at < end, Leave.ends_at > start
        )
    )
    for member_id, leave_start, leave_end in rows:
        found[member_id].append(Window(leave_start, leave_end))
    return found


def _busy_elsewhere(
    session: Session, plan_id: int, scope: Select[Any], start: datetime, end: datetime
) -> dict[int, list[Window]]:
    """Active assignments on other plans: a member on another branch's patrol is busy."""
    found: dict[int, list[Window]] = defaultdict(list)
    rows = session.execute(
        select(Assignment.member_id, Assignment.starts_at, Assignment.ends_at).where(
            Assignment.member_id.in_(scope),
            Assignment.plan_id != plan_id,
            Assignment.status.in_(ACTIVE_STATUSES),
            Assignment.starts_at < end,
            Assignment.ends_at > start,
        )
    )
    for member_id, busy_start, busy_end in rows:
        found[member_id].append(Window(busy_start, busy_end))
    return found


def _recent_minutes(
    session: Session, plan_id: int, scope: Select[Any], before: datetime
) -> dict[int, int]:
    """Minutes each member served (or was due to serve) in the four weeks before the plan."""
    served: dict[int, int] = defaultdict(int)
    statuses = (*ACTIVE_STATUSES, AssignmentStatus.COMPLETED)
    rows = session.execute(
        select(Assignment.member_id, Assignment.starts_at, Assignment.ends_at).where(
            Assignment.member_id.in_(scope),
            Assignment.plan_id != plan_id,
            Assignment.status.in_(statuses),
            Assignment.starts_at >= before - FAIRNESS_LOOKBACK,
            Assignment.starts_at < before,
        )
    )
    for member_id, start, end in rows:
        served[member_id] += int((end - start).total_seconds() // 60)
    return served


def _plan_pairs(session: Session, plan_id: int) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """(pinned, previous, forbidden): accepted, published roster, declined."""
    pinned: list[Pair] = []
    previous: list[Pair] = []
    forbidden: list[Pair] = []
    rows = session.execute(
        select(Assignment.member_id, Assignment.shift_id, Assignment.status).where(
            Assignment.plan_id == plan_id,
            Assignment.status.in_(
                (*ACTIVE_STATUSES, AssignmentStatus.DECLINED, AssignmentStatus.CANCELLED)
            ),
        )
    )
    for member_id, shift_id, status in rows:
        pair = Pair(BuiltProblem.volunteer_key(member_id), BuiltProblem.shift_key(shift_id))
        if status == AssignmentStatus.ACCEPTED:
            pinned.append(pair)
            previous.append(pair)
        elif status == AssignmentStatus.PUBLISHED:
            previous.append(pair)
        elif status == AssignmentStatus.DECLINED:
            forbidden.append(pair)
    return pinned, previous, forbidden


def build_problem(
    session: Session,
    plan: Plan,
    settings: BuilderSettings = BuilderSettings(),
    *,
    member_ids: Collection[int] | None = None,
) -> BuiltProblem:
    """The plan as a scheduling Problem.

    :param member_ids: only these volunteers (a manual change is checked for the people it
        touches, not the whole branch).
    :return: the Problem with ids `m<member>` and `s<shift>`.
    """
    tz = ZoneInfo(settings.timezone)
    shifts = _shifts(session, plan.id)
    start, end = _period(plan, tz, (s.end for s in shifts))
    scope = _member_scope(session, plan, settings, member_ids)
    members = _members(session, scope)
    ids = [member_id for member_id, _, _ in members]
    skills = _skills(session, scope, plan.ends_on)
    patterns = _availability(session, scope)
    leave = _leave(session, scope, start, end)
    busy = _busy_elsewhere(session, plan.id, scope, start, end)
    recent = _recent_minutes(session, plan.id, scope, start)
    plan_minutes = sum(s.minutes * s.required for s in shifts)
    share = (plan_minutes + sum(recent.values())) / max(1, len(ids))
    limits = Limits(max_minutes_per_week=settings.max_minutes_per_week)
    # Members sharing an availability pattern share its (costly) complement.
    outside_cache: dict[tuple[tuple[int, int, int], ...], tuple[Window, ...]] = {}
    volunteers = []
    for member_id, lat, lon in members:
        pattern = patterns.get(member_id)
        blocked: tuple[Window, ...] = ()
        if pattern:
            if pattern not in outside_cache:
                outside_cache[pattern] = outside_weekly_windows(pattern, start, end, tz)
            blocked = outside_cache[pattern]
        extra = leave.get(member_id, []) + busy.get(member_id, [])
        volunteers.append(
            Volunteer(
                id=BuiltProblem.volunteer_key(member_id),
                skills=frozenset(skills.get(member_id, ())),
                location=Location(lat, lon) if lat is not None and lon is not None else None,
                unavailable=blocked + tuple(sorted(extra, key=lambda w: w.start)),
                target_minutes=max(0, math.ceil(share - recent.get(member_id, 0))),
                limits=limits,
            )
        )
    known = {v.id for v in volunteers}
    pinned, previous, forbidden = _plan_pairs(session, plan.id)
    problem = Problem(
        timezone=settings.timezone,
        horizon_start=plan.starts_on,
        horizon_days=(plan.ends_on - plan.starts_on).days + 1,
        volunteers=tuple(volunteers),
        shifts=tuple(shifts),
        rules=Rules(
            min_rest_minutes=settings.min_rest_minutes,
            one_shift_per_day=settings.one_shift_per_day,
            max_distance_km=settings.max_distance_km,
        ),
        weights=settings.weights,
        pinned=tuple(p for p in pinned if p.volunteer in known),
        forbidden=tuple(p for p in forbidden if p.volunteer in known),
        previous=tuple(p for p in previous if p.volunteer in known),
        meta={"plan_id": plan.id},
    )
    return BuiltProblem(problem, plan.id)


def settings_from_config(config: Mapping[str, Any]) -> BuilderSettings:
    """Branch rules from the app config (`PLAN_*` keys), defaults where unset."""
    defaults = BuilderSettings()
    return BuilderSettings(
        timezone=str(config.get("HUB_TIMEZONE", defaults.timezone)),
        min_rest_minutes=int(config.get("PLAN_MIN_REST_MINUTES", defaults.min_rest_minutes)),
        one_shift_per_day=bool(config.get("PLAN_ONE_SHIFT_PER_DAY", defaults.one_shift_per_day)),
        max_minutes_per_week=config.get("PLAN_MAX_MINUTES_PER_WEEK", defaults.max_minutes_per_week),
        max_distance_km=config.get("PLAN_MAX_DISTANCE_KM", defaults.max_distance_km),
    )
