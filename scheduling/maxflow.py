"""An upper bound on how many head-count slots any roster can fill, by max-flow.

Flow goes source → volunteer → (volunteer, day) → shift → sink. A shift takes at most
`required` units (slots beyond that fill nothing); a volunteer passes at most an obvious cap on
their shift count (max_shifts, per-kind caps, minutes caps over their shortest shift); the day
layer exists only under `one_shift_per_day` and lets each person fill one slot a day. Overlap,
rest and stretch rules are ignored, so the result bounds every roster from above; a solver
filling exactly this many slots cannot be beaten on head count.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import numpy as np
from ortools.graph.python import max_flow

from scheduling.problem import Problem, Shift, Volunteer

SOURCE, SINK = 0, 1


def _week(problem: Problem, day: int) -> date:
    moment = problem.horizon_start + timedelta(days=day)
    return moment - timedelta(days=moment.weekday())


def volunteer_cap(
    problem: Problem, volunteer: Volunteer, shifts: Sequence[Shift], days: Mapping[str, int]
) -> int:
    """The most shifts this volunteer could take among `shifts`, from their limits alone."""
    limits = volunteer.limits
    cap = len(shifts)
    if limits.max_shifts is not None:
        cap = min(cap, limits.max_shifts)
    if problem.rules.one_shift_per_day:
        cap = min(cap, len({days[s.id] for s in shifts}))
    if limits.max_shifts_by_kind:
        by_kind: dict[str, int] = defaultdict(int)
        for shift in shifts:
            by_kind[shift.kind] += 1
        cap = min(
            cap,
            sum(min(n, limits.max_shifts_by_kind.get(kind, n)) for kind, n in by_kind.items()),
        )
    if limits.max_minutes is not None and shifts:
        cap = min(cap, limits.max_minutes // max(1, min(s.minutes for s in shifts)))
    if limits.max_minutes_per_week is not None and shifts:
        weeks: dict[date, list[int]] = defaultdict(list)
        for shift in shifts:
            weeks[_week(problem, days[shift.id])].append(shift.minutes)
        cap = min(
            cap,
            sum(min(len(m), limits.max_minutes_per_week // max(1, min(m))) for m in weeks.values()),
        )
    return max(0, cap)


def max_fillable_slots(
    problem: Problem, eligible: Mapping[str, Sequence[str]] | None = None
) -> int:
    """An upper bound on the head-count slots (sum over shifts of min(required, assigned))
    that any roster keeping the hard rules can fill.

    :param eligible: shift id → volunteer ids who may take it; computed with
        `scheduling.eligibility.eligible_pairs` when not given.
    """
    if eligible is None:
        from scheduling.eligibility import eligible_pairs

        eligible = eligible_pairs(problem)
    shifts = {s.id: s for s in problem.shifts if s.required > 0}
    days = {s.id: problem.day_index(s.start) for s in shifts.values()}
    by_volunteer: dict[str, list[Shift]] = defaultdict(list)
    for shift_id, volunteer_ids in eligible.items():
        shift = shifts.get(shift_id)
        if shift is not None:
            for volunteer_id in volunteer_ids:
                by_volunteer[volunteer_id].append(shift)

    shift_node = {shift_id: 2 + i for i, shift_id in enumerate(shifts)}
    next_node = 2 + len(shift_node)
    tails: list[int] = []
    heads: list[int] = []
    capacities: list[int] = []

    def arc(tail: int, head: int, capacity: int) -> None:
        tails.append(tail)
        heads.append(head)
        capacities.append(capacity)

    for shift_id, node in shift_node.items():
        arc(node, SINK, shifts[shift_id].required)
    per_day = problem.rules.one_shift_per_day
    for volunteer in problem.volunteers:
        taken = by_volunteer.get(volunteer.id)
        if not taken:
            continue
        cap = volunteer_cap(problem, volunteer, taken, days)
        if cap == 0:
            continue
        person = next_node
        next_node += 1
        arc(SOURCE, person, cap)
        if not per_day:
            for shift in taken:
                arc(person, shift_node[shift.id], 1)
            continue
        day_node: dict[int, int] = {}
        for shift in taken:
            day = days[shift.id]
            if day not in day_node:
                day_node[day] = next_node
                next_node += 1
                arc(person, day_node[day], 1)
            arc(day_node[day], shift_node[shift.id], 1)
    if not tails:
        return 0
    flow = max_flow.SimpleMaxFlow()
    flow.add_arcs_with_capacity(
        np.array(tails, dtype=np.int32),
        np.array(heads, dtype=np.int32),
        np.array(capacities, dtype=np.int64),
    )
    status = flow.solve(SOURCE, SINK)
    if status != flow.OPTIMAL:
        raise RuntimeError(f"max-flow did not finish (status {status})")
    return int(flow.optimal_flow())


def total_slots(problem: Problem) -> int:
    return sum(s.required for s in problem.shifts)
