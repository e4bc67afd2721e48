"""Every rule: one tiny problem where it binds and the solver respects it, and one where it makes
the problem infeasible or forces a shortfall, and the result says so. The checker runs on every
solution and must agree with the solver's objective."""

from __future__ import annotations

from typing import Any

import pytest

from scheduling.checker import check
from scheduling.problem import (
    Limits,
    Location,
    Pair,
    Problem,
    Request,
    Rules,
    Solution,
    Volunteer,
    Weights,
)
from scheduling.solver import SolveOptions, solve


def solved(problem: Problem) -> Solution:
    solution = solve(problem, SolveOptions(time_limit_s=5, workers=1, seed=1))
    if solution.status == "infeasible":
        assert solution.assignments == ()
        assert solution.conflicts
        return solution
    report = check(problem, solution.assignments)
    assert report.ok, report.violations
    assert solution.objective == report.objective
    assert dict(solution.objective_parts) == report.parts
    assert solution.status == "optimal"
    return solution


def chosen(solution: Solution) -> set[tuple[str, str]]:
    return {(p.volunteer, p.shift) for p in solution.assignments}


def people(*ids: str, **fields: Any) -> list[Volunteer]:
    return [Volunteer(i, **fields) for i in ids]


def test_coverage_fills_required_and_stays_within_capacity(kit: Any) -> None:
    problem = kit.problem(
        people("a", "b", "c"),
        [kit.shift("s1", required=1, capacity=2, over_weight=5)],
    )
    solution = solved(problem)
    assert len(solution.assignments) == 1
    assert solution.objective == 0


def test_coverage_shortfall_is_costed_and_explained(kit: Any) -> None:
    problem = kit.problem(people("a"), [kit.shift("s1", required=3)])
    solution = solved(problem)
    assert solution.objective_parts["under"] == 2 * 1000
    assert [s.shift for s in solution.shortfalls] == ["s1"]
    assert solution.shortfalls[0].missing == 2


def test_skills_prefer_the_skilled_volunteer(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("plain"), Volunteer("medic", skills=frozenset({"first_aid"}))],
        [kit.shift("s1", skills={"first_aid": 1})],
    )
    assert chosen(solved(problem)) == {("medic", "s1")}


def test_skills_missing_skill_costs_skill_under(kit: Any) -> None:
    problem = kit.problem(people("plain"), [kit.shift("s1", skills={"first_aid": 1})])
    solution = solved(problem)
    assert chosen(solution) == {("plain", "s1")}
    assert solution.objective_parts["skill_under"] == 500


def test_overlapping_shifts_go_to_different_people(kit: Any) -> None:
    problem = kit.problem(people("a", "b"), [kit.shift("s1", hour=8), kit.shift("s2", hour=10)])
    solution = solved(problem)
    assert len(solution.assignments) == 2
    assert len({p.volunteer for p in solution.assignments}) == 2


def test_overlap_leaves_a_shortfall_when_one_person_is_all_there_is(kit: Any) -> None:
    problem = kit.problem(people("a"), [kit.shift("s1", hour=8), kit.shift("s2", hour=10)])
    solution = solved(problem)
    assert len(solution.assignments) == 1
    assert solution.objective_parts["under"] == 1000


@pytest.mark.parametrize(("rest", "expected"), [(60, 2), (120, 1)])
def test_min_rest_between_shifts(kit: Any, rest: int, expected: int) -> None:
    problem = kit.problem(
        people("a"),
        [kit.shift("s1", hour=8), kit.shift("s2", hour=13)],
        rules=Rules(min_rest_minutes=rest),
    )
    assert len(solved(problem).assignments) == expected


@pytest.mark.parametrize(("one_per_day", "expected"), [(False, 2), (True, 1)])
def test_one_shift_per_day(kit: Any, one_per_day: bool, expected: int) -> None:
    problem = kit.problem(
        people("a"),
        [kit.shift("s1", hour=6), kit.shift("s2", hour=14)],
        rules=Rules(one_shift_per_day=one_per_day),
    )
    assert len(solved(problem).assignments) == expected


def test_forbidden_succession_splits_night_and_next_morning(kit: Any) -> None:
    problem = kit.problem(
        people("a", "b"),
        [kit.shift("n", 0, 20, 6, kind="night"), kit.shift("m", 1, 14, 4, kind="day")],
        rules=Rules(forbidden_successions=(("night", "day"),)),
    )
    solution = solved(problem)
    assert len(solution.assignments) == 2
    assert len({p.volunteer for p in solution.assignments}) == 2


