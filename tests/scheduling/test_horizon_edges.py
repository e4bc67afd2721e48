"""Shifts whose local day lies beyond the horizon's ends: the checker and the model agree.

Minimum stretch rules judge only the horizon's days (a stretch reaching beyond an end touches
that edge and is exempt); maximum rules count every calendar day a person works.
"""

from __future__ import annotations

from typing import Any

from scheduling.checker import check
from scheduling.problem import Limits, Volunteer
from scheduling.solver import SolveOptions, solve


def _solve(problem: Any) -> Any:
    solution = solve(problem, SolveOptions(time_limit_s=5.0, workers=1, seed=0))
    assert check(problem, solution.assignments).ok
    return solution


def test_checker_ignores_days_beyond_the_horizon_for_minimum_days_off(kit: Any) -> None:
    limits = Limits(min_consecutive_days_off=2)
    shifts = [
        kit.shift("before", -1),
        kit.shift("s1", 1),
        kit.shift("s5", 5),
        kit.shift("after", 7),
    ]
    problem = kit.problem([Volunteer("a", limits=limits)], shifts)
    # Day 0 off lies between day -1 and day 1, day 6 between day 5 and day 7: both single
    # days off touch an edge of the horizon.
    report = check(problem, kit.pairs(("a", "before"), ("a", "s1"), ("a", "s5"), ("a", "after")))
    assert report.ok, report.violations


def test_checker_ignores_days_beyond_the_horizon_for_minimum_working_days(kit: Any) -> None:
    limits = Limits(min_consecutive_days=3)
    shifts = [kit.shift("before", -1), kit.shift("s0", 0), kit.shift("s3", 3)]
    problem = kit.problem([Volunteer("a", limits=limits)], shifts)
    # Days -1 and 0 touch the first day; day 3 alone is an inner stretch and too short.
    assert check(problem, kit.pairs(("a", "before"), ("a", "s0"))).ok
    report = check(problem, kit.pairs(("a", "before"), ("a", "s0"), ("a", "s3")))
    assert [v.rule for v in report.violations] == ["min_consecutive_days"]


def test_solver_takes_both_shifts_around_an_edge_day_off(kit: Any) -> None:
    limits = Limits(min_consecutive_days_off=2)
    shifts = [kit.shift("before", -1), kit.shift("s1", 1)]
    problem = kit.problem([Volunteer("a", limits=limits)], shifts)
    solution = _solve(problem)
    assert {(p.volunteer, p.shift) for p in solution.assignments} == {("a", "before"), ("a", "s1")}


def test_max_consecutive_days_counts_a_day_beyond_the_horizon(kit: Any) -> None:
    limits = Limits(max_consecutive_days=2)
    shifts = [kit.shift("before", -1), kit.shift("s0", 0), kit.shift("s1", 1)]
    problem = kit.problem([Volunteer("a", limits=limits)], shifts)
    assert [
        v.rule for v in check(problem, kit.pairs(*(("a", s.id) for s in shifts))).violations
    ] == ["max_consecutive_days"]
    solution = _solve(problem)
    assert len(solution.assignments) == 2


def test_max_weekends_counts_a_weekend_beyond_the_horizon(kit: Any) -> None:
    limits = Limits(max_weekends=1)
    # Day -1 is the Sunday before the horizon, day 5 the horizon's Saturday.
    shifts = [kit.shift("sunday_before", -1), kit.shift("saturday", 5)]
    problem = kit.problem([Volunteer("a", limits=limits)], shifts)
    solution = _solve(problem)
    assert len(solution.assignments) == 1
