"""Candidate ranking from the in-memory member snapshot: the same answer as reading every
member's rules straight from the database, and fresh when members change.

The oracle below is an independent, deliberately naive reading of the rules in plain Python
over every row (no snapshot, no SQL eligibility), compared with `rank_candidates` on
randomised neighbourhoods full of the awkward cases: expired certificates, leave, accepted
offers on live and closed incidents, shifts overlapping the next two hours or not, on-duty
volunteers checked in far from home, members with no home, several branches per member.
"""

from __future__ import annotations

import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from flask import Flask
from sqlalchemy import make_url, select, update

from tests.conftest import Factory
from tests.incidents.conftest import SCENE, north_of_scene
from volunteer_hub.extensions import db
from volunteer_hub.models import (
    Branch,
    Leave,
    Member,
    MemberBranch,
    MemberSkill,
    MemberStatus,
    Skill,
    Town,
)
from volunteer_hub.models.attendance import Attendance, AttendanceStatus
from volunteer_hub.models.incidents import (
    LIVE_STATUSES,
    Incident,
    IncidentStatus,
    Offer,
    OfferStatus,
)
from volunteer_hub.models.plans import (
    ACTIVE_STATUSES,
    Assignment,
    AssignmentStatus,
    Plan,
    PlanStatus,
    Post,
    PostKind,
    Shift,
    ShiftKind,
)
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import dispatch
from volunteer_hub.services.dispatch import Candidate, haversine_m, rank_candidates
from volunteer_hub.services.hours import local_day

BRANCHES = ("hazard", "rescue", "patrol")
SKILLS = ("first_aid", "fire_safety", "driving")


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    # Each test starts from what the database holds, not from a previous test's snapshot.
    dispatch.invalidate_cache()


# ---------------------------------------------------------------------- the oracle


def oracle(
    app: Flask,
    *,
    branch_id: int,
    skill_ids: list[int],
    lat: float,
    lon: float,
    limit: int,
    now: datetime,
    incident_id: int | None = None,
    radii_m: tuple[int, ...] = dispatch.RADII_M,
) -> list[Candidate]:
    """The ranking rules applied row by row to everything in the database."""
    if limit <= 0:
        return []
    with app.app_context():
        s = db.session()
        members = {m.id: m for m in s.scalars(select(Member))}
        branches = {(mb.member_id, mb.branch_id) for mb in s.scalars(select(MemberBranch))}
        skills = {
            (ms.member_id, ms.skill_id): ms.expires_on for ms in s.scalars(select(MemberSkill))
        }
        leaves = list(s.scalars(select(Leave)))
        incidents = {i.id: i.status for i in s.scalars(select(Incident))}
        offers = list(s.scalars(select(Offer)))
        assignments = list(s.scalars(select(Assignment)))
        attendance = list(s.scalars(select(Attendance)))
        today = local_day(now)  # a certificate's last day is a day of the federation
        db.session.remove()
    open_checkins = {
        a.assignment_id
        for a in attendance
        if a.status == AttendanceStatus.OPEN and a.check_out_at is None
    }
    duty: dict[int, tuple[float, float]] = {}
    for a in attendance:
        if (
            a.status == AttendanceStatus.OPEN
            and a.check_out_at is None
            and a.check_in_at <= now
            and a.check_in_lat is not None
            and a.check_in_lon is not None
            and (a.member_id, branch_id) in branches
        ):
            duty[a.member_id] = (a.check_in_lat, a.check_in_lon)

    def eligible(member: Member) -> bool:
        if member.status != MemberStatus.ACTIVE or (member.id, branch_id) not in branches:
            return False
        for skill_id in skill_ids:
            if (member.id, skill_id) not in skills:
                return False
            expires = skills[(member.id, skill_id)]
            if expires is not None and expires < today:
                return False
        if any(lv.member_id == member.id and lv.starts_at <= now < lv.ends_at for lv in leaves):
            return False
        for offer in offers:
            if offer.member_id != member.id:
                continue
            if (
                offer.status == OfferStatus.ACCEPTED
                and incidents[offer.incident_id] in LIVE_STATUSES
            ):
                return False
            if offer.incident_id == incident_id:
                return False
        return not any(
            a.member_id == member.id
            and a.status in ACTIVE_STATUSES
            and a.starts_at < now + dispatch.SHIFT_HORIZON
            and a.ends_at > now
            and a.id not in open_checkins
            for a in assignments
        )

    positions: dict[int, tuple[tuple[float, float], bool]] = {}
    for member in members.values():
        if not eligible(member):
            continue
        if member.id in duty:
            positions[member.id] = (duty[member.id], True)
        elif member.home_lat is not None and member.home_lon is not None:
            positions[member.id] = ((member.home_lat, member.home_lon), False)
    found: dict[int, tuple[float, bool]] = {}
    for radius in radii_m:
        found = {}
        for member_id, ((p_lat, p_lon), on_duty) in positions.items():
            distance = haversine_m(lat, lon, p_lat, p_lon)
            if distance <= radius:
                found[member_id] = (distance, on_duty)
        if len(found) >= limit:
            break
    since = now - dispatch.RECENT_WINDOW
    callouts = {
        member_id: sum(
            1
            for o in offers
            if o.member_id == member_id
            and o.status == OfferStatus.ACCEPTED
            and o.answered_at is not None
            and o.answered_at >= since
        )
        for member_id in found
    }
    ranked = sorted(
        found.items(),
        key=lambda item: (
            math.floor(item[1][0] / dispatch.DISTANCE_BAND_M),
            callouts[item[0]],
            item[1][0],
            item[0],
        ),
    )
    return [
        Candidate(member_id, round(distance), callouts[member_id], on_duty)
        for member_id, (distance, on_duty) in ranked[:limit]
    ]


