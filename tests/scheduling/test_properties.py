"""Property tests on random tiny problems: every returned roster passes the checker, and the
solver's optimum equals an exhaustive search over all assignment subsets scored by the checker.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import product

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from scheduling.checker import check
from scheduling.problem import (
    Limits,
    Pair,
    Problem,
    Request,
    Rules,
    Shift,
    Volunteer,
    Weights,
)
from scheduling.solver import SolveOptions, solve

START = datetime(2026, 12, 7, tzinfo=UTC)


@st.composite
def shifts(draw: st.DrawFn, count: int) -> list[Shift]:
    out = []
    for i in range(count):
        day = draw(st.integers(0, 3))
        hour = draw(st.sampled_from([0, 6, 12, 18]))
        hours = draw(st.sampled_from([4, 8]))
        required = draw(st.integers(0, 2))
        begin = START + timedelta(days=day, hours=hour)
        out.append(
            Shift(
                id=f"s{i}",
                start=begin,
                end=begin + timedelta(hours=hours),
                kind="night" if hour == 18 else "day",
                required=required,
                capacity=required + draw(st.integers(0, 1)),
                skills=draw(st.sampled_from([{}, {"leader": 1}])),
                over_weight=draw(st.sampled_from([None, 3])),
            )
        )
    return out


@st.composite
def problems(draw: st.DrawFn, max_volunteers: int, max_shifts: int) -> Problem:
    shift_list = draw(shifts(draw(st.integers(1, max_shifts))))
    ids = [s.id for s in shift_list]
    volunteers = []
    for i in range(draw(st.integers(1, max_volunteers))):
        limits = Limits(
            max_minutes=draw(st.sampled_from([None, 480, 720])),
            min_minutes=draw(st.sampled_from([None, None, 240])),
            max_shifts=draw(st.sampled_from([None, 1, 2])),
            max_shifts_by_kind=draw(st.sampled_from([{}, {"night": 0}, {"night": 1}])),
            max_consecutive_days=draw(st.sampled_from([None, 1, 2])),
            min_consecutive_days=draw(st.sampled_from([None, 2])),
            min_consecutive_days_off=draw(st.sampled_from([None, 2])),
            max_weekends=draw(st.sampled_from([None, 0])),
        )
        requests = tuple(
            Request(shift, draw(st.booleans()), draw(st.integers(1, 9)))
            for shift in draw(st.lists(st.sampled_from(ids), max_size=2, unique=True))
        )
        volunteers.append(
            Volunteer(
                f"v{i}",
                skills=draw(st.sampled_from([frozenset(), frozenset({"leader"})])),
                target_minutes=draw(st.sampled_from([None, 240])),
                limits=limits,
                requests=requests,
            )
        )
    all_pairs = [Pair(v.id, s) for v in volunteers for s in ids]
    some_pairs = st.lists(st.sampled_from(all_pairs), max_size=2, unique=True)
    return Problem(
        timezone=draw(st.sampled_from(["UTC", "Asia/Shanghai"])),
        horizon_start=date(2026, 12, 7),
        horizon_days=5,  # local days of every shift, even at 18:00 UTC in Shanghai
        volunteers=tuple(volunteers),
        shifts=tuple(shift_list),
        rules=Rules(
            min_rest_minutes=draw(st.sampled_from([0, 480])),
            one_shift_per_day=draw(st.booleans()),
            forbidden_successions=draw(st.sampled_from([(), (("night", "day"),)])),
            weekend_days=(3,),  # Thursday, so the 4-day horizon has a "weekend" day
        ),
        weights=Weights(
            under=draw(st.sampled_from([10, 1000])),
            over=1,
            skill_under=7,
            fairness=draw(st.sampled_from([0, 1])),
            change=5,
        ),
        pinned=tuple(draw(st.lists(st.sampled_from(all_pairs), max_size=1))),
        forbidden=tuple(draw(some_pairs)),
        previous=tuple(draw(some_pairs)),
    )


def exhaustive_optimum(problem: Problem) -> int | None:
    pairs = [Pair(v.id, s.id) for v in problem.volunteers for s in problem.shifts]
    best: int | None = None
    for mask in product((False, True), repeat=len(pairs)):
        report = check(problem, [p for p, on in zip(pairs, mask, strict=True) if on])
        if report.ok and (best is None or report.objective < best):
            best = report.objective
    return best


OPTIONS = SolveOptions(time_limit_s=5, workers=1, seed=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_volunteers=4, max_shifts=5))
def test_every_roster_passes_the_checker(problem: Problem) -> None:
    solution = solve(problem, OPTIONS)
    if solution.status == "infeasible":
        assert solution.assignments == () and solution.conflicts
        return
    report = check(problem, solution.assignments)
    assert report.ok, report.violations
    assert solution.objective == report.objective
    assert solution.bound is None or solution.bound <= solution.objective


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(max_volunteers=3, max_shifts=4))
def test_optimum_equals_exhaustive_search(problem: Problem) -> None:
    solution = solve(problem, OPTIONS)
    best = exhaustive_optimum(problem)
    event(f"status {solution.status}, pairs {len(problem.volunteers) * len(problem.shifts)}")
    if best is None:
        assert solution.status == "infeasible"
        return
    assert solution.status == "optimal"
    assert solution.objective == best
