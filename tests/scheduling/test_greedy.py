"""The greedy baseline: complete, rule-respecting, hardest shifts and skills first."""

from __future__ import annotations

import random
from typing import Any

from scheduling.checker import check
from scheduling.greedy import greedy, greedy_result
from scheduling.problem import Limits, Pair, Rules, Volunteer


def test_fills_skills_first_and_hardest_shift_first(kit: Any) -> None:
    volunteers = [Volunteer("medic", skills=frozenset({"first_aid"})), Volunteer("plain")]
    shifts = [
        kit.shift("easy", 0, 8),
        # Only the medic can be at the hard shift: it overlaps "easy" and is filled first.
        kit.shift("hard", 0, 9, skills={"first_aid": 1}),
    ]
    problem = kit.problem(volunteers, shifts, forbidden=[Pair("plain", "hard")])
    result = greedy_result(problem)
    assert result.valid
    assert set(result.assignments) == {Pair("medic", "hard"), Pair("plain", "easy")}


def test_includes_pinned_and_excludes_forbidden(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a"), Volunteer("b")],
        [kit.shift("s1"), kit.shift("s2", 1)],
        pinned=[Pair("b", "s1")],
        forbidden=[Pair("a", "s2")],
    )
    assert set(greedy(problem)) == {Pair("b", "s1"), Pair("b", "s2")}


def test_repairs_min_minutes(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a"), Volunteer("b", limits=Limits(min_minutes=480))],
        [kit.shift("s1", 0, capacity=2), kit.shift("s2", 1, capacity=2)],
    )
    result = greedy_result(problem)
    assert result.valid
    assert check(problem, result.assignments).ok


def test_flags_a_roster_that_breaks_a_minimum(kit: Any) -> None:
    problem = kit.problem([Volunteer("a", limits=Limits(min_minutes=600))], [kit.shift("s1")])
    result = greedy_result(problem)
    assert not result.valid
    assert any("min_minutes" in issue for issue in result.issues)


def test_random_rosters_pass_the_checker(kit: Any) -> None:
    rng = random.Random(11)
    for _ in range(20):
        volunteers = [
            Volunteer(
                f"v{i}",
                skills=frozenset({"first_aid"}) if rng.random() < 0.4 else frozenset(),
                limits=Limits(
                    max_shifts=rng.choice([None, 3]),
                    max_consecutive_days=rng.choice([None, 2]),
                    max_weekends=rng.choice([None, 1]),
                    max_minutes_per_week=rng.choice([None, 900]),
                    min_consecutive_days_off=rng.choice([None, 2]),
                ),
            )
            for i in range(8)
        ]
        shifts = []
        for i in range(25):
            day, hour = rng.randrange(14), rng.choice([0, 8, 16])
            shifts.append(
                kit.shift(
                    f"s{i}",
                    day,
                    hour,
                    8,
                    kind="night" if hour == 0 else "day",
                    required=rng.randint(1, 3),
                    skills={"first_aid": 1} if rng.random() < 0.3 else {},
                )
            )
        rules = Rules(
            min_rest_minutes=rng.choice([0, 600]),
            one_shift_per_day=rng.random() < 0.5,
            forbidden_successions=(("day", "night"),),
        )
        problem = kit.problem(volunteers, shifts, days=14, rules=rules)
        result = greedy_result(problem)
        report = check(problem, result.assignments)
        assert report.ok, report.violations
        assert result.valid


def test_greedy_respects_time_zone_days(kit: Any) -> None:
    # 20:00 UTC on day 0 is 04:00 on day 1 in Shanghai: one shift a day is about local days.
    late = kit.shift("late", 0, 20, 2)
    early = kit.shift("early", 1, 8, 2)
    problem = kit.problem(
        [Volunteer("a")],
        [late, early],
        timezone="Asia/Shanghai",
        rules=Rules(one_shift_per_day=True),
    )
    assert len(greedy(problem)) == 1
    assert check(problem, greedy(problem)).ok
