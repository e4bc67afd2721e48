"""Large-neighbourhood search over a built roster model.

Each round frees a neighbourhood — a window of days, a random group of volunteers, or both —
fixes every other assignment to the incumbent, and lets CP-SAT re-solve that with a short time
limit; a better roster replaces the incumbent. This is what finds good rosters on instances
where CP-SAT on the whole model stalls (long horizons, many staff).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from ortools.sat.python import cp_model

from scheduling.best_response import Replanner
from scheduling.eligibility import positions_by_volunteer
from scheduling.model.build import RosterModel, build_model
from scheduling.model.data import ProblemIndex
from scheduling.person_dp import (
    BUILD_BATCH,
    Cover,
    Multipliers,
    marginal_gains,
    per_assignment,
    plan_person,
)
from scheduling.problem import Pair, Problem, Shift, Volunteer

# Longest time one round's re-solve may take, and how many variables the first rounds free.
ROUND_S = 0.4
FIRST_FREE = 400
# Horizons from this many days on also get best-response rounds (one volunteer's whole horizon
# re-planned by the day-by-day search). Curtois at 60 s, without -> with: Instance18 (84 days)
# 6,419 -> 6,199, Instance19 (84) 5,936 -> 5,574, Instance20 (182) 27,522 -> 15,368; on 28-56
# days, where the CP-SAT rounds free whole horizons of several people anyway, they took time
# from those rounds: Instance7 1,114 -> 1,385, Instance8 1,643 -> 1,941, Instance16 3,946 ->
# 4,048.
REPLAN_MIN_DAYS = 70
# Time a best-response round needs left before the deadline.
REPLAN_LEFT_S = 0.5


@dataclass(slots=True)
class LnsResult:
    values: dict[int, int]  # variable index → 0/1 of the best roster found
    objective: int
    rounds: int
    improved: int


def fix(model: cp_model.CpModel, var_index: int, value: int) -> None:
    """Fix a Boolean of a (cloned) model to a value by narrowing its domain in place."""
    domain = model.proto.variables[var_index].domain
    domain[0] = value
    domain[1] = value


def complete_hint(model: cp_model.CpModel, values: Mapping[int, int], time_limit: float) -> bool:
    """Hint every variable of the model: the given ones (the assignments) at their values and
    the rest (cover, rest and limit terms) at their best values given those, found by solving a
    copy with the given ones fixed. A hint of the assignments alone leaves CP-SAT to complete
    it, which it often fails to do: it then starts from a first solution of its own, far worse
    (Curtois Instance12's support round: from 10,934 instead of the hinted 5,120, and 5 s to
    get back there). False, with the model's hints left as they were, when the values break a
    rule or the copy is not solved in `time_limit` seconds."""
    sub = model.clone()
    sub.clear_hints()
    for i, value in values.items():
        fix(sub, i, value)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit)
    solver.parameters.num_workers = 1
    if solver.solve(sub) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return False
    model.clear_hints()
    hint = model.proto.solution_hint
    hint.vars.extend(range(len(model.proto.variables)))
    hint.values.extend(solver.response_proto.solution)
    return True


class _Neighbourhoods:
    """Ways to choose the variables a round frees, each a list of variable indices.

    - people: the whole horizon of a few volunteers (nurse-rostering moves: swaps and chains
      between people, which cover constraints tie together);
    - days: a window of days for everyone;
    - people_days: a wider window for a larger group;
    - costly: around a costly spot of the incumbent (a day with missing or extra people, an
      unmet request), the people who may work there, over a few days around it;
    - replan: no CP-SAT round, but one volunteer's whole horizon re-planned against everyone
      else by the day-by-day search (`best_response`).
    Sizes are counted in freed variables and adapt per kind to how rounds end.
    """

    KINDS = ("people", "days", "people_days", "costly", "replan")

    def __init__(self, rm: RosterModel, rng: random.Random) -> None:
        variables = rm.variables
        index = variables.index
        self.rng = rng
        self.days = max(1, index.days)
        self.n_volunteers = len(index.problem.volunteers)
        self.by_volunteer: list[list[tuple[int, int]]] = [[] for _ in range(self.n_volunteers)]
        self.by_day: dict[int, list[int]] = {}
        self.by_shift: dict[int, list[int]] = {}
        for (v, s), literal in variables.assign.items():
            day = index.shifts[s].day
            self.by_volunteer[v].append((day, literal.index))
            self.by_day.setdefault(day, []).append(literal.index)
            self.by_shift.setdefault(s, []).append(v)
        self.total = max(1, len(variables.assign))
        self.shift_day = [f.day for f in index.shifts]
        self.shift_of_var = {literal.index: s for (_, s), literal in variables.assign.items()}
        self.volunteer_of_var = {literal.index: v for (v, _), literal in variables.assign.items()}
        # Target share of the variables to free, per kind.
        self.share = dict.fromkeys(self.KINDS, min(0.25, max(0.02, FIRST_FREE / self.total)))
        self.weights = dict.fromkeys(self.KINDS, 1.0)

    def pick_kind(self) -> str:
        kinds = list(self.KINDS)
        return self.rng.choices(kinds, [self.weights[k] for k in kinds])[0]

    def free(self, kind: str, costly: Sequence[tuple[int, int | None]]) -> set[int]:
        rng = self.rng
        target = max(8, round(self.total * self.share[kind]))
        if kind == "days" or self.n_volunteers <= 1:
            width = max(1, min(self.days, round(self.days * target / self.total)))
            first = rng.randrange(0, self.days - width + 1)
            return {i for d in range(first, first + width) for i in self.by_day.get(d, [])}
        if kind == "people":
            return self._people(rng.sample(range(self.n_volunteers), self.n_volunteers), target)
        if kind == "people_days":
            width = max(2, min(self.days, rng.randint(self.days // 4 or 1, self.days)))
            first = rng.randrange(0, self.days - width + 1)
            return self._people(
                rng.sample(range(self.n_volunteers), self.n_volunteers), target, first, width
            )
        if not costly:
            return self._people(rng.sample(range(self.n_volunteers), self.n_volunteers), target)
        day, shift = costly[rng.randrange(len(costly))]
        width = max(3, min(self.days, rng.randint(3, 14)))
        first = max(0, min(self.days - width, day - rng.randrange(width)))
        near = list(self.by_shift.get(shift, [])) if shift is not None else []
        rng.shuffle(near)
        others = rng.sample(range(self.n_volunteers), self.n_volunteers)
        return self._people([*near[:3], *others], target, first, width)

    def _people(
        self, order: Sequence[int], target: int, first: int = 0, width: int | None = None
    ) -> set[int]:
        last = first + (width if width is not None else 1 << 30)
        free: set[int] = set()
        for v in order:
            if len(free) >= target:
                break
            free.update(i for day, i in self.by_volunteer[v] if first <= day < last)
        return free

    def reward(self, kind: str, better: bool) -> None:
        self.weights[kind] = max(0.2, min(5.0, self.weights[kind] * (1.3 if better else 0.97)))

    def adapt(self, kind: str, status: cp_model.CpSolverStatus, better: bool, fast: bool) -> None:
        """Solved to optimality quickly: grow; timed out: shrink; improving kinds are chosen
        more often."""
        if status == cp_model.OPTIMAL and fast:
            self.share[kind] = min(0.9, self.share[kind] * 1.2)
        elif status != cp_model.OPTIMAL:
            self.share[kind] = max(0.3 / self.total * 8, self.share[kind] * 0.8)
        self.weights[kind] = max(0.2, min(5.0, self.weights[kind] * (1.3 if better else 0.97)))


def _costly_spots(rm: RosterModel, values: dict[int, int]) -> list[tuple[int, int | None]]:
    """(day, shift) of every positive cost term of the incumbent: a short or overstaffed
    shift, an unmet request. Read from the objective terms' current values."""
    variables = rm.variables
    index = variables.index
    spots: list[tuple[int, int | None]] = []
    for s, shift in enumerate(index.problem.shifts):
        count = sum(values.get(variables.assign[(v, s)].index, 0) for v in variables.people_of[s])
        if count != shift.required and (
            index.problem.under_weight(shift) or index.problem.over_weight(shift)
        ):
            spots.append((index.shifts[s].day, s))
    for v, volunteer in enumerate(index.problem.volunteers):
        for request in volunteer.requests:
            at = index.shift_pos.get(request.shift)
            if at is None or (literal := variables.assign.get((v, at))) is None:
                continue
            if bool(values[literal.index]) != request.want:
                spots.append((index.shifts[at].day, at))
    return spots


