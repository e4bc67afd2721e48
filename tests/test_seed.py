"""The demo federation seed: `flask hub seed` and `seed_federation`."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from volunteer_hub.extensions import db
from volunteer_hub.models import (
    Availability,
    Branch,
    Leave,
    Member,
    MemberBranch,
    MemberSkill,
    Organization,
    Role,
    RoleGrant,
    Skill,
    Squad,
    Town,
)
from volunteer_hub.models.attendance import (
    Attendance,
    AttendanceStatus,
    HoursEntry,
    HoursKind,
    HoursRollup,
)
from volunteer_hub.models.plans import Assignment, AssignmentStatus
from volunteer_hub.schemas.members_admin import PHONE_PATTERN, validate_id_number
from volunteer_hub.services import attendance as attendance_service
from volunteer_hub.services import hours_rollup
from volunteer_hub.services.attendance import Rules
from volunteer_hub.services.seed import TOWNS, seed_federation

PASSWORD = "demo-pass-1"
API = "/api/v1"


def seed(runner: Any, *extra: str) -> Any:
    return runner.invoke(
        args=["hub", "seed", "--members", "300", "--password", PASSWORD, "--seed", "7", *extra]
    )


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    dlat = math.radians(lat2 - lat1)
    dlon = math.radians(lon2 - lon1)
    a = (
        math.sin(dlat / 2) ** 2
        + math.cos(math.radians(lat1)) * math.cos(math.radians(lat2)) * math.sin(dlon / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def people(app: Flask) -> list[tuple[str, str, str | None]]:
    with app.app_context():
        return [
            (m.name, m.phone, m.id_number)
            for m in db.session.scalars(select(Member).order_by(Member.id))
        ]


def test_seed_builds_a_plausible_federation(app: Flask, runner: Any) -> None:
    result = seed(runner)
    assert result.exit_code == 0, result.output
    assert "seed: members 300/300 (100%)" in result.output  # progress goes to stderr
    with app.app_context():
        session = db.session
        assert session.scalar(select(func.count()).select_from(Member)) == 300
        towns = list(session.scalars(select(Town).order_by(Town.id)))
        assert [t.name for t in towns] == [name for name, *_ in TOWNS[:24]]
        for town in towns:
            assert 29.6 < town.lat < 30.0 and 121.2 < town.lon < 121.9
        assert session.scalar(select(func.count()).select_from(Squad)) == 24 * 7
        assert session.scalar(select(func.count()).select_from(Organization)) >= 10
        branch_sizes = dict(
            session.execute(
                select(Branch.code, func.count())
                .join(MemberBranch, MemberBranch.branch_id == Branch.id)
                .group_by(Branch.code)
            ).all()
        )
        assert max(branch_sizes, key=lambda code: branch_sizes[code]) == "patrol"
        per_member = Counter(session.scalars(select(MemberBranch.member_id)))
        assert set(per_member.values()) <= {1, 2}
        members = list(session.scalars(select(Member)))
        for member in members:
            assert re.match(PHONE_PATTERN, member.phone), member.phone
            assert member.id_number is not None
            validate_id_number(member.id_number)
            assert member.id_number.startswith("330212")
            assert member.home_lat is not None and member.home_lon is not None
        assert len({m.phone for m in members}) == 300
        assert 0.04 < sum(m.is_core for m in members) / 300 < 0.15
        windows = session.scalar(select(func.count()).select_from(Availability))
        assert windows > 300


def test_fixed_logins_have_their_roles(app: Flask, runner: Any, client: FlaskClient) -> None:
    assert seed(runner).exit_code == 0
    expected = {
        "13900000000": ("secretary_general", None),
        "13900000001": ("coordinator", "mediation"),
        "13900000002": ("coordinator", "hazard"),
        "13900000003": ("coordinator", "patrol"),
        "13900000004": ("coordinator", "rescue"),
        "13900000005": ("coordinator", "cyber"),
        "13900000006": ("coordinator", "assistance"),
        "13900000007": ("coordinator", "publicity"),
        "13900000009": ("admin", None),
        "13900000010": ("squad_leader", "patrol"),
        "13900000020": ("grid_worker", None),
    }
    for phone, (role, branch) in expected.items():
        response = client.post(f"{API}/auth/login", json={"phone": phone, "password": PASSWORD})
        assert response.status_code == 200, (phone, response.get_json())
        roles = {(r["role"], r["branch"]) for r in response.get_json()["member"]["roles"]}
        assert (role, branch) in roles, (phone, roles)
    with app.app_context():
        first_town = db.session.scalars(select(Town).order_by(Town.id)).first()
        assert first_town is not None
        leader = db.session.scalar(select(Member).where(Member.phone == "13900000010"))
        assert leader is not None
        squad = db.session.scalar(
            select(Squad)
            .join(Branch)
            .where(Branch.code == "patrol", Squad.town_id == first_town.id)
        )
        assert squad is not None and squad.leader_id == leader.id
        grid = db.session.scalar(
            select(RoleGrant)
            .join(Member, Member.id == RoleGrant.member_id)
            .where(Member.phone == "13900000020")
        )
        assert grid is not None and grid.role == Role.GRID_WORKER and grid.town_id == first_town.id


def test_patrol_volunteers_live_by_the_first_town_and_are_always_free(
    app: Flask, runner: Any
) -> None:
    assert seed(runner).exit_code == 0
    with app.app_context():
        session = db.session
        town = session.scalars(select(Town).order_by(Town.id)).first()
        assert town is not None
        phones = [f"139000001{i:02d}" for i in range(20)]
        volunteers = list(session.scalars(select(Member).where(Member.phone.in_(phones))))
        assert len(volunteers) == 20
        first_aid = 0
        for member in volunteers:
            assert member.home_lat is not None and member.home_lon is not None
            assert distance_m(town.lat, town.lon, member.home_lat, member.home_lon) <= 500
            assert member.town_id == town.id
            assert [b.code for b in member.branches] == ["patrol"]
            windows = session.execute(
                select(Availability.weekday, Availability.start_minute, Availability.end_minute)
                .where(Availability.member_id == member.id)
                .order_by(Availability.weekday)
            ).all()
            assert [tuple(w) for w in windows] == [(day, 0, 1440) for day in range(7)]
            assert not session.scalar(select(Leave.id).where(Leave.member_id == member.id))
            skills = {
                s.skill.code: s.expires_on
                for s in session.scalars(
                    select(MemberSkill).where(MemberSkill.member_id == member.id)
                )
            }
            if "first_aid" in skills:
                assert skills["first_aid"] is None
                first_aid += 1
        assert first_aid >= 5
        leaders = session.scalar(
            select(func.count())
            .select_from(MemberSkill)
            .join(Skill)
            .join(Member, Member.id == MemberSkill.member_id)
            .where(Skill.code == "leader", Member.phone.in_(phones))
        )
        assert leaders and leaders >= 2


def test_refuses_a_seeded_database_unless_forced_and_repeats_itself(
    app: Flask, runner: Any
) -> None:
    assert seed(runner).exit_code == 0
    first = people(app)
    refused = seed(runner)
    assert refused.exit_code != 0
    assert "--force" in refused.output
    skipped = seed(runner, "--if-empty")
    assert skipped.exit_code == 0
    assert people(app) == first
    forced = seed(runner, "--force")
    assert forced.exit_code == 0, forced.output
    assert people(app) == first  # the same seed gives the same federation
    other = runner.invoke(
        args=["hub", "seed", "--members", "300", "--password", PASSWORD, "--seed", "8", "--force"]
    )
    assert other.exit_code == 0
    assert people(app) != first


def test_bad_options_are_refused(runner: Any) -> None:
    short = runner.invoke(args=["hub", "seed", "--members", "300", "--password", "short"])
    assert short.exit_code != 0
    few = runner.invoke(args=["hub", "seed", "--members", "5", "--password", PASSWORD])
    assert few.exit_code != 0
    towns = runner.invoke(
        args=["hub", "seed", "--members", "300", "--towns", "99", "--password", PASSWORD]
    )
    assert towns.exit_code != 0


def test_members_added_after_the_seed_get_new_ids(
    app: Flask, runner: Any, client: FlaskClient
) -> None:
    """Seeded ids are assigned by the seed; on PostgreSQL the sequence must have moved past."""
    assert seed(runner).exit_code == 0
    login = client.post(f"{API}/auth/login", json={"phone": "13900000009", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    body = {"name": "新来的", "phone": "13698765432", "branches": ["patrol"]}
    response = client.post(f"{API}/members", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["id"] == 301


def test_seed_function_reports_progress(app: Flask) -> None:
    lines: list[str] = []
    with app.app_context():
        report = seed_federation(
            db.session(), members=300, towns=5, seed=3, password=PASSWORD, progress=lines.append
        )
    assert report.members == 300
    assert report.towns == 5
    assert report.squads == 35
    assert any(re.fullmatch(r"seed: members 300/300 \(100%\) \d+\.\d s", line) for line in lines)
    assert report.seconds < 30


def test_the_demo_has_weeks_of_patrols_with_hours_in_the_reports(
    app: Flask, runner: Any, client: FlaskClient
) -> None:
    """The seed's service history is what the app would have written: completed or no-show
    assignments, closed attendance crediting the ledger once each, rollups equal to the
    ledger, nothing left for the worker's sweeps, and figures in the reports and /me/hours."""
    assert seed(runner).exit_code == 0
    with app.app_context():
        s = db.session()
        patrol = s.scalar(select(Branch.id).where(Branch.code == "patrol"))
        statuses = Counter(s.scalars(select(Assignment.status)))
        assert set(statuses) == {AssignmentStatus.COMPLETED, AssignmentStatus.NO_SHOW}
        assert statuses[AssignmentStatus.COMPLETED] > 20 * statuses[AssignmentStatus.NO_SHOW] > 0
        spans: dict[int, list[tuple[Any, Any]]] = {}
        for member_id, starts, ends in s.execute(
            select(Assignment.member_id, Assignment.starts_at, Assignment.ends_at)
        ):
            spans.setdefault(member_id, []).append((starts, ends))
        for member_spans in spans.values():  # never two shifts at once
            member_spans.sort()
            assert all(a[1] <= b[0] for a, b in pairwise(member_spans))
        now = datetime.now(UTC)
        assert all(ends < now for ends in s.scalars(select(Assignment.ends_at)))
        credits = {
            e.attendance_id: e
            for e in s.scalars(select(HoursEntry).where(HoursEntry.kind == HoursKind.ATTENDANCE))
        }
        attendances = list(s.scalars(select(Attendance)))
        assert len(attendances) == statuses[AssignmentStatus.COMPLETED] == len(credits)
        for att in attendances:
            entry = credits[att.id]
            assert att.check_out_at is not None and att.check_in_at < att.check_out_at
            assert att.status in (AttendanceStatus.CONFIRMED, AttendanceStatus.CLOSED)
            assert att.service_minutes is not None
            assert 0 < entry.minutes == att.service_minutes <= 4 * 60 + 30
            assert (entry.member_id, entry.branch_id, entry.turns) == (att.member_id, patrol, 1)
        rules = Rules()
        assert attendance_service.close_forgotten(s, now=now, rules=rules) == 0
        assert attendance_service.mark_no_shows(s, now=now, rules=rules) == 0
        kept = {tuple(r) for r in s.execute(select(HoursRollup.__table__)).all()}
        hours_rollup.rebuild(s)
        assert {tuple(r) for r in s.execute(select(HoursRollup.__table__)).all()} == kept
        s.rollback()
        total = sum(e.minutes for e in credits.values())
    sg = client.post(f"{API}/auth/login", json={"phone": "13900000000", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {sg.get_json()['access_token']}"}
    body = client.get(f"{API}/reports/hours?group_by=branch", headers=headers).get_json()
    assert body["total_minutes"] == total > 0
    assert [row["key"] for row in body["rows"]] == ["patrol"]
    volunteer = client.post(
        f"{API}/auth/login", json={"phone": "13900000100", "password": PASSWORD}
    )
    mine = client.get(
        f"{API}/me/hours",
        headers={"Authorization": f"Bearer {volunteer.get_json()['access_token']}"},
    )
    assert mine.status_code == 200, mine.get_json()
    assert mine.get_json()["total_minutes"] > 0
