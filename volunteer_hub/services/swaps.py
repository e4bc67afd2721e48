"""Shift swaps between two volunteers of one plan.

A volunteer proposes to give one of their published (or accepted) assignments to another
volunteer, either in exchange for one of that volunteer's assignments in the same plan or as a
plain hand-over. The other accepts or declines. On acceptance the swap is checked with the
scheduling checker exactly as a coordinator's manual change is (`plans.violations_of`): if
every hard rule holds it is made at once (both old assignments cancelled, two new accepted
ones created, reminders moved), otherwise it is refused with the checker's reasons. Nothing
can be swapped less than the drop cut-off (3 h by default) before either shift starts. Every
step is audited and both volunteers get pushes.

Acceptance locks the plan row (as publishing and a coordinator's changes do) and then the two
assignments, so a swap never interleaves with a publish or another swap of the same shifts;
on PostgreSQL the exclusion constraint still guards against overlaps with other plans.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from sqlalchemy import Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from notifications.messages import shift_params
from volunteer_hub.auth.policy import (
    Actor,
    can_view_swap_request,
    may_answer_swap_request,
    may_cancel_swap_request,
    require,
    require_visible,
)
from volunteer_hub.database import is_postgresql
from volunteer_hub.errors import Conflict, NotFound, ValidationFailed
from volunteer_hub.models import Member, MemberBranch
from volunteer_hub.models.members import MemberStatus
from volunteer_hub.models.plans import (
    ACTIVE_STATUSES,
    Assignment,
    AssignmentStatus,
    Plan,
    Shift,
    SwapRequest,
    SwapStatus,
)
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit, outbox
from volunteer_hub.services.hours import federation_tz
from volunteer_hub.services.my_shifts import VolunteerRules
from volunteer_hub.services.outbox import BulkPush
from volunteer_hub.services.pagination import paginate
from volunteer_hub.services.plans import _Change, _refuse_while_solving, violations_of
from volunteer_hub.services.publish import _CANCELLED_WITH_SHIFT, reminder_pushes, shift_info
from volunteer_hub.services.quiet_hours import QuietHours, held

OUTCOME_TEXT = {
    SwapStatus.APPROVED: "已生效",
    SwapStatus.DECLINED: "被拒绝",
    SwapStatus.CANCELLED: "已撤回",
    SwapStatus.REFUSED: "未通过",
}


# ------------------------------------------------------------------------ reading


def _locked(query: Select[Any]) -> Select[Any]:
    """FOR UPDATE on PostgreSQL (SQLite's BEGIN IMMEDIATE already serialises writers), and the
    row re-read even if the session holds it."""
    if is_postgresql():
        query = query.with_for_update()
    return query.execution_options(populate_existing=True)


def _lock_plan(session: Session, plan_id: int) -> Plan:
    """Every swap path locks the plan first, then the request, then the assignments: the
    order publishing and the coordinator's changes use, so no two of them wait on each
    other in a circle."""
    plan = session.scalar(_locked(select(Plan).where(Plan.id == plan_id)))
    assert plan is not None
    return plan


def _with_details(query: Select[Any]) -> Select[Any]:
    return query.options(
        joinedload(SwapRequest.requester),
        joinedload(SwapRequest.target),
        joinedload(SwapRequest.requester_assignment)
        .joinedload(Assignment.shift)
        .joinedload(Shift.post),
        joinedload(SwapRequest.target_assignment)
        .joinedload(Assignment.shift)
        .joinedload(Shift.post),
    )


def _plan_scope(session: Session, plan_id: int) -> tuple[int, int | None]:
    """The plan's branch and town (None: a plan of the whole branch)."""
    plan = session.get_one(Plan, plan_id)
    return plan.branch_id, plan.town_id


def get_swap(session: Session, actor: Actor, swap_id: int) -> SwapRequest:
    """:raise NotFound: no such request, or the caller is neither party nor a coordinator who
    sees the plan (of its branch, and of its town for a town-scoped grant)."""
    swap = session.scalar(_with_details(select(SwapRequest).where(SwapRequest.id == swap_id)))
    require_visible(
        swap is not None
        and can_view_swap_request(
            actor, swap.requester_id, swap.target_id, *_plan_scope(session, swap.plan_id)
        ),
        "swap request",
    )
    assert swap is not None
    return swap


def my_swaps(
    session: Session,
    member_id: int,
    *,
    role: str | None,
    status: str | None,
    page: int,
    page_size: int,
) -> dict[str, Any]:
    """The caller's swap requests, newest first: those they made (`role=requester`), those
    made to them (`role=target`), or both."""
    if role == "requester":
        mine = SwapRequest.requester_id == member_id
    elif role == "target":
        mine = SwapRequest.target_id == member_id
    else:
        mine = or_(SwapRequest.requester_id == member_id, SwapRequest.target_id == member_id)
    query = _with_details(select(SwapRequest).where(mine)).order_by(SwapRequest.id.desc())
    if status is not None:
        query = query.where(SwapRequest.status == SwapStatus(status))
    return paginate(session, query, page, page_size)


# ------------------------------------------------------------------------ checks


def _own_assignment(session: Session, member_id: int, assignment_id: int) -> Assignment:
    """The caller's published assignment, locked. :raise NotFound: not theirs or unpublished.
    :raise Conflict: not active, or being taken off by the coordinator."""
    assignment = session.scalar(_locked(select(Assignment).where(Assignment.id == assignment_id)))
    require_visible(
        assignment is not None
        and assignment.member_id == member_id
        and assignment.published_at is not None,
        "assignment",
    )
    assert assignment is not None
    _still_swappable(assignment, "Your assignment")
    return assignment


def _still_swappable(assignment: Assignment, whose: str) -> None:
    """:raise Conflict: the assignment no longer holds a volunteer's time."""
    if assignment.status not in ACTIVE_STATUSES or assignment.pending_removal:
        state = "being removed" if assignment.pending_removal else assignment.status.value
        raise Conflict(f"{whose} is {state}; only published or accepted shifts can be swapped.")


def _cutoff_problem(assignments: list[Assignment], rules: VolunteerRules, now: datetime) -> str:
    """Why it is too late to swap, or ''. Both the published time and the shift's current
    time count (a moved shift not yet re-published)."""
    starts = min(min(a.starts_at, a.shift.starts_at) for a in assignments)
    if starts - now < rules.decline_cutoff:
        hours = rules.decline_cutoff.total_seconds() / 3600
        return (
            f"A shift of this swap starts in less than {hours:g} hours; swaps close then. "
            "Call your coordinator."
        )
    return ""


def _branch_member(session: Session, branch_id: int, member_id: int) -> bool:
    return (
        session.scalar(
            select(Member.id)
            .join(MemberBranch, MemberBranch.member_id == Member.id)
            .where(
                Member.id == member_id,
                MemberBranch.branch_id == branch_id,
                Member.status == MemberStatus.ACTIVE,
            )
        )
        is not None
    )


def _violations(
    session: Session,
    plan: Plan,
    given: Assignment,
    target_id: int,
    taken: Assignment | None,
    rules: VolunteerRules,
) -> list[dict[str, Any]]:
    """The hard rules the roster would break after the swap, as for a manual change."""
    add = [(target_id, given.shift_id)]
    remove = [given.id]
    if taken is not None:
        add.append((given.member_id, taken.shift_id))
        remove.append(taken.id)
    return violations_of(session, plan, _Change(tuple(add), tuple(remove)), rules.builder)


def _describe(violations: list[dict[str, Any]]) -> str:
    return "; ".join(v["message"] for v in violations)


# ------------------------------------------------------------------------ pushes


def _shift_words(assignment: Assignment) -> dict[str, str]:
    shift = assignment.shift
    return {
        "post": shift.post.name,
        **shift_params(shift.starts_at, shift.ends_at, federation_tz()),
    }


def _slot(words: Mapping[str, str]) -> str:
    return f"{words['post']} {words['date']} {words['start']}-{words['end']}"


def _first_start(swap: SwapRequest) -> datetime:
    """When the earlier of the swap's shifts starts: what decides whether its pushes wait
    for the end of quiet hours."""
    starts = [swap.requester_assignment.starts_at]
    if swap.target_assignment is not None:
        starts.append(swap.target_assignment.starts_at)
    return min(starts)


def _push_request(session: Session, swap: SwapRequest, quiet: QuietHours | None) -> None:
    given = _shift_words(swap.requester_assignment)
    params = {
        "swap_request_id": str(swap.id),
        "requester": swap.requester.name,
        **given,
    }
    if swap.target_assignment is not None:
        params["in_return"] = (
            f"，并由对方接替您在{_slot(_shift_words(swap.target_assignment))}的班次"
        )
    deliver_after, visible_at = held(quiet, utcnow(), _first_start(swap))
    outbox.enqueue_bulk(
        session,
        [
            BulkPush(
                swap.target_id,
                "swap_request",
                params,
                dedupe_key=f"swap:{swap.id}:request",
                assignment_id=swap.requester_assignment_id,
                deliver_after=deliver_after,
                visible_at=visible_at,
            )
        ],
    )


def _withdraw_request_push(session: Session, swap: SwapRequest) -> None:
    """The request has left `pending`: cancel its `swap_request` push still held for quiet
    hours (and its inbox item not yet shown), so the other volunteer is not asked to answer a
    request that is settled. Only this request's row, by its dedupe key; no commit."""
    outbox.cancel_pending(session, dedupe_key=f"swap:{swap.id}:request")


def _push_decision(
    session: Session,
    swap: SwapRequest,
    recipients: Mapping[int, str],
    extra: list[BulkPush],
    quiet: QuietHours | None,
) -> None:
    """`swap_decided` to each recipient with their own detail line (held for quiet hours
    like any push about a shift), plus `extra` pushes."""
    words = _shift_words(swap.requester_assignment)
    outcome = OUTCOME_TEXT[swap.status]
    deliver_after, visible_at = held(quiet, utcnow(), _first_start(swap))
    pushes = [
        BulkPush(
            member_id,
            "swap_decided",
            {"swap_request_id": str(swap.id), "outcome": outcome, "detail": detail, **words},
            dedupe_key=f"swap:{swap.id}:{swap.status.value}:{member_id}",
            assignment_id=swap.requester_assignment_id,
            deliver_after=deliver_after,
            visible_at=visible_at,
        )
        for member_id, detail in recipients.items()
    ]
    outbox.enqueue_bulk(session, pushes + extra)


# ------------------------------------------------------------------------ propose


def propose(
    session: Session,
    member_id: int,
    assignment_id: int,
    data: Mapping[str, Any],
    rules: VolunteerRules,
) -> SwapRequest:
    """Ask another volunteer to take the caller's shift: for one of theirs (`assignment`) or
    as a hand-over (`member`). Checked now, so a swap that could never be made is refused
    before anyone is asked, and again when the other accepts.

    :param data: exactly one of `assignment` (the other's assignment in the same plan) or
        `member` (who takes the shift), and an optional `message`.
    :return: the pending SwapRequest (the other volunteer is pushed).
    :raise NotFound: the caller's assignment, the other assignment or the member is not one
        the caller may swap with (not theirs, another plan, not in the branch).
    :raise ValidationFailed: swapping with oneself.
    :raise Conflict: past the cut-off, a shift not active, already a pending request for this
        shift, or the checker's violations (in `violations`).
    """
    now = utcnow()
    plan_id = session.scalar(select(Assignment.plan_id).where(Assignment.id == assignment_id))
    plan = _lock_plan(session, plan_id) if plan_id is not None else None
    given = _own_assignment(session, member_id, assignment_id)
    assert plan is not None
    taken: Assignment | None = None
    if data.get("assignment") is not None:
        taken = session.scalar(
            _locked(select(Assignment).where(Assignment.id == data["assignment"]))
        )
        require_visible(
            taken is not None
            and taken.plan_id == plan.id
            and taken.published_at is not None
            and taken.status in ACTIVE_STATUSES,
            "assignment",
        )
        assert taken is not None
        if taken.member_id == member_id:
            raise ValidationFailed(
                "That is your own assignment.", errors={"assignment": ["Your own assignment."]}
            )
        _still_swappable(taken, "The other assignment")
        target_id = taken.member_id
    else:
        target_id = int(data["member"])
        if target_id == member_id:
            raise ValidationFailed(
                "You cannot hand a shift to yourself.", errors={"member": ["That is you."]}
            )
        if not _branch_member(session, plan.branch_id, target_id):
            raise NotFound("No such member in this plan's branch.")
    late = _cutoff_problem([given] + ([taken] if taken else []), rules, now)
    if late:
        raise Conflict(late)
    pending = session.scalar(
        select(SwapRequest.id).where(
            SwapRequest.requester_assignment_id == given.id,
            SwapRequest.status == SwapStatus.PENDING,
        )
    )
    if pending is not None:
        raise Conflict(
            f"Swap request {pending} for this shift is still open; cancel it first.",
            extra={"swap_request": pending},
        )
    violations = _violations(session, plan, given, target_id, taken, rules)
    if violations:
        raise Conflict(
            f"This swap would break hard rules: {_describe(violations)}.",
            extra={"violations": violations},
        )
    swap = SwapRequest(
        plan_id=plan.id,
        requester_id=member_id,
        requester_assignment_id=given.id,
        target_id=target_id,
        target_assignment_id=taken.id if taken else None,
        status=SwapStatus.PENDING,
        message=(data.get("message") or "").strip() or None,
        created_at=now,
    )
    session.add(swap)
    session.flush()
    audit.record(
        session,
        member_id,
        "swap.propose",
        "swap_request",
        swap.id,
        after={
            "assignment": given.id,
            "target": target_id,
            "target_assignment": swap.target_assignment_id,
        },
        reason=swap.message,
    )
    session.refresh(swap)
    _push_request(session, swap, rules.quiet)
    session.commit()
    return swap


# ------------------------------------------------------------------------ answer


def _party_locked(session: Session, actor: Actor, swap_id: int) -> SwapRequest:
    """The request, its plan and then itself locked, if the actor is one of its two parties.
    :raise NotFound: no such request, or the actor is neither party."""
    plan_id = session.scalar(select(SwapRequest.plan_id).where(SwapRequest.id == swap_id))
    if plan_id is not None:
        _lock_plan(session, plan_id)
    swap = session.scalar(_locked(select(SwapRequest).where(SwapRequest.id == swap_id)))
    require_visible(
        swap is not None and actor.member_id in (swap.requester_id, swap.target_id),
        "swap request",
    )
    assert swap is not None
    return swap


def _answerable(session: Session, actor: Actor, swap_id: int) -> SwapRequest:
    """The request locked, for its target. :raise NotFound: not a party. :raise Forbidden:
    the requester (who may only cancel)."""
    swap = _party_locked(session, actor, swap_id)
    require(
        may_answer_swap_request(actor, swap.target_id),
        "Only the volunteer who was asked answers a swap request; you may cancel yours.",
    )
    return swap


def _refuse(
    session: Session,
    swap: SwapRequest,
    reason: str,
    violations: list[dict[str, Any]] | None,
    quiet: QuietHours | None,
) -> NoReturn:
    """Record that a swap both agreed to cannot be made, tell both, commit, then raise.

    :raise Conflict: always, with the reason (and the violations)."""
    swap.status = SwapStatus.REFUSED
    swap.refusal = reason
    swap.violations = violations
    swap.decided_at = utcnow()
    _withdraw_request_push(session, swap)
    audit.record(
        session,
        swap.target_id,
        "swap.refuse",
        "swap_request",
        swap.id,
        before={"status": "pending"},
        after={"status": "refused", "violations": violations or []},
        reason=reason,
    )
    detail = "未能生效：班次已变动、临近开始或违反排班规则，请联系协调员。"
    _push_decision(session, swap, {swap.requester_id: detail, swap.target_id: detail}, [], quiet)
    session.commit()
    raise Conflict(
        f"The swap cannot be made: {reason}",
        extra={"swap_request": swap.id, "violations": violations or []},
    )


def accept(session: Session, actor: Actor, swap_id: int, rules: VolunteerRules) -> SwapRequest:
    """The asked volunteer agrees: the swap is checked and, if every rule holds, made.
    Accepting an approved request again is harmless.

    :return: the approved SwapRequest with its new assignments.
    :raise NotFound: not a party. :raise Forbidden: the requester.
    :raise Conflict: no longer pending; a solve run is working on the plan (try again); or it
        cannot be made (past the cut-off, a shift changed, a hard rule): the request is then
        `refused` with the reason, both are told, and the 409 carries the `violations`.
    """
    swap = _answerable(session, actor, swap_id)
    if swap.status == SwapStatus.APPROVED:
        session.commit()
        return get_swap(session, actor, swap.id)
    if swap.status != SwapStatus.PENDING:
        raise Conflict(f"This swap request is {swap.status.value}.")
    now = utcnow()
    plan = session.get_one(Plan, swap.plan_id)  # locked by `_answerable`
    _refuse_while_solving(session, plan)
    given = session.scalar(
        _locked(select(Assignment).where(Assignment.id == swap.requester_assignment_id))
    )
    taken = None
    if swap.target_assignment_id is not None:
        taken = session.scalar(
            _locked(select(Assignment).where(Assignment.id == swap.target_assignment_id))
        )
    assert given is not None
    parts = [given] + ([taken] if taken is not None else [])
    if (
        any(a.status not in ACTIVE_STATUSES or a.pending_removal for a in parts)
        or given.member_id != swap.requester_id
        or (taken is not None and taken.member_id != swap.target_id)
    ):
        changed = "one of the shifts was changed or cancelled meanwhile."
        _refuse(session, swap, changed, None, rules.quiet)
    late = _cutoff_problem(parts, rules, now)
    if late:
        _refuse(session, swap, late, None, rules.quiet)
    violations = _violations(session, plan, given, swap.target_id, taken, rules)
    if violations:
        _refuse(
            session,
            swap,
            f"it would break hard rules: {_describe(violations)}.",
            violations,
            rules.quiet,
        )
    try:
        _make(session, swap, given, taken, rules, now)
    except IntegrityError:
        # PostgreSQL's exclusion constraint: someone's new shift elsewhere overlaps meanwhile.
        session.rollback()
        raise Conflict("The swap would double-book a volunteer; try again.") from None
    session.commit()
    return get_swap(session, actor, swap.id)


def _make(
    session: Session,
    swap: SwapRequest,
    given: Assignment,
    taken: Assignment | None,
    rules: VolunteerRules,
    now: datetime,
) -> None:
    """Cancel the old assignments (and their pending pushes), then create the new accepted
    ones (in that order, so the exclusion constraint never sees a volunteer on both), move
    reminders, audit, push."""
    old = [given] + ([taken] if taken is not None else [])
    for assignment in old:
        assignment.status = AssignmentStatus.CANCELLED
        assignment.updated_at = now
        # Its reminders, and a push about it still held for quiet hours (a published or
        # changed shift): either would tell its old holder of a shift no longer theirs.
        outbox.cancel_pending(session, assignment_id=assignment.id, kinds=_CANCELLED_WITH_SHIFT)
    session.flush()
    moves = [(given, swap.target_id)] + ([(taken, swap.requester_id)] if taken else [])
    created = []
    for assignment, member_id in moves:
        # The times as published: a moved shift is still told by the next publish.
        created.append(
            Assignment.taken_over(
                assignment.plan_id,
                assignment.shift_id,
                member_id,
                assignment.starts_at,
                assignment.ends_at,
                now,
            )
        )
    session.add_all(created)
    session.flush()
    swap.status = SwapStatus.APPROVED
    swap.decided_at = now
    _withdraw_request_push(session, swap)
    swap.target_new_assignment_id = created[0].id
    swap.requester_new_assignment_id = created[1].id if len(created) > 1 else None
    _close_others(session, swap, [a.id for a in old], now, rules.quiet)
    audit.record(
        session,
        swap.target_id,
        "swap.approve",
        "swap_request",
        swap.id,
        before={
            "assignments": [{"id": a.id, "member": a.member_id, "shift": a.shift_id} for a in old]
        },
        after={
            "assignments": [
                {"id": a.id, "member": a.member_id, "shift": a.shift_id} for a in created
            ]
        },
    )
    reminders: list[BulkPush] = []
    for (source, _), assignment in zip(moves, created, strict=True):
        shift = source.shift
        info = shift_info(shift.id, shift.starts_at, shift.ends_at, shift.post.name)
        reminders += reminder_pushes(
            assignment.id,
            assignment.member_id,
            info,
            rules.reminder_offsets_h,
            now,
            quiet=rules.quiet,
        )
    names = {swap.requester_id: swap.requester.name, swap.target_id: swap.target.name}
    given_slot = _slot(_shift_words(given))
    if taken is not None:
        taken_slot = _slot(_shift_words(taken))
        details = {
            swap.requester_id: f"{names[swap.target_id]}接替您的班次，您改为{taken_slot}。",
            swap.target_id: f"您已接替{given_slot}，您原来的{taken_slot}由"
            f"{names[swap.requester_id]}接替。",
        }
    else:
        details = {
            swap.requester_id: f"该班次已由{names[swap.target_id]}接替，您无需到岗。",
            swap.target_id: f"您已接替{given_slot}，请按时到岗。",
        }
    _push_decision(session, swap, details, reminders, rules.quiet)


@dataclass(frozen=True)
class _Refusal:
    """Someone's step that makes the open requests about some shifts impossible: who took it
    (`actor`, and the `informed`, who know of it and are not told), the refusal stored and
    audited (`reason`, `because`), and the line the request's other parties are pushed."""

    actor: int
    reason: str
    because: dict[str, Any]
    informed: frozenset[int]
    detail: str


def _close_others(
    session: Session,
    swap: SwapRequest,
    assignment_ids: list[int],
    now: datetime,
    quiet: QuietHours | None,
) -> None:
    """Other open requests about the swapped shifts can no longer be made."""
    step = _Refusal(
        actor=swap.target_id,
        reason=f"One of its shifts changed hands in swap request {swap.id}.",
        because={"because_of": swap.id},
        informed=frozenset({swap.requester_id, swap.target_id}),
        detail="其中一个班次已通过另一换班请求易手，本请求自动失效。",
    )
    _refuse_open(session, assignment_ids, step, now, quiet)


def refuse_open_about_declined(
    session: Session, assignment: Assignment, now: datetime, quiet: QuietHours | None
) -> None:
    """The volunteer gave the shift back (`my_shifts.decline`): open requests offering it or
    asking for it can no longer be made, and are refused as when a shift changes hands in
    another swap (no commit)."""
    step = _Refusal(
        actor=assignment.member_id,
        reason="One of its shifts was given back by its volunteer.",
        because={"declined_assignment": assignment.id},
        informed=frozenset({assignment.member_id}),
        detail="其中一个班次已被其志愿者退回，本请求自动失效。",
    )
    _refuse_open(session, [assignment.id], step, now, quiet)


def refuse_open_about_removed(
    session: Session,
    assignment_ids: list[int],
    actor_id: int,
    now: datetime,
    quiet: QuietHours | None,
) -> None:
    """A publish took these assignments off their volunteers (`publish.publish_plan`): open
    requests offering them or asking for them can no longer be made, and are refused at once
    with both parties told, rather than when one of them tries to accept (no commit)."""
    step = _Refusal(
        actor=actor_id,
        reason="One of its shifts was cancelled by the coordinator.",
        because={"removed_by_publish": True},
        informed=frozenset(),
        detail="其中一个班次已被协调员取消，本请求自动失效。",
    )
    _refuse_open(session, assignment_ids, step, now, quiet)


def _refuse_open(
    session: Session,
    assignment_ids: list[int],
    step: _Refusal,
    now: datetime,
    quiet: QuietHours | None,
) -> None:
    """Refuse the pending requests about `assignment_ids` (either side), audited, their held
    `swap_request` pushes cancelled, and their other parties told (`swap_decided`)."""
    for other in session.scalars(
        _with_details(
            select(SwapRequest).where(
                SwapRequest.status == SwapStatus.PENDING,
                or_(
                    SwapRequest.requester_assignment_id.in_(assignment_ids),
                    SwapRequest.target_assignment_id.in_(assignment_ids),
                ),
            )
        )
    ).unique():
        other.status = SwapStatus.REFUSED
        other.refusal = step.reason
        other.decided_at = now
        _withdraw_request_push(session, other)
        audit.record(
            session,
            step.actor,
            "swap.refuse",
            "swap_request",
            other.id,
            before={"status": "pending"},
            after={"status": "refused", **step.because},
            reason=other.refusal,
        )
        parties = (other.requester_id, other.target_id)
        recipients = {m: step.detail for m in parties if m not in step.informed}
        if recipients:
            _push_decision(session, other, recipients, [], quiet)


def decline(
    session: Session,
    actor: Actor,
    swap_id: int,
    reason: str | None,
    quiet: QuietHours | None,
) -> SwapRequest:
    """The asked volunteer says no; declining twice is harmless.

    :raise NotFound: not a party. :raise Forbidden: the requester.
    :raise Conflict: no longer pending.
    """
    swap = _answerable(session, actor, swap_id)
    if swap.status == SwapStatus.DECLINED:
        session.commit()
        return get_swap(session, actor, swap.id)
    if swap.status != SwapStatus.PENDING:
        raise Conflict(f"This swap request is {swap.status.value}.")
    swap.status = SwapStatus.DECLINED
    swap.decided_at = utcnow()
    _withdraw_request_push(session, swap)
    swap.refusal = (reason or "").strip() or None
    audit.record(
        session,
        actor.member_id,
        "swap.decline",
        "swap_request",
        swap.id,
        before={"status": "pending"},
        after={"status": "declined"},
        reason=swap.refusal,
    )
    detail = f"{swap.target.name}没有同意。" + (f"理由：{swap.refusal}" if swap.refusal else "")
    _push_decision(session, swap, {swap.requester_id: detail}, [], quiet)
    session.commit()
    return get_swap(session, actor, swap.id)


def cancel(session: Session, actor: Actor, swap_id: int, quiet: QuietHours | None) -> SwapRequest:
    """The requester withdraws a pending request; cancelling twice is harmless.

    :raise NotFound: not a party. :raise Forbidden: the asked volunteer (who declines).
    :raise Conflict: already answered.
    """
    swap = _party_locked(session, actor, swap_id)
    require(
        may_cancel_swap_request(actor, swap.requester_id),
        "Only the volunteer who asked cancels a swap request; you may decline it.",
    )
    if swap.status == SwapStatus.CANCELLED:
        session.commit()
        return get_swap(session, actor, swap.id)
    if swap.status != SwapStatus.PENDING:
        raise Conflict(f"This swap request is {swap.status.value}.")
    swap.status = SwapStatus.CANCELLED
    swap.decided_at = utcnow()
    _withdraw_request_push(session, swap)
    audit.record(
        session,
        actor.member_id,
        "swap.cancel",
        "swap_request",
        swap.id,
        before={"status": "pending"},
        after={"status": "cancelled"},
    )
    _push_decision(session, swap, {swap.target_id: f"{swap.requester.name}撤回了请求。"}, [], quiet)
    session.commit()
    return get_swap(session, actor, swap.id)
