"""Shift plans at federation scale on PostgreSQL.

1. Build the scheduling Problem of a week's plan for the demo patrol branch of a 40,000-member
   federation (seeded by `services.seed.seed_federation`) from the database. Target: < 5 s.
2. Solve that Problem as the worker would (`--solve-limit`, default 30 s; 0 skips): slots
   filled, objective, the checker's verdict, and the solver's own figures.
3. Publish a plan of about 10,000 assignments with their pushes and reminders in one
   transaction. Target: < 3 s.

    .venv/bin/python -m bench.plans [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
        [--members 40000] [--keep] [--solve-limit 30]

A scratch database `bench_plans` is created beside --url, migrated, filled and dropped.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import psycopg
from sqlalchemy import delete, func, insert, make_url, select, text, update
from sqlalchemy.orm import Session

from bench.common import log
from scheduling.problem import Pair, Problem, Solution
from volunteer_hub.auth.policy import Actor, Grant
from volunteer_hub.models import Branch, Town
from volunteer_hub.models.members import Role
from volunteer_hub.models.notifications import InboxItem, OutboxMessage
from volunteer_hub.models.plans import (
    Assignment,
    AssignmentStatus,
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


def _week_plan(session: Session, branch_id: int, start: date) -> int:
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


def _unpublish(session: Session, plan_id: int) -> None:
    """Put the plan back as it was before publishing (not timed), to publish it again."""
    session.execute(delete(InboxItem))
    session.execute(delete(OutboxMessage))
    session.execute(
        update(Assignment)
        .where(Assignment.plan_id == plan_id)
        .values(status=AssignmentStatus.PROPOSED, published_at=None)
    )
    session.execute(update(Plan).where(Plan.id == plan_id).values(status=PlanStatus.SOLVED))
    session.commit()
    session.execute(text("ANALYZE outbox_message, inbox_item, assignment"))
    session.commit()


def _backend_cpu(session: Session) -> float | None:
    """CPU seconds the session's PostgreSQL backend has used (same host only): on a shared
    machine the wall time says as much about the neighbours as about the code."""
    pid = session.scalar(text("SELECT pg_backend_pid()"))
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _solve(problem: Problem, limit: float) -> dict[str, object]:
    """The Problem solved as the worker solves it, re-scored by the checker."""
    from scheduling.checker import check
    from scheduling.solver import SolveOptions, solve

    log(f"solving ({limit:g} s limit)")
    began = time.perf_counter()
    solution = solve(problem, SolveOptions(time_limit_s=limit))
    wall = time.perf_counter() - began
    report = check(problem, solution.assignments)
    staffed: dict[str, int] = {}
    for pair in set(solution.assignments):
        staffed[pair.shift] = staffed.get(pair.shift, 0) + 1
    filled = sum(min(s.required, staffed.get(s.id, 0)) for s in problem.shifts)
    log(f"solved in {wall:.1f} s: {filled} slots filled, objective {report.objective}")
    return {
        "wall_s": wall,
        "filled": filled,
        "objective": report.objective,
        "checker": "ok" if report.ok else f"{len(report.violations)} violations",
        "method": solution.stats.get("method", "CP-SAT"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--members", type=int, default=40_000)
    parser.add_argument("--keep", action="store_true", help="do not drop the scratch database")
    parser.add_argument("--publishes", type=int, default=3, help="publish runs (best is kept)")
    parser.add_argument(
        "--solve-limit", type=float, default=30.0, help="solve the Problem (0: skip)"
    )
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

            solved = _solve(problem, args.solve_limit) if args.solve_limit > 0 else None

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

            volunteers, shifts = len(problem.volunteers), len(problem.shifts)
            windows = sum(len(v.unavailable) for v in problem.volunteers)
            # An API process publishing holds no solver Problem; the bench's would only make
            # every garbage-collector pass walk its million objects.
            del built, problem, pairs, slots_list
            gc.collect()

            admin = Actor(1, (Grant(Role.ADMIN, None, None),), frozenset(), None)
            publishes: list[tuple[float, float, float | None]] = []
            pushes = 0
            for attempt in range(args.publishes):
                if attempt:
                    _unpublish(session, plan_id)
                outbox_before = session.scalar(select(func.count(OutboxMessage.id))) or 0
                backend = _backend_cpu(session)
                session.commit()
                log(f"publishing ({attempt + 1} of {args.publishes})")
                client_began, began = time.process_time(), time.perf_counter()
                publish_plan(session, admin, plan_id, reminder_offsets_h=(24, 2))
                wall = time.perf_counter() - began
                client = time.process_time() - client_began
                server = None if backend is None else (_backend_cpu(session) or 0) - backend
                publishes.append((wall, client, server))
                pushes = (session.scalar(select(func.count(OutboxMessage.id))) or 0) - outbox_before
                session.commit()
                log(f"published in {wall:.2f} s")
            began = time.perf_counter()
            publish_plan(session, admin, plan_id, reminder_offsets_h=(24, 2))
            republish_s = time.perf_counter() - began
            db.session.remove()
            db.engine.dispose()
        publish_s, client_s, server_s = min(publishes)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"members (federation)             {args.members}")
        print(f"patrol volunteers in the Problem {volunteers}")
        print(f"shifts / slots                   {shifts} / {slots}")
        print(f"unavailable windows              {windows}")
        print(
            f"build Problem (best of 3)        {build_s:.2f} s  (all: "
            f"{', '.join(f'{b:.2f}' for b in builds)})  target < {BUILD_TARGET_S} s  "
            f"ratio {build_s / BUILD_TARGET_S:.2f}"
        )
        if solved is not None:
            print(
                f"solve ({args.solve_limit:g} s limit)           {solved['wall_s']:.1f} s wall, "
                f"{solved['filled']} of {slots} slots filled, objective {solved['objective']}, "
                f"checker {solved['checker']}, {solved['method']}"
            )
        print(f"assignments published            {proposed}")
        print(f"outbox rows (pushes + reminders) {pushes}")
        print(
            f"publish (best of {len(publishes)})              {publish_s:.2f} s  (all: "
            f"{', '.join(f'{p[0]:.2f}' for p in publishes)})  target < {PUBLISH_TARGET_S} s  "
            f"ratio {publish_s / PUBLISH_TARGET_S:.2f}"
        )
        server_text = "n/a" if server_s is None else f"{server_s:.2f} s"
        print(
            f"  of which CPU                   client {client_s:.2f} s, database backend "
            f"{server_text} (1-min load average {load:.1f})"
        )
        print(f"publish again (no change)        {republish_s:.3f} s")
    finally:
        if not args.keep:
            _run(args.url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
