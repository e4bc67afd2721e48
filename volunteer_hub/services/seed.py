"""The demo federation: towns of Yinzhou, squads, organisations and tens of thousands of members
with skills, availability and leave, plus fixed logins for every role.

Fast by construction: the password is hashed once and shared, rows are generated in chunks
and written with executemany inserts, and member ids are assigned here so that the rows that
point at members need no round trip to learn them. Everything random comes from one
`random.Random(seed)` (and Faker seeded the same), so a seed gives the same federation.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any
from zoneinfo import ZoneInfo

from faker import Faker
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from volunteer_hub.auth.passwords import hash_password
from volunteer_hub.extensions import Base
from volunteer_hub.models import (
    BRANCH_CODES,
    Availability,
    Branch,
    Leave,
    Member,
    MemberBranch,
    MemberSkill,
    MemberStatus,
    Organization,
    Role,
    RoleGrant,
    Skill,
    Squad,
    Town,
)
from volunteer_hub.models.attendance import Attendance, AttendanceStatus, HoursEntry, HoursKind
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
from volunteer_hub.services import hours_rollup
from volunteer_hub.services.attendance import Rules, service_minutes

Progress = Callable[[str], None]

# Sub-districts (街道) and towns (镇/乡) of Yinzhou with approximate centres; the urban ones
# first, and a weight for how many members live there.
TOWNS: list[tuple[str, float, float, int]] = [
    ("钟公庙街道", 29.8232, 121.5336, 9),
    ("下应街道", 29.8047, 121.5861, 7),
    ("首南街道", 29.8010, 121.5392, 8),
    ("中河街道", 29.8378, 121.5603, 9),
    ("明楼街道", 29.8665, 121.5760, 6),
    ("百丈街道", 29.8712, 121.5589, 6),
    ("东胜街道", 29.8745, 121.5871, 6),
    ("白鹤街道", 29.8590, 121.5463, 6),
    ("东柳街道", 29.8826, 121.5990, 6),
    ("东郊街道", 29.8801, 121.6218, 4),
    ("福明街道", 29.8658, 121.6127, 6),
    ("新明街道", 29.8868, 121.6412, 4),
    ("潘火街道", 29.8297, 121.6098, 6),
    ("石碶街道", 29.7896, 121.5102, 5),
    ("姜山镇", 29.7452, 121.5407, 5),
    ("五乡镇", 29.8703, 121.7004, 4),
    ("邱隘镇", 29.8551, 121.6548, 5),
    ("东吴镇", 29.7953, 121.7604, 3),
    ("云龙镇", 29.7902, 121.6603, 3),
    ("横溪镇", 29.7254, 121.6201, 3),
    ("塘溪镇", 29.7351, 121.7198, 2),
    ("咸祥镇", 29.7003, 121.7802, 2),
    ("瞻岐镇", 29.7350, 121.8203, 2),
    ("鄞江镇", 29.7652, 121.3804, 2),
    ("章水镇", 29.7701, 121.3202, 2),
    ("龙观乡", 29.7503, 121.3001, 1),
    ("洞桥镇", 29.7702, 121.4303, 2),
    ("古林镇", 29.8403, 121.4402, 3),
]

ORGANIZATIONS: list[tuple[str, str, str | None]] = [
    ("鄞州区公安调解中心", "police mediation centre", "mediation"),
    ("鄞州区人民调解委员会", "mediation team", "mediation"),
    ("鄞州区应急救援中心", "emergency rescue centre", "rescue"),
    ("鄞州区心理服务中心", "psychological services centre", "assistance"),
    ("鄞州区律师志愿服务团", "legal volunteers", "mediation"),
    ("鄞州区社会工作服务中心", "social work centre", "assistance"),
    ("鄞州区消防安全协会", "fire safety association", "hazard"),
    ("鄞州区水上救援队", "water rescue team", "rescue"),
    ("鄞州区网络文明志愿者协会", "online civility association", "cyber"),
    ("鄞州区平安宣传服务队", "publicity team", "publicity"),
    ("鄞州区红十字会救护队", "red cross first aid team", "rescue"),
    ("鄞州区老娘舅调解工作室", "neighbourhood mediation studio", "mediation"),
]

# Share of members whose first branch is this one (patrol the largest).
BRANCH_SHARES = {
    "patrol": 40,
    "mediation": 12,
    "hazard": 10,
    "rescue": 10,
    "cyber": 8,
    "assistance": 10,
    "publicity": 10,
}

COORDINATOR_PHONES = {code: f"1390000000{i}" for i, code in enumerate(BRANCH_CODES, 1)}
SECRETARY_GENERAL_PHONE = "13900000000"
ADMIN_PHONE = "13900000009"
SQUAD_LEADER_PHONE = "13900000010"
GRID_WORKER_PHONE = "13900000020"
PATROL_VOLUNTEER_PHONES = [f"139000001{i:02d}" for i in range(20)]
FIXED_COUNT = 1 + len(COORDINATOR_PHONES) + 3 + len(PATROL_VOLUNTEER_PHONES)

CHUNK = 4000
# The demo's service history: the patrol squad of every town staffed a day and a night patrol
# at its town's post every day of the last HISTORY_WEEKS, from a pool of its members (the
# fixed patrol logins first in the first town, then core members), so that reports, exports
# and /me/hours have figures from the first run.
HISTORY_WEEKS = 4
HISTORY_POOL = 24
HISTORY_HEADCOUNT = 3
HISTORY_SHIFTS = ((ShiftKind.DAY, clock(9), clock(13)), (ShiftKind.NIGHT, clock(19), clock(23)))
HISTORY_NO_SHOW = 0.04
CORE_TARGET = 3000
CORE_SHARE = 3000 / 40000
# Phones of generated members never start like the fixed logins, so they never collide.
PHONE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "150", "151", "152",
                  "155", "156", "157", "158", "159", "166", "177", "180", "181", "186", "187",
                  "188", "189", "198")  # fmt: skip
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


class SeedRefused(Exception):
    """The database already holds members (and neither force nor if-empty was asked for)."""


@dataclass
class SeedReport:
    members: int = 0
    towns: int = 0
    squads: int = 0
    organizations: int = 0
    core: int = 0
    member_branches: int = 0
    member_skills: int = 0
    availability: int = 0
    leaves: int = 0
    role_grants: int = 0
    assignments: int = 0
    attendances: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def id_number(region: str, born: date, sequence: int) -> str:
    """An 18-character resident identity number with its GB 11643 check character."""
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    return body + ID_CHECK[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


def has_members(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(Member)) != 0


def wipe(session: Session) -> None:
    """Empty every table except the reference data (branches, skills) — for `--force`."""
    keep = {"branch", "skill", "alembic_version"}
    tables = [t for t in reversed(Base.metadata.sorted_tables) if t.name not in keep]
    if session.get_bind().dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        session.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in tables:
            session.execute(table.delete())
    session.flush()


class _Names:
    """Chinese names from pools drawn once from Faker: a call per member would dominate."""

    def __init__(self, rng: random.Random, seed: int) -> None:
        fake = Faker("zh_CN")
        fake.seed_instance(seed)
        self.surnames = [fake.last_name() for _ in range(1500)]
        self.male = [fake.first_name_male() for _ in range(800)]
        self.female = [fake.first_name_female() for _ in range(800)]
        self.rng = rng

    def name(self, gender: str) -> str:
        given = self.male if gender == "male" else self.female
        return self.rng.choice(self.surnames) + self.rng.choice(given)


class _Builder:
    """Generates the rows of one federation; state shared across chunks."""

    def __init__(
        self, session: Session, rng: random.Random, seed: int, today: date, zone: ZoneInfo
    ) -> None:
        self.session = session
        self.rng = rng
        self.today = today
        self.zone = zone
        self.names = _Names(rng, seed)
        self.branches: dict[str, int] = dict(session.execute(select(Branch.code, Branch.id)).all())
        self.skills: dict[str, int] = dict(session.execute(select(Skill.code, Skill.id)).all())
        self.phones: set[str] = set()
        self.id_sequence = 0
        self.towns: list[Town] = []
        self.town_weights: list[int] = []
        self.organizations: dict[str, list[int]] = {}
        # (branch id, town id) -> a member who could lead the squad, preferring the `leader` skill.
        self.squad_leads: dict[tuple[int, int], tuple[bool, int]] = {}
        # Squads whose leader is a fixed demo login, whose grant is written with the login.
        self.fixed_leads: set[tuple[int, int]] = set()

    # ------------------------------------------------------------------ people

    def phone(self) -> str:
        while True:
            number = self.rng.choice(PHONE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def born(self, year: int) -> date:
        return date(year, 1, 1) + timedelta(days=self.rng.randrange(365))

    def identity(self, year: int, gender: str) -> str:
        self.id_sequence = (self.id_sequence + 1) % 500
        # The sequence's last digit is odd for men, even for women.
        sequence = self.id_sequence * 2 + (1 if gender == "male" else 0)
        return id_number("330212", self.born(year), sequence % 1000)

    def home(self, town: Town, sigma_m: float = 1500.0) -> tuple[float, float]:
        north = self.rng.gauss(0, sigma_m)
        east = self.rng.gauss(0, sigma_m)
        lat = town.lat + north / 111_320
        lon = town.lon + east / (111_320 * math.cos(math.radians(town.lat)))
        return round(lat, 6), round(lon, 6)

    def birth_year(self) -> int:
        # Many retirees, many working adults, some students.
        bucket = self.rng.random()
        if bucket < 0.30:
            return self.rng.randint(1950, 1965)
        if bucket < 0.88:
            return self.rng.randint(1966, 2001)
        return self.rng.randint(2002, 2007)

    def joined_at(self) -> datetime:
        start = datetime(2017, 3, 1, tzinfo=UTC)
        span = (datetime.combine(self.today, clock(), UTC) - start).days
        return start + timedelta(
            days=self.rng.randrange(max(span, 1)), hours=self.rng.randrange(24)
        )

    # ------------------------------------------------------------------ rows

    def member_row(
        self,
        member_id: int,
        password_hash: str,
        *,
        phone: str | None = None,
        town: Town | None = None,
        home: tuple[float, float] | None = None,
        is_core: bool = False,
        name: str | None = None,
    ) -> dict[str, Any]:
        gender = self.rng.choice(("male", "female"))
        year = self.birth_year()
        town = town or self.rng.choices(self.towns, weights=self.town_weights)[0]
        lat, lon = home or self.home(town)
        return {
            "id": member_id,
            "name": name or self.names.name(gender),
            "phone": phone or self.phone(),
            "password_hash": password_hash,
            "id_number": self.identity(year, gender),
            "gender": gender,
            "birth_year": year,
            "town_id": town.id,
            "home_lat": lat,
            "home_lon": lon,
            "is_core": is_core,
            "status": MemberStatus.ACTIVE,
            "organization_id": None,
            "joined_at": self.joined_at(),
            "token_version": 0,
        }

    def branches_for(self) -> list[str]:
        codes = list(BRANCH_SHARES)
        first = self.rng.choices(codes, weights=list(BRANCH_SHARES.values()))[0]
        if self.rng.random() < 0.22:
            second = self.rng.choices(codes, weights=list(BRANCH_SHARES.values()))[0]
            if second != first:
                return [first, second]
        return [first]

    def expiry(self, expired_share: float) -> date:
        """A certificate end: some already past, most one to three years ahead."""
        if self.rng.random() < expired_share:
            return self.today - timedelta(days=self.rng.randint(1, 400))
        return self.today + timedelta(days=self.rng.randint(30, 3 * 365))

    def skills_for(self, branches: list[str], is_core: bool, year: int) -> dict[str, date | None]:
        rng = self.rng
        chosen: dict[str, date | None] = {}
        if rng.random() < (0.35 if "rescue" in branches else 0.18):
            chosen["first_aid"] = self.expiry(0.15)
        if rng.random() < (0.20 if is_core else 0.07):
            chosen["leader"] = None
        if "mediation" in branches and rng.random() < (0.95 if is_core else 0.55):
            chosen["mediation"] = None
        if rng.random() < (0.30 if is_core and "mediation" in branches else 0.01):
            chosen["legal"] = self.expiry(0.05)
        if rng.random() < (0.30 if is_core and "assistance" in branches else 0.01):
            chosen["psychology"] = self.expiry(0.05)
        if 1958 <= year <= 2004 and rng.random() < 0.15:
            chosen["driving"] = self.expiry(0.03)
        if "rescue" in branches and rng.random() < 0.30:
            chosen["water_rescue"] = self.expiry(0.10)
        if "hazard" in branches and rng.random() < 0.30:
            chosen["fire_safety"] = self.expiry(0.10)
        if "hazard" in branches and rng.random() < 0.10:
            chosen["electrician"] = self.expiry(0.05)
        if "assistance" in branches and rng.random() < (0.6 if is_core else 0.15):
            chosen["social_work"] = self.expiry(0.05)
        if "publicity" in branches and rng.random() < 0.40:
            chosen["publicity"] = None
        if "cyber" in branches and rng.random() < 0.50:
            chosen["it"] = None
        return chosen

    def availability_for(self, member_id: int, year: int) -> list[dict[str, int]]:
        """Weekly windows by way of life: workers evenings and weekends, retirees by day every
        day, students at weekends."""
        age = self.today.year - year
        windows: list[tuple[int, int, int]]
        if age >= 60:
            windows = [(day, 8 * 60, 18 * 60) for day in range(7)]
        elif age <= 22:
            windows = [(day, 8 * 60, 20 * 60) for day in (5, 6)]
        elif self.rng.random() < 0.08:
            # Shift workers and night owls: late evenings every day.
            windows = [(day, 19 * 60, 24 * 60) for day in range(7)]
        else:
            windows = [(day, 18 * 60, 23 * 60) for day in range(5)]
            windows += [(day, 8 * 60, 22 * 60) for day in (5, 6)]
        return [
            {"member_id": member_id, "weekday": d, "start_minute": s, "end_minute": e}
            for d, s, e in windows
        ]

    def leave_for(self, member_id: int) -> dict[str, Any]:
        start_day = self.today + timedelta(days=self.rng.randint(0, 21))
        starts = datetime.combine(start_day, clock(), self.zone)
        ends = starts + timedelta(days=self.rng.randint(1, 14))
        reason = self.rng.choice(("出差", "探亲", "住院", "休假", "考试"))
        return {
            "member_id": member_id,
            "starts_at": starts.astimezone(UTC),
            "ends_at": ends.astimezone(UTC),
            "reason": reason,
        }


@dataclass
class _Chunk:
    members: list[dict[str, Any]] = field(default_factory=list)
    branches: list[dict[str, Any]] = field(default_factory=list)
    skills: list[dict[str, Any]] = field(default_factory=list)
    availability: list[dict[str, Any]] = field(default_factory=list)
    leaves: list[dict[str, Any]] = field(default_factory=list)
    roles: list[dict[str, Any]] = field(default_factory=list)


def _generated(
    builder: _Builder, first_id: int, count: int, core_share: float, password_hash: str
) -> Iterator[_Chunk]:
    """Chunks of ordinary members: branches, skills, availability and a few leaves."""
    rng = builder.rng
    chunk = _Chunk()
    for offset in range(count):
        member_id = first_id + offset
        is_core = rng.random() < core_share
        row = builder.member_row(member_id, password_hash, is_core=is_core)
        branches = builder.branches_for()
        if is_core and rng.random() < 0.5:
            candidates = [
                org_id for code in branches for org_id in builder.organizations.get(code, [])
            ]
            if candidates:
                row["organization_id"] = rng.choice(candidates)
        chunk.members.append(row)
        joined = row["joined_at"].date()
        for code in branches:
            chunk.branches.append(
                {"member_id": member_id, "branch_id": builder.branches[code], "joined_on": joined}
            )
        skills = builder.skills_for(branches, is_core, row["birth_year"])
        for code, expires in skills.items():
            chunk.skills.append(
                {"member_id": member_id, "skill_id": builder.skills[code], "expires_on": expires}
            )
        for code in branches:
            key = (builder.branches[code], row["town_id"])
            leads = "leader" in skills
            if key not in builder.squad_leads or (leads and not builder.squad_leads[key][0]):
                builder.squad_leads[key] = (leads, member_id)
        chunk.availability.extend(builder.availability_for(member_id, row["birth_year"]))
        if rng.random() < 0.03:
            chunk.leaves.append(builder.leave_for(member_id))
        if len(chunk.members) >= CHUNK:
            yield chunk
            chunk = _Chunk()
    if chunk.members:
        yield chunk


def _fixed(builder: _Builder, first_id: int, password_hash: str) -> _Chunk:
    """The demo logins: SG, seven coordinators, admin, a squad leader, a grid worker and
    twenty patrol volunteers living within 500 m of the first town's centre."""
    chunk = _Chunk()
    town = builder.towns[0]
    patrol = builder.branches["patrol"]
    next_id = first_id

    def add(phone: str, branches: list[str], roles: list[tuple[Role, int | None, int | None]],
            **extra: Any) -> int:  # fmt: skip
        nonlocal next_id
        member_id = next_id
        next_id += 1
        row = builder.member_row(member_id, password_hash, phone=phone, town=town, **extra)
        chunk.members.append(row)
        for code in branches:
            chunk.branches.append(
                {"member_id": member_id, "branch_id": builder.branches[code], "joined_on": None}
            )
        for role, branch_id, town_id in roles:
            chunk.roles.append(
                {"member_id": member_id, "role": role, "branch_id": branch_id, "town_id": town_id}
            )
        return member_id

    add(SECRETARY_GENERAL_PHONE, [], [(Role.SECRETARY_GENERAL, None, None)], is_core=True)
    for code, phone in COORDINATOR_PHONES.items():
        add(phone, [code], [(Role.COORDINATOR, builder.branches[code], None)], is_core=True)
    add(ADMIN_PHONE, [], [(Role.ADMIN, None, None)])
    leader = add(
        SQUAD_LEADER_PHONE, ["patrol"], [(Role.SQUAD_LEADER, patrol, town.id)], is_core=True
    )
    chunk.skills.append(
        {"member_id": leader, "skill_id": builder.skills["leader"], "expires_on": None}
    )
    builder.squad_leads[(patrol, town.id)] = (True, leader)
    builder.fixed_leads.add((patrol, town.id))
    add(GRID_WORKER_PHONE, [], [(Role.GRID_WORKER, None, town.id)])
    for index, phone in enumerate(PATROL_VOLUNTEER_PHONES):
        # Uniform in a 450 m disc, so every one is within 500 m of the centre.
        distance = 450 * math.sqrt(builder.rng.random())
        bearing = builder.rng.random() * 2 * math.pi
        lat = town.lat + distance * math.cos(bearing) / 111_320
        lon = town.lon + distance * math.sin(bearing) / (111_320 * math.cos(math.radians(town.lat)))
        member_id = add(phone, ["patrol"], [], home=(round(lat, 6), round(lon, 6)))
        if index % 2 == 0:
            chunk.skills.append(
                {
                    "member_id": member_id,
                    "skill_id": builder.skills["first_aid"],
                    "expires_on": None,
                }
            )
        if index % 5 == 0:
            chunk.skills.append(
                {"member_id": member_id, "skill_id": builder.skills["leader"], "expires_on": None}
            )
        chunk.availability.extend(
            {"member_id": member_id, "weekday": day, "start_minute": 0, "end_minute": 1440}
            for day in range(7)
        )
    return chunk


