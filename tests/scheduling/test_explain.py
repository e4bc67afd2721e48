"""explain_shortfalls: one shortfall per short shift, with a reason naming what blocks people."""

from __future__ import annotations

import time
from typing import Any

from scheduling.eligibility import eligible_positions, reachable_positions
from scheduling.explain import explain_shortfalls
from scheduling.problem import Limits, Location, Pair, Rules, Volunteer, Window

POST = Location(29.80, 121.55)
NEAR = Location(29.81, 121.56)  # about 1.5 km
FAR = Location(29.80, 121.70)  # about 14.5 km


def test_no_shortfall_when_everything_is_filled(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a", skills=frozenset({"first_aid"}))],
        [kit.shift("s1", skills={"first_aid": 1})],
    )
    assert explain_shortfalls(problem, kit.pairs(("a", "s1"))) == ()


def test_head_count_shortfall_counts_each_blocker(kit: Any) -> None:
    night = kit.shift("night", 5, 19, 4, kind="night", required=3, location=POST)
    evening = kit.shift("evening", 5, 17, 4, location=POST)
    earlier = kit.shift("earlier", 3, 8, 4, location=POST)
    volunteers = [
        Volunteer("on_leave", location=NEAR, unavailable=(Window(kit.at(5), kit.at(6)),)),
        Volunteer("far", location=FAR),
        Volunteer("busy", location=NEAR),
        Volunteer("capped", location=NEAR, limits=Limits(max_shifts=1)),
        Volunteer("declined", location=NEAR),
        Volunteer("assigned", location=NEAR),
    ]
    problem = kit.problem(
        volunteers,
        [night, evening, earlier],
        rules=Rules(max_distance_km=8),
        forbidden=[Pair("declined", "night")],
    )
    roster = kit.pairs(("busy", "evening"), ("capped", "earlier"), ("assigned", "night"))
    (shortfall,) = explain_shortfalls(problem, roster)
    assert (shortfall.shift, shortfall.missing, dict(shortfall.skills)) == ("night", 2, {})
    assert "2 of 3 places unfilled on night (night, Sat 12-12 19:00)" in shortfall.reason
    assert "nobody else can take it" in shortfall.reason
    for phrase in (
        "1 on leave or unavailable",
        "1 declined or blocked",
        "1 already on an overlapping or too-close shift",
        "1 at a shift or hour limit",
        "1 farther than 8 km",
    ):
        assert phrase in shortfall.reason


def test_free_people_are_reported_as_a_trade_off(kit: Any) -> None:
    problem = kit.problem([Volunteer("a"), Volunteer("b")], [kit.shift("s1", required=2)])
    (shortfall,) = explain_shortfalls(problem, [])
    assert shortfall.missing == 2
    assert "2 volunteers could still be added" in shortfall.reason


def test_skill_shortfall_names_the_skill_and_holders(kit: Any) -> None:
    aid = frozenset({"first_aid"})
    night = kit.shift(
        "n", 5, 19, 4, kind="night", required=2, skills={"first_aid": 1}, location=POST
    )
    volunteers = [
        Volunteer("medic_far", skills=aid, location=FAR),
        Volunteer(
            "medic_leave",
            skills=aid,
            location=NEAR,
            unavailable=(Window(kit.at(5, 18), kit.at(5, 20)),),
        ),
        Volunteer("medic_free", skills=aid, location=NEAR),
        Volunteer("plain1", location=NEAR),
        Volunteer("plain2", location=NEAR),
    ]
    problem = kit.problem(volunteers, [night], rules=Rules(max_distance_km=5))
    (shortfall,) = explain_shortfalls(problem, kit.pairs(("plain1", "n"), ("plain2", "n")))
    assert shortfall.missing == 0
    assert dict(shortfall.skills) == {"first_aid": 1}
    assert "only 1 volunteer with first_aid available within 5 km" in shortfall.reason
    assert "1 on leave or unavailable" in shortfall.reason
    assert "1 farther than 5 km" in shortfall.reason


def test_rest_and_succession_make_people_busy(kit: Any) -> None:
    late = kit.shift("late", 0, 19, 4, kind="night")
    early = kit.shift("early", 1, 6, 4, kind="day")
    problem = kit.problem([Volunteer("a")], [late, early], rules=Rules(min_rest_minutes=8 * 60))
    (shortfall,) = explain_shortfalls(problem, kit.pairs(("a", "late")))
    assert shortfall.shift == "early"
    assert "1 already on an overlapping or too-close shift" in shortfall.reason

    later = kit.shift("later", 1, 19, 4, kind="day")
    problem = kit.problem(
        [Volunteer("a")], [late, later], rules=Rules(forbidden_successions=(("night", "day"),))
    )
    (shortfall,) = explain_shortfalls(problem, kit.pairs(("a", "late")))
    assert "1 already on an overlapping or too-close shift" in shortfall.reason


