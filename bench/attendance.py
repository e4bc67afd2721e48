"""Check-in under load and hours reports over a year of ledger entries, on PostgreSQL.

(a) `POST /assignments/{id}/check-in` through gunicorn (2 gevent workers, the production
    command and gunicorn.conf.py of README.md; `--worker-class gthread --threads N` to
    compare) with 100 concurrent
    clients, each check-in a fresh assignment and key; the same load on `GET /health` (a bare
    JSON endpoint of the same app). Targets: throughput ratio >= 0.5, check-in p99 < 100 ms.
    Closed loop: each client sends its next request as soon as the last one is answered, so
    the mean latency is clients / throughput (Little's law) and p99 < 100 ms needs more than
    ~1,000 check-ins/s. The load generator (`bench.loadgen`: one thread driving the keep-alive
    connections over `selectors`) runs on the same machine and takes some CPU from the server;
    both endpoints pay that alike.
    The machine is shared (a virtual machine whose neighbours take CPU at random), so one run
    says little: `--repeat` pairs of runs (/health, then check-in) alternate, and the median
    pair's ratio and the median check-in p99 are the headline, every pair printed. Each pair
    starts from a database at rest (vacuumed, analysed, checkpointed), its check-ins on fresh
    assignments of the same members; before the first, warm-up check-ins open the workers'
    connections. Each run prints how busy the machine was and how much of it the hypervisor
    took (stolen), and the machine's speed is read before and after the runs.
    Then, reported separately (not instead): the same clients offering a fixed rate together
    (`--rate`, open loop), latency counted from when each request was due; and `--serial`
    check-ins one after another on one connection, for the CPU one check-in costs the
    database and the fast path when nothing else runs.
(b) 1,000,000 hours-ledger entries for a year of the demo federation (COPY; the rollups are
    then rebuilt from the ledger as migration 0008 backfills them), then the
    month-by-branch report and the member report page through the app. Targets: < 200 ms and
    < 300 ms (p50).

Runs in a scratch database (`bench_attendance`), seeded with the demo federation, dropped
afterwards.

    .venv/bin/python -m bench.attendance [--members 40000] [--entries 1000000]
        [--clients 100] [--requests 5000] [--repeat 3] [--rate 300] [--rate-requests 1500]
        [--worker-class gevent] [--threads 2] [--serial 3000]
        [--samples 30] [--skip-http] [--skip-reports]
        [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--keep]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from flask import Flask
from flask_jwt_extended import create_access_token
from sqlalchemy import make_url, select, text, update

from bench import loadgen
from bench.common import format_table, log, write_results
from volunteer_hub.app import create_app
from volunteer_hub.extensions import db
from volunteer_hub.models import Member, MemberBranch, Role, RoleGrant, Squad
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
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import hours_rollup

DATABASE = "bench_attendance"
ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
TARGET_RATIO = 0.5
TARGET_CHECKIN_P99_MS = 100.0
TARGET_MONTH_BRANCH_MS = 200.0
TARGET_MEMBER_PAGE_MS = 300.0
# A tap 15 m from the bench's posts (radius 150 m), as a phone sends it.
CHECK_IN_BODY = json.dumps({"lat": 29.8201, "lon": 121.5501, "accuracy_m": 12}).encode()


def _admin_run(url: str, sql: str) -> None:
    admin = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p90_ms": round(percentile(values, 90), 2),
        "p99_ms": round(percentile(values, 99), 2),
        "max_ms": round(max(values), 2),
    }


def _token(member_id: int) -> str:
    return create_access_token(
        identity=str(member_id),
        additional_claims={"fam": uuid.uuid4().hex, "tv": 0},
        expires_delta=False,
    )


# ---------------------------------------------------------------------- (b) ledger + reports


def fill_ledger(app: Flask, entries: int, year_end: date) -> None:
    """COPY `entries` rows spread over the year before `year_end` across every member."""
    with app.app_context():
        session = db.session()
        members = session.execute(
            select(Member.id, Member.town_id, MemberBranch.branch_id).join(
                MemberBranch, MemberBranch.member_id == Member.id
            )
        ).all()
        squads = {
            (b, t): s
            for s, b, t in session.execute(select(Squad.id, Squad.branch_id, Squad.town_id))
        }
        session.rollback()
        url = make_url(str(db.engine.url)).set(drivername="postgresql")
        dsn = url.render_as_string(hide_password=False)
    rng = random.Random(11)
    start = datetime.combine(year_end - timedelta(days=365), datetime.min.time(), TZ)
    created = utcnow().isoformat()
    began = time.perf_counter()
    columns = (
        "kind, minutes, turns, member_id, branch_id, town_id, squad_id, occurred_at, "
        "service_day, service_month, created_at"
    )
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY hours_entry ({columns}) FROM STDIN") as copy:
            for index in range(entries):
                member_id, town_id, branch_id = members[rng.randrange(len(members))]
                at = start + timedelta(minutes=rng.randrange(365 * 24 * 60))
                local = at.astimezone(TZ).date()
                correction = rng.random() < 0.02
                copy.write_row(
                    (
                        "correction" if correction else "attendance",
                        rng.randint(-60, 60)
                        if correction
                        else rng.choice((120, 180, 240, 480, 900)),
                        0 if correction else 1,
                        member_id,
                        branch_id,
                        town_id,
                        squads.get((branch_id, town_id)),
                        at.astimezone(UTC).isoformat(),
                        local.isoformat(),
                        local.replace(day=1).isoformat(),
                        created,
                    )
                )
                if (index + 1) % 200_000 == 0:
                    log(
                        f"attendance: ledger {index + 1}/{entries} "
                        f"({time.perf_counter() - began:.0f} s)"
                    )
        conn.commit()
    # COPY bypasses hours.add_entry, so the rollup is rebuilt from the ledger (as the
    # migration's backfill does) before the reports are timed.
    with app.app_context():
        rows = hours_rollup.rebuild(db.session())
        db.session.commit()
        db.session.remove()
    # Statistics for every table the reports read, as autovacuum would soon have them: without
    # them the planner takes the two-year windows for a few hundred rows (month-by-branch
    # sorted 47,000 window rows where it hashes 7 groups; 255 ms against 177 ms measured).
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in ("hours_entry", "hours_rollup", "hours_span", "hours_span_member"):
            conn.execute(f"VACUUM ANALYZE {table}")  # type: ignore[arg-type]
        # The load's dirty pages written out now, not by the checkpointer while reports are
        # timed (p50 215 ms measured just after the load against 158 ms once at rest).
        conn.execute("CHECKPOINT")
    log(
        f"attendance: {entries} ledger entries, {rows} rollup rows in "
        f"{time.perf_counter() - began:.1f} s"
    )


def time_reports(app: Flask, samples: int, year_end: date) -> dict[str, Any]:
    with app.app_context():
        sg = db.session.scalar(
            select(RoleGrant.member_id).where(RoleGrant.role == Role.SECRETARY_GENERAL).limit(1)
        )
        coordinator = db.session.scalar(
            select(RoleGrant.member_id)
            .where(RoleGrant.role == Role.COORDINATOR, RoleGrant.branch_id.is_not(None))
            .limit(1)
        )
        sg_headers = {"Authorization": f"Bearer {_token(int(sg or 0))}"}
        coord_headers = {"Authorization": f"Bearer {_token(int(coordinator or 0))}"}
        db.session.remove()
    span = {"from": (year_end - timedelta(days=365)).isoformat(), "to": year_end.isoformat()}
    cases = [
        (
            "month-by-branch (SG, a year)",
            sg_headers,
            {"group_by": "month,branch", **span},
            TARGET_MONTH_BRANCH_MS,
        ),
        (
            "member report page 1 (SG, a year)",
            sg_headers,
            {"group_by": "member", **span},
            TARGET_MEMBER_PAGE_MS,
        ),
        (
            "member report page 40 (SG, a year)",
            sg_headers,
            {"group_by": "member", "page": 40, **span},
            TARGET_MEMBER_PAGE_MS,
        ),
        (
            "member report page 1 (coordinator, own branch)",
            coord_headers,
            {"group_by": "member", **span},
            TARGET_MEMBER_PAGE_MS,
        ),
        (
            "by branch (SG, one month)",
            sg_headers,
            {
                "group_by": "branch",
                "from": (year_end - timedelta(days=30)).isoformat(),
                "to": year_end.isoformat(),
            },
            TARGET_MONTH_BRANCH_MS,
        ),
    ]
    client = app.test_client()
    results = []
    for name, headers, query, target in cases:
        timings = []
        for index in range(samples + 2):
            began = time.perf_counter()
            response = client.get("/api/v1/reports/hours", query_string=query, headers=headers)
            elapsed = (time.perf_counter() - began) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{name}: {response.status_code} {response.get_json()}")
            if index >= 2:  # the first two warm the caches
                timings.append(elapsed)
        body = response.get_json()
        stats = _stats(timings)
        results.append(
            {
                "what": name,
                **stats,
                "rows": len(body["rows"]),
                "total_minutes": body["total_minutes"],
                "target_ms": target,
                "p50_over_target": round(stats["p50_ms"] / target, 3),
            }
        )
        log(f"attendance: {name}: p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms")
    exports = []
    for name, path, query in (
        ("CSV, every member (SG, a year)", "/api/v1/reports/hours.csv", {"group_by": "member"}),
        ("XLSX, every member (SG, a year)", "/api/v1/reports/hours.xlsx", {"group_by": "member"}),
    ):
        timings = []
        for _ in range(3):
            began = time.perf_counter()
            response = client.get(path, query_string={**query, **span}, headers=sg_headers)
            timings.append(time.perf_counter() - began)
            if response.status_code != 200:
                raise SystemExit(f"{name}: {response.status_code} {response.get_json()}")
        size = len(response.data)
        exports.append(
            {"what": name, "seconds": round(statistics.median(timings), 2), "bytes": size}
        )
        log(f"attendance: export {name}: {exports[-1]['seconds']} s, {size} bytes")
    return {"reports": results, "exports": exports}


# ---------------------------------------------------------------------- (a) check-in under load


def make_assignments(app: Flask, count: int) -> list[tuple[int, int, str]]:
    """`count` members, each with one shift in progress at a post: (assignment, member, token)."""
    now = utcnow()
    with app.app_context():
        session = db.session()
        rows = session.execute(
            select(Member.id, MemberBranch.branch_id, Member.town_id)
            .join(MemberBranch, MemberBranch.member_id == Member.id)
            .where(Member.town_id.is_not(None))
            .order_by(Member.id)
        ).all()
        seen: set[int] = set()
        chosen = []
        for member_id, branch_id, town_id in rows:
            if member_id not in seen:
                seen.add(member_id)
                chosen.append((member_id, branch_id, town_id))
            if len(chosen) == count:
                break
        posts: dict[tuple[int, int], tuple[int, int]] = {}
        out = []
        for member_id, branch_id, town_id in chosen:
            key = (branch_id, town_id)
            if key not in posts:
                post = Post(
                    branch_id=branch_id,
                    town_id=town_id,
                    name=f"bench post {len(posts)}",
                    lat=29.82,
                    lon=121.55,
                    radius_m=150,
                    kind=PostKind.POINT,
                )
                plan = Plan(
                    branch_id=branch_id,
                    town_id=town_id,
                    name="bench plan",
                    starts_on=now.date() - timedelta(days=1),
                    ends_on=now.date() + timedelta(days=1),
                    status=PlanStatus.PUBLISHED,
                )
                session.add_all([post, plan])
                session.flush()
                shift = Shift(
                    plan_id=plan.id,
                    post_id=post.id,
                    starts_at=now - timedelta(minutes=10),
                    ends_at=now + timedelta(hours=6),
                    kind=ShiftKind.DAY,
                    headcount=1000,
                    skills={},
                )
                session.add(shift)
                session.flush()
                posts[key] = (plan.id, shift.id)
            plan_id, shift_id = posts[key]
            assignment = Assignment(
                plan_id=plan_id,
                shift_id=shift_id,
                member_id=member_id,
                status=AssignmentStatus.ACCEPTED,
                starts_at=now - timedelta(minutes=10),
                ends_at=now + timedelta(hours=6),
            )
            session.add(assignment)
            session.flush()
            out.append((assignment.id, member_id, _token(member_id)))
        session.commit()
        db.session.remove()
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc; None without it)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pids(*pgrep: str) -> list[int]:
    found = subprocess.run(["pgrep", *pgrep], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


class _MachineMeter:
    """The whole machine's CPU over one run, from /proc/stat: the share busy and the share
    stolen (taken by the hypervisor for other guests: this is a shared virtual machine, and
    what is stolen shows as longer waits). Empty without /proc."""

    def __init__(self) -> None:
        self.began = self._read()

    @staticmethod
    def _read() -> list[int] | None:
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                return [int(x) for x in stat.readline().split()[1:9]]
        except (OSError, ValueError):
            return None

    def shares(self) -> dict[str, float]:
        now = self._read()
        if self.began is None or now is None:
            return {}
        user, nice, system, idle, iowait, irq, softirq, steal = (
            b - a for a, b in zip(self.began, now, strict=True)
        )
        total = max(1, user + nice + system + idle + iowait + irq + softirq + steal)
        return {
            "busy_pct": round(100 * (user + nice + system + irq + softirq) / total, 1),
            "stolen_pct": round(100 * steal / total, 1),
        }


def machine_speed(repeat: int = 3) -> float:
    """Seconds a 10-million-step Python loop takes (the best of `repeat`): how fast this
    shared machine is at the moment, to compare runs taken on different days by."""
    best = math.inf
    for _ in range(repeat):
        began = time.perf_counter()
        for _step in range(10_000_000):
            pass
        best = min(best, time.perf_counter() - began)
    return round(best, 3)


class _CpuMeter:
    """CPU milliseconds per request spent by the gunicorn workers, PostgreSQL (the local
    server's processes: backends, including those started during the run, and background
    writers) and this load generator, over one run."""

    def __init__(self, server: subprocess.Popen[bytes]) -> None:
        self.server = server.pid
        self.began = {key: self._read(pids) for key, pids in self._groups().items()}

    def _groups(self) -> dict[str, list[int]]:
        return {
            "gunicorn": _pids("-P", str(self.server)),
            "postgres": _pids("postgres"),
            "client": [os.getpid()],
        }

    @staticmethod
    def _read(pids: list[int]) -> dict[int, float]:
        return {pid: used for pid in pids if (used := _cpu_seconds(pid)) is not None}

    def per_request_ms(self, requests: int) -> dict[str, float]:
        spent: dict[str, float] = {}
        for key, pids in self._groups().items():
            before = self.began[key]
            now = self._read(pids)
            seconds = sum(used - before.get(pid, 0.0) for pid, used in now.items())
            spent[key] = seconds * 1000 / max(1, requests)
        spent["total"] = sum(spent.values())
        return {key: round(ms, 3) for key, ms in spent.items()}


def _check_ins(assignments: list[tuple[int, int, str]]) -> list[loadgen.Request]:
    return [
        (
            "POST",
            f"/api/v1/assignments/{assignment_id}/check-in",
            CHECK_IN_BODY,
            {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "Idempotency-Key": uuid.uuid4().hex,
            },
        )
        for assignment_id, _member, token in assignments
    ]


_HEALTH: loadgen.Request = ("GET", "/api/v1/health", None, {})


def _pair(
    port: int,
    server: subprocess.Popen[bytes],
    clients: int,
    count: int,
    assignments: list[tuple[int, int, str]],
    label: str,
) -> dict[str, Any]:
    """One closed-loop run of `count` GET /health, then one of a check-in per assignment."""
    health = [_HEALTH] * count
    log(f"attendance: {label}GET /health x{count} with {clients} clients")
    meter, machine = _CpuMeter(server), _MachineMeter()
    with _Owners(port) as h_owners:
        h = loadgen.closed_loop(port, clients, health, 120)
    h_cpu, h_machine = meter.per_request_ms(len(h.latencies)), machine.shares()
    checkins = _check_ins(assignments)
    log(f"attendance: {label}POST check-in x{len(checkins)} with {clients} clients")
    meter, machine = _CpuMeter(server), _MachineMeter()
    with _Owners(port) as c_owners:
        c = loadgen.closed_loop(port, clients, checkins, 300)
    c_cpu, c_machine = meter.per_request_ms(len(c.latencies)), machine.shares()
    health_rps = len(h.latencies) / h.wall_s
    checkin_rps = len(c.latencies) / c.wall_s
    return {
        "health": {
            **_stats(h.latencies),
            "failures": h.failures,
            "rps": round(health_rps, 1),
            "cpu_ms_per_request": h_cpu,
            "machine": h_machine,
            "by_worker": _by_worker(h.by_port, h_owners.found),
        },
        "check_in": {
            **_stats(c.latencies),
            "failures": c.failures,
            "rps": round(checkin_rps, 1),
            "cpu_ms_per_request": c_cpu,
            "machine": c_machine,
            "by_worker": _by_worker(c.by_port, c_owners.found),
        },
        "ratio": round(checkin_rps / health_rps, 3),
    }


class _Owners:
    """Which gunicorn worker holds each client connection to `port`, read with `ss` shortly
    after a run starts (every client has connected by then): {client's port: worker pid}.
    Each connection is kept alive for the whole run, so the split made at the start lasts,
    and the clients of the worker holding more of them wait longer. With one listening socket
    shared by the workers (gunicorn without --reuse-port) the split was as uneven as 75/25 and
    83/17 on a loaded machine, and those runs' p99 went with it; with a socket per worker the
    kernel spreads them (51/49 to 55/45 seen). Empty where `ss` is missing."""

    def __init__(self, port: int, after_s: float = 0.5) -> None:
        self.port = port
        self.found: dict[int, int] = {}
        self._timer = threading.Timer(after_s, self._read)

    def __enter__(self) -> _Owners:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()
        self._timer.join()

    def _read(self) -> None:
        try:
            listing = subprocess.run(
                ["ss", "-tnpH", "state", "established", f"( sport = :{self.port} )"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return
        for line in listing.splitlines():
            fields = line.split()
            owner = re.search(r"pid=(\d+)", line)
            if len(fields) >= 4 and owner is not None:
                self.found[int(fields[3].rsplit(":", 1)[1])] = int(owner[1])


def _by_worker(by_port: dict[int, list[float]], owners: dict[int, int]) -> list[dict[str, float]]:
    """Per worker, most connections first: its connections and their latency p50/p99."""
    grouped: dict[int, list[list[float]]] = {}
    for client_port, latencies in by_port.items():
        if client_port in owners:
            grouped.setdefault(owners[client_port], []).append(latencies)
    rows = []
    for connections in sorted(grouped.values(), key=len, reverse=True):
        merged = [ms for latencies in connections for ms in latencies]
        if merged:
            rows.append(
                {
                    "connections": len(connections),
                    "p50_ms": round(statistics.median(merged), 2),
                    "p99_ms": round(percentile(merged, 99), 2),
                }
            )
    return rows


def _gunicorn(
    url: str, secret: str, worker_class: str, threads: int
) -> tuple[subprocess.Popen[bytes], int]:
    """The production command (README, gunicorn.conf.py) on a free port, reaching PostgreSQL
    at `url`, with another worker class if asked; warmed."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "JWT_SECRET_KEY": secret,
        "LOG_LEVEL": "WARNING",
    }
    other = ["-k", worker_class, "--threads", str(threads)] if worker_class != "gevent" else []
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "-w",
            "2",
            *other,
            "-b",
            f"127.0.0.1:{port}",
            "--no-control-socket",  # another gunicorn on this host may hold the default one
            "--log-level",
            "warning",
            "wsgi:app",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.2)
        # Warm both workers (imports, pools) before measuring.
        loadgen.closed_loop(port, 10, [_HEALTH] * 200, 30)
    except BaseException:
        server.terminate()
        server.wait(timeout=30)
        raise
    return server, port