def _write(session: Session, chunk: _Chunk) -> None:
    for model, rows in (
        (Member, chunk.members),
        (MemberBranch, chunk.branches),
        (MemberSkill, chunk.skills),
        (Availability, chunk.availability),
        (Leave, chunk.leaves),
        (RoleGrant, chunk.roles),
    ):
        if rows:
            session.execute(insert(model), rows)


def _count(report: SeedReport, chunk: _Chunk) -> None:
    report.members += len(chunk.members)
    report.core += sum(1 for row in chunk.members if row["is_core"])
    report.member_branches += len(chunk.branches)
    report.member_skills += len(chunk.skills)
    report.availability += len(chunk.availability)
    report.leaves += len(chunk.leaves)
    report.role_grants += len(chunk.roles)


def _structure(session: Session, builder: _Builder, towns: int) -> None:
    """Towns and organisations, added through the ORM: few rows, and their ids are needed."""
    chosen = TOWNS[:towns]
    builder.towns = [Town(name=name, lat=lat, lon=lon) for name, lat, lon, _ in chosen]
    builder.town_weights = [weight for *_, weight in chosen]
    session.add_all(builder.towns)
    organizations = [
        Organization(name=name, kind=kind, branch_id=builder.branches[code] if code else None)
        for name, kind, code in ORGANIZATIONS
    ]
    session.add_all(organizations)
    session.flush()
    for org, (_, _, code) in zip(organizations, ORGANIZATIONS, strict=True):
        if code:
            builder.organizations.setdefault(code, []).append(org.id)