@dataclass(slots=True)
class _Replans:
    """Best-response moves on the model's incumbent: which variable is whose, and the counts
    of people per shift that the moves need, read from the variable values."""

    replanner: Replanner
    literal_of: dict[tuple[int, int], int]
    volunteer_of: np.ndarray  # per assignment variable (in `indices` order)
    shift_of: np.ndarray
    indices: np.ndarray
    shifts: int

    @classmethod
    def create(cls, rm: RosterModel, seed: int) -> _Replans | None:
        variables = rm.variables
        index = variables.index
        replanner = Replanner(index, variables.people_of, seed)
        if not replanner.volunteers:
            return None
        keys = list(variables.assign)
        return cls(
            replanner,
            {key: literal.index for key, literal in variables.assign.items()},
            np.array([v for v, _ in keys], dtype=np.int64),
            np.array([s for _, s in keys], dtype=np.int64),
            np.array([variables.assign[key].index for key in keys], dtype=np.int64),
            len(index.problem.shifts),
        )

    def move(self, values: dict[int, int], deadline: float) -> tuple[list[int], int] | None:
        """Re-plan the next volunteer; on success update `values` and return the variables
        changed and the saving."""
        v = self.replanner.next_volunteer()
        if v is None:
            return None
        on = np.fromiter((values[i] for i in self.indices), dtype=np.int64, count=len(self.indices))
        taken = on == 1
        counts = np.bincount(self.shift_of[taken], minlength=self.shifts)
        own = self.shift_of[taken & (self.volunteer_of == v)].tolist()
        problem = self.replanner.index.problem
        skills = [problem.volunteers[p].skills for p in range(len(problem.volunteers))]

        def skilled(s: int, skill: str) -> int:
            people = self.volunteer_of[taken & (self.shift_of == s)]
            return sum(1 for p in people.tolist() if skill in skills[p])

        replan = self.replanner.replan(v, counts, own, skilled, deadline)
        if replan is None:
            return None
        new = set(replan.shifts)
        changed = []
        for s in set(own) | new:
            i = self.literal_of[(v, s)]
            values[i] = int(s in new)
            changed.append(i)
        return changed, replan.saving


