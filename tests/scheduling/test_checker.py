"""The checker: for every hard rule a roster that breaks it and one that does not."""

from __future__ import annotations

from typing import Any

import pytest

from scheduling.checker import check, haversine_km
from scheduling.problem import (
    Limits,
    Location,
    Pair,
    Request,
    Rules,
    Volunteer,
    Weights,
    Window,
)

HOME = Location(29.80, 121.55)


def rules_of(report: Any) -> list[str]:
    return sorted(v.rule for v in report.violations)


def assert_rule(
    kit: Any, problem: Any, bad: list[tuple[str, str]], good: list[tuple[str, str]], rule: str
) -> None:
    bad_report = check(problem, kit.pairs(*bad))
    assert rule in rules_of(bad_report), rules_of(bad_report)
    assert not bad_report.ok
    good_report = check(problem, kit.pairs(*good))
    assert good_report.ok, good_report.violations


def test_unknown_ids_are_reported_and_ignored(kit: Any) -> None:
    problem = kit.problem([Volunteer("a")], [kit.shift("s1")])
    report = check(problem, kit.pairs(("ghost", "s1"), ("a", "nope")))
    assert rules_of(report) == ["unknown_shift", "unknown_volunteer"]
    assert report.parts["under"] == 1000
    assert check(problem, kit.pairs(("a", "s1"))).ok


def test_duplicate_pair(kit: Any) -> None:
    problem = kit.problem([Volunteer("a")], [kit.shift("s1", required=2)])
    report = check(problem, kit.pairs(("a", "s1"), ("a", "s1")))
    assert rules_of(report) == ["duplicate"]
    # The repeat is counted once: one person is still missing.
    assert report.parts["under"] == 1000


def test_overlap(kit: Any) -> None:
    shifts = [kit.shift("s1", 0, 8, 4), kit.shift("s2", 0, 11, 4), kit.shift("s3", 0, 12, 4)]
    problem = kit.problem([Volunteer("a")], shifts)
    assert_rule(kit, problem, [("a", "s1"), ("a", "s2")], [("a", "s1"), ("a", "s3")], "overlap")


def test_overlap_with_a_long_earlier_shift_is_found(kit: Any) -> None:
    shifts = [kit.shift("long", 0, 0, 12), kit.shift("s2", 0, 1, 1), kit.shift("s3", 0, 5, 1)]
    problem = kit.problem([Volunteer("a")], shifts)
    report = check(problem, kit.pairs(("a", "long"), ("a", "s2"), ("a", "s3")))
    assert sorted(v.shifts for v in report.violations) == [("long", "s2"), ("long", "s3")]


def test_min_rest(kit: Any) -> None:
    shifts = [kit.shift("s1", 0, 8, 4), kit.shift("s2", 0, 19, 4), kit.shift("s3", 1, 8, 4)]
    problem = kit.problem([Volunteer("a")], shifts, rules=Rules(min_rest_minutes=8 * 60))
    assert_rule(kit, problem, [("a", "s1"), ("a", "s2")], [("a", "s1"), ("a", "s3")], "min_rest")
    # Exactly the minimum rest is allowed.
    exact = [kit.shift("s1", 0, 8, 4), kit.shift("s2", 0, 20, 4)]
    problem = kit.problem([Volunteer("a")], exact, rules=Rules(min_rest_minutes=8 * 60))
    assert check(problem, kit.pairs(("a", "s1"), ("a", "s2"))).ok


def test_one_shift_per_day(kit: Any) -> None:
    shifts = [kit.shift("s1", 0, 8, 2), kit.shift("s2", 0, 14, 2), kit.shift("s3", 1, 8, 2)]
    problem = kit.problem([Volunteer("a")], shifts, rules=Rules(one_shift_per_day=True))
    assert_rule(
        kit, problem, [("a", "s1"), ("a", "s2")], [("a", "s1"), ("a", "s3")], "one_shift_per_day"
    )