def _squads(session: Session, builder: _Builder, report: SeedReport) -> None:
    """A squad per branch and town, led by a member of it (a `leader` if there is one)."""
    squads, grants = [], []
    for town in builder.towns:
        for code in BRANCH_CODES:
            key = (builder.branches[code], town.id)
            lead = builder.squad_leads.get(key)
            leader_id = lead[1] if lead else None
            squads.append({"branch_id": key[0], "town_id": town.id, "leader_id": leader_id})
            if leader_id is not None and key not in builder.fixed_leads:
                grants.append(
                    {"member_id": leader_id, "role": Role.SQUAD_LEADER, "branch_id": key[0],
                     "town_id": town.id}
                )  # fmt: skip
    session.execute(insert(Squad), squads)
    if grants:
        session.execute(insert(RoleGrant), grants)
    report.squads = len(squads)
    report.role_grants += len(grants)


def _history_pools(session: Session, patrol: int) -> dict[int, list[int]]:
    """Per town, the members who staffed its past patrols: the fixed patrol logins (their
    phones sort first), then core members, then the rest, HISTORY_POOL at most."""
    fixed = set(PATROL_VOLUNTEER_PHONES)
    rows = session.execute(
        select(Member.id, Member.town_id, Member.phone, Member.is_core)
        .join(MemberBranch, MemberBranch.member_id == Member.id)
        .where(
            MemberBranch.branch_id == patrol,
            Member.status == MemberStatus.ACTIVE,
            Member.town_id.is_not(None),
        )
        .order_by(Member.id)
    ).all()
    ranked = sorted(rows, key=lambda row: (row.phone not in fixed, not row.is_core, row.id))
    pools: dict[int, list[int]] = {}
    for row in ranked:
        pool = pools.setdefault(row.town_id, [])
        if len(pool) < HISTORY_POOL:
            pool.append(row.id)
    return pools