def improve(
    rm: RosterModel,
    values: dict[int, int],
    objective: int,
    deadline: float,
    seed: int,
    workers: int,
    on_improve: Callable[[int], None] | None = None,
    replan: bool = True,
    proven_bound: int | None = None,
) -> LnsResult:
    """Improve a feasible roster until the deadline (a `time.monotonic()` instant), or until it
    meets `proven_bound` (a lower bound proven elsewhere: nothing is left to find).

    `replan`: also re-plan whole volunteers by the day-by-day search on horizons of at least
    REPLAN_MIN_DAYS; off when the model holds a constraint beyond the roster rules (such as a
    cap on missing people) that those moves do not see.

    The model is copied once with every assignment fixed to the incumbent; a round only widens
    the domains of the freed variables, solves with the incumbent as hint, and fixes them back
    (to the new values if the round's roster is at least as good: ties are taken, so the search
    moves along plateaus).
    """
    rng = random.Random(seed)
    best_values, best_objective = dict(values), objective
    assign_indices = [literal.index for literal in rm.variables.assign.values()]
    sub = rm.model.clone()
    sub.clear_hints()
    domains = sub.proto.variables
    for i in assign_indices:
        fix(sub, i, best_values[i])
    hoods = _Neighbourhoods(rm, rng)
    costly = _costly_spots(rm, best_values)
    rounds = improved = 0
    long_horizon = rm.variables.index.days >= REPLAN_MIN_DAYS
    replans = _Replans.create(rm, seed) if replan and long_horizon else None
    if replans is None:
        hoods.weights["replan"] = 0.0
    while time.monotonic() < deadline - 0.05:
        if proven_bound is not None and best_objective <= proven_bound:
            break
        rounds += 1
        kind = hoods.pick_kind()
        if kind == "replan" and deadline - time.monotonic() < REPLAN_LEFT_S:
            continue  # a pass of the day-by-day search may not fit any more
        if kind == "replan" and replans is not None:
            moved = replans.move(best_values, min(deadline, time.monotonic() + 1.0))
            if moved is not None:
                changed, saving = moved
                for i in changed:
                    domain = domains[i].domain
                    domain[0] = domain[1] = best_values[i]
                best_objective -= saving
                if saving > 0:
                    improved += 1
                    costly = _costly_spots(rm, best_values)
                    if on_improve is not None:
                        on_improve(best_objective)
            hoods.reward(kind, moved is not None and moved[1] > 0)
            continue
        free = sorted(hoods.free(kind, costly))
        for i in free:
            domain = domains[i].domain
            domain[0], domain[1] = 0, 1
        sub.clear_hints()
        hint = sub.proto.solution_hint
        hint.vars.extend(free)
        hint.values.extend(best_values[i] for i in free)
        solver = cp_model.CpSolver()
        limit = max(0.05, min(ROUND_S, deadline - time.monotonic()))
        solver.parameters.max_time_in_seconds = limit
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = seed + rounds
        began = time.monotonic()
        status = solver.solve(sub)
        spent = time.monotonic() - began
        better = False
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            value_now = round(solver.objective_value)
            if value_now <= best_objective:
                better = value_now < best_objective
                solution = list(solver.response_proto.solution)
                for i in free:
                    best_values[i] = solution[i]
                best_objective = value_now
                if better:
                    improved += 1
                    costly = _costly_spots(rm, best_values)
                    if on_improve is not None:
                        on_improve(best_objective)
        for i in free:
            domain = domains[i].domain
            domain[0] = domain[1] = best_values[i]
        hoods.adapt(kind, status, better, spent < limit * 0.5)
    return LnsResult(best_values, best_objective, rounds, improved)


