"""Solve runs: queued by a coordinator, claimed and run by a worker, never left `running`.

A worker claims a queued run (`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite the claim's
UPDATE runs inside BEGIN IMMEDIATE, so two workers cannot both take a row), heartbeats while
the solver works, and stores the roster as proposed assignments. A run whose heartbeat goes
stale (its worker was killed) is queued again until it has used its attempts, then failed
with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from scheduling.problem import Solution
from volunteer_hub.auth.policy import Actor, require_visible
from volunteer_hub.database import is_postgresql
from volunteer_hub.errors import Conflict
from volunteer_hub.models.plans import (
    ACTIVE_STATUSES,
    Assignment,
    AssignmentSource,
    AssignmentStatus,
    Plan,
    PlanStatus,
    Shift,
    SolveRun,
    SolveRunStatus,
)
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import audit
from volunteer_hub.services.plans import ROSTER_STATUSES, managed_plan, visible_plan
from volunteer_hub.services.problem_builder import BuiltProblem

OPEN_STATUSES = (SolveRunStatus.QUEUED, SolveRunStatus.RUNNING)


def request_solve(session: Session, actor: Actor, plan_id: int, time_limit_s: int) -> SolveRun:
    """Queue a solve run for the plan.

    :return: the committed run (status queued).
    :raise Conflict: the plan has no shifts, or a run is already queued or running.
    """
    plan = managed_plan(session, actor, plan_id, lock=True)
    open_run = session.scalar(
        select(SolveRun.id).where(SolveRun.plan_id == plan.id, SolveRun.status.in_(OPEN_STATUSES))
    )
    if open_run is not None:
        raise Conflict(
            f"Solve run {open_run} is already working on this plan.", extra={"solve_run": open_run}
        )
    if session.scalar(select(Shift.id).where(Shift.plan_id == plan.id).limit(1)) is None:
        raise Conflict("The plan has no shifts to staff yet.")
    run = SolveRun(
        plan_id=plan.id,
        status=SolveRunStatus.QUEUED,
        time_limit_s=time_limit_s,
        requested_by=actor.member_id,
        attempts=0,
        cancel_requested=False,
    )
    session.add(run)
    plan.status = PlanStatus.SOLVING
    session.flush()
    audit.record(
        session,
        actor.member_id,
        "plan.solve",
        "plan",
        plan.id,
        after={"solve_run": run.id, "time_limit_s": time_limit_s},
    )
    session.commit()
    return run


def visible_run(session: Session, actor: Actor, plan_id: int, run_id: int) -> SolveRun:
    """:raise NotFound: no such run of a plan the actor may see."""
    plan = visible_plan(session, actor, plan_id)
    run = session.get(SolveRun, run_id)
    require_visible(run is not None and run.plan_id == plan.id, "solve run")
    assert run is not None
    return run


def _settle_plan(session: Session, plan_id: int) -> None:
    """A plan whose run ended without a roster goes back to what it was."""
    plan = session.get_one(Plan, plan_id)
    has_proposals = session.scalar(
        select(Assignment.id)
        .where(Assignment.plan_id == plan_id, Assignment.status == AssignmentStatus.PROPOSED)
        .limit(1)
    )
    if has_proposals is not None:
        plan.status = PlanStatus.SOLVED
    elif plan.version > 0:
        plan.status = PlanStatus.PUBLISHED
    else:
        plan.status = PlanStatus.DRAFT


def cancel_run(session: Session, actor: Actor, plan_id: int, run_id: int) -> SolveRun:
    """Cancel a queued run now; a running one stops at its next heartbeat and its roster is
    thrown away.

    :raise Conflict: the run has already finished.
    """
    managed_plan(session, actor, plan_id, lock=True)
    run = visible_run(session, actor, plan_id, run_id)
    if run.status not in OPEN_STATUSES:
        raise Conflict(f"The run is already {run.status.value}.")
    if run.status == SolveRunStatus.QUEUED:
        run.status = SolveRunStatus.CANCELLED
        run.finished_at = utcnow()
        _settle_plan(session, run.plan_id)
    else:
        run.cancel_requested = True
    audit.record(session, actor.member_id, "solve_run.cancel", "solve_run", run.id)
    session.commit()
    return run


# ------------------------------------------------------------------------ worker


def claim_next(session: Session, worker: str, now: datetime) -> int | None:
    """Take the oldest queued run.

    :return: its id, committed as running by `worker`, or None when nothing is queued.
    """
    query = (
        select(SolveRun.id)
        .where(SolveRun.status == SolveRunStatus.QUEUED)
        .order_by(SolveRun.id)
        .limit(1)
    )
    if is_postgresql():
        query = query.with_for_update(skip_locked=True)
    run_id = session.scalar(query)
    if run_id is None:
        session.commit()
        return None
    claimed = session.execute(
        update(SolveRun)
        .where(SolveRun.id == run_id, SolveRun.status == SolveRunStatus.QUEUED)
        .values(
            status=SolveRunStatus.RUNNING,
            claimed_by=worker,
            heartbeat_at=now,
            started_at=now,
            attempts=SolveRun.attempts + 1,
            error=None,
        )
    )
    session.commit()
    return run_id if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


def reap_stale(
    session: Session, now: datetime, stale_after: timedelta, max_attempts: int
) -> tuple[list[int], list[int]]:
    """Runs whose worker stopped heartbeating: queued again, or failed after `max_attempts`.

    :return: (requeued ids, failed ids), committed.
    """
    query = select(SolveRun).where(
        SolveRun.status == SolveRunStatus.RUNNING, SolveRun.heartbeat_at < now - stale_after
    )
    if is_postgresql():
        query = query.with_for_update(skip_locked=True)
    requeued, failed = [], []
    for run in session.scalars(query):
        silent = f"worker {run.claimed_by} stopped responding (last heartbeat {run.heartbeat_at})"
        if run.cancel_requested or run.attempts >= max_attempts:
            run.status = SolveRunStatus.CANCELLED if run.cancel_requested else SolveRunStatus.FAILED
            run.error = f"{silent}; gave up after {run.attempts} attempt(s)"
            run.finished_at = now
            _settle_plan(session, run.plan_id)
            failed.append(run.id)
        else:
            run.status = SolveRunStatus.QUEUED
            run.error = f"{silent}; queued again"
            run.claimed_by = None
            requeued.append(run.id)
    session.commit()
    return requeued, failed


def heartbeat(
    session: Session, run_id: int, worker: str, now: datetime, progress: Mapping[str, Any] | None
) -> bool:
    """Record that `worker` is alive (and the solver's progress).

    :return: True while the run is still ours and not cancelled.
    """
    values: dict[str, Any] = {"heartbeat_at": now}
    if progress:
        values["progress"] = dict(progress)
    result = session.execute(
        update(SolveRun)
        .where(
            SolveRun.id == run_id,
            SolveRun.claimed_by == worker,
            SolveRun.status == SolveRunStatus.RUNNING,
        )
        .values(**values)
    )
    cancelled = session.scalar(select(SolveRun.cancel_requested).where(SolveRun.id == run_id))
    session.commit()
    return result.rowcount == 1 and not cancelled  # type: ignore[attr-defined]


def owned_run(session: Session, run_id: int, worker: str) -> SolveRun | None:
    """The run if `worker` still holds it (a reaper may have given it to another worker)."""
    query = select(SolveRun).where(
        SolveRun.id == run_id,
        SolveRun.claimed_by == worker,
        SolveRun.status == SolveRunStatus.RUNNING,
    )
    if is_postgresql():
        query = query.with_for_update()
    return session.scalar(query)


def fail_run(session: Session, run_id: int, worker: str, error: str) -> None:
    """Mark a run failed with the reason (committed)."""
    run = owned_run(session, run_id, worker)
    if run is None:
        session.rollback()
        return
    run.status = SolveRunStatus.FAILED
    run.error = error[:2000]
    run.finished_at = utcnow()
    _settle_plan(session, run.plan_id)
    session.commit()


def _store_roster(session: Session, built: BuiltProblem, solution: Solution) -> None:
    plan_id = built.plan_id
    chosen = {
        (BuiltProblem.member_id(p.volunteer), BuiltProblem.shift_id(p.shift))
        for p in solution.assignments
    }
    in_problem = {BuiltProblem.member_id(v.id) for v in built.problem.volunteers}
    rows = session.execute(
        select(
            Assignment.id,
            Assignment.member_id,
            Assignment.shift_id,
            Assignment.status,
            Assignment.pending_removal,
        ).where(Assignment.plan_id == plan_id, Assignment.status.in_(ROSTER_STATUSES))
    ).all()
    kept: set[tuple[int, int]] = set()
    withdrawn, dropped, restored = [], [], []
    for row in rows:
        key = (row.member_id, row.shift_id)
        if key in chosen and key not in kept:
            kept.add(key)
            if row.pending_removal:
                restored.append(row.id)
        elif row.status == AssignmentStatus.PROPOSED:
            withdrawn.append(row.id)
        elif row.status in ACTIVE_STATUSES and row.member_id in in_problem:
            dropped.append(row.id)
    # A proposal nobody was told about is simply withdrawn; a published assignment the new
    # roster drops is cancelled (and its volunteer told) when the plan is next published.
    for ids, values in (
        (withdrawn, {"status": AssignmentStatus.CANCELLED}),
        (dropped, {"pending_removal": True}),
        (restored, {"pending_removal": False}),
    ):
        for start in range(0, len(ids), 5000):
            session.execute(
                update(Assignment)
                .where(Assignment.id.in_(ids[start : start + 5000]))
                .values(**values, updated_at=utcnow())
            )
    times = dict(
        (row.id, (row.starts_at, row.ends_at))
        for row in session.execute(
            select(Shift.id, Shift.starts_at, Shift.ends_at).where(Shift.plan_id == plan_id)
        )
    )
    now = utcnow()
    new = [
        {
            "plan_id": plan_id,
            "shift_id": shift_id,
            "member_id": member_id,
            "status": AssignmentStatus.PROPOSED,
            "source": AssignmentSource.SOLVER,
            "starts_at": times[shift_id][0],
            "ends_at": times[shift_id][1],
            "pending_removal": False,
            "created_at": now,
            "updated_at": now,
        }
        for member_id, shift_id in sorted(chosen - kept)
    ]
    if new:
        session.execute(insert(Assignment), new)


def finish_run(
    session: Session, run_id: int, worker: str, built: BuiltProblem, solution: Solution
) -> bool:
    """Store the roster, shortfalls and figures of a finished solve (committed).

    :return: False if the run was no longer ours, or was cancelled (nothing stored then).
    """
    run = owned_run(session, run_id, worker)
    if run is None:
        session.rollback()
        return False
    now = utcnow()
    run.finished_at = now
    if run.cancel_requested:
        run.status = SolveRunStatus.CANCELLED
        _settle_plan(session, run.plan_id)
        session.commit()
        return False
    if solution.status in ("infeasible", "unknown") and not solution.assignments:
        run.status = SolveRunStatus.FAILED
        run.solver_status = solution.status
        run.error = (
            "; ".join(solution.conflicts) or f"the solver found no roster ({solution.status})"
        )
        _settle_plan(session, run.plan_id)
        session.commit()
        return True
    _store_roster(session, built, solution)
    run.status = SolveRunStatus.DONE
    run.solver_status = solution.status
    run.filled_slots = len(solution.assignments)
    run.total_slots = sum(s.required for s in built.problem.shifts)
    run.objective = solution.objective
    run.bound = solution.bound
    run.wall_s = float(solution.stats.get("wall_s", 0.0))
    run.stats = {k: v for k, v in solution.stats.items() if isinstance(v, int | float | bool)}
    run.shortfalls = [
        {
            "shift": BuiltProblem.shift_id(s.shift),
            "missing": s.missing,
            "skills": dict(s.skills),
            "reason": s.reason,
        }
        for s in solution.shortfalls
    ]
    session.get_one(Plan, run.plan_id).status = PlanStatus.SOLVED
    audit.record(
        session,
        None,
        "plan.solved",
        "plan",
        run.plan_id,
        after={
            "solve_run": run.id,
            "filled_slots": run.filled_slots,
            "total_slots": run.total_slots,
            "objective": run.objective,
        },
    )
    session.commit()
    return True