def test_forbidden_succession_forces_a_shortfall(kit: Any) -> None:
    problem = kit.problem(
        people("a"),
        [kit.shift("n", 0, 20, 6, kind="night"), kit.shift("m", 1, 14, 4, kind="day")],
        rules=Rules(forbidden_successions=(("night", "day"),)),
    )
    assert solved(problem).objective_parts["under"] == 1000


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        (Limits(max_minutes=480), 2),
        (Limits(max_minutes=479), 1),
        (Limits(max_minutes_per_week=240), 2),  # the two shifts fall in different weeks
        (Limits(max_shifts=1), 1),
        (Limits(max_shifts_by_kind={"night": 1}), 1),
        (Limits(max_shifts_by_kind={"day": 1}), 2),
    ],
)
def test_caps(kit: Any, limits: Limits, expected: int) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=limits)],
        [kit.shift("s1", 0, kind="night"), kit.shift("s2", 7, kind="night")],
        days=14,
    )
    assert len(solved(problem).assignments) == expected


def test_weekly_minutes_bind_within_a_week(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(max_minutes_per_week=300))],
        [kit.shift("s1", 0), kit.shift("s2", 2)],
    )
    assert len(solved(problem).assignments) == 1


def test_min_minutes_forces_work_despite_over_cost(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a"), Volunteer("b", limits=Limits(min_minutes=240))],
        [kit.shift("s1", capacity=2, over_weight=7)],
    )
    solution = solved(problem)
    assert ("b", "s1") in chosen(solution)
    assert solution.objective == 0


def test_min_minutes_out_of_reach_is_infeasible(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(min_minutes=600))], [kit.shift("s1"), kit.shift("s2", 1)]
    )
    solution = solved(problem)
    assert solution.status == "infeasible"
    assert any("a" in c for c in solution.conflicts)


def test_min_minutes_blocked_by_overlap_is_infeasible_with_a_core(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(min_minutes=480))],
        [kit.shift("s1", hour=8), kit.shift("s2", hour=10)],
    )
    solution = solved(problem)
    assert solution.status == "infeasible"
    assert any("min_minutes" in c and "a" in c for c in solution.conflicts)


def daily(kit: Any, days: int, **fields: Any) -> list[Any]:
    return [kit.shift(f"d{d}", d, **fields) for d in range(days)]


def worked_days(solution: Solution) -> list[int]:
    return sorted(int(p.shift[1:]) for p in solution.assignments)


def test_max_consecutive_days(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(max_consecutive_days=2))], daily(kit, 5), days=5
    )
    solution = solved(problem)
    assert worked_days(solution) == [0, 1, 3, 4]


def test_min_consecutive_days_needs_longer_stretches(kit: Any) -> None:
    # Only day 2 is wanted, but an inner one-day stretch is not allowed: either work days 1-3
    # style stretches or nothing; over costs nothing here, so the day gets covered.
    problem = kit.problem(
        [Volunteer("a", limits=Limits(min_consecutive_days=2))],
        [kit.shift("d2", 2), kit.shift("d3", 3, required=0, capacity=1)],
        days=6,
    )
    solution = solved(problem)
    assert worked_days(solution) == [2, 3]


def test_min_consecutive_days_with_pinned_single_day_is_infeasible(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(min_consecutive_days=2))],
        [kit.shift("d2", 2)],
        days=6,
        pinned=[Pair("a", "d2")],
    )
    solution = solved(problem)
    assert solution.status == "infeasible"
    assert any("pinned" in c or "min_consecutive_days" in c for c in solution.conflicts)


def test_min_consecutive_days_off(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(min_consecutive_days_off=2))], daily(kit, 4), days=4
    )
    solution = solved(problem)
    # A one-day gap is not allowed: [0, 1, 2, 3] works, no rest needed inside the horizon.
    assert worked_days(solution) == [0, 1, 2, 3]


def test_min_consecutive_days_off_leaves_a_gap_unfilled(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(min_consecutive_days_off=2, max_consecutive_days=1))],
        daily(kit, 5),
        days=5,
    )
    solution = solved(problem)
    assert worked_days(solution) in ([0, 3], [1, 4], [0, 4])
    assert solution.objective_parts["under"] == 3000


def test_max_weekends(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(max_weekends=1)), Volunteer("b")],
        [kit.shift("sat1", 5), kit.shift("sun2", 13)],
        days=14,
    )
    solution = solved(problem)
    assert len(solution.assignments) == 2
    assert sum(1 for p in solution.assignments if p.volunteer == "a") <= 1


def test_max_weekends_forces_a_shortfall(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", limits=Limits(max_weekends=0))], [kit.shift("sat1", 5)], days=7
    )
    assert solved(problem).objective_parts["under"] == 1000


