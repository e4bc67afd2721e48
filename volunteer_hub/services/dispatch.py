"""Who to call out to an incident: ranking the nearest free, qualified volunteers.

Eligible: active members of the incident's branch holding every required skill (certificate
not expired), not on leave now, not already engaged (an accepted offer on a live incident, or
a shift of theirs overlapping the next two hours), never offered this incident before.

Position: where a member checked in if they are on duty now, else their home.

Order: by distance in 500 m bands, then by call-outs accepted in the last 30 days (rested
volunteers first), then exact distance. Banding is deliberate: 120 m against 180 m makes no
difference on foot, and without it the recent-call-outs rule would never decide anything.
The search radius grows (2, 5, 10, 20, 50 km) until enough candidates lie inside it.

How it stays fast at 40,000 members. What changes slowly (who is active, home positions,
branches, skills with their expiry) is held per process in a :class:`Snapshot`: numpy arrays
per branch, sorted by latitude, a few MB for the whole federation. The snapshot gives the
static candidates in distance order without touching the database: one vectorised haversine
over the branch's latitude strip (0.1-0.5 ms for the largest branch, 18,000 members) beats
walking grid cells in Python, so there is no finer grid. What changes fast (leave,
engagement on an incident, shifts, offers of this incident, check-ins, recent call-outs) is
then checked in SQL for the nearest few dozen only, with `id = ANY(...)` driving indexed
look-ups, in batches until the answer is settled: usually one query, besides the one for
on-duty positions. The SQL check repeats the static conditions too, so a snapshot that is
stale can leave someone out for a while but never calls out a suspended member or one whose
certificate lapsed; a home position that differs from the database's discards the snapshot.

Freshness. A snapshot is rebuilt at once after any write to `member`, `member_branch` or
`member_skill` that went through this process's SQLAlchemy engines (a cursor-level hook, so
ORM flushes, bulk statements and TRUNCATE all count), and on :func:`invalidate_cache`. For
other processes' writes (other gunicorn workers, the CLI): on PostgreSQL a snapshot older than
:data:`CHECK_INTERVAL` is re-validated against the tables' write counters in
`pg_stat_user_tables` and reloaded only if they moved (so changes show within seconds, and a
quiet federation does not reload 40,000 members for every sporadic call-out), with a full
reload after :data:`MAX_AGE` regardless; on SQLite it is reloaded after :data:`CACHE_TTL`.
Ages count by the clock or by the `now` a caller passes, whichever is later.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    any_,
    bindparam,
    event,
    exists,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from sqlalchemy.types import BigInteger, Date, Integer

from volunteer_hub.models import Leave, Member, MemberBranch, MemberSkill, MemberStatus
from volunteer_hub.models.attendance import Attendance, AttendanceStatus
from volunteer_hub.models.incidents import LIVE_STATUSES, Incident, Offer, OfferStatus
from volunteer_hub.models.plans import ACTIVE_STATUSES, Assignment
from volunteer_hub.models.types import UTCDateTime
from volunteer_hub.services.hours import local_day

EARTH_RADIUS_M = 6_371_008.8
RADII_M = (2_000, 5_000, 10_000, 20_000, 50_000)
DISTANCE_BAND_M = 500
RECENT_WINDOW = timedelta(days=30)
# A shift starting within this horizon keeps a volunteer from being sent elsewhere.
SHIFT_HORIZON = timedelta(hours=2)
# How stale the in-memory member snapshot may get when other processes change members, where
# there are no write counters to ask (SQLite; PostgreSQL with track_counts off).
CACHE_TTL = timedelta(seconds=60)
# PostgreSQL: a snapshot older than this is first re-validated against the tables' write
# counters (under a millisecond), and reloaded only when they moved.
CHECK_INTERVAL = timedelta(seconds=5)
# ... and reloaded anyway after this long, whatever the counters say.
MAX_AGE = timedelta(minutes=15)
# numpy and math round differently in the last bits; cut-offs on numpy distances keep this
# much slack so that the exact (math) distance decides every boundary.
_SLACK_M = 1.0
# Expiry ordinals in the skill columns: never expires / not held at all.
_NO_EXPIRY = np.iinfo(np.int32).max
_NOT_HELD = -1

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Candidate:
    member_id: int
    distance_m: int
    callouts_30d: int
    on_duty: bool


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bounding_box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) containing the circle; clamped at the poles."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    cos_lat = max(math.cos(math.radians(lat)), 1e-6)
    dlon = min(180.0, math.degrees(radius_m / (EARTH_RADIUS_M * cos_lat)))
    return max(-90.0, lat - dlat), min(90.0, lat + dlat), lon - dlon, lon + dlon


# ---------------------------------------------------------------------- the snapshot


@dataclass(frozen=True)
class BranchIndex:
    """Active members of one branch who have a home position, sorted by home latitude."""

    member_ids: IntArray
    lat: FloatArray  # degrees, ascending
    lon: FloatArray  # degrees
    lat_rad: FloatArray
    lon_rad: FloatArray
    cos_lat: FloatArray
    rows: IntArray  # each member's row in Snapshot.skills columns


@dataclass(frozen=True)
class Snapshot:
    """The slowly changing part of eligibility, for one database, in one process."""

    loaded_at: datetime  # wall clock, compared with the caller's `now`
    loaded_mono: float
    generation: int  # the write generation it was loaded under
    # PostgreSQL's write counters of the member tables, read before loading (None: SQLite,
    # or counting is off); `checked_*` is when they were last found unchanged.
    fingerprint: str | None
    checked_at: datetime
    checked_mono: float
    members: int  # active members with a home position
    branches: dict[int, BranchIndex]
    # skill id -> expiry ordinal per member row (_NO_EXPIRY, or _NOT_HELD)
    skills: dict[int, npt.NDArray[np.int32]]

    @property
    def nbytes(self) -> int:
        arrays: list[npt.NDArray[Any]] = list(self.skills.values())
        for index in self.branches.values():
            arrays += [index.member_ids, index.lat, index.lon, index.lat_rad]
            arrays += [index.lon_rad, index.cos_lat, index.rows]
        return sum(a.nbytes for a in arrays)


_snapshots: dict[str, Snapshot] = {}
_generations: dict[str, int] = {}
_load_lock = threading.Lock()
_generation_lock = threading.Lock()


def invalidate_cache() -> None:
    """Forget every snapshot; the next ranking in this process reloads from the database."""
    with _load_lock, _generation_lock:
        _snapshots.clear()
        for key in list(_generations):
            _generations[key] += 1


def _key(engine: Engine) -> str:
    # The URL (password hidden) names the database: two apps on one database share it.
    return str(engine.url)


def _age_s(at: datetime, mono: float, now: datetime) -> float:
    """Seconds since (at, mono), by the clock or by the caller's `now`, whichever is later."""
    return max(time.monotonic() - mono, (now - at).total_seconds())


