"""The day-by-day min-cost-flow search: every rule it must keep, exactness on one day, and the
solver taking that path at federation scale."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduling import dayflow as dayflow_module
from scheduling import solver as solver_module
from scheduling.checker import check
from scheduling.costbound import cost_lower_bound
from scheduling.dayflow import DayFlow, applies, day_by_day, sweep_days
from scheduling.eligibility import eligible_pairs, eligible_positions
from scheduling.generator import generate_federation_week
from scheduling.greedy import greedy
from scheduling.maxflow import max_fillable_slots
from scheduling.model.data import distance_km
from scheduling.problem import (
    Limits,
    Location,
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


def _run(problem: Problem) -> tuple[Pair, ...]:
    return day_by_day(problem, eligible_positions(problem), math.inf).pairs


@st.composite
def problems(draw: st.DrawFn, single_day: bool = False) -> Problem:
    shifts = []
    for i in range(draw(st.integers(1, 6))):
        day = 0 if single_day else draw(st.integers(0, 9))
        hour = draw(st.sampled_from([0, 6, 12, 18, 22]))
        begin = START + timedelta(days=day, hours=hour)
        required = draw(st.integers(0, 2))
        shifts.append(
            Shift(
                id=f"s{i}",
                start=begin,
                end=begin + timedelta(hours=draw(st.sampled_from([4, 8]))),
                kind="night" if hour >= 18 else "day",
                required=required,
                capacity=required + draw(st.integers(0, 1)),
                skills=draw(st.sampled_from([{}, {"leader": 1}])),
                over_weight=draw(st.sampled_from([None, 3])),
            )
        )
    ids = [s.id for s in shifts]
    volunteers = []
    for i in range(draw(st.integers(1, 4))):
        volunteers.append(
            Volunteer(
                f"v{i}",
                # One skill at most: the flow counts a person once, the roster's cost counts
                # every skill they have (so only then is one day exactly optimal).
                skills=draw(st.sampled_from([frozenset(), frozenset({"leader"})])),
                target_minutes=draw(st.sampled_from([None, 240])),
                limits=Limits(
                    max_minutes=draw(st.sampled_from([None, 480, 720])),
                    max_minutes_per_week=draw(st.sampled_from([None, 240, 480])),
                    max_shifts=draw(st.sampled_from([None, 1, 2])),
                    max_shifts_by_kind=draw(st.sampled_from([{}, {"night": 0}, {"night": 1}])),
                    max_consecutive_days=draw(st.sampled_from([None, 1, 2])),
                    max_weekends=draw(st.sampled_from([None, 0, 1])),
                ),
                requests=tuple(
                    Request(shift, draw(st.booleans()), draw(st.integers(1, 9)))
                    for shift in draw(st.lists(st.sampled_from(ids), max_size=2, unique=True))
                ),
            )
        )
    all_pairs = [Pair(v.id, s) for v in volunteers for s in ids]
    some = st.lists(st.sampled_from(all_pairs), max_size=2, unique=True)
    return Problem(
        timezone=draw(st.sampled_from(["UTC", "Asia/Shanghai"])),
        horizon_start=date(2026, 12, 7),
        horizon_days=11,
        volunteers=tuple(volunteers),
        shifts=tuple(shifts),
        rules=Rules(
            min_rest_minutes=draw(st.sampled_from([0, 480, 720])),
            one_shift_per_day=True,
            forbidden_successions=draw(st.sampled_from([(), (("night", "day"),)])),
            weekend_days=(5, 6),
        ),
        weights=Weights(
            under=draw(st.sampled_from([10, 1000])),
            over=1,
            skill_under=7,
            fairness=draw(st.sampled_from([0, 1])),
            change=5,
        ),
        forbidden=tuple(draw(some)),
        previous=tuple(draw(some)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_every_day_by_day_roster_passes_the_checker(problem: Problem) -> None:
    pairs = _run(problem)
    report = check(problem, pairs)
    assert report.ok, report.violations


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(single_day=True))
def test_a_single_day_is_solved_to_optimality(problem: Problem) -> None:
    """With only one day (in UTC; Shanghai may split it in two local days), one flow is the
    whole problem: the roster costs what CP-SAT's proven optimum costs."""
    optimum = solve(problem, SolveOptions(time_limit_s=10, workers=1))
    if optimum.status != "optimal":
        return
    days = {s.start.astimezone(problem.tz).date() for s in problem.shifts}
    report = check(problem, _run(problem))
    assert report.ok
    if len(days) == 1:
        assert report.objective == optimum.objective


