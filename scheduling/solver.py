"""solve(problem, options) → Solution: eligibility, independent parts, a greedy warm start, and
CP-SAT per part (with large-neighbourhood search when a part does not finish), in parallel
processes when there are several large parts.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from threadpoolctl import threadpool_limits

from scheduling.checker import check
from scheduling.costbound import relaxed_roster
from scheduling.dayflow import DayFlow, sweep_days
from scheduling.dayflow import applies as by_days_applies
from scheduling.decompose import Component, components, slice_eligible, slice_problem
from scheduling.eligibility import eligible_arrays, prune_candidates, reachable_positions
from scheduling.greedy import GreedyResult, greedy_result
from scheduling.lns import sequential_roster
from scheduling.model.data import ProblemIndex
from scheduling.model.objective import score
from scheduling.part import (
    LARGE_PART,
    Clock,
    PartResult,
    PartTask,
    ProgressEvent,
    short_shifts,
    solve_part,
)
from scheduling.person_dp import per_assignment
from scheduling.problem import Location, Pair, Problem, Shortfall, Solution

__all__ = ["ProgressEvent", "SolveOptions", "solve"]

# Above this many eligible pairs, only the nearest CANDIDATES_PER_PERSON per slot are modelled.
PRUNE_ABOVE = 300_000
CANDIDATES_PER_PERSON = 6
# Up to this many eligible pairs the day-by-day search starts from the whole-horizon flow
# relaxation (which also proves a bound); above it that flow takes longer than it gains.
WEEK_FLOW_PAIRS = 6_000_000
# What one sweep of full day flows costs per eligible pair (17M pairs: about 20 s on the
# 2-core reference machine), the share of the remaining time one sweep may take before the
# flows run on each post's nearest candidates instead, and how many are kept: per post
# location this many per place of its busiest day, per volunteer this many nearest posts.
SWEEP_S_PER_PAIR = 1.2e-6
FULL_SWEEP_SHARE = 0.35
PRUNE_PER_PLACE = 12
PRUNE_PER_PERSON = 8
# Time kept for assembling the parts' rosters: a share of the limit, at most a few tenths.
ASSEMBLY_SHARE = 0.03
ASSEMBLY_MAX_S = 0.5
# Share of the limit the day-by-day start may take before CP-SAT (it usually needs far less).
DAY_FLOW_SHARE = 0.85
# Time kept for explaining shortfalls: a rough cost per short shift and per volunteer (measured
# at 40,000 volunteers: about 0.6 ms a shortfall and 1 s of set-up), at most a share of the limit.
EXPLAIN_S_PER_SHORTFALL = 8e-4
EXPLAIN_S_PER_VOLUNTEER = 3e-5
EXPLAIN_MAX_SHARE = 0.15
# Parts smaller than this are not worth a process of their own.
PARALLEL_PART = 2_000


@dataclass(frozen=True, slots=True)
class SolveOptions:
    time_limit_s: float = 10.0
    workers: int = 2
    seed: int = 0
    progress: Callable[[ProgressEvent], None] | None = None
    use_lns: bool = True


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


def _run_parts(tasks: list[PartTask], options: SolveOptions, parallel: bool) -> list[PartResult]:
    if parallel:
        # Each process runs a one-worker CP-SAT; 'spawn' keeps OR-Tools' threads out of fork.
        split = [
            PartTask(**{**{f: getattr(t, f) for f in PartTask.__dataclass_fields__}, "workers": 1})
            for t in tasks
        ]
        context = multiprocessing.get_context("spawn")
        with context.Pool(options.workers, initializer=_one_blas_thread) as pool:
            return pool.map(solve_part, split, chunksize=1)
    return [solve_part(t, options.progress) for t in tasks]


def _assembly_margin(time_limit_s: float) -> float:
    """Seconds kept back from the limit for the work after the search (building the roster,
    re-scoring, summaries of shortfalls left unexplained)."""
    return min(ASSEMBLY_MAX_S, ASSEMBLY_SHARE * time_limit_s)


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
    with threadpool_limits(limits=1, user_api="blas"):
        return _solve(problem, options)


def _one_blas_thread() -> None:
    """The search keeps every core busy itself (CP-SAT workers, part processes); OpenBLAS's own
    threads only wait for them. Curtois Instance24's person-by-person build spent 10 of its
    35 s in one small product, (16 x 7,000) @ (7,000 x 84): 1.2 ms on one thread, 20-230 ms
    with OpenBLAS's threads beside a busy CP-SAT."""
    threadpool_limits(limits=1, user_api="blas")