def snapshot(session: Session, now: datetime) -> Snapshot:
    """The current snapshot for the session's database, reloaded through `session` if stale.

    Loading uses the caller's session (never a second connection: on SQLite a second
    transaction in the same thread would wait on the first one's lock).
    """
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    key = _key(engine)
    generation = _generations.setdefault(key, 0)
    current = _snapshots.get(key)
    if current is not None and current.generation == generation:
        checked_age = _age_s(current.checked_at, current.checked_mono, now)
        if current.fingerprint is None:
            if checked_age <= CACHE_TTL.total_seconds():
                return current
        elif checked_age <= CHECK_INTERVAL.total_seconds():
            return current
        elif _age_s(
            current.loaded_at, current.loaded_mono, now
        ) <= MAX_AGE.total_seconds() and current.fingerprint == _fingerprint(session):
            # Nobody wrote to the member tables since the load: keep the arrays. Without
            # this, a federation with an incident every few minutes would reload 40,000
            # members for nearly every call-out.
            renewed = dataclasses.replace(
                current, checked_at=datetime.now(tz=UTC), checked_mono=time.monotonic()
            )
            with _load_lock:
                _snapshots[key] = renewed
            return renewed
    loaded = _load(session, generation)
    with _load_lock:
        # A write seen while loading bumped the generation: keep the snapshot for this call
        # only, the next one reloads.
        _snapshots[key] = loaded
    return loaded


_FINGERPRINT_SQL = (
    "SELECT current_setting('track_counts'), string_agg(concat_ws(':', relid,"
    " pg_relation_filenode(relid), n_tup_ins, n_tup_upd, n_tup_del), ',' ORDER BY relid)"
    " FROM pg_stat_user_tables WHERE schemaname = current_schema()"
    " AND relname IN ('member', 'member_branch', 'member_skill')"
)