def test_one_shift_per_day_uses_the_problem_time_zone(kit: Any) -> None:
    # 20:00 and 23:00 UTC on day 0 are 04:00 and 07:00 on day 1 in Shanghai: one local day.
    shifts = [kit.shift("late", 0, 20, 1), kit.shift("later", 0, 23, 1)]
    rules = Rules(one_shift_per_day=True)
    utc = kit.problem([Volunteer("a")], shifts, rules=rules)
    assert check(utc, kit.pairs(("a", "late"), ("a", "later"))).violations[0].rule == (
        "one_shift_per_day"
    )
    shifts = [kit.shift("early", 0, 15, 1), kit.shift("late", 0, 16, 1)]
    shanghai = kit.problem([Volunteer("a")], shifts, rules=rules, timezone="Asia/Shanghai")
    # 15:00 UTC is 23:00 on day 0 and 16:00 UTC is 00:00 on day 1 in Shanghai.
    assert check(shanghai, kit.pairs(("a", "early"), ("a", "late"))).ok


def test_forbidden_succession(kit: Any) -> None:
    shifts = [
        kit.shift("n0", 0, 19, 4, kind="night"),
        kit.shift("d1", 1, 8, 4, kind="day"),
        kit.shift("d2", 2, 8, 4, kind="day"),
    ]
    rules = Rules(forbidden_successions=(("night", "day"),))
    problem = kit.problem([Volunteer("a")], shifts, rules=rules)
    assert_rule(
        kit,
        problem,
        [("a", "n0"), ("a", "d1")],
        [("a", "n0"), ("a", "d2")],
        "forbidden_succession",
    )
    # The order matters: day then night is allowed.
    shifts = [kit.shift("d0", 0, 8, 4, kind="day"), kit.shift("n1", 1, 19, 4, kind="night")]
    problem = kit.problem([Volunteer("a")], shifts, rules=rules)
    assert check(problem, kit.pairs(("a", "d0"), ("a", "n1"))).ok


def test_max_distance(kit: Any) -> None:
    near = Location(29.80, 121.60)  # about 4.8 km east
    far = Location(29.80, 121.70)  # about 14.5 km east
    shifts = [
        kit.shift("near", 0, location=near),
        kit.shift("far", 1, location=far),
        kit.shift("nowhere", 2),
    ]
    volunteers = [Volunteer("a", location=HOME), Volunteer("homeless")]
    problem = kit.problem(volunteers, shifts, rules=Rules(max_distance_km=8))
    assert_rule(
        kit,
        problem,
        [("a", "far")],
        [("a", "near"), ("a", "nowhere"), ("homeless", "far")],
        "max_distance",
    )


def test_haversine_known_distance() -> None:
    # One degree of latitude is about 111.2 km.
    assert haversine_km(Location(0, 0), Location(1, 0)) == pytest.approx(111.19, abs=0.01)


def test_unavailable(kit: Any) -> None:
    leave = Window(kit.at(1, 0), kit.at(2, 0))
    shifts = [kit.shift("s0", 0, 20, 4), kit.shift("s1", 0, 22, 4), kit.shift("s2", 2, 0, 4)]
    problem = kit.problem([Volunteer("a", unavailable=(leave,))], shifts)
    # s0 ends exactly when the window starts, s2 starts exactly when it ends: both allowed.
    assert_rule(kit, problem, [("a", "s1")], [("a", "s0"), ("a", "s2")], "unavailable")


def test_pinned(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a"), Volunteer("b")], [kit.shift("s1")], pinned=[Pair("a", "s1")]
    )
    assert_rule(kit, problem, [("b", "s1")], [("a", "s1")], "pinned")


def test_forbidden(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a"), Volunteer("b")], [kit.shift("s1")], forbidden=[Pair("a", "s1")]
    )
    assert_rule(kit, problem, [("a", "s1")], [("b", "s1")], "forbidden")


def test_capacity_defaults_to_required(kit: Any) -> None:
    volunteers = [Volunteer("a"), Volunteer("b"), Volunteer("c")]
    problem = kit.problem(volunteers, [kit.shift("s1", required=2)])
    assert_rule(
        kit,
        problem,
        [("a", "s1"), ("b", "s1"), ("c", "s1")],
        [("a", "s1"), ("b", "s1")],
        "capacity",
    )


def test_capacity_above_required_allows_over_cover_at_a_cost(kit: Any) -> None:
    volunteers = [Volunteer("a"), Volunteer("b"), Volunteer("c")]
    shifts = [kit.shift("s1", required=1, capacity=2, over_weight=7)]
    problem = kit.problem(volunteers, shifts)
    assert_rule(
        kit,
        problem,
        [("a", "s1"), ("b", "s1"), ("c", "s1")],
        [("a", "s1"), ("b", "s1")],
        "capacity",
    )
    assert check(problem, kit.pairs(("a", "s1"), ("b", "s1"))).parts["over"] == 7