def _warm_check_ins(app: Flask, port: int, clients: int) -> None:
    """Check-ins before the measured pairs, on assignments of their own: each worker's lane
    opens its connections and prepares its statement (after five runs on a connection), as in
    service. Without this the first pair paid for both, and its first tenth of check-ins had
    a p99 of 231-239 ms against 122-191 ms for the rest."""
    warm = make_assignments(app, 4 * clients)
    result = loadgen.closed_loop(port, clients, _check_ins(warm), 120)
    retire(app, warm)
    if result.failures:
        raise SystemExit(f"warming up: {result.failures} of {len(warm)} check-ins failed")


def _stored(app: Flask, sent: list[tuple[int, int, str]]) -> tuple[int, int]:
    """How many of the bench's own check-ins were stored (the demo seed has weeks of
    attendance before them), and in how many transactions (rows written by one statement
    share its transaction id, `xmin`): the fast path's batching, seen from the database."""
    ids = [assignment_id for assignment_id, _, _ in sent]
    with app.app_context():
        stored, transactions = db.session.execute(
            text(
                "SELECT count(*), count(DISTINCT xmin::text) FROM attendance "
                "WHERE assignment_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).one()
        db.session.remove()
    return int(stored), int(transactions)


def run_http(
    app: Flask,
    url: str,
    clients: int,
    count: int,
    secret: str,
    rate: float,
    at_rate: int,
    worker_class: str,
    threads: int,
    repeat: int,
) -> dict[str, Any]:
    """`repeat` pairs of closed-loop runs (/health, then check-in), then the paced runs. The
    pairs alternate so that a slow spell of the shared machine falls on both endpoints alike,
    and the headline is the median pair (by ratio) with the median p99 beside it. Every
    check-in needs an assignment of its own: each pair gives the same members fresh ones and
    retires them after (`retire`), and starts from a database at rest (`settle`)."""
    speed_before = machine_speed()
    log(f"attendance: machine speed: a 10-million-step Python loop in {speed_before} s")
    server, port = _gunicorn(url, secret, worker_class, threads)
    pairs: list[dict[str, Any]] = []
    paced_result: dict[str, Any] = {}
    sent = stored = 0
    try:
        _warm_check_ins(app, port, clients)
        for r in range(repeat):
            mine = make_assignments(app, count)
            settle(app)
            label = f"pair {r + 1}/{repeat}: " if repeat > 1 else ""
            pairs.append(_pair(port, server, clients, count, mine, label))
            kept, transactions = _stored(app, mine)
            pairs[-1]["check_in"]["per_transaction"] = round(kept / max(transactions, 1), 1)
            sent, stored = sent + len(mine), stored + kept
            retire(app, mine)
        if at_rate:
            paced = make_assignments(app, at_rate)
            log(f"attendance: {clients} clients offering {rate:g} req/s: health, then check-in")
            ph = loadgen.open_loop(port, clients, [_HEALTH] * at_rate, rate)
            pc = loadgen.open_loop(port, clients, _check_ins(paced), rate)
            paced_result = {
                "offered_rps": rate,
                "health": {
                    **_stats(ph.latencies),
                    "failures": ph.failures,
                    "rps": round(len(ph.latencies) / ph.wall_s, 1),
                },
                "check_in": {
                    **_stats(pc.latencies),
                    "failures": pc.failures,
                    "rps": round(len(pc.latencies) / pc.wall_s, 1),
                },
            }
            sent, stored = sent + len(paced), stored + _stored(app, paced)[0]
            retire(app, paced)
    finally:
        server.terminate()
        server.wait(timeout=30)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    log(f"attendance: load average after the HTTP runs: {load}")
    speed_after = machine_speed()
    # With an even count, the less favourable of the two middle pairs for each figure.
    median = sorted(pairs, key=lambda pair: pair["ratio"])[(len(pairs) - 1) // 2]
    p99s = sorted(pair["check_in"]["p99_ms"] for pair in pairs)
    return {
        "load": load,
        "speed_s": [speed_before, speed_after],
        "clients": clients,
        "worker_class": worker_class,
        "threads": threads,
        "health": median["health"],
        "check_in": median["check_in"],
        "ratio": median["ratio"],
        "median_check_in_p99_ms": p99s[len(p99s) // 2],
        "pairs": pairs,
        "attendances_stored": stored,
        "check_ins_sent": sent,
        "target_ratio": TARGET_RATIO,
        "target_p99_ms": TARGET_CHECKIN_P99_MS,
        "fixed_rate": paced_result,
    }


def serial_cost(app: Flask, taps: int) -> dict[str, Any]:
    """What one check-in costs when nothing else runs: `taps` ordinary check-ins one after
    another through the fast path (`check_in_fast.check_in`, what the lane calls) on one
    connection. Reports CPU milliseconds per tap of this process (the path's Python, the
    driver and its system calls) and of the connection's PostgreSQL backend, and the wall
    time. These need no second server to compare with, and nothing else contends while they
    are taken: a change to the statement or the schema shows in them plainly (dropping the
    idempotency record's insert took 0.04 ms off 0.25). They still follow the shared
    machine's speed (0.24-0.30 ms of backend CPU across one day's runs, the path's own CPU
    moving with it), so compare runs taken close together."""
    from volunteer_hub.services import check_in_fast

    assignments = make_assignments(app, taps)
    settle(app)
    with app.app_context():
        engine = db.engine
    connections = check_in_fast.Connections(engine, size=1, recycle=float("inf"))
    requests = [
        check_in_fast.Tap(
            assignment_id=assignment_id,
            authorization=f"Bearer {token}",
            key=uuid.uuid4().hex,
            content_type="application/json",
            body=CHECK_IN_BODY,
        )
        for assignment_id, _member, token in assignments
    ]
    warm = min(200, taps // 10)  # the connection made, the statement prepared
    measured = taps - warm
    began = (0.0, 0.0, 0.0)
    try:
        held = connections.lend()
        assert held is not None
        backend = held.conn.info.backend_pid
        connections.give(held)
        for number, tap in enumerate(requests):
            if number == warm:
                began = (time.perf_counter(), time.process_time(), _cpu_seconds(backend) or 0.0)
            outcome = check_in_fast.check_in(app.config, connections, tap)
            if outcome is None or outcome.status != 201:
                raise RuntimeError(f"serial check-in {number} not taken by the fast path")
        ended = (time.perf_counter(), time.process_time(), _cpu_seconds(backend) or 0.0)
    finally:
        connections.close()
        retire(app, assignments)
    wall, client, server = (
        round((b - a) * 1000 / measured, 3) for a, b in zip(began, ended, strict=True)
    )
    log(f"attendance: {measured} serial check-ins: {server} ms of PostgreSQL CPU each")
    return {"taps": measured, "wall_ms": wall, "client_cpu_ms": client, "backend_cpu_ms": server}


def settle(app: Flask) -> None:
    """Bring the database to rest before a round: vacuumed, analysed and checkpointed, so that
    the seed's aftermath (autovacuum on fresh tables, the checkpointer writing the seed's
    pages, full-page images after it) is not charged to the first runs. Measured without
    this, in one bench run: check-ins right after the seed cost 0.40 ms of PostgreSQL CPU each,
    the same check-ins a minute later 0.23 ms."""
    began = time.perf_counter()
    with app.app_context():
        dsn = make_url(str(db.engine.url)).set(drivername="postgresql")
        db.session.remove()
    with psycopg.connect(dsn.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")
    spent = time.perf_counter() - began
    log(f"attendance: database at rest (vacuum, analyze, checkpoint) in {spent:.1f} s")


def retire(app: Flask, everything: list[tuple[int, int, str]]) -> None:
    """Mark the checked-in assignments completed, so that the next round can give the same
    members fresh ones (no two open assignments of a member overlap). What the check-ins
    stored stays, as it would in service."""
    with app.app_context():
        db.session.execute(
            update(Assignment)
            .where(Assignment.id.in_([assignment_id for assignment_id, _, _ in everything]))
            .values(status=AssignmentStatus.COMPLETED)
        )
        db.session.commit()
        db.session.remove()


# ---------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    from flask_migrate import upgrade

    from volunteer_hub.services.seed import seed_federation

    url = make_url(args.url).set(database=DATABASE).render_as_string(hide_password=False)
    _admin_run(args.url, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    _admin_run(args.url, f'CREATE DATABASE "{DATABASE}"')
    os.environ.setdefault("HUB_INSTANCE_DIR", tempfile.mkdtemp(prefix="bench-attendance-"))
    secret = "bench-" + uuid.uuid4().hex
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "JWT_SECRET_KEY": secret})
    result: dict[str, Any] = {}
    try:
        with app.app_context():
            log("attendance: migrating")
            upgrade()
            log(f"attendance: seeding {args.members} members")
            seed_federation(
                db.session(), members=args.members, towns=24, seed=1, password="demo", progress=log
            )
            db.session.remove()
        if not args.skip_http:
            result["http"] = run_http(
                app,
                url,
                args.clients,
                args.requests,
                secret,
                args.rate,
                args.rate_requests,
                args.worker_class,
                args.threads,
                args.repeat,
            )
        if args.serial:
            result["serial"] = serial_cost(app, args.serial)
        if not args.skip_reports:
            year_end = date.today()
            fill_ledger(app, args.entries, year_end)
            result["entries"] = args.entries
            result.update(time_reports(app, args.samples, year_end))
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        if not args.keep:
            _admin_run(args.url, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    return result


def _http_table(run: dict[str, Any]) -> str:
    """/health and check-in side by side, for one load run."""
    keys = ("n", "failures", "rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")
    return format_table(
        ["endpoint", "n", "failures", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [
            [name, *(run[part][key] for key in keys)]
            for name, part in (("GET /health", "health"), ("POST check-in", "check_in"))
        ],
    )


def _machine_line(run: dict[str, Any]) -> str:
    """How busy the machine was during each run, and how much the hypervisor took."""
    parts = [
        f"{name} busy {shares['busy_pct']}%, stolen {shares['stolen_pct']}%"
        for name, part in (("health", "health"), ("check-in", "check_in"))
        if (shares := run[part].get("machine"))
    ]
    return "machine CPU during the runs: " + "; ".join(parts) if parts else ""


def _split_line(run: dict[str, Any]) -> str:
    """How the keep-alive connections fell between the workers, and what their clients saw."""
    parts = []
    for name, part in (("health", "health"), ("check-in", "check_in")):
        workers = run[part].get("by_worker") or []
        if workers:
            each = ", ".join(
                f"{w['connections']} (p50 {w['p50_ms']}, p99 {w['p99_ms']})" for w in workers
            )
            parts.append(f"{name} {each}")
    if not parts:
        return "connections per worker: not known (no ss)"
    return "connections per worker, with their clients' latency in ms: " + "; ".join(parts)


def _cpu_table(run: dict[str, Any]) -> str:
    keys = ("gunicorn", "postgres", "client", "total")
    return format_table(
        ["endpoint", "gunicorn workers", "PostgreSQL", "load generator", "total"],
        [
            [name, *(run[part]["cpu_ms_per_request"][key] for key in keys)]
            for name, part in (("GET /health", "health"), ("POST check-in", "check_in"))
        ],
    )


def _print_http(h: dict[str, Any]) -> None:
    before, after = h["speed_s"]
    worker = (
        "gevent"
        if h["worker_class"] == "gevent"
        else f"{h['worker_class']} --threads {h['threads']}"
    )
    print(
        f"(a) check-in under gunicorn -w 2 -k {worker}, "
        f"{h['clients']} concurrent clients (load average {h['load']}); machine speed: a "
        f"10-million-step Python loop in {before} s before the runs and {after} s after "
        "(0.17 s on the fastest machine seen here, 0.59 s on the slowest)"
    )
    pairs = h["pairs"]
    for number, pair in enumerate(pairs, 1):
        if len(pairs) > 1:
            print(f"pair {number} of {len(pairs)}: ratio {pair['ratio']}")
        print(_http_table(pair))
        print(
            "check-ins stored per transaction (the fast path's batches, read from xmin): "
            f"{pair['check_in'].get('per_transaction')}"
        )
        print(_split_line(pair))
        if machine := _machine_line(pair):
            print(machine)
    p99 = h["median_check_in_p99_ms"]
    print(
        f"throughput ratio check-in/health: {h['ratio']} (median of {len(pairs)}; target >= "
        f"{TARGET_RATIO}); check-in p99 {p99} ms (median of {len(pairs)}; target < "
        f"{TARGET_CHECKIN_P99_MS}, p99/target {p99 / TARGET_CHECKIN_P99_MS:.2f}); "
        f"attendances stored {h['attendances_stored']} of {h['check_ins_sent']} check-ins "
        "sent (closed loop and fixed rate)"
    )
    print(
        "CPU per request in the median pair (ms, all cores; the ratio is about the ratio "
        "of these totals):"
    )
    print(_cpu_table(h))
    paced = h.get("fixed_rate")
    if paced:
        print(
            f"(a, fixed rate) the same {h['clients']} clients offering "
            f"{paced['offered_rps']:g} req/s together (open loop; latency from the time each "
            "request was due) - a separate measurement, not the target's closed loop"
        )
        print(_http_table(paced))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=40_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="closed-loop pairs (/health, then check-in); the median pair is the headline",
    )
    parser.add_argument(
        "--worker-class",
        default="gevent",
        help="gunicorn's worker class (gunicorn.conf.py's is gevent); e.g. gthread to compare",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads per worker when --worker-class is gthread",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=300.0,
        help="the fixed offered rate (req/s, all clients together) of the paced runs",
    )
    parser.add_argument(
        "--rate-requests",
        type=int,
        default=1500,
        help="requests per paced run (0: no paced runs)",
    )
    parser.add_argument(
        "--serial",
        type=int,
        default=3000,
        help="check-ins one after another for the per-tap cost, after the load runs (0: none)",
    )
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-reports", action="store_true")
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()
    result = run(args)
    if "http" in result:
        _print_http(result["http"])
    if "serial" in result:
        serial = result["serial"]
        print(
            f"(a, one at a time) {serial['taps']} check-ins in turn through the fast path on one "
            f"connection: {serial['backend_cpu_ms']} ms of PostgreSQL CPU, "
            f"{serial['client_cpu_ms']} ms of the path's own CPU (Python, driver, system calls), "
            f"{serial['wall_ms']} ms of wall time each"
        )
    if "reports" in result:
        print(f"(b) reports over {result['entries']} ledger entries")
        print(
            format_table(
                ["report", "n", "rows", "p50 ms", "p90 ms", "p99 ms", "target ms", "p50/target"],
                [
                    [
                        r["what"],
                        r["n"],
                        r["rows"],
                        r["p50_ms"],
                        r["p90_ms"],
                        r["p99_ms"],
                        r["target_ms"],
                        r["p50_over_target"],
                    ]
                    for r in result["reports"]
                ],
            )
        )
    if result.get("exports"):
        print("(b) exports of the member report, every row (median of 3)")
        print(
            format_table(
                ["export", "seconds", "bytes"],
                [[e["what"], e["seconds"], e["bytes"]] for e in result["exports"]],
            )
        )
    path = write_results("attendance", result)
    log(f"attendance: results in {path}")


if __name__ == "__main__":
    main()