def test_the_rules_that_span_days_bind(kit) -> None:
    """One volunteer, one shift wanted on each of ten days: every rule caps what they get."""
    shifts = [kit.shift(f"d{d}", d, 8, 8) for d in range(10)]
    night = [kit.shift(f"n{d}", d, 22, 8, kind="night") for d in range(10)]
    cases = [
        (Limits(max_consecutive_days=2), 7),  # 2 on, 1 off: days 0,1 3,4 6,7 9
        (Limits(max_shifts=3), 3),
        (Limits(max_minutes=8 * 60 * 4), 4),
        (Limits(max_minutes_per_week=8 * 60 * 2), 4),  # two calendar weeks touched
        (Limits(max_weekends=0), 8),  # Sat 12th and Sun 13th off
    ]
    for limits, expected in cases:
        problem = kit.problem(
            [Volunteer("v", limits=limits)], shifts, days=10, rules=Rules(one_shift_per_day=True)
        )
        pairs = _run(problem)
        assert check(problem, pairs).ok, limits
        assert len(pairs) == expected, limits
    # Rest: a night 22:00-06:00 then a day shift at 08:00 leaves 2 h; nights every day can
    # be worked, day shifts only where no night came before.
    rested = kit.problem(
        [Volunteer("v")],
        [*shifts[:2], *night[:2]],
        days=3,
        rules=Rules(one_shift_per_day=True, min_rest_minutes=8 * 60),
    )
    pairs = _run(rested)
    assert check(rested, pairs).ok and len(pairs) == 2
    # Kind cap and forbidden successions.
    capped = kit.problem(
        [Volunteer("v", limits=Limits(max_shifts_by_kind={"night": 1}))],
        night[:3],
        days=4,
        rules=Rules(one_shift_per_day=True),
    )
    assert len(_run(capped)) == 1
    succession = kit.problem(
        [Volunteer("v")],
        [night[0], kit.shift("d1", 1, 14, 4)],
        days=3,
        rules=Rules(one_shift_per_day=True, forbidden_successions=(("night", "day"),)),
    )
    assert len(_run(succession)) == 1


def test_pinned_pairs_are_kept_and_counted(kit) -> None:
    shifts = [kit.shift("a", 0), kit.shift("b", 1)]
    problem = kit.problem(
        [Volunteer("near", limits=Limits(max_shifts=1)), Volunteer("other")],
        shifts,
        rules=Rules(one_shift_per_day=True),
        pinned=[Pair("near", "b")],
    )
    pairs = _run(problem)
    assert Pair("near", "b") in pairs and Pair("other", "a") in pairs
    assert check(problem, pairs).ok


def test_minimum_rules_are_left_to_the_cp_sat_path() -> None:
    base = generate_federation_week(50, seed=1)
    assert applies(base)
    volunteer = base.volunteers[0]
    stricter = Volunteer(
        volunteer.id,
        skills=volunteer.skills,
        location=volunteer.location,
        limits=Limits(min_minutes=240),
    )
    assert not applies(replace(base, volunteers=(stricter, *base.volunteers[1:])))


@pytest.fixture
def by_days_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(solver_module, "PRUNE_ABOVE", 0)


@pytest.mark.usefixtures("by_days_everywhere")
def test_solve_takes_the_day_by_day_path_at_scale() -> None:
    problem = generate_federation_week(400, seed=3)
    solution = solve(problem, SolveOptions(time_limit_s=20, workers=1))
    assert solution.stats["method"] == "day-by-day min-cost flow"
    report = check(problem, solution.assignments)
    assert report.ok and report.objective == solution.objective
    filled = sum(
        min(s.required, sum(1 for p in solution.assignments if p.shift == s.id))
        for s in problem.shifts
    )
    # Each day is exact given the others, not the week: a volunteer's weekly cap spent on one
    # day can leave a place on another empty that a whole-week matching would fill.
    assert filled >= 0.99 * max_fillable_slots(problem, eligible_pairs(problem))
    assert solution.objective < check(problem, greedy(problem)).objective
    assert all(short.reason for short in solution.shortfalls)


@pytest.mark.usefixtures("by_days_everywhere")
def test_a_pinned_pair_nobody_may_take_is_infeasible_on_the_day_by_day_path() -> None:
    problem = generate_federation_week(60, seed=2)
    outsider = Pair(problem.volunteers[0].id, problem.shifts[0].id)
    forbidden = replace(problem, forbidden=(outsider,), pinned=(outsider,))
    solution = solve(forbidden, SolveOptions(time_limit_s=5, workers=1))
    assert solution.status == "infeasible" and solution.conflicts


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_the_flow_bound_never_exceeds_the_optimum(problem: Problem) -> None:
    optimum = solve(problem, SolveOptions(time_limit_s=10, workers=1))
    if optimum.status != "optimal":
        return
    assert cost_lower_bound(problem, eligible_positions(problem)) <= optimum.objective


