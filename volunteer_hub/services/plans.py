"""Plans and their shifts, and the coordinator's manual adjustments to a roster.

A manual add or swap is checked with the scheduling checker on the plan's Problem restricted
to the volunteers it touches; a change that breaks a hard rule is refused with the checker's
reasons unless the coordinator overrides it with a reason, which is audited.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session, joinedload

from scheduling.checker import check
from scheduling.problem import Pair
from volunteer_hub.auth.policy import (
    Actor,
    can_manage_branch_plans,
    can_view_branch_plans,
    plan_branch_scope,
    require,
    require_visible,
)
from volunteer_hub.database import is_postgresql
from volunteer_hub.errors import Conflict, NotFound, ValidationFailed
from volunteer_hub.models import Member
from volunteer_hub.models.plans import (
    ACTIVE_STATUSES,
    Assignment,
    AssignmentSource,
    AssignmentStatus,
    Plan,
    PlanStatus,
    Post,
    Shift,
    ShiftKind,
    ShiftTemplate,
    SolveRun,
    SolveRunStatus,
)
from volunteer_hub.services import audit
from volunteer_hub.services.posts import branch_by_code, check_skills, town_exists
from volunteer_hub.services.problem_builder import BuilderSettings, BuiltProblem, build_problem

# Assignments that hold a slot in the roster being prepared (published or not yet).
ROSTER_STATUSES = (AssignmentStatus.PROPOSED, *ACTIVE_STATUSES)


# ------------------------------------------------------------------------- access


def visible_plan(session: Session, actor: Actor, plan_id: int, *, lock: bool = False) -> Plan:
    """:raise NotFound: no such plan, or one of a branch (or, for a town-scoped coordinator,
    a town or the whole branch) the actor may not see."""
    query = select(Plan).where(Plan.id == plan_id).options(joinedload(Plan.branch))
    if lock and is_postgresql():
        query = query.with_for_update(of=Plan)
    plan = session.scalar(query)
    require_visible(
        plan is not None and can_view_branch_plans(actor, plan.branch_id, plan.town_id), "plan"
    )
    assert plan is not None
    return plan


def managed_plan(session: Session, actor: Actor, plan_id: int, *, lock: bool = False) -> Plan:
    """:raise NotFound: see `visible_plan`. :raise Forbidden: not a coordinator of its branch."""
    plan = visible_plan(session, actor, plan_id, lock=lock)
    require(
        can_manage_branch_plans(actor, plan.branch_id, plan.town_id),
        "Only the branch's coordinators (of the plan's town) change its plans.",
    )
    return plan


def _refuse_while_solving(session: Session, plan: Plan) -> None:
    running = session.scalar(
        select(SolveRun.id).where(
            SolveRun.plan_id == plan.id,
            SolveRun.status.in_((SolveRunStatus.QUEUED, SolveRunStatus.RUNNING)),
        )
    )
    if running is not None:
        raise Conflict(
            f"Solve run {running} is working on this plan; wait for it or cancel it first.",
            extra={"solve_run": running},
        )


# ------------------------------------------------------------------------- plans


def plan_view(session: Session, plan: Plan) -> dict[str, Any]:
    """The Plan of API.md with counts of shifts, slots and filled slots."""
    shifts, slots = session.execute(
        select(func.count(Shift.id), func.coalesce(func.sum(Shift.headcount), 0)).where(
            Shift.plan_id == plan.id
        )
    ).one()
    filled = session.scalar(
        select(func.count(Assignment.id)).where(
            Assignment.plan_id == plan.id,
            Assignment.status.in_(ROSTER_STATUSES),
            Assignment.pending_removal.is_(False),
        )
    )
    pending = session.scalar(
        select(func.count(Assignment.id))
        .join(Shift, Shift.id == Assignment.shift_id)
        .where(
            Assignment.plan_id == plan.id,
            (Assignment.status == AssignmentStatus.PROPOSED)
            | (
                Assignment.status.in_(ACTIVE_STATUSES)
                & (
                    Assignment.pending_removal.is_(True)
                    | (Assignment.starts_at != Shift.starts_at)
                    | (Assignment.ends_at != Shift.ends_at)
                )
            ),
        )
    )
    return {
        "id": plan.id,
        "branch": plan.branch.code,
        "town": plan.town_id,
        "name": plan.name,
        "starts_on": plan.starts_on,
        "ends_on": plan.ends_on,
        "status": plan.status.value,
        "version": plan.version,
        "published_at": plan.published_at,
        "shifts": int(shifts),
        "slots": int(slots),
        "filled_slots": int(filled or 0),
        "pending_changes": int(pending or 0),
    }


def create_plan(session: Session, actor: Actor, data: Mapping[str, Any]) -> Plan:
    """A draft plan for a branch (optionally one town).

    :raise ValidationFailed: unknown branch or town. :raise Forbidden: not its coordinator
        (in that town; for a plan of the whole branch, with a branch-wide grant).
    """
    branch = branch_by_code(session, data["branch"])
    require(
        can_manage_branch_plans(actor, branch.id, data.get("town")),
        "Only the branch's coordinators (of the plan's town) make plans.",
    )
    if data.get("town") is not None:
        town_exists(session, data["town"])
    plan = Plan(
        branch_id=branch.id,
        town_id=data.get("town"),
        name=data["name"].strip(),
        starts_on=data["starts_on"],
        ends_on=data["ends_on"],
        status=PlanStatus.DRAFT,
        version=0,
        created_by=actor.member_id,
    )
    session.add(plan)
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "plan.create",
        "plan",
        plan.id,
        after={"branch": branch.code, "town": plan.town_id, "name": plan.name},
    )
    session.commit()
    return plan


def plan_query(actor: Actor, branch_id: int | None, status: str | None) -> Select[Any]:
    """:raise Forbidden: the actor sees no plans at all."""
    scope = plan_branch_scope(actor)
    query = select(Plan).options(joinedload(Plan.branch)).order_by(Plan.starts_on.desc(), Plan.id)
    if scope is not None:
        whole = sorted(b for b, t in scope if t is None)
        query = query.where(
            or_(
                Plan.branch_id.in_(whole),
                *[
                    and_(Plan.branch_id == b, Plan.town_id == t)
                    for b, t in sorted(scope, key=lambda pair: (pair[0], pair[1] or 0))
                    if t is not None
                ],
            )
        )
    if branch_id is not None:
        query = query.where(Plan.branch_id == branch_id)
    if status is not None:
        query = query.where(Plan.status == PlanStatus(status))
    return query


# ------------------------------------------------------------------------- shifts


def _local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def _check_shift_fits(plan: Plan, post: Post | None, starts_at: datetime, tz: ZoneInfo) -> str:
    """An error message for a shift that does not belong in the plan, or ''."""
    if post is None or post.branch_id != plan.branch_id or not post.active:
        return "No such post in this plan's branch."
    if plan.town_id is not None and post.town_id != plan.town_id:
        return "The post is not in this plan's town."
    if not plan.starts_on <= _local_day(starts_at, tz) <= plan.ends_on:
        return "The shift must start within the plan's dates."
    return ""


def add_shifts(
    session: Session, actor: Actor, plan_id: int, items: Sequence[Mapping[str, Any]], tz_name: str
) -> list[Shift]:
    """Add shifts in bulk.

    :return: the committed Shifts.
    :raise ValidationFailed: naming `shifts[i].<field>` for a post outside the plan, a start
        outside its dates, an unknown skill. :raise Conflict: a solve run is working on it.
    """
    plan = managed_plan(session, actor, plan_id, lock=True)
    _refuse_while_solving(session, plan)
    tz = ZoneInfo(tz_name)
    posts = {
        post.id: post
        for post in session.scalars(select(Post).where(Post.id.in_({i["post"] for i in items})))
    }
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(items):
        problem = _check_shift_fits(plan, posts.get(item["post"]), item["starts_at"], tz)
        field = "post" if "post" in problem else "starts_at"
        if problem:
            errors[f"shifts.{index}.{field}"] = [problem]
        try:
            check_skills(session, item["skills"], f"shifts.{index}.skills")
        except ValidationFailed as exc:
            errors.update(exc.errors or {})
    if errors:
        raise ValidationFailed("Some shifts do not fit this plan.", errors=errors)
    shifts = [
        Shift(
            plan_id=plan.id,
            post_id=item["post"],
            starts_at=item["starts_at"].astimezone(UTC),
            ends_at=item["ends_at"].astimezone(UTC),
            kind=ShiftKind(item["kind"]),
            headcount=item["headcount"],
            skills=dict(item["skills"]),
            leader_required=item["leader_required"],
        )
        for item in items
    ]
    session.add_all(shifts)
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "plan.add_shifts",
        "plan",
        plan.id,
        after={"shifts": [s.id for s in shifts], "plan_status": plan.status.value},
    )
    session.commit()
    return shifts


def generate_shifts(session: Session, actor: Actor, plan_id: int, tz_name: str) -> list[Shift]:
    """Shifts from the weekly templates of the plan's posts, for each date of the plan; a
    shift already present at the same post and times is not added twice.

    :return: the new Shifts. :raise Conflict: a solve run is working on the plan.
    """
    plan = managed_plan(session, actor, plan_id, lock=True)
    _refuse_while_solving(session, plan)
    tz = ZoneInfo(tz_name)
    query = (
        select(ShiftTemplate)
        .join(Post, Post.id == ShiftTemplate.post_id)
        .where(
            Post.branch_id == plan.branch_id,
            Post.active.is_(True),
            ShiftTemplate.active.is_(True),
        )
    )
    if plan.town_id is not None:
        query = query.where(Post.town_id == plan.town_id)
    templates = list(session.scalars(query))
    existing = {
        tuple(row)
        for row in session.execute(
            select(Shift.post_id, Shift.starts_at, Shift.ends_at).where(Shift.plan_id == plan.id)
        )
    }
    created = []
    day = plan.starts_on
    while day <= plan.ends_on:
        for template in templates:
            if template.weekday != day.weekday():
                continue
            start = datetime.combine(day, template.start_time, tz)
            end_day = day + timedelta(days=1) if template.end_time < template.start_time else day
            end = datetime.combine(end_day, template.end_time, tz)
            key = (template.post_id, start.astimezone(UTC), end.astimezone(UTC))
            if key in existing:
                continue
            existing.add(key)
            created.append(
                Shift(
                    plan_id=plan.id,
                    post_id=template.post_id,
                    starts_at=key[1],
                    ends_at=key[2],
                    kind=template.kind,
                    headcount=template.headcount,
                    skills=dict(template.skills or {}),
                    leader_required=template.leader_required,
                )
            )
        day += timedelta(days=1)
    session.add_all(created)
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "plan.generate_shifts",
        "plan",
        plan.id,
        after={"created": len(created), "templates": len(templates)},
    )
    session.commit()
    return created


def move_shift(
    session: Session,
    actor: Actor,
    plan_id: int,
    shift_id: int,
    data: Mapping[str, Any],
    tz_name: str,
) -> Shift:
    """Move a shift in time. Its published volunteers keep their assignments until the next
    publish, which tells them of the new time (or re-solving moves them to someone else).

    :raise NotFound: no such shift in the plan. :raise ValidationFailed: outside the plan.
    """
    plan = managed_plan(session, actor, plan_id, lock=True)
    _refuse_while_solving(session, plan)
    shift = session.scalar(select(Shift).where(Shift.id == shift_id, Shift.plan_id == plan.id))
    require_visible(shift is not None, "shift")
    assert shift is not None
    problem = _check_shift_fits(plan, shift.post, data["starts_at"], ZoneInfo(tz_name))
    if problem:
        raise ValidationFailed(problem, errors={"starts_at": [problem]})
    before = {"starts_at": shift.starts_at.isoformat(), "ends_at": shift.ends_at.isoformat()}
    shift.starts_at = data["starts_at"].astimezone(UTC)
    shift.ends_at = data["ends_at"].astimezone(UTC)
    # Proposals are not published yet: they simply follow the shift.
    for assignment in session.scalars(
        select(Assignment).where(
            Assignment.shift_id == shift.id, Assignment.status == AssignmentStatus.PROPOSED
        )
    ):
        assignment.starts_at, assignment.ends_at = shift.starts_at, shift.ends_at
    audit.record(
        session,
        actor.member_id,
        "shift.move",
        "shift",
        shift.id,
        before=before,
        after={"starts_at": shift.starts_at.isoformat(), "ends_at": shift.ends_at.isoformat()},
        reason=data.get("reason"),
    )
    session.commit()
    return shift


def list_shifts(session: Session, actor: Actor, plan_id: int) -> list[Shift]:
    """:raise NotFound: see `visible_plan`."""
    plan = visible_plan(session, actor, plan_id)
    return list(
        session.scalars(
            select(Shift)
            .options(joinedload(Shift.post))
            .where(Shift.plan_id == plan.id)
            .order_by(Shift.starts_at, Shift.id)
        )
    )


# ------------------------------------------------------------------- assignments


def assignment_query(
    session: Session, actor: Actor, plan_id: int, filters: Mapping[str, Any]
) -> Select[Any]:
    """The plan's assignments, filtered by shift, town (of the post), member or status.

    :raise NotFound: see `visible_plan`.
    """
    plan = visible_plan(session, actor, plan_id)
    query = (
        select(Assignment)
        .options(joinedload(Assignment.shift).joinedload(Shift.post), joinedload(Assignment.member))
        .where(Assignment.plan_id == plan.id)
        .order_by(Assignment.starts_at, Assignment.id)
    )
    if filters.get("shift") is not None:
        query = query.where(Assignment.shift_id == filters["shift"])
    if filters.get("member") is not None:
        query = query.where(Assignment.member_id == filters["member"])
    if filters.get("status") is not None:
        query = query.where(Assignment.status == AssignmentStatus(filters["status"]))
    if filters.get("town") is not None:
        query = query.where(
            Assignment.shift_id.in_(
                select(Shift.id)
                .join(Post, Post.id == Shift.post_id)
                .where(Shift.plan_id == plan.id, Post.town_id == filters["town"])
            )
        )
    return query


@dataclass(frozen=True, slots=True)
class _Change:
    add: tuple[tuple[int, int], ...] = ()  # (member, shift)
    remove: tuple[int, ...] = ()  # assignment ids


def _roster_pairs(session: Session, plan_id: int, member_ids: Collection[int]) -> list[Any]:
    return list(
        session.execute(
            select(Assignment.id, Assignment.member_id, Assignment.shift_id).where(
                Assignment.plan_id == plan_id,
                Assignment.member_id.in_(list(member_ids)),
                Assignment.status.in_(ROSTER_STATUSES),
                Assignment.pending_removal.is_(False),
            )
        ).all()
    )


def violations_of(
    session: Session, plan: Plan, change: _Change, settings: BuilderSettings
) -> list[dict[str, Any]]:
    """The hard rules the roster would break after `change`, for the volunteers it touches.

    :raise ValidationFailed: an added member is not an active member of the plan's branch.
    """
    members = {member for member, _ in change.add}
    built = build_problem(session, plan, settings, member_ids=members)
    known = {v.id for v in built.problem.volunteers}
    for member, _ in change.add:
        if BuiltProblem.volunteer_key(member) not in known:
            raise ValidationFailed(
                "That volunteer is not an active member of this plan's branch.",
                errors={"member": ["Not an active member of this branch."]},
            )
    roster = _roster_pairs(session, plan.id, members)
    pairs = [
        Pair(BuiltProblem.volunteer_key(m), BuiltProblem.shift_key(s))
        for a, m, s in roster
        if a not in change.remove
    ]
    pairs += [Pair(BuiltProblem.volunteer_key(m), BuiltProblem.shift_key(s)) for m, s in change.add]
    # Taking a touched volunteer off their accepted (pinned) shift is the change itself (a
    # swap between two volunteers), not a broken pin.
    released = {
        (BuiltProblem.volunteer_key(m), BuiltProblem.shift_key(s))
        for a, m, s in roster
        if a in change.remove
    }
    report = check(built.problem, pairs)
    found = [
        {
            "rule": v.rule,
            "message": v.message,
            "shifts": [BuiltProblem.shift_id(s) for s in v.shifts],
        }
        for v in report.violations
        if v.volunteer is not None
        and not (v.rule == "pinned" and (v.volunteer, v.shifts[0]) in released)
    ]
    for member, shift_id in change.add:
        shift = session.get_one(Shift, shift_id)
        taken = session.scalar(
            select(func.count(Assignment.id)).where(
                Assignment.shift_id == shift_id,
                Assignment.status.in_(ROSTER_STATUSES),
                Assignment.pending_removal.is_(False),
                Assignment.id.not_in(list(change.remove) or [0]),
            )
        )
        if (taken or 0) + 1 > shift.headcount:
            found.append(
                {
                    "rule": "capacity",
                    "message": f"shift {shift_id} already has its {shift.headcount} people",
                    "shifts": [shift_id],
                }
            )
        if any(s == shift_id for _, _, s in _roster_pairs(session, plan.id, [member])):
            raise Conflict("That volunteer is already on this shift.")
    return found


def _refuse_or_override(
    violations: list[dict[str, Any]], override: bool, reason: str | None
) -> None:
    """:raise Conflict: with the checker's reasons, unless overridden."""
    if violations and not override:
        raise Conflict(
            "The change breaks hard rules: "
            + "; ".join(v["message"] for v in violations)
            + ". Send override: true with a reason to make it anyway.",
            extra={"violations": violations},
        )


