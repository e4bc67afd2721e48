"""The permission matrix: every endpoint of the foundation (auth, me, branches, towns, members,
availability, leave, health) against every role, and masking per role.

The world: a target member of the patrol branch in town A, and callers who are anonymous, an
ordinary volunteer of the same branch and town, the target themself, the patrol squad leader
of town A, the patrol coordinator, the mediation coordinator, the secretary-general, an admin
and a grid worker of town A. A status of 404 for a member id means the caller may not see that
member, so the id reveals nothing; 403 means they see it but may not act.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Factory
from volunteer_hub.auth.policy import (
    Actor,
    Grant,
    can_award_hours,
    can_manage_attendance,
    can_manage_member,
    can_see_private,
)
from volunteer_hub.extensions import db, limiter
from volunteer_hub.models import Branch, Leave, Member, MemberStatus, Role, RoleGrant

API = "/api/v1"
ROLES = (
    "anonymous",
    "volunteer",
    "self",
    "squad_leader",
    "coordinator_own",
    "coordinator_other",
    "secretary_general",
    "admin",
    "grid_worker",
)
# The blueprints this matrix is about; a route of theirs missing from CASES fails a test.
BLUEPRINTS = {"auth", "federation", "members", "me_profile", "health"}
TARGET_ID_NUMBER = "330212199001011234"


@dataclass(frozen=True)
class World:
    number: int
    target_phone: str
    ids: dict[str, int]
    headers: dict[str, dict[str, str]]
    town_a: int
    target: int
    suspended: int
    grant: int
    leave: int


_worlds = itertools.count(1)


def build_world(app: Flask, factory: Factory) -> World:
    """A new world beside any earlier ones (fresh phones and towns): cheaper than emptying
    the database between roles, which on PostgreSQL costs a TRUNCATE of every table."""
    number = next(_worlds)
    target_phone = f"1381234{number:04d}"
    town_a = factory.create_town(f"甲街道{number}")
    ids = {
        "self": factory.create_member(
            name="目标队员", phone=target_phone, town_id=town_a, id_number=TARGET_ID_NUMBER
        ),
        "volunteer": factory.create_member(town_id=town_a),
        "squad_leader": factory.create_member(
            town_id=town_a, roles=(("squad_leader", "patrol", town_a),)
        ),
        "coordinator_own": factory.create_member(roles=(("coordinator", "patrol", None),)),
        "coordinator_other": factory.create_member(
            branches=("mediation",), roles=(("coordinator", "mediation", None),)
        ),
        "secretary_general": factory.create_member(
            branches=(), roles=(("secretary_general", None, None),)
        ),
        "admin": factory.create_member(branches=(), roles=(("admin", None, None),)),
        "grid_worker": factory.create_member(
            branches=(), town_id=town_a, roles=(("grid_worker", None, town_a),)
        ),
    }
    suspended = factory.create_member(town_id=town_a)
    headers = {role: factory.headers(member_id) for role, member_id in ids.items()}
    headers["anonymous"] = {}
    with app.app_context():
        db.session.get_one(Member, suspended).status = MemberStatus.SUSPENDED
        grant = RoleGrant(
            member_id=ids["self"], role="volunteer", branch_id=factory.branch_id("patrol")
        )
        now = datetime.now(UTC)
        leave = Leave(
            member_id=ids["self"],
            starts_at=now + timedelta(days=3),
            ends_at=now + timedelta(days=4),
        )
        db.session.add_all([grant, leave])
        db.session.commit()
        grant_id, leave_id = grant.id, leave.id
    return World(
        number, target_phone, ids, headers, town_a, ids["self"], suspended, grant_id, leave_id
    )


def expect(default: int, anonymous: int = 401, **by_role: int) -> dict[str, int]:
    table = {role: default for role in ROLES}
    table["anonymous"] = anonymous
    table.update(by_role)
    return table


MANAGE = {
    "volunteer": 404,
    "self": 403,
    "squad_leader": 403,
    "coordinator_other": 404,
    "secretary_general": 403,
    "grid_worker": 404,
}
LIST = {"volunteer": 403, "self": 403, "squad_leader": 403, "grid_worker": 403}
GRANT = {**MANAGE, "secretary_general": 201}


def leave_body() -> dict[str, str]:
    start = datetime.now(UTC) + timedelta(days=10)
    return {"starts_at": start.isoformat(), "ends_at": (start + timedelta(days=1)).isoformat()}


# (method, path, body or a function of the world giving it, expected status by role)
CASES: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/health", None, expect(200, anonymous=200)),
    ("GET", "/ready", None, expect(200, anonymous=200)),
    (
        "POST",
        "/auth/login",
        lambda w: {"phone": w.target_phone, "password": "not the password"},
        expect(401),
    ),
    (
        "POST",
        "/auth/activate",
        lambda w: {"phone": w.target_phone, "code": "00000000", "password": "a new password"},
        expect(401),
    ),
    # An access token where a refresh token belongs is refused like no token.
    ("POST", "/auth/refresh", None, expect(401)),
    ("POST", "/auth/logout", None, expect(204)),
    ("GET", "/me", None, expect(200)),
    (
        "PUT",
        "/me/password",
        {"current_password": "wrong one", "new_password": "a new password"},
        expect(422),
    ),
    ("GET", "/branches", None, expect(200)),
    ("GET", "/towns", None, expect(200)),
    ("GET", "/members", None, expect(200, **LIST)),
    ("GET", "/members?branch=patrol", None, expect(200, **LIST, coordinator_other=403)),
    (
        "POST",
        "/members",
        lambda w: {"name": "新队员", "phone": f"1369876{w.number:04d}", "branches": ["patrol"]},
        expect(403, coordinator_own=201, admin=201),
    ),
    (
        "GET",
        "/members/{target}",
        None,
        expect(200, volunteer=404, coordinator_other=404, grid_worker=404),
    ),
    ("PATCH", "/members/{target}", {"name": "改个名字"}, expect(200, **MANAGE)),
    ("POST", "/members/{target}/sign-in-code", None, expect(201, **MANAGE)),
    ("POST", "/members/{target}/suspend", {"reason": "测试"}, expect(200, **MANAGE)),
    (
        "POST",
        "/members/{suspended}/reactivate",
        {"reason": "测试"},
        expect(200, **{**MANAGE, "self": 404}),
    ),
    (
        "POST",
        "/members/{target}/roles",
        lambda w: {"role": "squad_leader", "branch": "patrol", "town": w.town_a},
        expect(201, **GRANT),
    ),
    (
        "DELETE",
        "/members/{target}/roles/{grant}",
        None,
        expect(204, **{**GRANT, "secretary_general": 204}),
    ),
    ("GET", "/me/availability", None, expect(200)),
    (
        "PUT",
        "/me/availability",
        {"windows": [{"weekday": 2, "start": "18:00", "end": "22:00"}]},
        expect(200),
    ),
    ("GET", "/me/leaves", None, expect(200)),
    ("POST", "/me/leaves", lambda w: leave_body(), expect(201)),
    ("DELETE", "/me/leaves/{leave}", None, expect(404, self=204)),
]


def _case_id(case: tuple[str, str, Any, dict[str, int]]) -> str:
    return f"{case[0]} {case[1]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_status_by_role(app: Flask, client: FlaskClient, factory: Factory, case: Any) -> None:
    """Each role in turn; a request that may change something gets a fresh world per role."""
    method, path, body, expected = case
    world = build_world(app, factory)
    got: dict[str, int] = {}
    for role in ROLES:
        if method != "GET" and role != ROLES[0]:
            world = build_world(app, factory)
        url = API + path.format(
            target=world.target, suspended=world.suspended, grant=world.grant, leave=world.leave
        )
        payload = body(world) if callable(body) else body
        limiter.reset()  # nine failed sign-ins in a row would be throttled otherwise
        response = client.open(url, method=method, json=payload, headers=world.headers[role])
        got[role] = response.status_code
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json", (role, response.data)
    assert got == expected


def test_every_foundation_route_is_in_the_matrix(app: Flask) -> None:
    covered = {(method, path.split("?")[0]) for method, path, _, _ in CASES}
    missing = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".")[0]
        if blueprint not in BLUEPRINTS:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule).removeprefix(API)
        path = path.replace("{member_id}", "{target}").replace("{grant_id}", "{grant}")
        path = path.replace("{leave_id}", "{leave}")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if (method, path) not in covered and not (
                path == "/members/{target}/reactivate"
                and (method, "/members/{suspended}/reactivate") in covered
            ):
                missing.append((method, path))
    assert missing == [], f"routes without a row in the permission matrix: {missing}"


# ---------------------------------------------------------------------- masking

MASKED_PHONE = re.compile(r"^\d{3}\*{4}\d{4}$")
SEES_PRIVATE = {"self", "coordinator_own", "secretary_general", "admin"}


def test_member_detail_masks_by_role(app: Flask, client: FlaskClient, factory: Factory) -> None:
    world = build_world(app, factory)
    for role in ROLES:
        response = client.get(f"{API}/members/{world.target}", headers=world.headers[role])
        if response.status_code != 200:
            continue
        member = response.get_json()
        if role in SEES_PRIVATE:
            assert member["phone"] == world.target_phone, role
            assert member["id_number"] == TARGET_ID_NUMBER, role
            assert member["home_lat"] is not None, role
        else:
            assert member["phone"] == "138****" + world.target_phone[-4:], role
            assert MASKED_PHONE.match(member["phone"]), role
            assert member["id_number"] == "3302**********1234", role
            assert member["home_lat"] is None, role
    seen = {
        role
        for role in ROLES
        if client.get(f"{API}/members/{world.target}", headers=world.headers[role]).status_code
        == 200
    }
    assert seen == SEES_PRIVATE | {"squad_leader"}


def test_member_list_shows_phones_to_those_who_may_list(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    world = build_world(app, factory)
    for role in ("coordinator_own", "secretary_general", "admin"):
        body = client.get(f"{API}/members?q=目标", headers=world.headers[role]).get_json()
        (member,) = body["items"]
        assert member["phone"] == world.target_phone, role
        assert member["id_number"] == TARGET_ID_NUMBER, role
    other = client.get(f"{API}/members?q=目标", headers=world.headers["coordinator_other"])
    assert other.get_json()["items"] == []  # the target is outside the mediation branch


def test_a_mediation_member_is_masked_for_the_patrol_squad_leader_of_their_town(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    """Two branches: the patrol coordinator sees a patrol+mediation member in full, and so
    does the mediation coordinator; the squad leader of patrol in their town sees them masked."""
    world = build_world(app, factory)
    both = factory.create_member(
        phone="13912345678", branches=("patrol", "mediation"), town_id=world.town_a
    )
    for role, phone in [
        ("coordinator_own", "13912345678"),
        ("coordinator_other", "13912345678"),
        ("squad_leader", "139****5678"),
    ]:
        response = client.get(f"{API}/members/{both}", headers=world.headers[role])
        assert response.status_code == 200, role
        assert response.get_json()["phone"] == phone, role


# ---------------------------------------------------------------------- town-scoped grants


def test_a_town_coordinator_grant_covers_that_town_only(app: Flask) -> None:
    """A coordinator grant for (patrol, town 5) covers patrol objects in town 5, not those of
    town 6 nor those with no town; a grant for the whole branch covers every town."""
    patrol = 3
    town, other_town = 5, 6
    in_town = Actor(1, (Grant(Role.COORDINATOR, patrol, town),), frozenset({patrol}), town)
    branch_wide = Actor(2, (Grant(Role.COORDINATOR, patrol, None),), frozenset({patrol}), None)
    for check in (can_manage_attendance, can_award_hours):
        assert check(in_town, patrol, town), check
        assert not check(in_town, patrol, other_town), check
        assert not check(in_town, patrol, None), check
        assert not check(in_town, patrol + 1, town), check
        assert all(check(branch_wide, patrol, t) for t in (town, other_town, None)), check
    assert can_manage_member(in_town, [patrol], town)
    assert not can_manage_member(in_town, [patrol], other_town)
    assert not can_manage_member(in_town, [patrol], None)
    assert can_manage_member(branch_wide, [patrol], other_town)
    with app.app_context():
        branch = Branch(id=patrol, code="patrol", name="治安巡防")
        member = Member(name="乙", phone="13800000000", town_id=other_town, branches=[branch])
        member.id = 99
        assert not can_see_private(in_town, member)
        assert can_see_private(branch_wide, member)


def test_a_town_coordinator_sees_and_manages_members_of_their_town_only(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    world = build_world(app, factory)
    town_b = factory.create_town()
    elsewhere = factory.create_member(name="乙镇队员", phone="13912340000", town_id=town_b)
    coordinator = factory.create_member(
        town_id=world.town_a, roles=(("coordinator", "patrol", world.town_a),)
    )
    headers = factory.headers(coordinator)
    own = client.get(f"{API}/members/{world.target}", headers=headers)
    assert own.status_code == 200 and own.get_json()["phone"] == world.target_phone
    listed = client.get(f"{API}/members?branch=patrol&page_size=500", headers=headers)
    assert listed.status_code == 200, listed.get_json()
    ids = {member["id"] for member in listed.get_json()["items"]}
    assert world.target in ids and elsewhere not in ids
    assert "13912340000" not in listed.get_data(as_text=True)
    for method, path, body in [
        ("GET", "", None),
        ("PATCH", "", {"name": "x"}),
        ("POST", "/suspend", {"reason": "x"}),
        ("POST", "/sign-in-code", None),
    ]:
        response = client.open(
            f"{API}/members/{elsewhere}{path}", method=method, json=body, headers=headers
        )
        assert response.status_code == 404, (method, path, response.get_json())
    moved = client.patch(f"{API}/members/{world.target}", json={"town": town_b}, headers=headers)
    assert moved.status_code == 403, moved.get_json()
    changed = client.patch(f"{API}/members/{world.target}", json={"name": "改名"}, headers=headers)
    assert changed.status_code == 200, changed.get_json()
    branch_wide = factory.headers(world.ids["coordinator_own"])
    assert (
        client.get(f"{API}/members/{elsewhere}", headers=branch_wide).get_json()["phone"]
        == "13912340000"
    )