def _solve(problem: Problem, options: SolveOptions) -> Solution:
    clock = Clock()
    index = ProblemIndex.build(problem)
    reachable = reachable_positions(problem)
    arrays = eligible_arrays(problem, reachable)
    if sum(len(people) for people in arrays) > PRUNE_ABOVE and _by_days(problem):
        return _solve_by_days(problem, index, arrays, reachable, options, clock)
    full_eligible = [people.tolist() for people in arrays]
    conflicts = _quick_conflicts(problem, index, full_eligible)
    if conflicts:
        return _infeasible(problem, conflicts, clock)
    eligible = _model_candidates(problem, full_eligible)
    flow_bound: int | None = None
    by_days = _by_days(problem)
    if by_days:
        # Seconds of day-by-day flows give a far better start than the greedy (1,000
        # generated volunteers: 124,610 against 156,700, 7% above the proven bound).
        start, flow_bound = _day_flow_start(
            problem,
            index,
            arrays,
            clock,
            clock.start + DAY_FLOW_SHARE * options.time_limit_s,
            options.progress,
        )
        begun_by = "day flow"
    else:
        built = _sequential_start(problem, eligible, clock, options)
        begun_by = "greedy" if built is None else "volunteer by volunteer"
        start = built or greedy_result(problem, eligible)
    start_objective = sum(score(index, start.assignments).values())  # before the parts' limits
    # Shortfall explanations come after the search and must fit in the same limit; the start's
    # short shifts are a fair guess at how many there will be.
    explain_reserve = min(
        EXPLAIN_MAX_SHARE * options.time_limit_s,
        EXPLAIN_S_PER_SHORTFALL * short_shifts(problem, start.assignments)
        + EXPLAIN_S_PER_VOLUNTEER * len(problem.volunteers),
    )
    parts = components(problem, eligible)
    # Building parts, their last round's model and re-scoring the whole roster come on top of
    # the parts' own limits (Timefold XL at 10 s ended at 10.16 s without this margin).
    margin = _assembly_margin(options.time_limit_s)
    budget = max(0.1, options.time_limit_s - explain_reserve - margin - clock.elapsed())
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
            PartTask(
                number,
                sliced,
                slice_eligible(part, eligible),
                part_hint,
                start.valid,
                share,
                options.workers,
                options.seed,
                options.use_lns,
                # The flow bound holds for the whole problem, so only a part that is all of it
                # may stop on meeting it.
                flow_bound if len(parts) == 1 else None,
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
        start_objective,
        clock,
        full_eligible,
        explain_by,
        reachable,
    )
    if flow_bound is not None and solution.status == "feasible":
        bound = max(flow_bound, solution.bound or flow_bound)
        proven = "optimal" if bound == solution.objective else "feasible"
        solution = replace(solution, bound=bound, status=proven)
    return replace(
        solution,
        stats={
            **solution.stats,
            "parallel": parallel,
            "start": begun_by,
        },
    )


def _sequential_start(
    problem: Problem, eligible: list[list[int]], clock: Clock, options: SolveOptions
) -> GreedyResult | None:
    """For a problem too large to model whole whose every volunteer the day-by-day search can
    plan, a valid start built volunteer by volunteer (`sequential_roster`), in place of the
    greedy; None where that does not apply or finds nothing in time.

    On such problems the greedy breaks minimum rules, so the part built this roster after it
    anyway: on Curtois Instance24 the greedy took 16 s of a 60 s limit (fill 5 s, repairing
    minimums 11 s) for a roster it then threw away; on Instance23 6 s."""
    if (
        not options.use_lns
        or sum(len(people) for people in eligible) <= LARGE_PART
        or not all(per_assignment(problem, v) for v in problem.volunteers)
    ):
        return None
    limit = options.time_limit_s
    for frugal in (False, True):
        built = sequential_roster(
            problem,
            eligible,
            clock.start + clock.elapsed() + (limit - clock.elapsed()) * 0.4,
            options.seed,
            max(2, options.workers),
            hard_deadline=clock.start + limit * 0.9,
            frugal=frugal,
        )
        if built is not None:
            return GreedyResult(built, True)
    return None


def _day_search(
    problem: Problem, index: ProblemIndex, eligible: list[np.ndarray], deadline: float
) -> tuple[DayFlow, int | None]:
    """The day-by-day search, started and sized for the time left, and the proven bound
    where one was computed."""
    search = DayFlow(problem, eligible, index)
    if search.pair_count <= WEEK_FLOW_PAIRS:
        # The whole-horizon relaxation proves a bound and, minus the pairs that break a rule
        # it drops, gives the sweeps a start that days alone do not find (a person's weekly cap
        # spent on the day that needs them least).
        bound, volunteers, shifts = relaxed_roster(problem, eligible, search)
        search.load_valid_part(volunteers, shifts)
        return search, bound
    if search.pair_count * SWEEP_S_PER_PAIR > FULL_SWEEP_SHARE * (deadline - time.monotonic()):
        # Full day flows would not sweep the horizon in time (the app's 20 km reach gives
        # 18,000 patrol volunteers 36 million pairs: 4 of 7 days in 30 s): flows over each
        # post's nearest candidates, widened for any shift they leave short.
        search.prune(PRUNE_PER_PLACE, PRUNE_PER_PERSON)
    return search, None