def _shift_in_plan(session: Session, plan: Plan, shift_id: int) -> Shift:
    shift = session.scalar(select(Shift).where(Shift.id == shift_id, Shift.plan_id == plan.id))
    if shift is None:
        raise ValidationFailed(
            "No such shift in this plan.", errors={"shift": ["Not a shift of this plan."]}
        )
    return shift


def _assignment_in_plan(session: Session, plan: Plan, assignment_id: int) -> Assignment:
    assignment = session.scalar(
        select(Assignment).where(Assignment.id == assignment_id, Assignment.plan_id == plan.id)
    )
    if assignment is None or assignment.status not in ROSTER_STATUSES:
        raise NotFound("No such assignment in this plan's roster.")
    return assignment


def _member_exists(session: Session, member_id: int) -> None:
    if session.get(Member, member_id) is None:
        raise ValidationFailed("No such member.", errors={"member": ["Unknown member."]})


def add_assignment(
    session: Session, actor: Actor, plan_id: int, data: Mapping[str, Any], settings: BuilderSettings
) -> Assignment:
    """Put a volunteer on a shift by hand (proposed until the next publish).

    :raise Conflict: the checker's violations, unless `override` (then audited with the reason).
    """
    plan = managed_plan(session, actor, plan_id, lock=True)
    _refuse_while_solving(session, plan)
    shift = _shift_in_plan(session, plan, data["shift"])
    _member_exists(session, data["member"])
    violations = violations_of(session, plan, _Change(add=((data["member"], shift.id),)), settings)
    _refuse_or_override(violations, data["override"], data.get("reason"))
    assignment = Assignment(
        plan_id=plan.id,
        shift_id=shift.id,
        member_id=data["member"],
        status=AssignmentStatus.PROPOSED,
        source=AssignmentSource.MANUAL,
        starts_at=shift.starts_at,
        ends_at=shift.ends_at,
        pending_removal=False,
    )
    session.add(assignment)
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "assignment.add_override" if violations else "assignment.add",
        "assignment",
        assignment.id,
        after={"member": assignment.member_id, "shift": shift.id, "violations": violations},
        reason=data.get("reason"),
    )
    session.commit()
    return assignment