def _fingerprint(session: Session) -> str | None:
    """PostgreSQL's cumulative write counters of the member tables, and their files (a
    TRUNCATE makes new ones without counting deletes). Another process's committed write
    moves them once its backend flushes its statistics: at once when idle for a second,
    else within about 10 s (PostgreSQL 15). None where there is no such thing."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    rows = _fetch(session, _FINGERPRINT_SQL)
    counting, fingerprint = rows[0] if rows else ("off", None)
    return str(fingerprint) if counting == "on" and fingerprint else None


def _fetch(session: Session, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a constant query through the DBAPI cursor of the session's connection (same
    transaction). SQLAlchemy's row handling cost 10x the query itself on 40,000 rows; the
    binary protocol halves psycopg's parsing again."""
    dbapi = session.connection().connection.driver_connection
    assert dbapi is not None
    binary = session.get_bind().dialect.driver == "psycopg"
    cursor = dbapi.cursor(binary=True) if binary else dbapi.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _ordinal(value: date | str | None) -> int:
    if value is None:
        return int(_NO_EXPIRY)
    if isinstance(value, str):  # SQLite keeps dates as ISO text
        value = date.fromisoformat(value)
    return value.toordinal()


def _load(session: Session, generation: int) -> Snapshot:
    began_wall, began_mono = datetime.now(tz=UTC), time.monotonic()
    # Read before the rows: a write committed after this moves the counters, so it can
    # only cause one reload too many, never one too few.
    fingerprint = _fingerprint(session)
    rows = _fetch(
        session,
        f"SELECT id, home_lat, home_lon FROM member WHERE status = '{MemberStatus.ACTIVE.value}'"
        " AND home_lat IS NOT NULL AND home_lon IS NOT NULL ORDER BY id",
    )
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 3)
    del rows
    count = len(table)
    ids = table[:, 0].astype(np.int64)
    lat, lon = np.ascontiguousarray(table[:, 1]), np.ascontiguousarray(table[:, 2])

    def row_of(member_ids: IntArray) -> tuple[IntArray, npt.NDArray[np.bool_]]:
        """Rows of the given member ids in `ids`, and which of them are there at all."""
        if not count:
            return np.zeros(len(member_ids), dtype=np.int64), np.zeros(len(member_ids), bool)
        at = np.minimum(np.searchsorted(ids, member_ids), count - 1).astype(np.int64)
        return at, ids[at] == member_ids

    pairs = np.array(
        _fetch(session, "SELECT member_id, branch_id FROM member_branch"), dtype=np.int64
    ).reshape(-1, 2)
    at, present = row_of(pairs[:, 0])
    at, pair_branches = at[present], pairs[present, 1]
    branches: dict[int, BranchIndex] = {}
    for branch_id in np.unique(pair_branches):
        members_rows = at[pair_branches == branch_id]
        members_rows = members_rows[np.argsort(lat[members_rows], kind="stable")]
        b_lat, b_lon = lat[members_rows], lon[members_rows]
        lat_rad = np.radians(b_lat)
        branches[int(branch_id)] = BranchIndex(
            member_ids=ids[members_rows],
            lat=b_lat,
            lon=b_lon,
            lat_rad=lat_rad,
            lon_rad=np.radians(b_lon),
            cos_lat=np.cos(lat_rad),
            rows=members_rows,
        )

    held = _fetch(session, "SELECT member_id, skill_id, expires_on FROM member_skill")
    held_members = np.fromiter((h[0] for h in held), dtype=np.int64, count=len(held))
    held_skills = np.fromiter((h[1] for h in held), dtype=np.int64, count=len(held))
    held_expiry = np.fromiter((_ordinal(h[2]) for h in held), dtype=np.int32, count=len(held))
    del held
    at, present = row_of(held_members)
    skills: dict[int, npt.NDArray[np.int32]] = {}
    for skill_id in np.unique(held_skills[present]):
        chosen = present & (held_skills == skill_id)
        column = np.full(count, _NOT_HELD, dtype=np.int32)
        column[at[chosen]] = held_expiry[chosen]
        skills[int(skill_id)] = column
    return Snapshot(
        loaded_at=began_wall,
        loaded_mono=began_mono,
        generation=generation,
        fingerprint=fingerprint,
        checked_at=began_wall,
        checked_mono=began_mono,
        members=count,
        branches=branches,
        skills=skills,
    )