def _residual_shift(shift: Shift, staff: list[Volunteer], frugal: bool) -> Shift | None:
    """The shift as the next volunteer sees it: what is still wanted and still has room.

    Frugal: nothing is wanted and every person costs 1, so each volunteer takes only what their
    own minimum rules require and leaves room for those who come later.
    """
    room = shift.max_people - len(staff)
    if room <= 0:
        return None
    if frugal:
        return replace(shift, required=0, capacity=room, skills={}, over_weight=1)
    required = max(0, shift.required - len(staff))
    skills = {
        skill: max(0, need - sum(1 for v in staff if skill in v.skills))
        for skill, need in shift.skills.items()
    }
    return replace(
        shift,
        required=required,
        capacity=room,
        skills={k: n for k, n in skills.items() if n},
    )


def sequential_roster(
    problem: Problem,
    eligible: Sequence[Sequence[int]],
    deadline: float,
    seed: int = 0,
    workers: int = 2,
    hard_deadline: float | None = None,
    frugal: bool = False,
    hint: Sequence[Pair] = (),
) -> tuple[Pair, ...] | None:
    """A roster that keeps every hard rule, built one volunteer at a time.

    Every hard rule except capacity concerns one volunteer, and cover is soft, so a volunteer's
    schedule can be chosen alone against what the others left (the shifts with room left,
    requirements reduced by those already staffed): first by the day-by-day search of
    `person_dp`, else by a tiny CP-SAT model of that volunteer. Most-constrained volunteers go
    first; `hint` (say, a greedy roster that breaks a minimum
    rule) seeds each person's search with their schedule in it. Returns None if a volunteer has
    no valid schedule (the ones before took the room they needed; try `frugal`) or time runs
    out.
    """
    by_volunteer = positions_by_volunteer(eligible, len(problem.volunteers))
    minutes = [s.minutes for s in problem.shifts]

    def tightness(v: int) -> tuple[float, int]:
        need = problem.volunteers[v].limits.min_minutes or 0
        reachable = sum(minutes[s] for s in by_volunteer[v]) or 1
        return (-need / reachable, v)

    staff: list[list[Volunteer]] = [[] for _ in problem.shifts]
    hinted: dict[str, list[Pair]] = {}
    for pair in hint:
        hinted.setdefault(pair.volunteer, []).append(pair)
    pinned = {(p.volunteer, p.shift) for p in problem.pinned}
    chosen: list[Pair] = []
    order = sorted(range(len(problem.volunteers)), key=tightness)
    index = ProblemIndex.build(problem)
    cover = Cover.of(problem)
    room = np.array([s.max_people for s in problem.shifts], dtype=np.int64)
    taken = np.zeros(len(problem.shifts), dtype=np.int64)
    prices: Multipliers | None = None

    def skilled(s: int, skill: str) -> int:
        return sum(1 for other in staff[s] if skill in other.skills)

    for step, v in enumerate(order):
        volunteer = problem.volunteers[v]
        remaining = deadline - time.monotonic()
        if time.monotonic() >= (hard_deadline or deadline):
            return None
        mine = np.array(by_volunteer[v], dtype=np.int64)
        open_positions = mine[taken[mine] < room[mine]]
        if len(open_positions) < len(mine) and any(
            (volunteer.id, problem.shifts[s].id) in pinned
            for s in mine[taken[mine] >= room[mine]].tolist()
        ):
            return None
        share = remaining / max(1, len(order) - step)
        planned: list[int] | None = None
        if per_assignment(problem, volunteer):  # the others go to CP-SAT
            gains = marginal_gains(
                problem, cover, volunteer, open_positions, taken[open_positions], skilled, frugal
            )
            must = [
                s for s in open_positions.tolist() if (volunteer.id, problem.shifts[s].id) in pinned
            ]
            planned, prices = plan_person(
                index,
                v,
                open_positions.tolist(),
                gains,
                must,
                seed=seed,
                deadline=time.monotonic() + max(1.0, 3 * share),
                start=prices,
                polish=0,
                batch=BUILD_BATCH,
            )
        if planned is not None:
            for s in planned:
                staff[s].append(volunteer)
                taken[s] += 1
                chosen.append(Pair(volunteer.id, problem.shifts[s].id))
            continue
        shifts = [
            shift
            for s in open_positions.tolist()
            if (shift := _residual_shift(problem.shifts[s], staff[s], frugal)) is not None
        ]
        ids = {s.id for s in shifts}
        single = replace(
            problem,
            volunteers=(
                replace(volunteer, requests=tuple(r for r in volunteer.requests if r.shift in ids)),
            ),
            shifts=tuple(shifts),
            pinned=tuple(
                p for p in problem.pinned if p.volunteer == volunteer.id and p.shift in ids
            ),
            forbidden=(),
            previous=tuple(
                p for p in problem.previous if p.volunteer == volunteer.id and p.shift in ids
            ),
        )
        rm = build_model(ProblemIndex.build(single), [[0]] * len(shifts))
        own = [p for p in hinted.get(volunteer.id, ()) if p.shift in ids]
        if own:
            rm.add_hint(own)
        solver = cp_model.CpSolver()
        # Past the soft deadline each person gets only a quick look at the objective.
        solver.parameters.max_time_in_seconds = max(0.05, min(1.0, share))
        # One CP-SAT worker stalls on some long single-person schedules that two solve at once.
        solver.parameters.num_workers = workers
        solver.parameters.random_seed = seed
        status = solver.solve(rm.model)
        if status == cp_model.UNKNOWN:
            # No schedule yet within the share: any schedule that keeps the rules will do, and
            # without the objective one is found much faster.
            rm.model.clear_objective()
            limit = (hard_deadline or deadline) - time.monotonic()
            solver.parameters.max_time_in_seconds = max(0.05, min(3.0, limit))
            status = solver.solve(rm.model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        for pair in rm.assignments(solver):
            s = index.shift_pos[pair.shift]
            staff[s].append(volunteer)
            taken[s] += 1
            chosen.append(pair)
    return tuple(chosen)
