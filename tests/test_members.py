"""The members API: listing with filters and scope, detail, adding, changing, suspending and
granting roles, with their audit rows."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select

from tests.conftest import TEST_PASSWORD, Factory
from volunteer_hub.extensions import db
from volunteer_hub.models import AuditLog, Member, MemberStatus, RoleGrant
from volunteer_hub.schemas.members_admin import id_number_check_char

API = "/api/v1"


def valid_id_number(body: str = "33021219850612001") -> str:
    return body + id_number_check_char(body)


def audit_rows(app: Flask, action: str) -> list[AuditLog]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditLog).where(AuditLog.action == action)))
        db.session.expunge_all()
        return rows


def new_member(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "王小明",
        "phone": "13612345678",
        "branches": ["patrol"],
        "skills": [{"code": "first_aid", "expires_on": "2030-01-01"}, {"code": "leader"}],
        "home_lat": 29.82,
        "home_lon": 121.55,
        "is_core": True,
    }
    body.update(overrides)
    return body


# ---------------------------------------------------------------------- listing


def test_coordinator_lists_own_branch_only(client: FlaskClient, factory: Factory) -> None:
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    patrol = factory.create_member(name="巡防甲", branches=("patrol",))
    factory.create_member(name="调解乙", branches=("mediation",))
    response = client.get(f"{API}/members", headers=factory.headers(coordinator))
    assert response.status_code == 200
    ids = {item["id"] for item in response.get_json()["items"]}
    assert ids == {coordinator, patrol}
    other = client.get(f"{API}/members?branch=mediation", headers=factory.headers(coordinator))
    assert other.status_code == 403
    assert other.mimetype == "application/problem+json"


def test_secretary_general_lists_everyone_and_volunteers_none(
    client: FlaskClient, factory: Factory
) -> None:
    sg = factory.create_member(branches=(), roles=(("secretary_general", None, None),))
    volunteer = factory.create_member()
    factory.create_member(branches=("mediation",))
    body = client.get(f"{API}/members?page_size=2", headers=factory.headers(sg)).get_json()
    assert body["total"] == 3
    assert len(body["items"]) == 2
    assert (body["page"], body["page_size"]) == (1, 2)
    assert client.get(f"{API}/members", headers=factory.headers(volunteer)).status_code == 403
    assert client.get(f"{API}/members").status_code == 401


def test_filters_by_town_skill_name_phone_and_status(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    town_a = factory.create_town("甲街道")
    town_b = factory.create_town("乙街道")
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    medic = factory.create_member(
        name="张急救", phone="13811112222", town_id=town_a, skills=("first_aid",)
    )
    expired = factory.create_member(
        name="李过期",
        town_id=town_a,
        skills=("first_aid",),
        skill_expiry=date.today() - timedelta(days=3),
    )
    far = factory.create_member(name="张远", town_id=town_b)
    headers = factory.headers(admin)

    def ids(query: str) -> set[int]:
        response = client.get(f"{API}/members?{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        return {item["id"] for item in response.get_json()["items"]}

    assert ids(f"town={town_a}") == {medic, expired}
    assert ids("skill=first_aid") == {medic}  # the expired certificate does not count
    assert ids("q=张") == {medic, far}
    assert ids("q=1111") == {medic}
    assert ids("q=%25") == set()  # a LIKE wildcard is matched literally
    assert ids(f"town={town_a}&q=李") == {expired}
    with app.app_context():
        db.session.get_one(Member, far).status = MemberStatus.SUSPENDED
        db.session.commit()
    assert ids("status=suspended") == {far}


def test_list_rejects_bad_filters(client: FlaskClient, factory: Factory) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    headers = factory.headers(admin)
    for query, field in [
        ("branch=nope", "branch"),
        ("skill=juggling", "skill"),
        ("town=99999999999999", "town"),
        ("town=abc", "town"),
        ("page=0", "page"),
        ("page_size=501", "page_size"),
        ("status=gone", "status"),
        ("q=" + "x" * 65, "q"),
        ("q=a%00b", "q"),  # PostgreSQL refuses NUL in text: a 422, not a 500
        ("skill=first%00aid", "skill"),
        ("twon=3", "twon"),  # misspelt: refused, not answered as an unfiltered list
    ]:
        response = client.get(f"{API}/members?{query}", headers=headers)
        assert response.status_code == 422, (query, response.get_json())
        assert field in response.get_json()["errors"], (query, response.get_json())


def test_list_loads_a_page_in_a_fixed_number_of_queries(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    for index in range(30):
        factory.create_member(
            name=f"队员{index}", branches=("patrol", "rescue"), skills=("first_aid", "leader")
        )
    headers = factory.headers(admin)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(f"{API}/members?page_size=50", headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    assert len(response.get_json()["items"]) == 31
    # Token and actor checks, count, page, branches, skills: nothing per member.
    assert len(statements) <= 10, statements


# ---------------------------------------------------------------------- detail


def test_detail_visibility_and_masking(client: FlaskClient, factory: Factory) -> None:
    town = factory.create_town()
    member = factory.create_member(phone="13812341234", town_id=town)
    leader = factory.create_member(town_id=town, roles=(("squad_leader", "patrol", town),))
    stranger = factory.create_member()
    other_coordinator = factory.create_member(
        branches=("mediation",), roles=(("coordinator", "mediation", None),)
    )
    url = f"{API}/members/{member}"
    own = client.get(url, headers=factory.headers(member)).get_json()
    assert own["phone"] == "13812341234"
    assert own["id_number"] == "330212199001011234"
    led = client.get(url, headers=factory.headers(leader))
    assert led.status_code == 200
    assert led.get_json()["phone"] == "138****1234"
    assert led.get_json()["id_number"] == "3302**********1234"
    assert led.get_json()["home_lat"] is None
    assert client.get(url, headers=factory.headers(stranger)).status_code == 404
    assert client.get(url, headers=factory.headers(other_coordinator)).status_code == 404
    huge = client.get(f"{API}/members/99999999999999999", headers=factory.headers(member))
    assert huge.status_code == 404


# ---------------------------------------------------------------------- adding


def test_coordinator_adds_a_member_who_can_sign_in(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    town = factory.create_town()
    body = new_member(town=town, id_number=valid_id_number(), password="a good password")
    response = client.post(f"{API}/members", json=body, headers=factory.headers(coordinator))
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["branches"] == ["patrol"]
    assert created["skills"] == ["first_aid", "leader"]
    assert (created["birth_year"], created["gender"]) == (1985, "male")  # from the id number
    assert created["town"] == town
    login = client.post(
        f"{API}/auth/login", json={"phone": "13612345678", "password": "a good password"}
    )
    assert login.status_code == 200
    (row,) = audit_rows(app, "member.create")
    assert row.actor_id == coordinator
    assert row.object_id == created["id"]
    assert row.after is not None and row.after["phone"] == "136****5678"


def test_a_member_added_without_password_cannot_sign_in(
    client: FlaskClient, factory: Factory
) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    response = client.post(f"{API}/members", json=new_member(), headers=factory.headers(admin))
    assert response.status_code == 201
    for password in ("", TEST_PASSWORD, "None"):
        login = client.post(
            f"{API}/auth/login", json={"phone": "13612345678", "password": password}
        )
        assert login.status_code in (401, 422)


def test_adding_refuses_other_branches_duplicates_and_bad_fields(
    client: FlaskClient, factory: Factory
) -> None:
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    headers = factory.headers(coordinator)
    other = client.post(f"{API}/members", json=new_member(branches=["rescue"]), headers=headers)
    assert other.status_code == 403
    both = client.post(
        f"{API}/members", json=new_member(branches=["patrol", "rescue"]), headers=headers
    )
    assert both.status_code == 403
    assert client.post(f"{API}/members", json=new_member(), headers=headers).status_code == 201
    again = client.post(f"{API}/members", json=new_member(), headers=headers)
    assert again.status_code == 409
    assert "phone" in again.get_json()["errors"]
    bad_id = valid_id_number()[:-1] + ("0" if valid_id_number()[-1] != "0" else "1")
    for override, field in [
        ({"phone": "12345678901"}, "phone"),
        ({"phone": "1361234567"}, "phone"),
        ({"phone": "1361234567\n"}, "phone"),
        ({"phone": "1361234567٣"}, "phone"),
        ({"name": "王\x00明"}, "name"),
        ({"id_number": bad_id}, "id_number"),
        ({"id_number": "33021219851312001X"}, "id_number"),
        ({"home_lat": 91}, "home_lat"),
        ({"home_lon": -181}, "home_lon"),
        ({"home_lon": None}, "home_lat"),
        ({"town": 2**31}, "town"),
        ({"town": 12345}, "town"),
        ({"organization": 777}, "organization"),
        ({"branches": []}, "branches"),
        ({"branches": ["knitting"]}, "branches.0"),
        ({"skills": [{"code": "juggling"}]}, "skills"),
        ({"skills": [{"code": "first_aid", "expires_on": "soon"}]}, "skills.0.expires_on"),
        ({"birth_year": "1990"}, "birth_year"),
        ({"gender": "x"}, "gender"),
        ({"password": "short"}, "password"),
        ({"extra": 1}, "extra"),
    ]:
        body = new_member(**{"phone": "13500000001", **override})
        response = client.post(f"{API}/members", json=body, headers=headers)
        assert response.status_code == 422, (override, response.get_json())
        errors = response.get_json()["errors"]
        assert any(key.startswith(field.split(".")[0]) for key in errors), (override, errors)


def test_nan_in_json_is_refused(client: FlaskClient, factory: Factory) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    raw = (
        '{"name": "x", "phone": "13612345678", "branches": ["patrol"], '
        '"home_lat": NaN, "home_lon": 121.5}'
    )
    response = client.post(
        f"{API}/members",
        data=raw,
        content_type="application/json",
        headers=factory.headers(admin),
    )
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


def test_concurrent_adds_of_one_phone_give_one_member(
    app: Flask, client: FlaskClient, factory: Factory
) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    headers = factory.headers(admin)
    statuses: list[int] = []
    barrier = threading.Barrier(4)

    def add(index: int) -> None:
        with app.test_client() as own:
            barrier.wait()
            body = new_member(name=f"并发{index}", password="a good password")
            statuses.append(own.post(f"{API}/members", json=body, headers=headers).status_code)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 409, 409, 409]
    with app.app_context():
        count = len(db.session.scalars(select(Member).where(Member.phone == "13612345678")).all())
    assert count == 1


# ---------------------------------------------------------------------- changing


def test_patch_is_audited_with_before_and_after(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    member = factory.create_member(name="旧名字")
    response = client.patch(
        f"{API}/members/{member}",
        json={"name": "新名字", "skills": [{"code": "driving", "expires_on": "2031-05-01"}]},
        headers=factory.headers(coordinator),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["name"] == "新名字"
    assert response.get_json()["skills"] == ["driving"]
    (row,) = audit_rows(app, "member.update")
    assert row.before is not None and row.after is not None
    assert (row.before["name"], row.after["name"]) == ("旧名字", "新名字")
    assert row.after["skills"] == [["driving", "2031-05-01"]]


def test_the_audit_trail_keeps_no_phone_number_or_home_position(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    """The audit log is widely read: it keeps a phone masked as for those who may not see it,
    and of the home position only whether it is set and whether it changed."""
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    headers = factory.headers(coordinator)
    added = client.post(
        f"{API}/members", json=new_member(phone="13812345678", home_lat=29.8123), headers=headers
    )
    assert added.status_code == 201, added.get_json()
    member = added.get_json()["id"]
    changed = client.patch(
        f"{API}/members/{member}",
        json={"phone": "13987654321", "home_lat": 29.9876, "home_lon": 121.6543},
        headers=headers,
    )
    assert changed.status_code == 200, changed.get_json()
    (created,) = audit_rows(app, "member.create")
    (updated,) = audit_rows(app, "member.update")
    assert created.after is not None and updated.before is not None and updated.after is not None
    logged = str([created.after, updated.before, updated.after])
    for private in ("13812345678", "13987654321", "29.81", "29.98", "121.65"):
        assert private not in logged, (private, logged)
    assert (updated.before["phone"], updated.after["phone"]) == ("138****5678", "139****4321")
    assert updated.after["phone_changed"] and updated.after["home_changed"]
    assert updated.before["home_set"] and updated.after["home_set"]
    # Moving home alone is still recorded, without saying where.
    moved = client.patch(
        f"{API}/members/{member}", json={"home_lat": 29.5, "home_lon": 121.5}, headers=headers
    )
    assert moved.status_code == 200, moved.get_json()
    last = max(audit_rows(app, "member.update"), key=lambda row: row.id)
    assert last.after is not None and last.after["home_changed"] and "29.5" not in str(last.after)
    number = valid_id_number()
    given = client.patch(f"{API}/members/{member}", json={"id_number": number}, headers=headers)
    assert given.status_code == 200, given.get_json()
    last = max(audit_rows(app, "member.update"), key=lambda row: row.id)
    assert last.after is not None and last.after["id_number_changed"]
    assert number not in str([last.before, last.after])


def test_patch_refusals(client: FlaskClient, factory: Factory) -> None:
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    member = factory.create_member(phone="13600000001")
    factory.create_member(phone="13600000002")
    hidden = factory.create_member(branches=("mediation",))
    headers = factory.headers(coordinator)
    url = f"{API}/members/{member}"
    assert client.patch(url, json={}, headers=headers).status_code == 422
    assert client.patch(url, json={"phone": "13600000002"}, headers=headers).status_code == 409
    moved = client.patch(url, json={"branches": ["rescue"]}, headers=headers)
    assert moved.status_code == 403
    assert (
        client.patch(f"{API}/members/{hidden}", json={"name": "x"}, headers=headers).status_code
        == 404
    )
    own = client.patch(url, json={"name": "我自己"}, headers=factory.headers(member))
    assert own.status_code == 403


# ---------------------------------------------------------------------- status


def test_suspension_stops_tokens_and_is_audited(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    member = factory.create_member()
    member_headers = factory.headers(member)
    headers = factory.headers(coordinator)
    assert client.get(f"{API}/me", headers=member_headers).status_code == 200
    no_reason = client.post(f"{API}/members/{member}/suspend", json={}, headers=headers)
    assert no_reason.status_code == 422
    assert "reason" in no_reason.get_json()["errors"]
    blank = client.post(
        f"{API}/members/{member}/suspend", json={"reason": " \u3000 "}, headers=headers
    )
    assert blank.status_code == 422
    assert "reason" in blank.get_json()["errors"]
    suspended = client.post(
        f"{API}/members/{member}/suspend", json={"reason": "多次缺勤"}, headers=headers
    )
    assert suspended.status_code == 200
    assert suspended.get_json()["status"] == "suspended"
    assert client.get(f"{API}/me", headers=member_headers).status_code == 401
    again = client.post(f"{API}/members/{member}/suspend", json={"reason": "x"}, headers=headers)
    assert again.status_code == 409
    back = client.post(
        f"{API}/members/{member}/reactivate", json={"reason": "已说明情况"}, headers=headers
    )
    assert back.status_code == 200
    assert client.get(f"{API}/me", headers=member_headers).status_code == 200
    (row,) = audit_rows(app, "member.suspend")
    assert (row.reason, row.actor_id, row.after) == (
        "多次缺勤",
        coordinator,
        {"status": "suspended"},
    )
    assert len(audit_rows(app, "member.reactivate")) == 1
    myself = client.post(
        f"{API}/members/{coordinator}/suspend", json={"reason": "x"}, headers=headers
    )
    assert myself.status_code == 403


def test_a_coordinator_manages_no_one_who_outranks_them(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    """Like granting roles: a coordinator changes and suspends the volunteers and squad
    leaders of their branch, never a fellow coordinator, the secretary-general or an admin,
    even one who is also a member of the branch (403: they see the member, may not act).
    An admin may."""
    town = factory.create_town()
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    fellow = factory.create_member(roles=(("coordinator", "patrol", None),))
    secretary = factory.create_member(roles=(("secretary_general", None, None),))
    admin = factory.create_member(roles=(("admin", None, None),))
    leader = factory.create_member(town_id=town, roles=(("squad_leader", "patrol", town),))
    headers = factory.headers(coordinator)
    for member in (fellow, secretary, admin):
        changed = client.patch(f"{API}/members/{member}", json={"name": "x"}, headers=headers)
        assert changed.status_code == 403, (member, changed.get_json())
        suspended = client.post(
            f"{API}/members/{member}/suspend", json={"reason": "x"}, headers=headers
        )
        assert suspended.status_code == 403, (member, suspended.get_json())
    assert audit_rows(app, "member.update") == audit_rows(app, "member.suspend") == []
    assert client.get(f"{API}/me", headers=factory.headers(secretary)).status_code == 200
    led = client.patch(f"{API}/members/{leader}", json={"name": "队长"}, headers=headers)
    assert led.status_code == 200, led.get_json()
    admin_headers = factory.headers(factory.create_member(roles=(("admin", None, None),)))
    for member in (fellow, secretary, admin):
        changed = client.patch(
            f"{API}/members/{member}", json={"name": "改名"}, headers=admin_headers
        )
        assert changed.status_code == 200, (member, changed.get_json())
        suspended = client.post(
            f"{API}/members/{member}/suspend", json={"reason": "x"}, headers=admin_headers
        )
        assert suspended.status_code == 200, (member, suspended.get_json())


# ---------------------------------------------------------------------- roles


def test_granting_and_withdrawing_roles(client: FlaskClient, factory: Factory, app: Flask) -> None:
    town = factory.create_town()
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    sg = factory.create_member(branches=(), roles=(("secretary_general", None, None),))
    member = factory.create_member(town_id=town)
    headers = factory.headers(coordinator)
    url = f"{API}/members/{member}/roles"
    leader = {"role": "squad_leader", "branch": "patrol", "town": town}
    granted = client.post(url, json=leader, headers=headers)
    assert granted.status_code == 201, granted.get_json()
    grant_id = granted.get_json()["id"]
    assert client.post(url, json=leader, headers=headers).status_code == 409
    for body, status in [
        ({"role": "coordinator", "branch": "patrol"}, 403),
        ({"role": "squad_leader", "branch": "patrol"}, 422),
        ({"role": "squad_leader", "branch": "rescue", "town": town}, 403),
        ({"role": "king"}, 422),
        ({"role": "squad_leader", "branch": "patrol", "town": 2**31}, 422),
    ]:
        response = client.post(url, json=body, headers=headers)
        assert response.status_code == status, (body, response.get_json())
    by_sg = client.post(
        url, json={"role": "coordinator", "branch": "patrol"}, headers=factory.headers(sg)
    )
    assert by_sg.status_code == 201
    admin_by_sg = client.post(url, json={"role": "admin"}, headers=factory.headers(sg))
    assert admin_by_sg.status_code == 403
    scoped_sg = client.post(
        url, json={"role": "secretary_general", "branch": "patrol"}, headers=factory.headers(sg)
    )
    assert scoped_sg.status_code == 422
    me = client.get(f"{API}/members/{member}", headers=headers).get_json()
    assert {(r["role"], r["branch"], r["town"]) for r in me["roles"]} == {
        ("squad_leader", "patrol", town),
        ("coordinator", "patrol", None),
    }
    # Another member's grant id through this member's path looks absent.
    other_grant = client.get(f"{API}/members/{coordinator}", headers=headers).get_json()["roles"]
    assert client.delete(f"{url}/{other_grant[0]['id']}", headers=headers).status_code == 404
    assert client.delete(f"{url}/{grant_id}", headers=headers).status_code == 204
    assert client.delete(f"{url}/{grant_id}", headers=headers).status_code == 404
    assert len(audit_rows(app, "role.grant")) == 2
    (revoked,) = audit_rows(app, "role.revoke")
    assert revoked.before is not None and revoked.before["role"] == "squad_leader"
    with app.app_context():
        remaining = db.session.scalars(select(RoleGrant.role).where(RoleGrant.member_id == member))
        assert [r.value for r in remaining] == ["coordinator"]


def test_a_nul_in_the_sign_in_phone_is_a_422_not_a_500(client: FlaskClient) -> None:
    """PostgreSQL refuses NUL in text; the schema stops it before the query."""
    response = client.post(f"{API}/auth/login", json={"phone": "139\x0000000", "password": "x"})
    assert response.status_code == 422
    assert "phone" in response.get_json()["errors"]


def test_lone_surrogates_are_a_422_not_a_500(client: FlaskClient, factory: Factory) -> None:
    """JSON may spell a lone surrogate ("\\ud800"); no driver can store it as UTF-8."""
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    member = factory.create_member()
    headers = factory.headers(admin)
    for url, raw, field in [
        (
            f"{API}/members",
            '{"name": "王\\ud800明", "phone": "13612345678", "branches": ["patrol"]}',
            "name",
        ),
        (f"{API}/members/{member}/suspend", '{"reason": "\\udc00"}', "reason"),
        (
            f"{API}/me/leaves",
            '{"starts_at": "2030-01-01T00:00:00+08:00", "ends_at": "2030-01-02T00:00:00+08:00",'
            ' "reason": "\\udc00"}',
            "reason",
        ),
    ]:
        response = client.post(url, data=raw, content_type="application/json", headers=headers)
        assert response.status_code == 422, (url, response.get_json())
        assert field in response.get_json()["errors"]


def test_a_certificate_counts_through_its_last_day_in_the_federation_s_calendar(
    client: FlaskClient, factory: Factory, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`expires_on` is a day of the federation's calendar, not of UTC's: a zone is chosen whose
    date differs from UTC's right now, so the two calendars disagree during the test."""
    now = datetime.now(UTC)
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Etc/GMT+12"  # UTC+14 or UTC-12
    monkeypatch.setitem(app.config, "HUB_TIMEZONE", zone)
    local_today = now.astimezone(ZoneInfo(zone)).date()
    assert local_today != now.date()
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    last_day_today = factory.create_member(skills=("first_aid",), skill_expiry=local_today)
    ended_yesterday = factory.create_member(
        skills=("first_aid",), skill_expiry=local_today - timedelta(days=1)
    )
    headers = factory.headers(admin)
    listed = client.get(f"{API}/members?skill=first_aid", headers=headers)
    assert listed.status_code == 200, listed.get_json()
    assert {item["id"] for item in listed.get_json()["items"]} == {last_day_today}
    for member, skills in ((last_day_today, ["first_aid"]), (ended_yesterday, [])):
        shown = client.get(f"{API}/members/{member}", headers=headers)
        assert shown.status_code == 200, shown.get_json()
        assert shown.get_json()["skills"] == skills
