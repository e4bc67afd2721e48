"""Seed the 40,000-member demo federation into fresh SQLite and PostgreSQL databases.

    .venv/bin/python -m bench.seed [--members 40000]

Each backend runs in its own child process (so its peak memory is its own ru_maxrss): create
the database, migrate it, seed it, report. Figures go to stdout; progress lines to stderr.
PostgreSQL is reached through BENCH_DATABASE_URL or TEST_DATABASE_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test); a scratch database `bench_seed` beside it
is created and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

TARGET_S = 60.0
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _child(url: str, members: int) -> dict[str, Any]:
    """Migrate and seed `url` in this process; return the figures."""
    from flask_migrate import upgrade

    from volunteer_hub.app import create_app
    from volunteer_hub.extensions import db
    from volunteer_hub.services.seed import seed_federation

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "JWT_SECRET_KEY": "bench-" + "x" * 40})
    with app.app_context():
        started = time.monotonic()
        upgrade()
        migrate_s = time.monotonic() - started
        report = seed_federation(
            db.session(),
            members=members,
            towns=24,
            seed=1,
            password="bench-password",
            progress=lambda line: _say(f"  {line}"),
        )
        db.session.remove()
        db.engine.dispose()
    return {
        "members": report.members,
        "seed_s": report.seconds,
        "migrate_s": migrate_s,
        "rows": report.members
        + report.member_branches
        + report.member_skills
        + report.availability
        + report.leaves
        + report.role_grants
        + report.squads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _run_child(backend: str, url: str, members: int) -> dict[str, Any]:
    _say(f"bench.seed: {backend}: seeding {members} members …")
    output = subprocess.run(
        [sys.executable, "-m", "bench.seed", "--child", url, "--members", str(members)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def _postgres(members: int) -> dict[str, Any]:
    import psycopg
    from sqlalchemy import make_url

    base = make_url(
        os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG
    )
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = "bench_seed"

    def run(sql: str) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    run(f'CREATE DATABASE "{name}"')
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        return _run_child("postgresql", url, members)
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlite(members: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench_seed_") as folder:
        return _run_child("sqlite", f"sqlite:///{folder}/hub.db", members)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed")
    parser.add_argument("--members", type=int, default=40_000)
    parser.add_argument("--child", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        os.environ.setdefault("HUB_INSTANCE_DIR", tempfile.mkdtemp(prefix="bench_seed_inst_"))
        print(json.dumps(_child(args.child, args.members)), flush=True)
        return 0
    os.environ.setdefault("HUB_INSTANCE_DIR", tempfile.mkdtemp(prefix="bench_seed_inst_"))
    results = {"sqlite": _sqlite(args.members), "postgresql": _postgres(args.members)}
    print(f"seed benchmark: {args.members} members, 24 towns, seed 1 (target < {TARGET_S:.0f} s)")
    print(
        f"{'backend':<11} {'seed s':>7} {'members/s':>10} {'rows/s':>9} {'peak MB':>8} "
        f"{'migrate s':>9} {'time/target':>11}"
    )
    worst = 0.0
    for backend, r in results.items():
        ratio = r["seed_s"] / TARGET_S
        worst = max(worst, ratio)
        print(
            f"{backend:<11} {r['seed_s']:>7.1f} {r['members'] / r['seed_s']:>10.0f} "
            f"{r['rows'] / r['seed_s']:>9.0f} {r['peak_rss_mb']:>8.0f} {r['migrate_s']:>9.1f} "
            f"{ratio:>11.2f}"
        )
    print(f"worst time/target ratio: {worst:.2f} ({'met' if worst < 1 else 'MISSED'})")
    return 0 if worst < 1 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
