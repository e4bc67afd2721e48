"""generate_federation_week: deterministic, plausible, coverage hard but possible."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta

import pytest

from scheduling.checker import check, haversine_km
from scheduling.generator import CENTRE, generate_federation_week
from scheduling.maxflow import max_fillable_slots, total_slots
from scheduling.problem import problem_from_dict, problem_to_dict


def test_same_seed_same_problem_other_seed_other_problem() -> None:
    first = generate_federation_week(400, seed=3)
    assert generate_federation_week(400, seed=3) == first
    assert generate_federation_week(400, seed=4) != first


def test_shape_of_a_week() -> None:
    problem = generate_federation_week(1000, seed=1)
    assert len(problem.volunteers) == 1000
    assert len({v.id for v in problem.volunteers}) == 1000
    assert len({s.id for s in problem.shifts}) == len(problem.shifts)
    assert problem.timezone == "Asia/Shanghai"
    assert problem.horizon_start.weekday() == 0
    assert problem.rules.one_shift_per_day
    assert problem.rules.min_rest_minutes == 480
    assert problem.rules.max_distance_km == 8
    tz = problem.tz
    hours = Counter(
        (s.start.astimezone(tz).hour, s.end.astimezone(tz).hour) for s in problem.shifts
    )
    assert set(hours) == {(8, 12), (14, 18), (19, 23)}
    assert {s.required for s in problem.shifts} == {2, 3, 4}
    assert all(problem.day_index(s.start) in range(7) for s in problem.shifts)
    nights = [s for s in problem.shifts if s.kind == "night"]
    assert nights and all(s.skills.get("leader") == 1 for s in nights)
    assert any(s.skills.get("first_aid") == 1 for s in problem.shifts)


def test_people_and_posts_are_in_the_district() -> None:
    problem = generate_federation_week(1000, seed=1)
    for item in (*problem.volunteers, *problem.shifts):
        assert item.location is not None
        assert haversine_km(CENTRE, item.location) < 30
    skills = Counter(skill for v in problem.volunteers for skill in v.skills)
    assert 0.2 < skills["first_aid"] / 1000 < 0.3
    assert 0.06 < skills["leader"] / 1000 < 0.14
    on_leave = sum(
        1
        for v in problem.volunteers
        if any(w.end - w.start > timedelta(days=1) for w in v.unavailable)
    )
    assert 10 <= on_leave <= 60
    assert all(v.limits.max_minutes_per_week in range(480, 961) for v in problem.volunteers)
    assert all(3 <= (v.limits.max_shifts or 0) <= 5 for v in problem.volunteers)


def test_two_weeks_scale_limits() -> None:
    problem = generate_federation_week(200, seed=2, days=14, start=date(2027, 1, 4))
    assert problem.horizon_days == 14
    assert {problem.day_index(s.start) for s in problem.shifts} == set(range(14))
    assert all(6 <= (v.limits.max_shifts or 0) <= 10 for v in problem.volunteers)


@pytest.mark.parametrize(("volunteers", "seed"), [(1000, 0), (1000, 1)])
def test_most_but_not_all_slots_are_fillable(volunteers: int, seed: int) -> None:
    problem = generate_federation_week(volunteers, seed=seed)
    share = max_fillable_slots(problem) / total_slots(problem)
    assert 0.88 <= share <= 0.97


def test_empty_roster_is_legal_and_round_trips() -> None:
    problem = generate_federation_week(300, seed=5)
    assert check(problem, []).ok
    assert problem_from_dict(json.loads(json.dumps(problem_to_dict(problem)))) == problem


def test_the_whole_federation_generates() -> None:
    # How fast is measured by bench.solver_scale, not by a timed test on a shared machine.
    problem = generate_federation_week(40_000, seed=0)
    assert len(problem.volunteers) == 40_000
    assert len({v.id for v in problem.volunteers}) == 40_000
    assert problem.shifts


def test_rejects_empty_sizes() -> None:
    with pytest.raises(ValueError):
        generate_federation_week(0)