def _history(session: Session, builder: _Builder, report: SeedReport, weeks: int) -> None:
    """Past patrol plans with their assignments, attendance (confirmed by the squad leader;
    a few no-shows) and hours-ledger credits, then the rollups rebuilt from the ledger: what
    the app itself would have written had the squads checked in and out."""
    rng = builder.rng
    patrol = builder.branches["patrol"]
    grace = Rules().service_grace
    pools = _history_pools(session, patrol)
    squads: dict[int, int] = {}  # town -> the patrol squad
    leaders: dict[int, int | None] = {}  # town -> its leader
    for town_id, squad_id, leader_id in session.execute(
        select(Squad.town_id, Squad.id, Squad.leader_id).where(Squad.branch_id == patrol)
    ):
        squads[town_id], leaders[town_id] = squad_id, leader_id
    first_day = builder.today - timedelta(weeks=weeks)
    days = [first_day + timedelta(days=k) for k in range(weeks * 7)]
    staffed: list[tuple[Town, Post, Plan]] = []
    for town in builder.towns:
        if len(pools.get(town.id, ())) < HISTORY_HEADCOUNT:
            continue
        post = Post(
            branch_id=patrol,
            town_id=town.id,
            name=f"{town.name}巡防点",
            lat=town.lat,
            lon=town.lon,
            radius_m=200,
            kind=PostKind.POINT,
        )
        published = datetime.combine(first_day - timedelta(days=3), clock(20), builder.zone)
        plan = Plan(
            branch_id=patrol,
            town_id=town.id,
            name=f"{town.name}巡防 {first_day:%m月%d日}起",
            starts_on=days[0],
            ends_on=days[-1],
            status=PlanStatus.PUBLISHED,
            version=1,
            published_at=published,
        )
        session.add_all([post, plan])
        staffed.append((town, post, plan))
    session.flush()
    shifts: list[tuple[Shift, Town, Plan]] = []
    for town, post, plan in staffed:
        for day in days:
            for kind, begins, ends in HISTORY_SHIFTS:
                shift = Shift(
                    plan_id=plan.id,
                    post_id=post.id,
                    kind=kind,
                    headcount=HISTORY_HEADCOUNT,
                    skills={},
                    starts_at=datetime.combine(day, begins, builder.zone),
                    ends_at=datetime.combine(day, ends, builder.zone),
                )
                session.add(shift)
                shifts.append((shift, town, plan))
    session.flush()
    assignments: list[dict[str, Any]] = []
    towns: list[Town] = []  # each assignment's town
    turn: dict[int, int] = {}
    for shift, town, plan in shifts:
        pool = pools[town.id]
        at = turn.get(town.id, 0)
        turn[town.id] = at + HISTORY_HEADCOUNT
        for k in range(HISTORY_HEADCOUNT):
            towns.append(town)
            no_show = rng.random() < HISTORY_NO_SHOW
            assignments.append(
                {
                    "plan_id": plan.id,
                    "shift_id": shift.id,
                    "member_id": pool[(at + k) % len(pool)],
                    "status": AssignmentStatus.NO_SHOW if no_show else AssignmentStatus.COMPLETED,
                    "starts_at": shift.starts_at,
                    "ends_at": shift.ends_at,
                    "created_at": plan.published_at,
                    "published_at": plan.published_at,
                    "responded_at": plan.published_at,
                }
            )
    ids = session.scalars(
        insert(Assignment).returning(Assignment.id, sort_by_parameter_order=True), assignments
    ).all()
    attended = [
        (assignment_id, row, town)
        for assignment_id, row, town in zip(ids, assignments, towns, strict=True)
        if row["status"] == AssignmentStatus.COMPLETED
    ]
    attendances: list[dict[str, Any]] = []
    for assignment_id, row, town in attended:
        start, end = row["starts_at"], row["ends_at"]
        arrived = start - timedelta(minutes=rng.randint(0, 20))
        left = end + timedelta(minutes=rng.randint(-10, 25))
        lat, lon = builder.home(town, sigma_m=40)
        leader = leaders.get(town.id)
        attendances.append(
            {
                "assignment_id": assignment_id,
                "member_id": row["member_id"],
                "check_in_at": arrived,
                "check_in_lat": lat,
                "check_in_lon": lon,
                "check_in_accuracy_m": float(rng.randint(5, 30)),
                "check_in_received_at": arrived,
                "check_out_at": left,
                "check_out_lat": lat,
                "check_out_lon": lon,
                "check_out_accuracy_m": float(rng.randint(5, 30)),
                "check_out_received_at": left,
                "status": AttendanceStatus.CONFIRMED if leader else AttendanceStatus.CLOSED,
                "service_minutes": service_minutes(arrived, left, start, end, grace),
                "confirmed_by": leader,
                "confirmed_at": end + timedelta(hours=12) if leader else None,
                "created_at": arrived,
                "updated_at": left,
            }
        )
    attendance_ids = session.scalars(
        insert(Attendance).returning(Attendance.id, sort_by_parameter_order=True), attendances
    ).all()
    entries = []
    for attendance_id, (assignment_id, row, town), att in zip(
        attendance_ids, attended, attendances, strict=True
    ):
        day = row["starts_at"].astimezone(builder.zone).date()
        entries.append(
            {
                "kind": HoursKind.ATTENDANCE,
                "minutes": att["service_minutes"],
                "turns": 1,
                "member_id": row["member_id"],
                "branch_id": patrol,
                "town_id": town.id,
                "squad_id": squads.get(town.id),
                "occurred_at": row["starts_at"],
                "service_day": day,
                "service_month": day.replace(day=1),
                "assignment_id": assignment_id,
                "attendance_id": attendance_id,
                "created_at": att["check_out_at"],
            }
        )
    session.execute(insert(HoursEntry), entries)
    hours_rollup.rebuild(session)
    report.assignments += len(assignments)
    report.attendances += len(attendances)