def ranked(app: Flask, **kwargs: Any) -> list[Candidate]:
    with app.app_context():
        try:
            return rank_candidates(db.session(), **kwargs)
        finally:
            db.session.remove()


# ---------------------------------------------------------------------- a random world


@dataclass
class World:
    now: datetime
    branch_ids: dict[str, int]
    skill_ids: dict[str, int]
    members: list[int]
    incidents: list[int]


def _near(rng: random.Random, spread_m: float) -> tuple[float, float]:
    """A point within about `spread_m` of the scene, denser towards it."""
    metres = spread_m * rng.random() ** 1.5
    angle = rng.uniform(0, 2 * math.pi)
    return (
        SCENE[0] + metres * math.cos(angle) / 111_195.0,
        SCENE[1] + metres * math.sin(angle) / (111_195.0 * math.cos(math.radians(SCENE[0]))),
    )


def build_world(app: Flask, seed: int, members: int = 90) -> World:
    """Members around the scene with every kind of exclusion, written in one transaction."""
    rng = random.Random(seed)
    now = utcnow()
    with app.app_context():
        s = db.session()
        branch_ids = {b.code: b.id for b in s.scalars(select(Branch))}
        skill_ids = {k.code: k.id for k in s.scalars(select(Skill))}
        people: list[Member] = []
        for number in range(members):
            home = None if rng.random() < 0.07 else _near(rng, 8_000)
            status = MemberStatus.ACTIVE if rng.random() < 0.9 else MemberStatus.SUSPENDED
            member = Member(
                name=f"队员{number}",
                phone=f"139{seed:03d}{number:05d}",
                home_lat=home[0] if home else None,
                home_lon=home[1] if home else None,
                status=status,
            )
            s.add(member)
            people.append(member)
        s.flush()
        for member in people:
            for code in rng.sample(BRANCHES, rng.choice([1, 1, 2, 3])):
                s.add(MemberBranch(member_id=member.id, branch_id=branch_ids[code]))
            for code in rng.sample(SKILLS, rng.choice([0, 1, 1, 2, 3])):
                expiry = rng.choice([None, None, now.date() + timedelta(days=30)])
                if rng.random() < 0.15:
                    expiry = now.date() - timedelta(days=1)  # lapsed certificate
                if rng.random() < 0.05:
                    expiry = now.date()  # last valid day
                s.add(MemberSkill(member_id=member.id, skill_id=skill_ids[code], expires_on=expiry))
        reporter = people[0].id
        incidents = []
        for phase in (IncidentStatus.DISPATCHING, IncidentStatus.STAFFED, IncidentStatus.RESOLVED):
            incident = Incident(
                kind="hazard",
                branch_id=branch_ids["hazard"],
                lat=SCENE[0],
                lon=SCENE[1],
                needed=2,
                skills=[],
                status=phase,
                reporter_id=reporter,
                accepted_count=0,
                wave=1,
                deadline_at=now + timedelta(minutes=15),
                created_at=now - timedelta(days=1),
            )
            s.add(incident)
            incidents.append(incident)
        s.flush()
        for member in rng.sample(people, members // 3):
            incident = rng.choice(incidents)
            offer_status = rng.choice(
                [OfferStatus.ACCEPTED, OfferStatus.ACCEPTED, OfferStatus.DECLINED]
            )
            answered = now - timedelta(days=rng.choice([1, 10, 29, 31, 60]))
            s.add(
                Offer(
                    incident_id=incident.id,
                    member_id=member.id,
                    wave=1,
                    status=offer_status,
                    created_at=answered,
                    expires_at=answered + timedelta(minutes=3),
                    answered_at=answered,
                )
            )
        for member in rng.sample(people, members // 8):
            starts = now + timedelta(hours=rng.choice([-30, -2, -0.5, 1]))
            s.add(Leave(member_id=member.id, starts_at=starts, ends_at=starts + timedelta(hours=2)))
        plan = Plan(
            branch_id=branch_ids["hazard"],
            name="本周",
            starts_on=now.date() - timedelta(days=2),
            ends_on=now.date() + timedelta(days=2),
            status=PlanStatus.PUBLISHED,
        )
        town = Town(name=f"街道{seed}", lat=SCENE[0], lon=SCENE[1])
        s.add(town)
        s.flush()
        post = Post(
            branch_id=branch_ids["hazard"],
            town_id=town.id,
            name="巡查点",
            lat=SCENE[0],
            lon=SCENE[1],
            radius_m=200,
            kind=PostKind.POINT,
        )
        s.add_all([plan, post])
        s.flush()
        for member in rng.sample(people, members // 4):
            # Starting: already (on it now), within the 2 h horizon, or later; some checked in.
            offset = rng.choice([-1.0, 1.5, 3.0])
            starts, ends = now + timedelta(hours=offset), now + timedelta(hours=offset + 4)
            shift = Shift(
                plan_id=plan.id,
                post_id=post.id,
                starts_at=starts,
                ends_at=ends,
                kind=ShiftKind.DAY,
                headcount=1,
            )
            s.add(shift)
            s.flush()
            assignment = Assignment(
                plan_id=plan.id,
                shift_id=shift.id,
                member_id=member.id,
                status=rng.choice([AssignmentStatus.PUBLISHED, AssignmentStatus.CANCELLED]),
                starts_at=starts,
                ends_at=ends,
            )
            s.add(assignment)
            s.flush()
            if offset < 0 and rng.random() < 0.7:
                where = _near(rng, 6_000)
                checked_out = rng.random() < 0.2
                s.add(
                    Attendance(
                        assignment_id=assignment.id,
                        member_id=member.id,
                        check_in_at=now - timedelta(minutes=30),
                        check_in_lat=where[0],
                        check_in_lon=where[1],
                        check_out_at=now - timedelta(minutes=5) if checked_out else None,
                        status=AttendanceStatus.OPEN,
                    )
                )
        s.commit()
        world = World(
            now=now,
            branch_ids=branch_ids,
            skill_ids=skill_ids,
            members=[m.id for m in people],
            incidents=[i.id for i in incidents],
        )
        db.session.remove()
    return world


# ---------------------------------------------------------------------- same answer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ranking_matches_the_row_by_row_oracle(app: Flask, seed: int) -> None:
    world = build_world(app, seed)
    rng = random.Random(100 + seed)
    compared = nonempty = 0
    for _ in range(40):
        code = rng.choice(BRANCHES)
        skills = [world.skill_ids[c] for c in rng.sample(SKILLS, rng.choice([0, 0, 1, 2]))]
        lat, lon = _near(rng, 3_000)
        kwargs: dict[str, Any] = {
            "branch_id": world.branch_ids[code],
            "skill_ids": skills,
            "lat": lat,
            "lon": lon,
            "limit": rng.choice([1, 2, 3, 6, 9, 40]),
            "now": world.now,
            "incident_id": rng.choice([None, *world.incidents]),
            "radii_m": rng.choice([dispatch.RADII_M, (700, 1_000, 3_000), (1_250,)]),
        }
        got = ranked(app, **kwargs)
        assert got == oracle(app, **kwargs), kwargs
        compared += 1
        nonempty += bool(got)
    assert compared == 40 and nonempty >= 20  # the scenes do find people


def test_on_duty_volunteer_is_placed_at_the_check_in_and_homeless_ones_count_on_duty(
    app: Flask, factory: Factory
) -> None:
    now = utcnow()
    hazard = factory.branch_id("hazard")
    far_home = factory.create_member(branches=("hazard",), home=north_of_scene(9_000))
    no_home = factory.create_member(branches=("hazard",), home=None)
    near_home = factory.create_member(branches=("hazard",), home=north_of_scene(1_500))
    town = factory.create_town("中河街道", *SCENE)
    with app.app_context():
        plan = Plan(
            branch_id=hazard,
            name="p",
            starts_on=now.date(),
            ends_on=now.date() + timedelta(days=1),
            status=PlanStatus.PUBLISHED,
        )
        post = Post(
            branch_id=hazard,
            town_id=town,
            name="巡查点",
            lat=SCENE[0],
            lon=SCENE[1],
            radius_m=100,
            kind=PostKind.POINT,
        )
        db.session.add_all([plan, post])
        db.session.flush()
        for member_id, metres in ((far_home, 200), (no_home, 600)):
            shift = Shift(
                plan_id=plan.id,
                post_id=post.id,
                starts_at=now - timedelta(hours=1),
                ends_at=now + timedelta(hours=3),
                kind=ShiftKind.DAY,
                headcount=1,
            )
            db.session.add(shift)
            db.session.flush()
            assignment = Assignment(
                plan_id=plan.id,
                shift_id=shift.id,
                member_id=member_id,
                status=AssignmentStatus.PUBLISHED,
                starts_at=shift.starts_at,
                ends_at=shift.ends_at,
            )
            db.session.add(assignment)
            db.session.flush()
            at = north_of_scene(metres)
            db.session.add(
                Attendance(
                    assignment_id=assignment.id,
                    member_id=member_id,
                    check_in_at=now - timedelta(minutes=50),
                    check_in_lat=at[0],
                    check_in_lon=at[1],
                    status=AttendanceStatus.OPEN,
                )
            )
        db.session.commit()
    kwargs: dict[str, Any] = {
        "branch_id": hazard,
        "skill_ids": [],
        "lat": SCENE[0],
        "lon": SCENE[1],
        "limit": 5,
        "now": now,
    }
    got = ranked(app, **kwargs)
    assert [(c.member_id, c.on_duty) for c in got] == [
        (far_home, True),
        (no_home, True),
        (near_home, False),
    ]
    assert [c.distance_m for c in got] == [200, 600, 1_500]
    assert got == oracle(app, **kwargs)


# ---------------------------------------------------------------------- freshness


def _scene_args(factory: Factory, now: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "branch_id": factory.branch_id("hazard"),
        "skill_ids": [factory.skill_id("first_aid")],
        "lat": SCENE[0],
        "lon": SCENE[1],
        "limit": 3,
        "now": now,
        **extra,
    }


def _driver_execute(app: Flask, sql: str, params: tuple[Any, ...]) -> None:
    """Write through a connection of our own, outside SQLAlchemy: what another gunicorn
    worker or the CLI looks like to this process."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "postgresql":
        plain = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as pg:
            pg.execute(sql.replace("?", "%s"), params)
    else:
        lite = sqlite3.connect(str(url.database), timeout=30)
        try:
            lite.execute(sql, params)
            lite.commit()
        finally:
            lite.close()


def test_writes_through_this_process_are_seen_at_once(app: Flask, factory: Factory) -> None:
    now = utcnow()
    far = factory.create_member(
        branches=("hazard",), skills=("first_aid",), home=north_of_scene(900)
    )
    assert [c.member_id for c in ranked(app, **_scene_args(factory, now))] == [far]

    # A new member, through the ORM (factory): no waiting for the snapshot to age.
    near = factory.create_member(
        branches=("hazard",), skills=("first_aid",), home=north_of_scene(100)
    )
    assert [c.member_id for c in ranked(app, **_scene_args(factory, now))] == [near, far]

    # A skill given with a bulk statement, a home moved with an ORM update.
    other = factory.create_member(branches=("hazard",), skills=(), home=north_of_scene(50))
    with app.app_context():
        db.session.add(MemberSkill(member_id=other, skill_id=factory.skill_id("first_aid")))
        db.session.execute(
            update(Member).where(Member.id == far).values(home_lat=north_of_scene(20)[0])
        )
        db.session.commit()
    assert [c.member_id for c in ranked(app, **_scene_args(factory, now))] == [far, other, near]

    # An unrelated write keeps the snapshot (no needless reload of 40,000 members).
    with app.app_context():
        before = dispatch.snapshot(db.session(), now)
        db.session.add(Leave(member_id=near, starts_at=now, ends_at=now + timedelta(hours=1)))
        db.session.commit()
        assert dispatch.snapshot(db.session(), now) is before
        # Nor does a member update that sets nothing the snapshot holds (a new password).
        db.session.get_one(Member, near).password_hash = "changed"
        db.session.commit()
        assert dispatch.snapshot(db.session(), now) is before
        db.session.get_one(Member, near).status = MemberStatus.SUSPENDED
        db.session.flush()
        assert dispatch.snapshot(db.session(), now) is not before  # seen inside the transaction
        db.session.rollback()
        db.session.remove()
    assert [c.member_id for c in ranked(app, **_scene_args(factory, now))] == [far, other]


def test_other_processes_writes_are_seen_within_the_refresh_interval(
    app: Flask, factory: Factory
) -> None:
    now = utcnow()
    first = factory.create_member(
        branches=("hazard",), skills=("first_aid",), home=north_of_scene(300)
    )
    second = factory.create_member(branches=("hazard",), skills=(), home=north_of_scene(100))
    assert [c.member_id for c in ranked(app, **_scene_args(factory, now))] == [first]

    # Another process gives `second` the skill: seen once the refresh interval has passed
    # (here: a `now` past it). On PostgreSQL the tables' write counters tell, as soon as the
    # other backend has flushed its statistics (it does on exit, a moment after we close).
    _driver_execute(
        app,
        "INSERT INTO member_skill (member_id, skill_id) VALUES (?, ?)",
        (second, factory.skill_id("first_aid")),
    )
    later = now + dispatch.CACHE_TTL + timedelta(seconds=1)
    assert _eventually(
        lambda: [c.member_id for c in ranked(app, **_scene_args(factory, later))] == [second, first]
    )

    # Suspension by another process is honoured at once: the SQL check repeats the static
    # rules, so a stale snapshot never calls out a suspended member.
    _driver_execute(app, "UPDATE member SET status = 'suspended' WHERE id = ?", (second,))
    assert [c.member_id for c in ranked(app, **_scene_args(factory, later))] == [first]

    # A lapsed certificate likewise.
    _driver_execute(
        app,
        "UPDATE member_skill SET expires_on = ? WHERE member_id = ?",
        ((later.date() - timedelta(days=1)).isoformat(), first),
    )
    assert ranked(app, **_scene_args(factory, later)) == []

    # A home moved by another process: the check sees the snapshot is wrong and reloads.
    third = factory.create_member(
        branches=("hazard",), skills=("first_aid",), home=north_of_scene(4_000)
    )
    fourth = factory.create_member(
        branches=("hazard",), skills=("first_aid",), home=north_of_scene(3_000)
    )
    assert [c.member_id for c in ranked(app, **_scene_args(factory, later))] == [fourth, third]
    _driver_execute(
        app, "UPDATE member SET home_lat = ? WHERE id = ?", (north_of_scene(100)[0], fourth)
    )
    got = ranked(app, **_scene_args(factory, later))
    assert [(c.member_id, c.distance_m) for c in got] == [(fourth, 100), (third, 4_000)]

    # invalidate_cache() forces the reload outright.
    _driver_execute(app, "UPDATE member SET status = 'active' WHERE id = ?", (second,))
    dispatch.invalidate_cache()
    assert [c.member_id for c in ranked(app, **_scene_args(factory, later))] == [
        second,
        fourth,
        third,
    ]


def _eventually(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """True once `condition` holds; PostgreSQL publishes another backend's write counters
    within seconds, not at once."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def test_a_quiet_snapshot_is_revalidated_not_reloaded(
    app: Flask, factory: Factory, backend: str
) -> None:
    now = utcnow()
    factory.create_member(branches=("hazard",), skills=("first_aid",), home=north_of_scene(300))
    past_check = now + dispatch.CHECK_INTERVAL + timedelta(seconds=1)

    def kept() -> bool:
        with app.app_context():
            try:
                base = dispatch.snapshot(db.session(), now)
                db.session.rollback()  # statistics are read once per transaction
                again = dispatch.snapshot(db.session(), past_check)
                return again.branches is base.branches and base.members == 1
            finally:
                db.session.remove()

    # Once the factory's own statistics are published, nobody writes: every re-validation
    # keeps the arrays (PostgreSQL), or the snapshot is simply young enough (SQLite).
    assert _eventually(kept)
    with app.app_context():
        again = dispatch.snapshot(db.session(), past_check)
        assert (again.fingerprint is not None) == (backend == "postgresql")
        db.session.remove()


def test_threads_rank_while_the_snapshot_is_invalidated_and_reloaded(app: Flask) -> None:
    world = build_world(app, seed=9, members=60)
    kwargs: dict[str, Any] = {
        "branch_id": world.branch_ids["hazard"],
        "skill_ids": [],
        "lat": SCENE[0],
        "lon": SCENE[1],
        "limit": 6,
        "now": world.now,
    }
    expected = oracle(app, **kwargs)
    assert expected
    results: list[list[Candidate]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(8):
                results.append(ranked(app, **kwargs))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    def invalidator() -> None:
        start.wait()
        for _ in range(8):
            dispatch.invalidate_cache()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    threads.append(threading.Thread(target=invalidator))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert len(results) == 24
    assert all(result == expected for result in results)


def test_snapshot_memory_stays_small(app: Flask) -> None:
    world = build_world(app, seed=5, members=400)
    with app.app_context():
        snap = dispatch.snapshot(db.session(), world.now)
        db.session.remove()
    with_home = snap.members
    assert 300 <= with_home <= 400
    # Per member: id, position and per-branch copies (~70 B a branch) plus 4 B per skill
    # column; 40,000 members stay within a few MB.
    assert snap.nbytes / with_home < 70 * len(BRANCHES) + 4 * len(SKILLS) + 8


def test_skill_expiring_today_still_counts_and_yesterday_does_not(
    app: Flask, factory: Factory
) -> None:
    """Days of the federation's calendar (HUB_TIMEZONE), not of UTC's: at 01:00 in Shanghai a
    certificate that ended the day before no longer counts, though UTC's date is still its
    last day."""
    today = date(2026, 6, 2)
    shanghai = ZoneInfo("Asia/Shanghai")
    now = datetime(2026, 6, 2, 1, 0, tzinfo=shanghai).astimezone(UTC)  # 17:00 UTC on June 1
    today_member = factory.create_member(
        branches=("hazard",),
        skills=("first_aid",),
        home=north_of_scene(200),
        skill_expiry=today,
    )
    factory.create_member(
        branches=("hazard",),
        skills=("first_aid",),
        home=north_of_scene(100),
        skill_expiry=today - timedelta(days=1),
    )
    assert app.config["HUB_TIMEZONE"] == "Asia/Shanghai"
    assert [c.member_id for c in ranked(app, **_scene_args(factory, now))] == [today_member]
    late_that_day = datetime(2026, 6, 2, 23, 30, tzinfo=shanghai).astimezone(UTC)
    assert [c.member_id for c in ranked(app, **_scene_args(factory, late_that_day))] == [
        today_member
    ]
    assert ranked(app, **_scene_args(factory, late_that_day + timedelta(hours=1))) == []


def test_a_dead_connection_rolls_back_without_a_second_error() -> None:
    """The snapshot's transaction hook must not read a connection that died (a database
    restart): rolling back is what the error handler and the worker do next, and an error
    from the hook would replace the real one."""
    import sqlalchemy as sa

    import volunteer_hub.services.dispatch  # noqa: F401  (installs the hook on every Engine)

    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        transaction = conn.begin()
        conn.execute(sa.text("SELECT 1"))
        conn.invalidate()
        transaction.rollback()
        assert conn.invalidated
    engine.dispose()