def _take_off(session: Session, assignment: Assignment) -> None:
    """A proposal is withdrawn now; a published assignment is cancelled by the next publish."""
    if assignment.status == AssignmentStatus.PROPOSED:
        assignment.status = AssignmentStatus.CANCELLED
    else:
        assignment.pending_removal = True


def remove_assignment(
    session: Session, actor: Actor, plan_id: int, assignment_id: int, reason: str | None
) -> Assignment:
    """Take a volunteer off a shift. Removing never breaks a hard rule, so it is not checked.

    :raise NotFound: no such assignment in the plan's roster.
    """
    plan = managed_plan(session, actor, plan_id, lock=True)
    _refuse_while_solving(session, plan)
    assignment = _assignment_in_plan(session, plan, assignment_id)
    before = {"status": assignment.status.value, "member": assignment.member_id}
    _take_off(session, assignment)
    audit.record(
        session,
        actor.member_id,
        "assignment.remove",
        "assignment",
        assignment.id,
        before=before,
        after={"status": assignment.status.value, "pending_removal": assignment.pending_removal},
        reason=reason,
    )
    session.commit()
    return assignment


def swap_assignment(
    session: Session,
    actor: Actor,
    plan_id: int,
    assignment_id: int,
    data: Mapping[str, Any],
    settings: BuilderSettings,
) -> Assignment:
    """Give an assignment's shift to another volunteer.

    :return: the new (proposed) Assignment. :raise Conflict: the checker's violations for the
        incoming volunteer, unless overridden.
    """
    plan = managed_plan(session, actor, plan_id, lock=True)
    _refuse_while_solving(session, plan)
    old = _assignment_in_plan(session, plan, assignment_id)
    _member_exists(session, data["member"])
    if data["member"] == old.member_id:
        raise ValidationFailed(
            "That volunteer already has this shift.", errors={"member": ["Same volunteer."]}
        )
    change = _Change(add=((data["member"], old.shift_id),), remove=(old.id,))
    violations = violations_of(session, plan, change, settings)
    _refuse_or_override(violations, data["override"], data.get("reason"))
    _take_off(session, old)
    new = Assignment(
        plan_id=plan.id,
        shift_id=old.shift_id,
        member_id=data["member"],
        status=AssignmentStatus.PROPOSED,
        source=AssignmentSource.MANUAL,
        starts_at=old.shift.starts_at,
        ends_at=old.shift.ends_at,
        pending_removal=False,
    )
    session.add(new)
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "assignment.swap_override" if violations else "assignment.swap",
        "assignment",
        new.id,
        before={"assignment": old.id, "member": old.member_id},
        after={"member": new.member_id, "shift": new.shift_id, "violations": violations},
        reason=data.get("reason"),
    )
    session.commit()
    return new