def _grid_workers(builder: _Builder, first_id: int, count: int) -> list[dict[str, Any]]:
    """Two ordinary members per town also report as grid workers."""
    rows: list[dict[str, Any]] = []
    if count <= 0:
        return rows
    for index, town in enumerate(builder.towns):
        for k in range(2):
            member_id = first_id + (index * 2 + k) * 7919 % count
            rows.append(
                {"member_id": member_id, "role": Role.GRID_WORKER, "branch_id": None,
                 "town_id": town.id}
            )  # fmt: skip
    unique = {(r["member_id"], r["town_id"]): r for r in rows}
    return list(unique.values())


def seed_federation(
    session: Session,
    *,
    members: int = 40_000,
    towns: int = 24,
    seed: int = 1,
    password: str,
    progress: Progress | None = None,
    today: date | None = None,
    timezone: str = "Asia/Shanghai",
    history_weeks: int = HISTORY_WEEKS,
) -> SeedReport:
    """Fill an empty database with a demo federation and commit.

    :param members: members in all, the fixed demo logins included.
    :param towns: how many of the district's towns to use (at most len(TOWNS)).
    :param password: the password of every member, hashed once.
    :param progress: called with lines like ``seed: members 12000/40000 (30%) 4.1 s``.
    :param today: the day leave and certificate dates are relative to (default: today).
    :param history_weeks: weeks of past patrols, attendance and hours before `today` (0: none).
    :return: counts of what was written and how long it took.
    :raise ValueError: too few members or too many towns.
    :raise SeedRefused: the database already has members.
    """
    if members < FIXED_COUNT + 20:
        raise ValueError(f"Seed at least {FIXED_COUNT + 20} members.")
    if not 1 <= towns <= len(TOWNS):
        raise ValueError(f"Between 1 and {len(TOWNS)} towns.")
    if has_members(session):
        raise SeedRefused("The database already has members.")
    say = progress or (lambda _line: None)
    started = time.monotonic()
    report = SeedReport()
    zone = ZoneInfo(timezone)
    rng = random.Random(seed)
    builder = _Builder(session, rng, seed, today or datetime.now(zone).date(), zone)
    password_hash = hash_password(password)
    _structure(session, builder, towns)
    report.towns, report.organizations = len(builder.towns), len(ORGANIZATIONS)
    report.timings["structure"] = time.monotonic() - started
    say(f"seed: {report.towns} towns, {report.organizations} organisations "
        f"{report.timings['structure']:.1f} s")  # fmt: skip

    first_id = (session.scalar(select(func.max(Member.id))) or 0) + 1
    fixed = _fixed(builder, first_id, password_hash)
    _write(session, fixed)
    _count(report, fixed)
    generated_first = first_id + len(fixed.members)
    generated = members - len(fixed.members)
    core_share = max(0.0, min(CORE_TARGET, members * CORE_SHARE) - report.core) / generated
    for chunk in _generated(builder, generated_first, generated, core_share, password_hash):
        _write(session, chunk)
        _count(report, chunk)
        elapsed = time.monotonic() - started
        say(f"seed: members {report.members}/{members} "
            f"({100 * report.members // members}%) {elapsed:.1f} s")  # fmt: skip
    _squads(session, builder, report)
    grid = _grid_workers(builder, generated_first, generated)
    session.execute(insert(RoleGrant), grid)
    report.role_grants += len(grid)
    if session.get_bind().dialect.name == "postgresql":
        # Ids were assigned here; move the sequence past them for members added later.
        session.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('member', 'id'),"
                " (SELECT max(id) FROM member))"
            )
        )
    if history_weeks:
        _history(session, builder, report, history_weeks)
        say(f"seed: {history_weeks} weeks of patrols, {report.attendances} attendances "
            f"{time.monotonic() - started:.1f} s")  # fmt: skip
    session.commit()
    report.seconds = time.monotonic() - started
    say(f"seed: done, {report.members} members ({report.core} core), {report.squads} squads, "
        f"{report.member_skills} skills, {report.availability} windows, {report.leaves} leaves, "
        f"{report.attendances} attendances in {report.seconds:.1f} s")  # fmt: skip
    return report
