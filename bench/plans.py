"""Shift plans at federation scale on PostgreSQL.

1. Build the scheduling Problem of a week's plan for the demo patrol branch of a 40,000-member
   federation (seeded by `services.seed.seed_federation`) from the database. Target: < 5 s.
2. Publish a plan of about 10,000 assignments with their pushes and reminders in one
   transaction. Target: < 3 s.

    .venv/bin/python -m bench.plans [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--members 40000] [--keep]

A scratch database `bench_plans` is created beside --url, migrated, filled and dropped.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import func, insert, make_url, select

from bench.common import log
from scheduling.problem import Pair, Solution
from volunteer_hub.auth.policy import Actor, Grant
from volunteer_hub.models import Branch, Town
from volunteer_hub.models.members import Role
from volunteer_hub.models.notifications import OutboxMessage
from volunteer_hub.models.plans import (
    Assignment,
    Plan,
    PlanStatus,
    Post,
    PostKind,
    Shift,
    ShiftKind,
)

BUILD_TARGET_S = 5.0
PUBLISH_TARGET_S = 3.0
TZ = ZoneInfo("Asia/Shanghai")
# Three patrols a day at each post, two people each: 240 posts x 7 days x 3 x 2 = 10,080 slots.
POSTS_PER_TOWN = 10
PATROLS = (
    (clock(8), clock(12), ShiftKind.DAY),
    (clock(14), clock(18), ShiftKind.DAY),
    (clock(19), clock(23), ShiftKind.NIGHT),
)


def _admin_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(url: str, sql: str) -> None:
    with psycopg.connect(_admin_url(url), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def _week_plan(session: object, branch_id: int, start: date) -> int:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    plan = Plan(
        branch_id=branch_id,
        name="巡防周计划",
        starts_on=start,
        ends_on=start + timedelta(days=6),
        status=PlanStatus.DRAFT,
        version=0,
    )
    session.add(plan)
    session.flush()
    towns = session.execute(select(Town.id, Town.lat, Town.lon)).all()
    posts = [
        {
            "branch_id": branch_id,
            "town_id": town.id,
            "name": f"巡逻点{town.id}-{i}",
            "lat": town.lat + 0.004 * (i % 5 - 2),
            "lon": town.lon + 0.004 * (i // 5 - 1),
            "radius_m": 200,
            "kind": PostKind.POINT,
            "active": True,
            "created_at": datetime.now(UTC),
        }
        for town in towns
        for i in range(POSTS_PER_TOWN)
    ]
    post_ids = session.execute(insert(Post).returning(Post.id), posts).scalars().all()
    shifts = []
    for post_id in post_ids:
        for offset in range(7):
            day = start + timedelta(days=offset)
            for begin, end, kind in PATROLS:
                shifts.append(
                    {
                        "plan_id": plan.id,
                        "post_id": post_id,
                        "starts_at": datetime.combine(day, begin, TZ).astimezone(UTC),
                        "ends_at": datetime.combine(day, end, TZ).astimezone(UTC),
                        "kind": kind,
                        "headcount": 2,
                        "skills": {},
                        "leader_required": False,
                    }
                )
    session.execute(insert(Shift), shifts)
    session.commit()
    return plan.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--members", type=int, default=40_000)
    parser.add_argument("--keep", action="store_true", help="do not drop the scratch database")
    args = parser.parse_args()

    from flask_migrate import upgrade

    from volunteer_hub.app import create_app
    from volunteer_hub.extensions import db
    from volunteer_hub.services.problem_builder import BuilderSettings, build_problem
    from volunteer_hub.services.publish import publish_plan
    from volunteer_hub.services.seed import seed_federation
    from volunteer_hub.services.solve_runs import _store_roster

    name = "bench_plans"
    url = make_url(args.url).set(database=name).render_as_string(hide_password=False)
    _run(args.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    _run(args.url, f'CREATE DATABASE "{name}"')
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "JWT_SECRET_KEY": "bench-" + "x" * 40})
        with app.app_context():
            log("migrating")
            upgrade()
            session = db.session()
            log(f"seeding a federation of {args.members} members")
            began = time.perf_counter()
            seed_federation(session, members=args.members, towns=24, seed=1, password="demo")
            log(f"seeded in {time.perf_counter() - began:.1f} s")
            patrol = session.scalar(select(Branch.id).where(Branch.code == "patrol"))
            assert patrol is not None
            start = date.today() + timedelta(days=7 - date.today().weekday())
            plan_id = _week_plan(session, patrol, start)
            plan = session.get_one(Plan, plan_id)
            slots = session.scalar(
                select(func.sum(Shift.headcount)).where(Shift.plan_id == plan_id)
            )

            log("building the Problem (3 runs)")
            builds = []
            for _ in range(3):
                session.expire_all()
                began = time.perf_counter()
                built = build_problem(session, plan, BuilderSettings())
                builds.append(time.perf_counter() - began)
                session.commit()
            problem = built.problem
            build_s = min(builds)
            log(
                f"problem: {len(problem.volunteers)} volunteers, {len(problem.shifts)} shifts, "
                f"{sum(len(v.unavailable) for v in problem.volunteers)} unavailable windows"
            )

            # The roster to publish (not timed): one shift per volunteer for the week, so no
            # two of anyone's shifts can overlap; solving 10,000 slots is the solver's bench.
            log("a roster of one shift per volunteer (not timed)")
            slots_list = [s.id for s in problem.shifts for _ in range(s.required)]
            pairs = tuple(
                Pair(v.id, shift) for v, shift in zip(problem.volunteers, slots_list, strict=False)
            )
            _store_roster(session, built, Solution(status="feasible", assignments=pairs))
            session.commit()
            proposed = session.scalar(
                select(func.count(Assignment.id)).where(Assignment.plan_id == plan_id)
            )
            log(f"{proposed} proposed assignments of {slots} slots")

            admin = Actor(1, (Grant(Role.ADMIN, None, None),), frozenset(), None)
            outbox_before = session.scalar(select(func.count(OutboxMessage.id)))
            session.commit()
            log("publishing")
            began = time.perf_counter()
            publish_plan(session, admin, plan_id, reminder_offsets_h=(24, 2))
            publish_s = time.perf_counter() - began
            pushes = (session.scalar(select(func.count(OutboxMessage.id))) or 0) - (
                outbox_before or 0
            )
            began = time.perf_counter()
            publish_plan(session, admin, plan_id, reminder_offsets_h=(24, 2))
            republish_s = time.perf_counter() - began
            db.session.remove()
            db.engine.dispose()
        print(f"members (federation)             {args.members}")
        print(f"patrol volunteers in the Problem {len(problem.volunteers)}")
        print(f"shifts / slots                   {len(problem.shifts)} / {slots}")
        print(
            f"build Problem (best of 3)        {build_s:.2f} s  (all: "
            f"{', '.join(f'{b:.2f}' for b in builds)})  target < {BUILD_TARGET_S} s  "
            f"ratio {build_s / BUILD_TARGET_S:.2f}"
        )
        print(f"assignments published            {proposed}")
        print(f"outbox rows (pushes + reminders) {pushes}")
        print(
            f"publish                          {publish_s:.2f} s  target < {PUBLISH_TARGET_S} s  "
            f"ratio {publish_s / PUBLISH_TARGET_S:.2f}"
        )
        print(f"publish again (no change)        {republish_s:.3f} s")
    finally:
        if not args.keep:
            _run(args.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
