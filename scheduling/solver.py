"""solve(problem, options) → Solution: eligibility, independent parts, a greedy warm start, and
CP-SAT per part (with large-neighbourhood search when a part does not finish), in parallel
processes when there are several large parts.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from ortools.sat.python import cp_model

from scheduling.decompose import Component, components, slice_eligible, slice_problem
from scheduling.eligibility import eligible_positions, prune_candidates, reachable_positions
from scheduling.greedy import greedy_result
from scheduling.lns import fix, improve, improve_by_slices, sequential_roster
from scheduling.model.build import RosterModel, build_model
from scheduling.model.data import ProblemIndex
from scheduling.model.objective import score
from scheduling.problem import Location, Pair, Problem, Shortfall, Solution
from scheduling.repair import fill_by_moves

# Above this many variables a part is not modelled whole: LNS over cluster sub-models instead.
LARGE_PART = 60_000
# Above this many eligible pairs, only the nearest CANDIDATES_PER_PERSON per slot are modelled.
PRUNE_ABOVE = 300_000
CANDIDATES_PER_PERSON = 6
# Share of a part's time that filling empty places of the start by moves may take.
REPAIR_SHARE = 0.15
# Time kept for explaining shortfalls: a rough cost per short shift and per volunteer (measured
# at 40,000 volunteers: about 0.6 ms a shortfall and 1 s of set-up), at most a share of the limit.
EXPLAIN_S_PER_SHORTFALL = 8e-4
EXPLAIN_S_PER_VOLUNTEER = 3e-5
EXPLAIN_MAX_SHARE = 0.15
# Parts smaller than this are not worth a process of their own.
PARALLEL_PART = 2_000


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    objective: int
    bound: int | None
    wall_s: float
    part: int = 0


@dataclass(frozen=True, slots=True)
class SolveOptions:
    time_limit_s: float = 10.0
    workers: int = 2
    seed: int = 0
    progress: Callable[[ProgressEvent], None] | None = None
    use_lns: bool = True


@dataclass(frozen=True, slots=True)
class _PartTask:
    number: int
    problem: Problem
    eligible: list[list[int]]
    hint: tuple[Pair, ...]
    hint_valid: bool
    time_limit_s: float
    workers: int
    seed: int
    use_lns: bool


@dataclass(frozen=True, slots=True)
class _PartResult:
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
class _Clock:
    start: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def _solver(time_limit: float, workers: int, seed: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.05, time_limit)
    solver.parameters.num_workers = max(1, workers)
    solver.parameters.random_seed = seed
    return solver


def _explain_infeasible(task: _PartTask, index: ProblemIndex) -> tuple[str, ...]:
    """Name a set of pinned pairs and minimum rules that cannot all hold, via assumptions."""
    rm = build_model(index, task.eligible, explain=True)
    solver = _solver(min(5.0, task.time_limit_s), 1, task.seed)
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


def _short_shifts(problem: Problem, pairs: Sequence[Pair]) -> int:
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
    task: _PartTask, hint: tuple[Pair, ...], hint_valid: bool, deadline: float
) -> tuple[Pair, ...]:
    """The start with empty places filled by chains of moves. Leaving a place empty usually
    costs more than any soft term, and CP-SAT on the weighted objective (or the LNS, which only
    frees a neighbourhood) rarely finds the long chains of moves that fill the last places."""
    if not hint_valid or not _under_count(task.problem, hint):
        return hint
    return fill_by_moves(task.problem, task.eligible, hint, deadline)


def _solve_part(
    task: _PartTask, progress: Callable[[ProgressEvent], None] | None = None
) -> _PartResult:
    clock = _Clock()
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
        return _PartResult("feasible", pairs, None, n_vars, (), rounds)
    index = ProblemIndex.build(task.problem)
    rm = build_model(index, task.eligible)
    if hint:
        rm.add_hint(hint)
    whole_share = 1.0 if not task.use_lns else 0.0 if large and hint_valid else 0.35
    status = cp_model.UNKNOWN
    bound: int | None = None
    values: dict[int, int] = {}
    objective = 0
    if whole_share > 0:
        remaining = task.time_limit_s - clock.elapsed()
        solver = _solver(remaining * whole_share, task.workers, task.seed)
        callback = _Progress(progress, task.number, clock.start) if progress else None
        status = solver.solve(rm.model, callback)
        if status == cp_model.INFEASIBLE:
            return _PartResult("infeasible", (), None, n_vars, _explain_infeasible(task, index))
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            bound = round(solver.best_objective_bound)
            values = {
                literal.index: int(solver.value(literal))
                for literal in rm.variables.assign.values()
            }
            objective = round(solver.objective_value)
    if values and hint_valid and hint and status != cp_model.OPTIMAL:
        # CP-SAT does not always keep a complete hint (it may stop on a worse solution of its
        # own, e.g. one leaving places the repaired start filled), so the LNS starts from the
        # better of the two.
        hint_values, hint_objective = _hint_values(rm, hint)
        if hint_objective < objective:
            values, objective = hint_values, hint_objective
    if not values and not hint_valid and task.use_lns and not large:
        hint, hint_valid = _construct(task, clock, hint)
        hint = _repaired(
            task, hint, hint_valid, clock.elapsed() + clock.start + 0.1 * task.time_limit_s
        )
    if not values:
        if not hint_valid:
            return _PartResult("unknown", (), None, n_vars)
        values, objective = _hint_values(rm, hint)
    rounds = 0
    if status != cp_model.OPTIMAL and task.use_lns:
        deadline = clock.start + task.time_limit_s

        def report(value: int) -> None:
            if progress is not None:
                progress(ProgressEvent(value, bound, clock.elapsed(), task.number))

        result = improve(rm, values, objective, deadline, task.seed, task.workers, report)
        values, rounds = result.values, result.rounds
    state = "optimal" if status == cp_model.OPTIMAL else "feasible"
    return _PartResult(state, _pairs(rm, values), bound, n_vars, (), rounds)


def _construct(
    task: _PartTask, clock: _Clock, hint: tuple[Pair, ...]
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
        )
        if built is not None:
            return built, True
    return hint, False


def _hint_values(rm: RosterModel, hint: Sequence[Pair]) -> tuple[dict[int, int], int]:
    """The hint as variable values, and its model objective (found by fixing every value)."""
    index = rm.variables.index
    chosen = {(index.volunteer_pos[p.volunteer], index.shift_pos[p.shift]) for p in hint}
    values = {literal.index: int(key in chosen) for key, literal in rm.variables.assign.items()}
    fixed = rm.model.clone()
    for var_index, value in values.items():
        fix(fixed, var_index, value)
    solver = _solver(10.0, 1, 0)
    solver.solve(fixed)
    return values, round(solver.objective_value)


def _pairs(rm: RosterModel, values: dict[int, int]) -> tuple[Pair, ...]:
    problem = rm.variables.index.problem
    chosen = sorted(
        (s, v) for (v, s), literal in rm.variables.assign.items() if values[literal.index]
    )
    return tuple(Pair(problem.volunteers[v].id, problem.shifts[s].id) for s, v in chosen)


def _quick_conflicts(problem: Problem, index: ProblemIndex, eligible: list[list[int]]) -> list[str]:
    """Infeasibilities visible without search: pinned pairs that are not allowed, and minimum
    minutes beyond everything a volunteer may take."""
    allowed = {(v, s) for s, people in enumerate(eligible) for v in people}
    found = []
    for pair in problem.pinned:
        key = (index.volunteer_pos[pair.volunteer], index.shift_pos[pair.shift])
        if key not in allowed:
            found.append(
                f"pinned {pair.volunteer} on {pair.shift}, but that pair is forbidden, "
                "unavailable, too far or of a kind they are capped at 0 for"
            )
    reachable = [0] * len(problem.volunteers)
    for s, people in enumerate(eligible):
        for v in people:
            reachable[v] += index.shifts[s].minutes
    for v, volunteer in enumerate(problem.volunteers):
        need = volunteer.limits.min_minutes
        if need and reachable[v] < need:
            found.append(
                f"volunteer {volunteer.id} must work {need} min, but only {reachable[v]} min of "
                "shifts are open to them"
            )
    return found


def _model_candidates(problem: Problem, eligible: list[list[int]]) -> list[list[int]]:
    """All eligible pairs, or at federation scale the nearest few per slot (and every pinned,
    previous and wished-for pair), so the model stays solvable within the time limit."""
    if sum(len(people) for people in eligible) <= PRUNE_ABOVE:
        return eligible
    wished = [Pair(v.id, r.shift) for v in problem.volunteers for r in v.requests if r.want]
    return prune_candidates(
        problem, eligible, CANDIDATES_PER_PERSON, [*problem.pinned, *problem.previous, *wished]
    )


def _run_parts(tasks: list[_PartTask], options: SolveOptions, parallel: bool) -> list[_PartResult]:
    if parallel:
        # Each process runs a one-worker CP-SAT; 'spawn' keeps OR-Tools' threads out of fork.
        split = [
            _PartTask(
                **{**{f: getattr(t, f) for f in _PartTask.__dataclass_fields__}, "workers": 1}
            )
            for t in tasks
        ]
        context = multiprocessing.get_context("spawn")
        with context.Pool(options.workers) as pool:
            return pool.map(_solve_part, split, chunksize=1)
    return [_solve_part(t, options.progress) for t in tasks]


def _time_shares(
    parts: list[Component], eligible: list[list[int]], total: float, lanes: int
) -> list[float]:
    sizes = [max(1, sum(len(eligible[s]) for s in c.shifts)) for c in parts]
    whole = sum(sizes)
    # In parallel, `lanes` parts run at once, so each may take that multiple of its share
    # (never more than the whole budget: the largest parts are handed out first).
    return [min(total, total * lanes * size / whole) for size in sizes]


def solve(problem: Problem, options: SolveOptions = SolveOptions()) -> Solution:
    """Assign volunteers to shifts: every hard rule kept, the weighted objective minimised.

    :return: a Solution with status optimal / feasible / infeasible / unknown, its objective
        re-scored from the assignments, the proven bound where known, and shortfalls.
    """
    clock = _Clock()
    index = ProblemIndex.build(problem)
    reachable = reachable_positions(problem)
    full_eligible = eligible_positions(problem, reachable)
    conflicts = _quick_conflicts(problem, index, full_eligible)
    if conflicts:
        return _infeasible(problem, conflicts, clock)
    eligible = _model_candidates(problem, full_eligible)
    start = greedy_result(problem, eligible)
    # Shortfall explanations come after the search and must fit in the same limit; the start's
    # short shifts are a fair guess at how many there will be.
    explain_reserve = min(
        EXPLAIN_MAX_SHARE * options.time_limit_s,
        EXPLAIN_S_PER_SHORTFALL * _short_shifts(problem, start.assignments)
        + EXPLAIN_S_PER_VOLUNTEER * len(problem.volunteers),
    )
    parts = components(problem, eligible)
    budget = max(0.1, options.time_limit_s - explain_reserve - clock.elapsed())
    parallel = (
        options.workers > 1
        and sum(1 for c in parts if sum(len(eligible[s]) for s in c.shifts) >= PARALLEL_PART) > 1
    )
    shares = _time_shares(parts, eligible, budget * 0.95, options.workers if parallel else 1)
    tasks = []
    for number, (part, share) in enumerate(zip(parts, shares, strict=True)):
        sliced = slice_problem(problem, part)
        ids = {v.id for v in sliced.volunteers}
        part_hint = tuple(p for p in start.assignments if p.volunteer in ids)
        tasks.append(
            _PartTask(
                number,
                sliced,
                slice_eligible(part, eligible),
                part_hint,
                start.valid,
                share,
                options.workers,
                options.seed,
                options.use_lns,
            )
        )
    results = _run_parts(tasks, options, parallel)
    # Explanations get what is left of the limit, and at least a short moment for the largest.
    explain_by = clock.start + max(options.time_limit_s, clock.elapsed() + 0.5)
    solution = _assemble(
        problem,
        index,
        tasks,
        results,
        start.assignments,
        clock,
        full_eligible,
        explain_by,
        reachable,
    )
    return replace(solution, stats={**solution.stats, "parallel": parallel})


def _infeasible(problem: Problem, conflicts: Sequence[str], clock: _Clock) -> Solution:
    return Solution(
        status="infeasible",
        assignments=(),
        conflicts=tuple(conflicts),
        stats={"wall_s": round(clock.elapsed(), 3)},
    )


def _shortfalls(
    problem: Problem,
    assignments: Sequence[Pair],
    eligible: Sequence[Sequence[int]],
    deadline: float,
    reachable: Mapping[Location | None, np.ndarray],
) -> tuple[Shortfall, ...]:
    try:
        from scheduling.explain import explain_shortfalls
    except ImportError:  # the explainer is optional: a roster is still a roster without it
        return ()
    return explain_shortfalls(problem, assignments, eligible, deadline, reachable)


def _assemble(
    problem: Problem,
    index: ProblemIndex,
    tasks: list[_PartTask],
    results: list[_PartResult],
    greedy_pairs: Sequence[Pair],
    clock: _Clock,
    eligible: Sequence[Sequence[int]],
    explain_by: float,
    reachable: Mapping[Location | None, np.ndarray],
) -> Solution:
    conflicts = [c for r in results for c in r.conflicts]
    if any(r.status == "infeasible" for r in results):
        return _infeasible(problem, conflicts, clock)
    assignments = tuple(p for r in results for p in r.assignments)
    parts = score(index, assignments)
    objective = sum(parts.values())
    status = "optimal"
    if any(r.status == "unknown" for r in results):
        status = "unknown"
    elif any(r.status != "optimal" for r in results):
        status = "feasible"
    bound = None
    if status != "unknown" and all(r.bound is not None for r in results):
        # Costs outside every part (shifts nobody may take, requests nobody can honour) are
        # fixed, so the whole bound is the parts' bounds plus that fixed remainder.
        inside = sum(
            sum(score(ProblemIndex.build(t.problem), r.assignments).values())
            for t, r in zip(tasks, results, strict=True)
        )
        bound = min(objective, sum(r.bound or 0 for r in results) + objective - inside)
    if status == "optimal":
        bound = objective
    solved_s = clock.elapsed()
    shortfalls = _shortfalls(problem, assignments, eligible, explain_by, reachable)
    stats = {
        "wall_s": round(clock.elapsed(), 3),
        "solve_s": round(solved_s, 3),
        "explain_s": round(clock.elapsed() - solved_s, 3),
        "variables": sum(r.variables for r in results),
        "components": len(results),
        "greedy_objective": sum(score(index, greedy_pairs).values()),
        "lns_rounds": sum(r.lns_rounds for r in results),
    }
    return Solution(
        status=status,
        assignments=assignments,
        objective=objective,
        bound=bound,
        objective_parts=parts,
        shortfalls=shortfalls,
        conflicts=tuple(conflicts),
        stats=stats,
    )
