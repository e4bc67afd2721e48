"""One independent part of a roster problem, solved: CP-SAT on the whole part from a repaired
greedy start then large-neighbourhood search, or cluster-by-cluster search for parts too big to
model whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from scheduling import colgen
from scheduling.lns import complete_hint, fix, improve, sequential_roster
from scheduling.model.build import RosterModel, build_model
from scheduling.model.data import ProblemIndex
from scheduling.model.objective import score
from scheduling.problem import Pair, Problem
from scheduling.repair import fill_by_moves
from scheduling.slices import improve_by_slices

# Above this many variables a part is not modelled whole: LNS over cluster sub-models instead.
LARGE_PART = 60_000
# Share of a part's time for CP-SAT on the whole model before the LNS takes over (enough for a
# first roster where the start breaks a minimum rule; the LNS improves faster after that:
# Curtois Instance8 at 60 s 2,233 with 35%, 1,950 with 10%; Instance12 6,261 and 5,441).
WHOLE_SHARE = 0.1
# ... and where price and branch follows, which wants the time more: Curtois at 60 s with 3%
# instead of 10%, two runs each: Instance8 1,308 and 1,307 (1,399 and 1,504 with 10%),
# Instance12 4,241 and 4,147 (4,355 and 5,595).
PRICED_WHOLE_SHARE = 0.03
# Where column generation applies (colgen.applies), the share of the time left after CP-SAT
# on the whole model that it may take (it returns once its dive is done; the support round and
# the LNS get the rest), and the share of that kept for the dive. Curtois at
# 60 s, load 2.5-3.4, LNS alone -> with colgen first: Instance5 1,448 -> 1,145, Instance8
# 1,836 -> 1,735 (both measured at load 2-3.3); Instance6 2,256 -> 1,952 and Instance7 1,189
# -> 1,068 (the earlier figures as recorded before this change).
COLGEN_SHARE = 0.7
DIVE_SHARE = 0.35
# Above this many variables, or this many eligible pairs times horizon days (a round of pricing
# grows with both), the master converges too late to pay. Curtois at 60 s, LNS alone -> with
# price and branch and its support round: Instance12 (10,452 pairs x 28 days) 5,437 -> 4,448
# (its master reaches 4,045 in 30 s; best known 4,040); Instance18 (4,104 x 84) 5,906 -> 5,888;
# Instance19 (9,728 x 84) 5,263 -> 6,463.
COLGEN_MAX_VARS = 12_000
COLGEN_MAX_PAIR_DAYS = 400_000
# ... and above this many pair-days per second of the part's limit. Instance12 (292,656) at
# 10 s: 8,749, 8,353, 8,954 with it, 8,090, 8,222, 8,309 without; at 20 s 6,305 with it, 6,971
# without. Instance6-11 (at most 148,512) at 10 s gain 3-31% with it (Instance11 3,552 against
# 4,638).
COLGEN_PAIR_DAYS_PER_S = 20_000
# Share of the time left after price and branch for CP-SAT over the master's support. It is
# still improving when stopped on Curtois Instance12 (4,255 -> 4,157 in its 18th second), and
# the LNS after it seldom gains (Instance8 1,307 -> 1,306, 1,589 -> 1,588; Instance12 none).
SUPPORT_SHARE = 0.85
# Longest share of a CP-SAT phase's time for completing its hint (every cover and rule term at
# its value for the hinted roster; 0.08 s on Curtois Instance12).
COMPLETE_SHARE = 0.1
# Share of a part's time that filling empty places of the start by moves may take.
REPAIR_SHARE = 0.15


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    objective: int
    bound: int | None
    wall_s: float
    part: int = 0


@dataclass(frozen=True, slots=True)
class PartTask:
    number: int
    problem: Problem
    eligible: list[list[int]]
    hint: tuple[Pair, ...]
    hint_valid: bool
    time_limit_s: float
    workers: int
    seed: int
    use_lns: bool
    # A lower bound on this part's objective proven before the search (the whole-horizon flow
    # bound, when the part is the whole problem): the LNS stops once it is met.
    proven_bound: int | None = None


@dataclass(frozen=True, slots=True)
class PartResult:
    status: str
    assignments: tuple[Pair, ...]
    bound: int | None
    variables: int
    conflicts: tuple[str, ...] = ()
    lns_rounds: int = 0


class _Progress(cp_model.CpSolverSolutionCallback):
    """Reports improving objectives, at most two lines a second."""

    def __init__(self, report: Callable[[ProgressEvent], None], part: int, start: float) -> None:
        super().__init__()
        self.report, self.part, self.start = report, part, start
        self.last = -1.0

    def on_solution_callback(self) -> None:
        now = time.monotonic()
        if now - self.last >= 0.5:
            self.last = now
            self.report(
                ProgressEvent(
                    round(self.objective_value),
                    round(self.best_objective_bound),
                    now - self.start,
                    self.part,
                )
            )


@dataclass(slots=True)
class Clock:
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _solver(time_limit: float, workers: int, seed: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.05, time_limit)
    solver.parameters.num_workers = max(1, workers)
    solver.parameters.random_seed = seed
    return solver


def _explain_infeasible(task: PartTask, index: ProblemIndex, clock: Clock) -> tuple[str, ...]:
    """Name a set of pinned pairs and minimum rules that cannot all hold, via assumptions,
    within what is left of the part's time (at most 5 s)."""
    rm = build_model(index, task.eligible, explain=True)
    solver = _solver(min(5.0, task.time_limit_s - clock.elapsed()), 1, task.seed)
    if solver.solve(rm.model) != cp_model.INFEASIBLE:
        return ("the hard rules cannot all hold together",)
    names = {literal.index: name for name, literal in rm.variables.guards.items()}
    core = [names[i] for i in solver.sufficient_assumptions_for_infeasibility() if i in names]
    if not core:
        return ("the hard rules cannot all hold, even without pinned pairs and minimum rules",)
    return tuple(
        f"{name.replace(':', ' ', 1)} cannot hold together with the other rules"
        for name in sorted(core)
    )


