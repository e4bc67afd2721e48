"""Eligible pairs: exactly the pairs the format allows, found without the full cross product."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from typing import Any

from scheduling.checker import haversine_km
from scheduling.eligibility import eligible_pairs, pairs_by_volunteer
from scheduling.problem import Limits, Location, Pair, Rules, Volunteer, Window


def test_each_exclusion(kit: Any) -> None:
    post = Location(31.23, 121.47)
    volunteers = [
        Volunteer("ok", location=Location(31.24, 121.47)),
        Volunteer("far", location=Location(31.60, 121.47)),
        Volunteer("away", unavailable=(Window(kit.at(0, 10), kit.at(0, 11)),)),
        Volunteer("no_nights", limits=Limits(max_shifts_by_kind={"night": 0})),
        Volunteer("declined"),
        Volunteer("homeless"),
    ]
    problem = kit.problem(
        volunteers,
        [kit.shift("s1", 0, 8, 4, kind="night", location=post), kit.shift("s2", 1, location=None)],
        rules=Rules(max_distance_km=5),
        forbidden=[Pair("declined", "s1")],
    )
    eligible = eligible_pairs(problem)
    assert eligible["s1"] == ["ok", "homeless"]
    # A shift without a location is not limited by distance.
    assert eligible["s2"] == ["ok", "far", "away", "no_nights", "declined", "homeless"]
    assert pairs_by_volunteer(eligible)["far"] == ["s2"]


def test_unavailable_window_touching_the_shift_does_not_exclude(kit: Any) -> None:
    volunteer = Volunteer("a", unavailable=(Window(kit.at(0, 4), kit.at(0, 8)),))
    problem = kit.problem([volunteer], [kit.shift("s1", 0, 8, 4)])
    assert eligible_pairs(problem)["s1"] == ["a"]


def test_grid_agrees_with_brute_force_distances(kit: Any) -> None:
    rng = random.Random(7)
    volunteers = [
        Volunteer(f"v{i}", location=Location(31 + rng.random(), 121 + rng.random()))
        for i in range(400)
    ]
    shifts = [
        kit.shift(f"s{i}", location=Location(31 + rng.random(), 121 + rng.random()))
        for i in range(30)
    ]
    problem = kit.problem(volunteers, shifts, rules=Rules(max_distance_km=12.5))
    eligible = eligible_pairs(problem)
    for shift in shifts:
        assert shift.location is not None
        expected = [
            v.id
            for v in volunteers
            if v.location is not None and haversine_km(v.location, shift.location) <= 12.5
        ]
        assert eligible[shift.id] == expected


def test_federation_scale_builds_in_seconds(kit: Any) -> None:
    rng = random.Random(3)
    volunteers = [
        Volunteer(
            f"v{i}",
            location=Location(30.7 + rng.random() * 1.2, 120.9 + rng.random() * 1.2),
            unavailable=(Window(kit.at(rng.randrange(7)), kit.at(0) + timedelta(hours=30)),)
            if i % 5 == 0
            else (),
        )
        for i in range(40_000)
    ]
    posts = [Location(30.7 + rng.random() * 1.2, 120.9 + rng.random() * 1.2) for _ in range(300)]
    shifts = [
        kit.shift(f"s{i}", i % 7, 8 + i % 3 * 4, location=posts[i % 300]) for i in range(3000)
    ]
    problem = kit.problem(volunteers, shifts, rules=Rules(max_distance_km=3))
    began = time.perf_counter()
    eligible = eligible_pairs(problem)
    assert time.perf_counter() - began < 20
    assert 0 < sum(len(ids) for ids in eligible.values()) < 40_000 * 3000 // 20


def test_prune_keeps_the_nearest_and_every_pair_that_must_stay(kit: Any) -> None:
    from scheduling.eligibility import eligible_positions, prune_candidates

    post = Location(31.0, 121.0)
    volunteers = [Volunteer(f"v{i}", location=Location(31.0 + i * 0.01, 121.0)) for i in range(30)]
    shifts = [kit.shift(f"s{d}", day=d, location=post, required=1) for d in range(12)]
    problem = kit.problem(volunteers, shifts, days=12)
    pruned = prune_candidates(problem, eligible_positions(problem), 2, [Pair("v29", "s0")])
    # At least 8 per shift, nearest first, and the far pair that must stay ...
    for people in pruned:
        assert set(range(8)) <= set(people)
    assert 29 in pruned[0]
    # ... and nobody is left without a shift to be given: each keeps their 2 nearest.
    kept = [sum(v in people for people in pruned) for v in range(30)]
    assert min(kept) >= 2
    assert sum(len(people) for people in pruned) < 12 * 30