def test_pinned_assignment_is_kept(kit: Any) -> None:
    problem = kit.problem(
        people("a", "b"),
        [kit.shift("s1")],
        pinned=[Pair("b", "s1")],
        weights=Weights(distance=0),
    )
    assert chosen(solved(problem)) == {("b", "s1")}


def test_pinned_to_an_unavailable_volunteer_is_infeasible(kit: Any) -> None:
    from scheduling.problem import Window

    problem = kit.problem(
        [Volunteer("a", unavailable=(Window(kit.at(0, 0), kit.at(1, 0)),))],
        [kit.shift("s1")],
        pinned=[Pair("a", "s1")],
    )
    solution = solved(problem)
    assert solution.status == "infeasible"
    assert "pinned a on s1" in solution.conflicts[0]


def test_forbidden_pair_is_never_assigned(kit: Any) -> None:
    problem = kit.problem(people("a", "b"), [kit.shift("s1")], forbidden=[Pair("a", "s1")])
    assert chosen(solved(problem)) == {("b", "s1")}


def test_forbidden_only_candidate_leaves_a_shortfall(kit: Any) -> None:
    problem = kit.problem(people("a"), [kit.shift("s1")], forbidden=[Pair("a", "s1")])
    solution = solved(problem)
    assert solution.assignments == ()
    assert solution.objective_parts["under"] == 1000


def test_previous_plan_is_kept_when_change_costs(kit: Any) -> None:
    problem = kit.problem(
        people("a", "b"),
        [kit.shift("s1")],
        previous=[Pair("b", "s1")],
        weights=Weights(change=10),
    )
    solution = solved(problem)
    assert chosen(solution) == {("b", "s1")}
    assert solution.objective_parts["change"] == 0


def test_previous_plan_dropped_costs_change(kit: Any) -> None:
    problem = kit.problem(
        people("a", "b"),
        [kit.shift("s1")],
        previous=[Pair("b", "s1")],
        forbidden=[Pair("b", "s1")],
        weights=Weights(change=10),
    )
    assert solved(problem).objective_parts["change"] == 10


def test_requests_are_honoured(kit: Any) -> None:
    volunteers = [
        Volunteer("a", requests=(Request("s1", False, 5),)),
        Volunteer("b", requests=(Request("s1", True, 3),)),
        Volunteer("c"),
    ]
    problem = kit.problem(volunteers, [kit.shift("s1")])
    solution = solved(problem)
    assert chosen(solution) == {("b", "s1")}
    assert solution.objective == 0


def test_conflicting_requests_pay_the_cheaper_one(kit: Any) -> None:
    volunteers = [Volunteer("a", requests=(Request("s1", True, 5), Request("s2", True, 9)))]
    problem = kit.problem(volunteers, [kit.shift("s1", hour=8), kit.shift("s2", hour=9)])
    solution = solved(problem)
    assert chosen(solution) == {("a", "s2")}
    assert solution.objective_parts["requests"] == 5


def test_fairness_spreads_minutes_over_targets(kit: Any) -> None:
    problem = kit.problem(
        people("a", "b", target_minutes=240),
        [kit.shift("s1", 0), kit.shift("s2", 1)],
        weights=Weights(fairness=1),
    )
    solution = solved(problem)
    assert {p.volunteer for p in solution.assignments} == {"a", "b"}
    assert solution.objective == 0


def test_fairness_cost_when_one_person_must_do_everything(kit: Any) -> None:
    problem = kit.problem(
        people("a", target_minutes=240),
        [kit.shift("s1", 0), kit.shift("s2", 1)],
        weights=Weights(fairness=1),
    )
    assert solved(problem).objective_parts["fairness"] == 240


def test_distance_prefers_the_nearer_volunteer(kit: Any) -> None:
    post = Location(31.23, 121.47)
    problem = kit.problem(
        [
            Volunteer("far", location=Location(31.40, 121.47)),
            Volunteer("near", location=Location(31.24, 121.47)),
        ],
        [kit.shift("s1", location=post)],
        weights=Weights(distance=1),
    )
    solution = solved(problem)
    assert chosen(solution) == {("near", "s1")}
    assert solution.objective_parts["distance"] == 1


def test_max_distance_excludes_far_volunteers(kit: Any) -> None:
    post = Location(31.23, 121.47)
    problem = kit.problem(
        [Volunteer("far", location=Location(31.40, 121.47))],
        [kit.shift("s1", location=post)],
        rules=Rules(max_distance_km=10),
    )
    solution = solved(problem)
    assert solution.assignments == ()
    assert solution.shortfalls and solution.shortfalls[0].shift == "s1"