# Writes to these tables make every snapshot of that database stale.
_WATCHED = frozenset({"member", "member_branch", "member_skill"})
_WRITE = re.compile(
    r"^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|COPY"
    r"|(?:DROP|ALTER)\s+TABLE(?:\s+IF\s+EXISTS)?)\s+(.*)",
    re.IGNORECASE | re.DOTALL,
)
_NAME = re.compile(r'"?(\w+)"?')
# An UPDATE of `member` that sets none of these (a password, a calendar secret) changes
# nothing the snapshot holds.
_SET_CLAUSE = re.compile(r"\bSET\b(.*?)(?:\bWHERE\b|$)", re.IGNORECASE | re.DOTALL)
_SNAPSHOT_COLUMNS = re.compile(r"\b(?:id|status|home_lat|home_lon)\b", re.IGNORECASE)
_DIRTY = "hub_dispatch_member_write"


def _bump(engine: Engine) -> None:
    key = _key(engine)
    with _generation_lock:  # two threads bumping at once must not count once
        _generations[key] = _generations.get(key, 0) + 1


def _after_cursor_execute(
    conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
) -> None:
    if statement[:1] in ("S", "s"):
        return  # SELECT and SAVEPOINT: the bulk of the traffic, out at once
    match = _WRITE.match(statement)
    if match is None:
        return
    target = match.group(1)
    if statement.lstrip()[:8].upper() == "TRUNCATE":
        names = {n.lower() for n in _NAME.findall(target.split(" RESTART")[0])}
    else:
        first = _NAME.match(target)
        names = {first.group(1).lower()} if first else set()
        if names == {"member"} and statement.lstrip()[:6].upper() == "UPDATE":
            assignments = _SET_CLAUSE.search(target)
            if assignments and not _SNAPSHOT_COLUMNS.search(assignments.group(1)):
                return
    if names & _WATCHED:
        # Bump now so that a ranking later in this very transaction reloads (and sees the
        # write), and again when the transaction ends, for everyone else.
        conn.info[_DIRTY] = True
        _bump(conn.engine)


def _on_transaction_end(conn: Any) -> None:
    if conn.invalidated:
        # The connection died (a database restart): its transaction is gone with it, and
        # reading `info` would raise over the error that is being handled.
        return
    if conn.info.pop(_DIRTY, False):
        _bump(conn.engine)


def _install_hooks() -> None:
    if not event.contains(Engine, "after_cursor_execute", _after_cursor_execute):
        event.listen(Engine, "after_cursor_execute", _after_cursor_execute)
        event.listen(Engine, "commit", _on_transaction_end)
        event.listen(Engine, "rollback", _on_transaction_end)


_install_hooks()


# ---------------------------------------------------------------------- SQL eligibility

# The statements below are built once per shape with named parameters: building SQLAlchemy
# expressions costs more than running them on a few dozen ids.
_NOW = bindparam("now", type_=UTCDateTime())
_HORIZON_END = bindparam("horizon_end", type_=UTCDateTime())
_TODAY = bindparam("today", type_=Date())
_BRANCH = bindparam("branch_id", type_=Integer())
_INCIDENT = bindparam("incident_id", type_=Integer())
_RECENT_SINCE = bindparam("recent_since", type_=UTCDateTime())


def _eligibility(skill_count: int, with_incident: bool) -> list[ColumnElement[bool]]:
    """The conditions every candidate meets, whatever their position; parameters `now`,
    `horizon_end` (now + SHIFT_HORIZON), `today`, `branch_id`, `skill_0`.., `incident_id`."""
    clauses: list[ColumnElement[bool]] = [
        Member.status == MemberStatus.ACTIVE,
        exists().where(MemberBranch.member_id == Member.id, MemberBranch.branch_id == _BRANCH),
        ~exists().where(
            Leave.member_id == Member.id, Leave.starts_at <= _NOW, Leave.ends_at > _NOW
        ),
        ~exists().where(
            Offer.member_id == Member.id,
            Offer.status == OfferStatus.ACCEPTED,
            Offer.incident_id == Incident.id,
            Incident.status.in_(LIVE_STATUSES),
        ),
    ]
    for number in range(skill_count):
        clauses.append(
            exists().where(
                MemberSkill.member_id == Member.id,
                MemberSkill.skill_id == bindparam(f"skill_{number}", type_=Integer()),
                or_(MemberSkill.expires_on.is_(None), MemberSkill.expires_on >= _TODAY),
            )
        )
    if with_incident:
        # Never the same incident twice: declined, withdrawn and expired offers all count.
        clauses.append(
            ~exists().where(Offer.member_id == Member.id, Offer.incident_id == _INCIDENT)
        )
    clauses.extend(_shift_clauses())
    return clauses