def _under_count(problem: Problem, pairs: Sequence[Pair]) -> int:
    taken: dict[str, int] = {}
    for pair in set(pairs):
        taken[pair.shift] = taken.get(pair.shift, 0) + 1
    return sum(max(0, s.required - taken.get(s.id, 0)) for s in problem.shifts)


def short_shifts(problem: Problem, pairs: Sequence[Pair]) -> int:
    """How many shifts miss head count or a skill."""
    skills = {v.id: v.skills for v in problem.volunteers}
    people: dict[str, list[str]] = {}
    for pair in set(pairs):
        people.setdefault(pair.shift, []).append(pair.volunteer)
    short = 0
    for shift in problem.shifts:
        staff = people.get(shift.id, [])
        if len(staff) < shift.required or any(
            sum(1 for v in staff if skill in skills.get(v, ())) < need
            for skill, need in shift.skills.items()
        ):
            short += 1
    return short


def _repaired(
    task: PartTask, hint: tuple[Pair, ...], hint_valid: bool, deadline: float
) -> tuple[Pair, ...]:
    """The start with empty places filled by chains of moves. Leaving a place empty usually
    costs more than any soft term, and CP-SAT on the weighted objective (or the LNS, which only
    frees a neighbourhood) rarely finds the long chains of moves that fill the last places."""
    if not hint_valid or not _under_count(task.problem, hint):
        return hint
    return fill_by_moves(task.problem, task.eligible, hint, deadline)