def week_of_shifts(kit: Any, days: int = 7, hours: int = 4, kind: str = "day") -> list[Any]:
    return [kit.shift(f"s{d}", d, 8, hours, kind=kind) for d in range(days)]


def test_max_minutes(kit: Any) -> None:
    problem = kit.problem([Volunteer("a", limits=Limits(max_minutes=480))], week_of_shifts(kit))
    assert_rule(
        kit,
        problem,
        [("a", "s0"), ("a", "s1"), ("a", "s2")],
        [("a", "s0"), ("a", "s1")],
        "max_minutes",
    )


def test_min_minutes(kit: Any) -> None:
    problem = kit.problem([Volunteer("a", limits=Limits(min_minutes=480))], week_of_shifts(kit))
    assert_rule(kit, problem, [("a", "s0")], [("a", "s0"), ("a", "s3")], "min_minutes")
    # Someone with nothing assigned is also below the minimum.
    assert rules_of(check(problem, [])) == ["min_minutes"]


def test_max_minutes_per_week_uses_calendar_weeks(kit: Any) -> None:
    # Days 5, 6 are Sat and Sun of week one; days 7, 8 are Mon and Tue of week two.
    shifts = week_of_shifts(kit, days=14)
    problem = kit.problem(
        [Volunteer("a", limits=Limits(max_minutes_per_week=480))], shifts, days=14
    )
    assert_rule(
        kit,
        problem,
        [("a", "s4"), ("a", "s5"), ("a", "s6")],
        [("a", "s5"), ("a", "s6"), ("a", "s7"), ("a", "s8")],
        "max_minutes_per_week",
    )


def test_max_shifts(kit: Any) -> None:
    problem = kit.problem([Volunteer("a", limits=Limits(max_shifts=1))], week_of_shifts(kit))
    assert_rule(kit, problem, [("a", "s0"), ("a", "s2")], [("a", "s0")], "max_shifts")


def test_max_shifts_by_kind(kit: Any) -> None:
    shifts = [
        *week_of_shifts(kit, 3),
        kit.shift("n5", 5, 19, 4, kind="night"),
        kit.shift("n6", 6, 19, 4, kind="night"),
    ]
    limits = Limits(max_shifts_by_kind={"night": 1})
    problem = kit.problem([Volunteer("a", limits=limits)], shifts)
    assert_rule(
        kit,
        problem,
        [("a", "n5"), ("a", "n6")],
        [("a", "s0"), ("a", "s1"), ("a", "s2"), ("a", "n6")],
        "max_shifts_by_kind",
    )


def test_max_consecutive_days(kit: Any) -> None:
    limits = Limits(max_consecutive_days=2)
    problem = kit.problem([Volunteer("a", limits=limits)], week_of_shifts(kit))
    assert_rule(
        kit,
        problem,
        [("a", "s1"), ("a", "s2"), ("a", "s3")],
        [("a", "s0"), ("a", "s1"), ("a", "s3"), ("a", "s4")],
        "max_consecutive_days",
    )


def test_min_consecutive_days_except_at_the_horizon_edges(kit: Any) -> None:
    limits = Limits(min_consecutive_days=2)
    problem = kit.problem([Volunteer("a", limits=limits)], week_of_shifts(kit))
    assert_rule(
        kit,
        problem,
        [("a", "s3")],
        # Single days on the first and last day touch the edges and are exempt.
        [("a", "s0"), ("a", "s2"), ("a", "s3"), ("a", "s6")],
        "min_consecutive_days",
    )


def test_min_consecutive_days_off(kit: Any) -> None:
    limits = Limits(min_consecutive_days_off=2)
    problem = kit.problem([Volunteer("a", limits=limits)], week_of_shifts(kit))
    assert_rule(
        kit,
        problem,
        [("a", "s1"), ("a", "s3")],
        # A single day off at the start of the horizon touches the edge and is exempt.
        [("a", "s1"), ("a", "s2"), ("a", "s5")],
        "min_consecutive_days_off",
    )