def _shift_clauses() -> list[ColumnElement[bool]]:
    """Not on a published or accepted shift overlapping now .. now + 2 h.

    The shift a volunteer is checked in on right now is the exception: someone on duty near
    the scene (a patrol, a checkpoint) is exactly who a call-out should reach, and they are
    placed at their check-in position.
    """
    checked_in = exists().where(
        Attendance.assignment_id == Assignment.id,
        Attendance.status == AttendanceStatus.OPEN,
        Attendance.check_out_at.is_(None),
    )
    return [
        ~exists().where(
            Assignment.member_id == Member.id,
            Assignment.status.in_(ACTIVE_STATUSES),
            Assignment.starts_at < _HORIZON_END,
            Assignment.ends_at > _NOW,
            ~checked_in,
        )
    ]


def _params(
    *, branch_id: int, skill_ids: Sequence[int], now: datetime, incident_id: int | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "now": now,
        "horizon_end": now + SHIFT_HORIZON,
        "today": local_day(now),  # a certificate's last day is a day of the federation
        "branch_id": branch_id,
        "recent_since": now - RECENT_WINDOW,
    }
    params.update({f"skill_{n}": skill_id for n, skill_id in enumerate(skill_ids)})
    if incident_id is not None:
        params["incident_id"] = incident_id
    return params


@functools.cache
def _check_statement(dialect: str, skill_count: int, with_incident: bool) -> Select[Any]:
    """Each of the given ids (`ids`) with: passes every rule now, accepted call-outs in the
    last 30 days, home position as the database has it.

    The rules are a column, not the WHERE clause, on purpose: PostgreSQL turns EXISTS in a
    WHERE clause into joins and then searches join orders over a dozen tables, which took
    longer (5-15 ms under load) than running the query; in the select list each stays a
    small sub-plan probing one index per id.
    """
    if dialect == "postgresql":
        # One array parameter: the statement text is the same whatever the count.
        in_ids = Member.id == any_(bindparam("ids", type_=ARRAY(BigInteger())))
    else:
        in_ids = Member.id.in_(bindparam("ids", expanding=True))
    callouts = (
        select(func.count())
        .where(
            Offer.member_id == Member.id,
            Offer.status == OfferStatus.ACCEPTED,
            Offer.answered_at >= _RECENT_SINCE,
        )
        .correlate(Member)
        .scalar_subquery()
    )
    ok = and_(*_eligibility(skill_count, with_incident)).self_group().label("ok")
    return select(Member.id, ok, callouts, Member.home_lat, Member.home_lon).where(in_ids)


@functools.cache
def _duty_statement() -> Select[int, float | None, float | None]:
    return select(Attendance.member_id, Attendance.check_in_lat, Attendance.check_in_lon).where(
        Attendance.status == AttendanceStatus.OPEN,
        Attendance.check_out_at.is_(None),
        Attendance.check_in_at <= _NOW,
        Attendance.check_in_lat.is_not(None),
        Attendance.check_in_lon.is_not(None),
        exists().where(
            MemberBranch.member_id == Attendance.member_id, MemberBranch.branch_id == _BRANCH
        ),
    )


def on_duty_positions(
    session: Session, branch_id: int, now: datetime
) -> dict[int, tuple[float, float]]:
    """Members of the branch checked in right now, and where they checked in."""
    rows = session.execute(_duty_statement(), {"now": now, "branch_id": branch_id}).all()
    return {
        int(member_id): (lat, lon)
        for member_id, lat, lon in rows
        if lat is not None and lon is not None
    }