def solve_part(
    task: PartTask, progress: Callable[[ProgressEvent], None] | None = None
) -> PartResult:
    clock = Clock()
    n_vars = sum(len(people) for people in task.eligible)
    hint, hint_valid = task.hint, task.hint_valid
    large = n_vars > LARGE_PART
    repair_by = clock.start + task.time_limit_s * REPAIR_SHARE
    hint = _repaired(task, hint, hint_valid, repair_by)
    if not hint_valid and task.use_lns and large:
        hint, hint_valid = _construct(task, clock, hint)
        hint = _repaired(
            task, hint, hint_valid, clock.elapsed() + clock.start + 0.1 * task.time_limit_s
        )
    if large and hint_valid and task.use_lns:
        # Too big to model whole within the limit: improve the valid start cluster by cluster.
        pairs, rounds = improve_by_slices(
            task.problem,
            task.eligible,
            hint,
            clock.start + task.time_limit_s,
            task.seed,
            task.workers,
        )
        return PartResult("feasible", pairs, None, n_vars, (), rounds)
    if large and not hint_valid:
        # No valid start, and a model this size would take longer to build than the limit.
        return PartResult("unknown", (), None, n_vars)
    index = ProblemIndex.build(task.problem)
    rm = build_model(index, task.eligible)
    kept_filled = False
    if hint:
        rm.add_hint(hint)
        if hint_valid:
            kept_filled = _keep_filled(rm, hint)
    priced = _prices(task, index, n_vars)
    if not task.use_lns:
        whole_share = 1.0
    elif large and hint_valid:
        whole_share = 0.0
    else:
        whole_share = PRICED_WHOLE_SHARE if priced else WHOLE_SHARE
    status = cp_model.UNKNOWN
    bound: int | None = None
    values: dict[int, int] = {}
    objective = 0
    hinted = _hint_values(rm, hint) if hint and hint_valid else None
    if whole_share > 0:
        phase_end = time.monotonic() + (task.time_limit_s - clock.elapsed()) * whole_share
        if hinted is not None:
            complete_hint(rm.model, hinted[0], (phase_end - time.monotonic()) * COMPLETE_SHARE)
        solver = _solver(phase_end - time.monotonic(), task.workers, task.seed)
        callback = _Progress(progress, task.number, clock.start) if progress else None
        status = solver.solve(rm.model, callback)
        if status == cp_model.INFEASIBLE:
            return PartResult(
                "infeasible", (), None, n_vars, _explain_infeasible(task, index, clock)
            )
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            bound = round(solver.best_objective_bound)
            values = _solved_values(rm, solver)
            objective = round(solver.objective_value)
    # CP-SAT does not always keep a complete hint (it may stop on a worse solution of its own,
    # e.g. one leaving places the repaired start filled), so the LNS starts from the better of
    # the two.
    if values and hinted is not None and status != cp_model.OPTIMAL and hinted[1] < objective:
        values, objective = hinted
    if not values and not hint_valid and task.use_lns and not large:
        hint, hint_valid = _construct(task, clock, hint)
        hint = _repaired(
            task, hint, hint_valid, clock.elapsed() + clock.start + 0.1 * task.time_limit_s
        )
    if not values:
        if not hint_valid:
            return PartResult("unknown", (), None, n_vars)
        values, objective = _hint_values(rm, hint)
    rounds = 0
    if status != cp_model.OPTIMAL and priced:
        values, objective, priced_bound = _price_and_branch(task, rm, values, objective, clock)
        if priced_bound is not None:
            bound = max(bound, priced_bound) if bound is not None else priced_bound
    if status != cp_model.OPTIMAL and task.use_lns:
        deadline = clock.start + task.time_limit_s

        def report(value: int) -> None:
            if progress is not None:
                progress(ProgressEvent(value, bound, clock.elapsed(), task.number))

        result = improve(
            rm,
            values,
            objective,
            deadline,
            task.seed,
            task.workers,
            report,
            # Best-response moves do not see the cap on missing people.
            replan=not kept_filled,
            proven_bound=max(
                (b for b in (task.proven_bound, bound) if b is not None), default=None
            ),
        )
        values, rounds = result.values, result.rounds
    state = "optimal" if status == cp_model.OPTIMAL else "feasible"
    return PartResult(state, _pairs(rm, values), bound, n_vars, (), rounds)


def _prices(task: PartTask, index: ProblemIndex, n_vars: int) -> bool:
    """Whether the part is solved by price and branch before its LNS: in scope, and small
    enough for its master to converge within the part's time."""
    pair_days = n_vars * task.problem.horizon_days
    return (
        task.use_lns
        and n_vars <= COLGEN_MAX_VARS
        and pair_days <= min(COLGEN_MAX_PAIR_DAYS, COLGEN_PAIR_DAYS_PER_S * task.time_limit_s)
        and colgen.applies(index, task.eligible)
    )


def _price_and_branch(
    task: PartTask, rm: RosterModel, values: dict[int, int], objective: int, clock: Clock
) -> tuple[dict[int, int], int, int | None]:
    """Column generation from the incumbent for COLGEN_SHARE of the time left and a dive (its
    roster replaces the incumbent when it is better), the master's proven bound where its
    pricing is exact, then CP-SAT over the master's support for SUPPORT_SHARE of what is
    left. Returns the roster's values, its objective and the bound (or None)."""
    left = task.time_limit_s - clock.elapsed()
    now = time.monotonic()
    result, generation = colgen.price_and_branch(
        rm.variables.index,
        task.eligible,
        _pairs(rm, values),
        now + left * COLGEN_SHARE,
        task.seed,
        task.workers,
        DIVE_SHARE,
        integer_master=False,  # the support round's space holds every roster of its columns
    )
    if result is not None and result.objective < objective:
        values, objective = _roster_values(rm, result.pairs), result.objective
    bound = generation.bound
    if bound is not None and objective <= bound:
        return values, objective, bound  # proven optimal
    left = task.time_limit_s - clock.elapsed()
    values, objective = _support_round(
        rm, values, objective, generation.support(), left * SUPPORT_SHARE, task
    )
    return values, objective, bound