def test_max_weekends(kit: Any) -> None:
    shifts = week_of_shifts(kit, days=14)
    problem = kit.problem([Volunteer("a", limits=Limits(max_weekends=1))], shifts, days=14)
    assert_rule(
        kit,
        problem,
        [("a", "s6"), ("a", "s12")],
        # Saturday and Sunday of one calendar week are one weekend.
        [("a", "s5"), ("a", "s6"), ("a", "s7")],
        "max_weekends",
    )


def test_weekend_days_are_configurable(kit: Any) -> None:
    shifts = week_of_shifts(kit, days=14)
    rules = Rules(weekend_days=(4,))
    problem = kit.problem(
        [Volunteer("a", limits=Limits(max_weekends=1))], shifts, days=14, rules=rules
    )
    assert_rule(
        kit, problem, [("a", "s4"), ("a", "s11")], [("a", "s5"), ("a", "s12")], "max_weekends"
    )


def test_objective_parts(kit: Any) -> None:
    shift_location = Location(29.80, 121.60)  # 4.8 km from HOME
    shifts = [
        kit.shift(
            "s1",
            0,
            required=2,
            capacity=3,
            skills={"first_aid": 1, "leader": 2},
            location=shift_location,
            under_weight=100,
            over_weight=3,
        ),
        kit.shift("s2", 1, required=2),
        kit.shift("s3", 2, required=1, capacity=2),
    ]
    volunteers = [
        Volunteer(
            "a",
            skills=frozenset({"leader"}),
            location=HOME,
            target_minutes=120,
            requests=(Request("s2", True, 11), Request("s1", False, 13)),
        ),
        Volunteer("b", requests=(Request("s3", False, 17), Request("s2", False, 19))),
        Volunteer("c"),
    ]
    weights = Weights(under=1000, over=5, skill_under=300, fairness=2, distance=7, change=50)
    problem = kit.problem(
        volunteers,
        shifts,
        weights=weights,
        previous=[Pair("a", "s1"), Pair("c", "s2"), Pair("b", "s2")],
    )
    report = check(
        problem, kit.pairs(("a", "s1"), ("a", "s3"), ("b", "s3"), ("c", "s1"), ("b", "s1"))
    )
    assert report.ok
    assert report.parts == {
        # s2 empty: 2 * 1000; s1 full.
        "under": 2000,
        # s1 has one over (3 people, required 2) at its own weight 3; s3 one over at 5.
        "over": 3 + 5,
        # s1 needs first_aid 1 (none) and leader 2 (one).
        "skill_under": 2 * 300,
        # a wanted s2 (11) and did not want s1 (13); b did not want s3 (17).
        "requests": 11 + 13 + 17,
        # a works 480 min against a target of 120.
        "fairness": 360 * 2,
        # a is 4 km (floor of 4.8) from s1; s3 has no location.
        "distance": 4 * 7,
        # c/s2 and b/s2 dropped.
        "change": 2 * 50,
    }
    assert report.objective == sum(report.parts.values())


def test_empty_roster_costs_every_slot(kit: Any) -> None:
    problem = kit.problem([Volunteer("a")], [kit.shift("s1", required=3, under_weight=9)])
    report = check(problem, [])
    assert report.ok
    assert report.objective == 27


def test_violation_names_person_and_shifts(kit: Any) -> None:
    shifts = [kit.shift("s1", 0, 8, 4), kit.shift("s2", 0, 9, 1)]
    problem = kit.problem([Volunteer("a")], shifts)
    (violation,) = check(problem, kit.pairs(("a", "s1"), ("a", "s2"))).violations
    assert violation.volunteer == "a"
    assert violation.shifts == ("s1", "s2")
    assert violation.message


def test_large_roster_is_checked_quickly(kit: Any) -> None:
    shifts = [
        kit.shift(f"s{d}_{k}", d % 28, 8, 4, required=50) for d in range(28) for k in range(10)
    ]
    volunteers = [
        Volunteer(
            f"v{i}",
            limits=Limits(
                max_shifts=28, max_consecutive_days=7, min_consecutive_days_off=1, max_weekends=4
            ),
        )
        for i in range(500)
    ]
    problem = kit.problem(volunteers, shifts, days=28, rules=Rules(min_rest_minutes=600))
    assignments = [
        Pair(f"v{i}", f"s{d}_{i % 10}") for i in range(500) for d in range(28) if (d + i) % 7 != 0
    ]
    report = check(problem, assignments)
    assert report.ok, report.violations[:3]