def test_weekly_and_consecutive_limits_count_as_limits(kit: Any) -> None:
    shifts = [kit.shift(f"s{d}", d, 8, 4) for d in range(4)]
    limits = Limits(max_consecutive_days=3)
    problem = kit.problem([Volunteer("a", limits=limits)], shifts)
    (shortfall,) = explain_shortfalls(problem, kit.pairs(("a", "s0"), ("a", "s1"), ("a", "s2")))
    assert shortfall.shift == "s3"
    assert "1 at a shift or hour limit" in shortfall.reason
    weekly = kit.problem([Volunteer("a", limits=Limits(max_minutes_per_week=480))], shifts)
    shortfalls = explain_shortfalls(weekly, kit.pairs(("a", "s0"), ("a", "s1")))
    assert all("1 at a shift or hour limit" in s.reason for s in shortfalls)


def test_many_volunteers_few_shortfalls_is_fast(kit: Any) -> None:
    volunteers = [
        Volunteer(
            f"v{i}",
            skills=frozenset({"first_aid"}) if i % 4 == 0 else frozenset(),
            location=Location(29.5 + (i % 200) * 0.003, 121.3 + (i // 200) * 0.003),
        )
        for i in range(40_000)
    ]
    shifts = [
        kit.shift(
            f"s{k}",
            k % 7,
            8,
            4,
            required=3,
            skills={"first_aid": 1},
            location=Location(29.5 + k * 0.01, 121.3 + k * 0.01),
        )
        for k in range(30)
    ]
    problem = kit.problem(volunteers, shifts, rules=Rules(max_distance_km=5))
    shortfalls = explain_shortfalls(problem, [])
    assert len(shortfalls) == 30
    assert all("could still be added" in s.reason for s in shortfalls)


def test_solver_eligibility_index_gives_the_same_reasons(kit: Any) -> None:
    aid = frozenset({"first_aid"})
    shifts = [
        kit.shift("n", 5, 19, 4, kind="night", required=3, skills={"first_aid": 1}, location=POST),
        kit.shift("d", 5, 8, 4, required=2, location=POST),
    ]
    volunteers = [
        Volunteer(
            "medic", skills=aid, location=NEAR, limits=Limits(max_shifts_by_kind={"night": 0})
        ),
        Volunteer("far", skills=aid, location=FAR),
        Volunteer("away", location=NEAR, unavailable=(Window(kit.at(5), kit.at(6)),)),
        Volunteer("free", location=NEAR),
    ]
    problem = kit.problem(
        volunteers, shifts, rules=Rules(max_distance_km=8), forbidden=[Pair("free", "d")]
    )
    roster = kit.pairs(("free", "n"))
    built = explain_shortfalls(problem, roster)
    given = explain_shortfalls(problem, roster, eligible_positions(problem))
    reach = reachable_positions(problem)
    with_reach = explain_shortfalls(problem, roster, eligible_positions(problem), None, reach)
    assert built == given == with_reach
    night = next(s for s in built if s.shift == "n")
    assert "1 at a shift or hour limit" in night.reason  # the medic's night cap of 0
    assert "1 farther than 8 km" in night.reason


def test_past_deadline_summarises_instead_of_analysing(kit: Any) -> None:
    problem = kit.problem(
        [Volunteer("a"), Volunteer("b")],
        [kit.shift("big", required=3), kit.shift("small", 1, required=1)],
    )
    shortfalls = explain_shortfalls(problem, [], deadline=time.monotonic() - 1.0)
    assert [(s.shift, s.missing) for s in shortfalls] == [("big", 3), ("small", 1)]
    assert all("not analysed further within the time limit" in s.reason for s in shortfalls)
    assert "2 volunteers may take it at all" in shortfalls[0].reason


def test_leave_far_away_counts_as_too_far(kit: Any) -> None:
    night = kit.shift("n", 5, 19, 4, required=1, location=POST)
    volunteers = [
        Volunteer("far_on_leave", location=FAR, unavailable=(Window(kit.at(5), kit.at(6)),)),
        Volunteer("near_on_leave", location=NEAR, unavailable=(Window(kit.at(5), kit.at(6)),)),
    ]
    problem = kit.problem(volunteers, [night], rules=Rules(max_distance_km=8))
    (shortfall,) = explain_shortfalls(problem, [])
    assert "1 on leave or unavailable" in shortfall.reason
    assert "1 farther than 8 km" in shortfall.reason