def test_the_flow_bound_is_tight_when_nothing_couples_the_days(kit) -> None:
    near, far = Location(30.0, 120.0), Location(30.05, 120.0)  # about 5.6 km apart
    shifts = [
        kit.shift("a", 0, location=near, skills={"leader": 1}),
        kit.shift("b", 1, location=near),
    ]
    problem = kit.problem(
        [
            Volunteer("lead", skills=frozenset({"leader"}), location=far),
            Volunteer("here", location=near),
        ],
        shifts,
        rules=Rules(one_shift_per_day=True),
        weights=Weights(under=100, skill_under=50, distance=1),
    )
    pairs = _run(problem)
    assert cost_lower_bound(problem, eligible_positions(problem)) == check(problem, pairs).objective


@pytest.mark.usefixtures("by_days_everywhere")
def test_a_roster_meeting_the_flow_bound_is_reported_optimal(kit) -> None:
    shifts = [kit.shift("a", 0), kit.shift("b", 1)]
    problem = kit.problem([Volunteer("v")], shifts, rules=Rules(one_shift_per_day=True))
    solution = solve(problem, SolveOptions(time_limit_s=5, workers=1))
    assert solution.status == "optimal"
    assert solution.bound == solution.objective == 0
    assert len(solution.assignments) == 2


@pytest.mark.usefixtures("by_days_everywhere")
def test_flows_over_the_nearest_candidates_when_full_flows_would_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(solver_module, "WEEK_FLOW_PAIRS", 0)
    monkeypatch.setattr(solver_module, "SWEEP_S_PER_PAIR", 1.0)  # any problem looks too big
    monkeypatch.setattr(solver_module, "PRUNE_PER_PLACE", 1)
    monkeypatch.setattr(solver_module, "PRUNE_PER_PERSON", 1)
    problem = generate_federation_week(600, seed=4)
    solution = solve(problem, SolveOptions(time_limit_s=20, workers=1))
    assert solution.stats["pairs_in_flows"] < solution.stats["variables"]
    report = check(problem, solution.assignments)
    assert report.ok and report.objective == solution.objective
    assert solution.bound is None  # nothing is proven from a pruned search
    filled = sum(
        min(s.required, sum(1 for p in solution.assignments if p.shift == s.id))
        for s in problem.shifts
    )
    # One candidate per place and one post per person, widened where short: near the bound.
    assert filled >= 0.98 * max_fillable_slots(problem, eligible_pairs(problem))
    assert solution.objective < check(problem, greedy(problem)).objective


def test_pruning_keeps_the_nearest_and_widening_gives_a_shift_everyone_back() -> None:
    problem = generate_federation_week(300, seed=5)
    eligible = eligible_positions(problem)
    search = DayFlow(problem, eligible)
    everything = search.pair_count
    search.prune(per_place=1, per_person=1)
    assert 0 < search.pair_count < everything
    kept = set(zip(search.pairs.volunteer.tolist(), search.pairs.shift.tolist(), strict=True))
    # Every volunteer keeps the shifts at their nearest post.
    nearest_post = {}
    for v, person in enumerate(problem.volunteers):
        assert person.location is not None
        here = person.location
        nearest_post[v] = min(
            {s.location for s in problem.shifts if s.location is not None},
            key=lambda loc, here=here: distance_km(here, loc),
        )
    for s, people in enumerate(eligible):
        for v in people:
            if problem.shifts[s].location == nearest_post[v]:
                assert (v, s) in kept
    wide = max(range(len(eligible)), key=lambda s: len(eligible[s]))
    assert search.widen(np.array([wide])) == 1
    again = set(zip(search.pairs.volunteer.tolist(), search.pairs.shift.tolist(), strict=True))
    assert {(v, wide) for v in eligible[wide]} <= again
    assert search.widen(np.array([wide])) == 0
    with pytest.raises(ValueError):
        cost_lower_bound(problem, eligible, search)


def test_the_sweeps_leave_room_to_score_the_roster_before_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a fake clock a day's flow takes 1 s and scoring the roster 3 s: no day is started
    that would leave the end-of-search scoring past the deadline (40,000 volunteers ended
    0.06 s past a 60 s limit when only the day's own time was counted)."""
    clock = [0.0]
    monkeypatch.setattr(dayflow_module.time, "monotonic", lambda: clock[0])
    real_solve_day, real_score = DayFlow.solve_day, dayflow_module.score

    def slow_day(self: DayFlow, day: int) -> None:
        clock[0] += 1.0
        real_solve_day(self, day)

    def slow_score(*args: object) -> dict[str, int]:
        clock[0] += 3.0
        return real_score(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(DayFlow, "solve_day", slow_day)
    monkeypatch.setattr(dayflow_module, "score", slow_score)
    problem = generate_federation_week(300, seed=5)
    search = DayFlow(problem, eligible_positions(problem))
    deadline = 30.0  # a 7-day sweep and its scoring take 10 s
    found = sweep_days(search, deadline)
    assert clock[0] <= deadline
    assert found.solved >= 14  # two whole sweeps fit, and some of a third
    report = check(problem, found.pairs)
    assert report.ok and report.objective == sum(found.parts.values())