def _support_round(
    rm: RosterModel,
    values: dict[int, int],
    objective: int,
    support: set[tuple[int, int]],
    time_limit: float,
    task: PartTask,
) -> tuple[dict[int, int], int]:
    """CP-SAT over the assignments the linear master or the incumbent makes, every other one
    fixed off, hinted with the incumbent (relaxation-induced neighbourhood search). The master's
    columns do not combine into a good roster by themselves (their integer master and dive end
    far above the master's value), but their assignments do: Curtois Instance8, master at
    1,297, dive 1,608, this round 1,302 within 10 s (best known 1,300)."""
    sub = rm.model.clone()
    sub.clear_hints()
    for key, literal in rm.variables.assign.items():
        if not values[literal.index] and key not in support:
            fix(sub, literal.index, 0)
        sub.add_hint(literal, values[literal.index])
    ends = time.monotonic() + time_limit
    complete_hint(sub, values, time_limit * COMPLETE_SHARE)
    solver = _solver(ends - time.monotonic(), task.workers, task.seed)
    status = solver.solve(sub)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return values, objective
    found = round(solver.objective_value)
    if found >= objective:
        return values, objective
    return _solved_values(rm, solver), found


def _construct(
    task: PartTask, clock: Clock, hint: tuple[Pair, ...]
) -> tuple[tuple[Pair, ...], bool]:
    """The greedy broke a minimum rule: a volunteer-by-volunteer build keeps every rule and
    gives CP-SAT and the LNS a feasible start where whole-model search may find none."""
    for frugal in (False, True):
        built = sequential_roster(
            task.problem,
            task.eligible,
            clock.start + clock.elapsed() + (task.time_limit_s - clock.elapsed()) * 0.4,
            task.seed,
            max(2, task.workers),
            hard_deadline=clock.start + task.time_limit_s * 0.9,
            frugal=frugal,
            hint=hint,
        )
        if built is not None:
            return built, True
    return hint, False


def _keep_filled(rm: RosterModel, hint: Sequence[Pair]) -> bool:
    """Where one missing person costs far more than any one assignment can change the other
    terms (Timefold's instances: 10^9 against at most ~5*10^5), let no roster leave more people
    missing than the start does. It only narrows the search, never the rosters' validity, and
    spares CP-SAT an objective whose huge cover coefficients dwarf every term it should trade."""
    variables = rm.variables
    problem = variables.index.problem
    under = variables.terms["under"]
    if not under:
        return False
    longest = max((f.minutes for f in variables.index.shifts), default=0)
    other = 0
    for part_name, terms in variables.terms.items():
        if part_name in ("under", "over"):
            continue
        for coefficient, _ in terms:
            step = coefficient * longest if part_name == "fairness" else coefficient
            other = max(other, abs(step))
    if min(weight for weight, _ in under) < 100 * max(1, other):
        return False
    taken: dict[int, int] = {}
    for pair in set(hint):
        s = variables.index.shift_pos[pair.shift]
        taken[s] = taken.get(s, 0) + 1
    missing = floors = 0
    for s, shift in enumerate(problem.shifts):
        missing += max(0, shift.required - taken.get(s, 0))
        floors += max(0, shift.required - min(len(variables.people_of[s]), shift.max_people))
    rm.model.add(cp_model.LinearExpr.sum([var for _, var in under]) <= missing - floors)
    return True


def _hint_values(rm: RosterModel, hint: Sequence[Pair]) -> tuple[dict[int, int], int]:
    """The hint as variable values, and its model objective. With every assignment given, the
    model's cheapest value is the roster's plain score (each cost variable takes its least
    value), so no solve is needed."""
    return _roster_values(rm, hint), sum(score(rm.variables.index, hint).values())


def _roster_values(rm: RosterModel, pairs: Sequence[Pair]) -> dict[int, int]:
    """A roster's assignments as variable values."""
    index = rm.variables.index
    chosen = {(index.volunteer_pos[p.volunteer], index.shift_pos[p.shift]) for p in pairs}
    return {literal.index: int(key in chosen) for key, literal in rm.variables.assign.items()}


def _solved_values(rm: RosterModel, solver: cp_model.CpSolver) -> dict[int, int]:
    """The assignments of the solver's solution, as variable values."""
    return {literal.index: int(solver.value(literal)) for literal in rm.variables.assign.values()}


def _pairs(rm: RosterModel, values: dict[int, int]) -> tuple[Pair, ...]:
    problem = rm.variables.index.problem
    chosen = sorted(
        (s, v) for (v, s), literal in rm.variables.assign.items() if values[literal.index]
    )
    return tuple(Pair(problem.volunteers[v].id, problem.shifts[s].id) for s, v in chosen)