def _check(
    session: Session, ids: Collection[int], params: dict[str, Any]
) -> dict[int, tuple[int, float | None, float | None]]:
    """Which of `ids` pass every eligibility rule now, with their accepted call-outs in the
    last 30 days and their home position as the database has it."""
    if not ids:
        return {}
    statement = _check_statement(
        session.get_bind().dialect.name,
        sum(1 for key in params if key.startswith("skill_")),
        "incident_id" in params,
    )
    rows = session.execute(statement, {**params, "ids": list(ids)}).all()
    return {int(m): (int(c or 0), lat, lon) for m, ok, c, lat, lon in rows if ok}


# ---------------------------------------------------------------------- ranking


@dataclass
class _Pool:
    """Static candidates of one call, nearest first (numpy distances), read ring by ring."""

    ids: IntArray
    dist: FloatArray
    lat: FloatArray
    lon: FloatArray
    duty: npt.NDArray[np.bool_]


def _pool(
    snap: Snapshot,
    *,
    branch_id: int,
    skill_ids: Sequence[int],
    lat: float,
    lon: float,
    now: datetime,
    duty: dict[int, tuple[float, float]],
    max_radius: float,
) -> _Pool:
    index = snap.branches.get(branch_id)
    empty_f = np.empty(0, dtype=np.float64)
    ids, dist, lats, lons = np.empty(0, dtype=np.int64), empty_f, empty_f, empty_f
    if index is not None and len(index.member_ids):
        # Only the latitude strip of the largest circle; members are sorted by latitude.
        min_lat, max_lat, _, _ = bounding_box(lat, lon, max_radius + _SLACK_M)
        lo = int(np.searchsorted(index.lat, min_lat, side="left"))
        hi = int(np.searchsorted(index.lat, max_lat, side="right"))
        keep = np.ones(hi - lo, dtype=bool)
        today = local_day(now).toordinal()
        for skill_id in skill_ids:
            column = snap.skills.get(skill_id)
            if column is None:
                keep[:] = False
                break
            keep &= column[index.rows[lo:hi]] >= today
        if duty:
            # On duty: placed at their check-in position instead, below.
            keep &= ~np.isin(index.member_ids[lo:hi], np.fromiter(duty, dtype=np.int64))
        chosen = np.nonzero(keep)[0] + lo
        p1 = math.radians(lat)
        dp = index.lat_rad[chosen] - p1
        dl = index.lon_rad[chosen] - math.radians(lon)
        a = np.sin(dp / 2) ** 2 + math.cos(p1) * index.cos_lat[chosen] * np.sin(dl / 2) ** 2
        dist = 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))
        near = dist <= max_radius + _SLACK_M
        chosen, dist = chosen[near], dist[near]
        ids, lats, lons = index.member_ids[chosen], index.lat[chosen], index.lon[chosen]
    on_duty = np.zeros(len(ids), dtype=bool)
    if duty:
        # Everyone checked in is a candidate at their check-in; SQL decides if they qualify.
        duty_ids = np.fromiter(duty, dtype=np.int64, count=len(duty))
        duty_lat = np.array([duty[m][0] for m in duty], dtype=np.float64)
        duty_lon = np.array([duty[m][1] for m in duty], dtype=np.float64)
        duty_dist = np.array([haversine_m(lat, lon, a, b) for a, b in duty.values()])
        near = duty_dist <= max_radius + _SLACK_M
        ids = np.concatenate([ids, duty_ids[near]])
        dist = np.concatenate([dist, duty_dist[near]])
        lats = np.concatenate([lats, duty_lat[near]])
        lons = np.concatenate([lons, duty_lon[near]])
        on_duty = np.concatenate([on_duty, np.ones(int(near.sum()), dtype=bool)])
    return _Pool(ids=ids, dist=dist, lat=lats, lon=lons, duty=on_duty)


def _nearest_first(pool: _Pool, radii: Sequence[float]) -> Iterator[int]:
    """Positions in `pool`, nearest first; sorts one ring of the radii at a time, so a call
    settled within 2 km never sorts the whole branch."""
    inner = -1.0
    for outer in sorted(set(radii)):
        ring = np.nonzero((pool.dist > inner) & (pool.dist <= outer + _SLACK_M))[0]
        inner = outer + _SLACK_M
        yield from ring[np.argsort(pool.dist[ring], kind="stable")].tolist()


