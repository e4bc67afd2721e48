"""solve(): statuses, bound, progress, repeatability, parts in parallel, and the Curtois
regression on the smallest benchmark instance."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from scheduling.checker import check
from scheduling.problem import Limits, Location, Pair, Problem, Rules, Solution, Volunteer, Weights
from scheduling.solver import ProgressEvent, SolveOptions, solve

BENCH = Path(__file__).parent / "cases" / "curtois"


def checked(problem: Problem, solution: Solution) -> Solution:
    report = check(problem, solution.assignments)
    assert report.ok, report.violations
    assert solution.objective == report.objective
    assert dict(solution.objective_parts) == report.parts
    return solution


def week_problem(kit: Any, volunteers: int = 6, seed: int = 0) -> Problem:
    rng = random.Random(seed)
    people = [
        Volunteer(
            f"v{i}",
            skills=frozenset({"leader"}) if i % 3 == 0 else frozenset(),
            target_minutes=960,
            limits=Limits(max_minutes_per_week=1440, max_consecutive_days=4),
        )
        for i in range(volunteers)
    ]
    shifts = [
        kit.shift(
            f"d{day}h{hour}",
            day,
            hour,
            8,
            kind="night" if hour == 22 else "day",
            required=rng.randint(1, 2),
            skills={"leader": 1} if hour == 6 else {},
        )
        for day in range(7)
        for hour in (6, 14, 22)
    ]
    return kit.problem(
        people,
        shifts,
        rules=Rules(min_rest_minutes=480, forbidden_successions=(("night", "day"),)),
        weights=Weights(fairness=1),
    )


def test_week_roster_is_valid_with_a_bound(kit: Any) -> None:
    problem = week_problem(kit)
    solution = checked(problem, solve(problem, SolveOptions(time_limit_s=3, workers=2)))
    assert solution.status in ("optimal", "feasible")
    assert solution.objective is not None and solution.bound is not None
    assert solution.bound <= solution.objective
    assert solution.stats["variables"] == 6 * 21
    assert solution.objective <= solution.stats["start_objective"]


def test_same_seed_same_roster(kit: Any) -> None:
    problem = week_problem(kit, seed=3)
    options = SolveOptions(time_limit_s=1, workers=1, seed=5, use_lns=False)
    first, second = solve(problem, options), solve(problem, options)
    assert first.assignments == second.assignments
    checked(problem, first)


def test_progress_reports_improving_objectives(kit: Any) -> None:
    events: list[ProgressEvent] = []
    problem = week_problem(kit, volunteers=8, seed=1)
    solution = solve(problem, SolveOptions(time_limit_s=2, workers=1, progress=events.append))
    checked(problem, solution)
    assert events
    assert all(e.bound is None or e.bound <= e.objective for e in events)
    assert events[-1].objective >= (solution.bound or 0)


def test_infeasible_problem_assigns_nothing_and_names_the_conflict(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(min_minutes=480)), Volunteer("b")],
        [kit.shift("s1", 0, 8), kit.shift("s2", 0, 10)],
        pinned=[Pair("b", "s1")],
    )
    solution = solve(problem, SolveOptions(time_limit_s=2, workers=1))
    assert solution.status == "infeasible"
    assert solution.assignments == ()
    assert any("min_minutes a" in conflict for conflict in solution.conflicts)


def test_parts_solved_in_parallel_processes(kit: Any) -> None:
    towns = [Location(31.0, 121.0), Location(31.0, 122.0)]
    people = [
        Volunteer(f"t{t}v{i}", location=towns[t], target_minutes=480)
        for t in range(2)
        for i in range(50)
    ]
    # 50 people x 42 shifts a town: each part is big enough to get a process of its own.
    shifts = [
        kit.shift(f"t{t}d{d}h{h}", d, h, 4, location=towns[t], required=3)
        for t in range(2)
        for d in range(7)
        for h in (0, 4, 8, 12, 16, 20)
    ]
    problem = kit.problem(
        people,
        shifts,
        rules=Rules(max_distance_km=10, min_rest_minutes=600),
        weights=Weights(fairness=1),
    )
    solution = checked(problem, solve(problem, SolveOptions(time_limit_s=6, workers=2)))
    assert solution.stats["components"] == 2
    assert solution.stats["parallel"] is True
    assert solution.objective_parts["under"] == 0


def test_curtois_instance1_reaches_the_best_known(kit: Any) -> None:
    from scheduling.curtois import read_curtois

    problem = read_curtois(str(BENCH / "Instance1.txt"))
    solution = checked(problem, solve(problem, SolveOptions(time_limit_s=10, workers=2)))
    assert solution.objective == 607


def test_volunteer_by_volunteer_build_keeps_minimum_rules(kit: Any) -> None:
    import time

    from scheduling.eligibility import eligible_positions
    from scheduling.lns import sequential_roster

    people = [
        Volunteer(
            f"v{i}",
            limits=Limits(min_minutes=4 * 480, min_consecutive_days=2, max_consecutive_days=3),
        )
        for i in range(3)
    ]
    # Room for everyone (as in Curtois, where over-cover is only a cost): each person's
    # schedule can be chosen alone.
    shifts = [kit.shift(f"d{d}", d, 8, 8, required=2, capacity=3) for d in range(7)]
    problem = kit.problem(people, shifts, rules=Rules(one_shift_per_day=True))
    eligible = eligible_positions(problem)
    for frugal in (False, True):
        built = sequential_roster(
            problem, eligible, time.monotonic() + 10, workers=1, frugal=frugal
        )
        assert built is not None
        assert check(problem, built).ok
    solution = solve(problem, SolveOptions(time_limit_s=3, workers=1))
    assert check(problem, solution.assignments).ok
    assert solution.objective_parts["under"] == 0


def test_cluster_search_never_worsens_a_valid_roster(kit: Any) -> None:
    import time

    from scheduling.eligibility import eligible_positions
    from scheduling.greedy import greedy_result
    from scheduling.slices import improve_by_slices

    problem = week_problem(kit, volunteers=8, seed=2)
    start = greedy_result(problem)
    assert start.valid
    before = check(problem, start.assignments).objective
    pairs, rounds = improve_by_slices(
        problem, eligible_positions(problem), start.assignments, time.monotonic() + 2, workers=1
    )
    report = check(problem, pairs)
    assert report.ok and rounds > 0
    assert report.objective <= before