def _sweep_reporter(
    progress: Callable[[ProgressEvent], None] | None, bound: int | None, clock: Clock
) -> Callable[[int, int], None]:
    def report(sweep: int, cost: int) -> None:
        if progress is not None:
            progress(ProgressEvent(cost, bound, clock.elapsed(), 0))

    return report


def _day_flow_start(
    problem: Problem,
    index: ProblemIndex,
    eligible: list[np.ndarray],
    clock: Clock,
    deadline: float,
    progress: Callable[[ProgressEvent], None] | None,
) -> tuple[GreedyResult, int | None]:
    search, bound = _day_search(problem, index, eligible, deadline)
    found = sweep_days(search, deadline, _sweep_reporter(progress, bound, clock))
    return GreedyResult(found.pairs, True), bound


def _by_days(problem: Problem) -> bool:
    """Whether the day-by-day flow search keeps every hard rule here (and the pinned pairs
    alone keep them: otherwise the CP-SAT path names the conflict)."""
    if not by_days_applies(problem):
        return False
    return not problem.pinned or check(problem, problem.pinned).ok


def _solve_by_days(
    problem: Problem,
    index: ProblemIndex,
    eligible: list[np.ndarray],
    reachable: Mapping[Location | None, np.ndarray],
    options: SolveOptions,
    clock: Clock,
) -> Solution:
    """Federation scale: every day re-assigned by min-cost flow against the rest of the week,
    sweep after sweep (see `_day_search` for the start and when candidates are pruned)."""
    conflicts = [
        f"pinned {pair.volunteer} on {pair.shift}, but that pair is forbidden, unavailable, "
        "too far or of a kind they are capped at 0 for"
        for pair in problem.pinned
        if index.volunteer_pos[pair.volunteer] not in eligible[index.shift_pos[pair.shift]]
    ]
    if conflicts:
        return _infeasible(problem, conflicts, clock)
    explain_reserve = min(
        EXPLAIN_MAX_SHARE * options.time_limit_s,
        EXPLAIN_S_PER_VOLUNTEER * len(problem.volunteers) + 1.0,
    )
    deadline = clock.start + options.time_limit_s - explain_reserve

    search, bound = _day_search(problem, index, eligible, deadline)
    report = _sweep_reporter(options.progress, bound, clock)
    assignments, parts, solved, sweeps = sweep_days(search, deadline, report)
    solved_s = clock.elapsed()
    # Shortfalls past the explanation deadline still get a summary, and the Solution is built
    # after: keep the assembly margin for that (40,000 volunteers ended 0.05-1.3 s late).
    margin = _assembly_margin(options.time_limit_s)
    explain_by = clock.start + max(options.time_limit_s - margin, clock.elapsed() + 0.5)
    shortfalls = _shortfalls(problem, assignments, eligible, explain_by, reachable)
    objective = sum(parts.values())
    return Solution(
        # The flow bound is proven, so meeting it proves the roster optimal.
        status="optimal" if bound == objective else "feasible",
        assignments=assignments,
        objective=objective,
        bound=bound,
        objective_parts=parts,
        shortfalls=shortfalls,
        stats={
            "wall_s": round(clock.elapsed(), 3),
            "solve_s": round(solved_s, 3),
            "explain_s": round(clock.elapsed() - solved_s, 3),
            "variables": sum(len(people) for people in eligible),
            "components": 1,
            "method": "day-by-day min-cost flow",
            "day_flows": solved,
            "pairs_in_flows": search.pair_count,
            "sweeps": sweeps,
            "parallel": False,
        },
    )


def _infeasible(problem: Problem, conflicts: Sequence[str], clock: Clock) -> Solution:
    return Solution(
        status="infeasible",
        assignments=(),
        conflicts=tuple(conflicts),
        stats={"wall_s": round(clock.elapsed(), 3)},
    )


def _shortfalls(
    problem: Problem,
    assignments: Sequence[Pair],
    eligible: Sequence[Sequence[int] | np.ndarray],
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
    tasks: list[PartTask],
    results: list[PartResult],
    start_objective: int,
    clock: Clock,
    eligible: Sequence[Sequence[int] | np.ndarray],
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
        if bound == objective:  # the roster meets a proven bound (price and branch's, say)
            status = "optimal"
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
        "start_objective": start_objective,
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