def rank_candidates(
    session: Session,
    *,
    branch_id: int,
    skill_ids: Sequence[int],
    lat: float,
    lon: float,
    limit: int,
    now: datetime,
    incident_id: int | None = None,
    radii_m: Sequence[int] = RADII_M,
) -> list[Candidate]:
    """The best `limit` candidates for an incident at (lat, lon), best first.

    :param skill_ids: every one is required of each candidate.
    :param now: the moment of the call-out; a `now` later than the snapshot's age allows
        also reloads it.
    :param incident_id: members already offered this incident are left out.
    :return: at most `limit` candidates; fewer when the largest radius holds fewer.
    """
    if limit <= 0 or not radii_m:
        return []
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    args = (branch_id, skill_ids, lat, lon, limit, now, incident_id, radii_m)
    result = _rank(session, snapshot(session, now), *args)
    if result is None:
        # A home position in the snapshot no longer matches the database: reload, once.
        _bump(engine)
        result = _rank(session, snapshot(session, now), *args, trust_positions=True)
    assert result is not None
    return result


def _rank(
    session: Session,
    snap: Snapshot,
    branch_id: int,
    skill_ids: Sequence[int],
    lat: float,
    lon: float,
    limit: int,
    now: datetime,
    incident_id: int | None,
    radii_m: Sequence[int] = RADII_M,
    *,
    trust_positions: bool = False,
) -> list[Candidate] | None:
    """One ranking against `snap`; None when the snapshot proved stale.

    Same answer as checking every member in SQL: the radius is the first of `radii_m` that
    holds `limit` eligible candidates (else the last), and the answer the best `limit` by
    (band, call-outs, distance, id) inside it. Since band comes first, nobody beyond the band
    of the `limit`-th nearest eligible candidate can be in it, so only candidates up to that
    band (and inside the radius) need checking in SQL.
    """
    params = _params(branch_id=branch_id, skill_ids=skill_ids, now=now, incident_id=incident_id)
    duty = on_duty_positions(session, branch_id, now)
    pool = _pool(
        snap,
        branch_id=branch_id,
        skill_ids=skill_ids,
        lat=lat,
        lon=lon,
        now=now,
        duty=duty,
        max_radius=max(radii_m),
    )
    order = _nearest_first(pool, radii_m)
    # member id -> (exact distance, on duty, call-outs) of everyone checked who qualifies
    passed: dict[int, tuple[float, bool, int]] = {}
    batch = max(2 * limit, 24)
    cutoff: float | None = None  # once known: everyone nearer must have been checked
    radius = float(radii_m[-1])
    while True:
        chunk: list[int] = []
        exhausted = True
        for position in order:
            chunk.append(position)
            if (cutoff is None and len(chunk) >= batch) or (
                cutoff is not None and pool.dist[position] > cutoff + _SLACK_M
            ):
                exhausted = False
                break
        checked = _check(session, [int(pool.ids[p]) for p in chunk], params)
        for p in chunk:
            member_id = int(pool.ids[p])
            if member_id not in checked:
                continue
            callouts, home_lat, home_lon = checked[member_id]
            on_duty = bool(pool.duty[p])
            at = (float(pool.lat[p]), float(pool.lon[p]))
            if not on_duty and not trust_positions and (home_lat, home_lon) != at:
                return None
            passed[member_id] = (haversine_m(lat, lon, *at), on_duty, callouts)
        if len(passed) >= limit:
            nth = sorted(d for d, _, _ in passed.values())[limit - 1]
            radius = float(next((r for r in radii_m if r >= nth), radii_m[-1]))
            cutoff = min(radius, (nth // DISTANCE_BAND_M + 1) * DISTANCE_BAND_M)
            if exhausted or float(pool.dist[chunk[-1]]) > cutoff + _SLACK_M:
                break
        elif exhausted:
            radius = float(radii_m[-1])  # fewer than `limit` anywhere: the last radius
            break
        else:
            batch *= 2
    ranked = sorted(
        ((m, v) for m, v in passed.items() if v[0] <= radius),
        key=lambda item: (int(item[1][0] // DISTANCE_BAND_M), item[1][2], item[1][0], item[0]),
    )
    return [
        Candidate(
            member_id=member_id,
            distance_m=round(distance),
            callouts_30d=callouts,
            on_duty=on_duty,
        )
        for member_id, (distance, on_duty, callouts) in ranked[:limit]
    ]
