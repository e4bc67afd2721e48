"""One-time sign-in codes: an officer issues one, the member sets a password with it."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from tests.conftest import TEST_PASSWORD, Factory
from volunteer_hub.extensions import db, limiter
from volunteer_hub.models import AuditLog, SignInCode
from volunteer_hub.models.types import utcnow

API = "/api/v1"


def _issue(client: FlaskClient, factory: Factory, officer: int, member: int) -> str:
    response = client.post(f"{API}/members/{member}/sign-in-code", headers=factory.headers(officer))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert len(body["code"]) == 8 and body["code"].isdigit()
    return str(body["code"])


def _activate(client: FlaskClient, phone: str, code: str, password: str = "new secret 1") -> int:
    response = client.post(
        f"{API}/auth/activate", json={"phone": phone, "code": code, "password": password}
    )
    return int(response.status_code)


def test_a_member_added_without_password_signs_in_with_a_code(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    added = client.post(
        f"{API}/members",
        json={"name": "新队员", "phone": "13612345678", "branches": ["patrol"]},
        headers=factory.headers(coordinator),
    )
    assert added.status_code == 201, added.get_json()
    member = added.get_json()["id"]
    code = _issue(client, factory, coordinator, member)
    response = client.post(
        f"{API}/auth/activate",
        json={"phone": "13612345678", "code": code, "password": "new secret 1"},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["member"]["id"] == member and body["access_token"] and body["refresh_token"]
    me = client.get(f"{API}/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    login = client.post(
        f"{API}/auth/login", json={"phone": "13612345678", "password": "new secret 1"}
    )
    assert login.status_code == 200
    # Used up: the same code does not work twice.
    assert _activate(client, "13612345678", code, "another secret") == 401
    with app.app_context():
        actions = db.session.scalars(
            select(AuditLog.action).where(AuditLog.object_id == member).order_by(AuditLog.id)
        ).all()
        assert actions[-2:] == ["member.sign_in_code", "member.activate"]
        audit = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "member.sign_in_code")
        ).one()
        assert code not in str(audit.after)
        assert db.session.scalar(select(SignInCode)) is None


def test_a_forgotten_password_is_replaced_and_old_sessions_end(
    client: FlaskClient, factory: Factory
) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    member = factory.create_member()
    old = factory.headers(member)
    assert client.get(f"{API}/me", headers=old).status_code == 200
    code = _issue(client, factory, admin, member)
    assert _activate(client, factory.phone_of(member), code) == 200
    assert client.get(f"{API}/me", headers=old).status_code == 401
    old_login = {"phone": factory.phone_of(member), "password": TEST_PASSWORD}
    assert client.post(f"{API}/auth/login", json=old_login).status_code == 401


def test_who_may_issue_codes(client: FlaskClient, factory: Factory) -> None:
    member = factory.create_member(branches=("patrol",))
    own = factory.create_member(roles=(("coordinator", "patrol", None),))
    other_branch = factory.create_member(
        branches=("rescue",), roles=(("coordinator", "rescue", None),)
    )
    volunteer = factory.create_member()
    secretary = factory.create_member(branches=(), roles=(("secretary_general", None, None),))

    def status(officer: int, target: int) -> int:
        response = client.post(
            f"{API}/members/{target}/sign-in-code", headers=factory.headers(officer)
        )
        return int(response.status_code)

    assert status(own, member) == 201
    assert status(other_branch, member) == 404  # may not even see the member
    assert status(volunteer, member) == 404  # another volunteer's id
    assert status(own, own) == 403  # one's own password goes through /me/password
    assert status(own, 999_999) == 404
    assert status(secretary, member) in (201, 403)  # seen by the SG; managing is the policy's
    assert client.post(f"{API}/members/{member}/sign-in-code").status_code == 401


def test_wrong_codes_use_up_the_code_and_expired_codes_fail(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    member = factory.create_member()
    phone = factory.phone_of(member)
    code = _issue(client, factory, admin, member)
    wrong = f"{(int(code) + 1) % 10**8:08d}"
    for _ in range(5):
        assert _activate(client, phone, wrong) == 401
    assert _activate(client, phone, code) == 429  # the phone is throttled as for sign-in
    with app.app_context():
        limiter.reset()
    # Five wrong tries used the code up: once the throttle has passed, it still fails.
    assert _activate(client, phone, code) == 401
    code = _issue(client, factory, admin, member)  # a new code starts afresh
    with app.app_context():
        db.session.execute(update(SignInCode).values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    assert _activate(client, phone, code) == 401
    code = _issue(client, factory, admin, member)
    assert _activate(client, phone, code) == 200


def test_bad_requests_say_what_to_fix(client: FlaskClient, factory: Factory) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    member = factory.create_member()
    phone = factory.phone_of(member)
    code = _issue(client, factory, admin, member)
    short = client.post(
        f"{API}/auth/activate", json={"phone": phone, "code": code, "password": "short"}
    )
    assert short.status_code == 422 and "password" in short.get_json()["errors"]
    # A refused password does not use the code up.
    for body in (
        {"phone": phone, "code": "12ab", "password": "new secret 1"},
        {"phone": phone, "password": "new secret 1"},
        {"phone": phone, "code": 12345678, "password": "new secret 1"},
        {"phone": phone, "code": code, "password": "new secret 1", "extra": 1},
    ):
        response = client.post(f"{API}/auth/activate", json=body)
        assert response.status_code == 422, body
        assert response.headers["Content-Type"].startswith("application/problem+json")
    assert _activate(client, "13000000000", code) == 401  # someone else's phone
    assert _activate(client, phone, code) == 200


def test_suspended_members_get_no_code_and_cannot_use_one(
    client: FlaskClient, factory: Factory
) -> None:
    admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    member = factory.create_member()
    code = _issue(client, factory, admin, member)
    suspend = client.post(
        f"{API}/members/{member}/suspend",
        json={"reason": "left the federation"},
        headers=factory.headers(admin),
    )
    assert suspend.status_code == 200
    assert _activate(client, factory.phone_of(member), code) == 401
    refused = client.post(f"{API}/members/{member}/sign-in-code", headers=factory.headers(admin))
    assert refused.status_code == 409


def test_a_coordinator_gets_no_code_for_an_admin_of_their_branch(
    client: FlaskClient, factory: Factory
) -> None:
    """A code signs its holder in as the member, so it is for those the officer outranks: a
    coordinator who may not grant the admin role may not take over an admin's account either,
    even one who is also a member of their branch. An admin still may."""
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    admin = factory.create_member(branches=("patrol",), roles=(("admin", None, None),))
    other_admin = factory.create_member(branches=(), roles=(("admin", None, None),))
    refused = client.post(
        f"{API}/members/{admin}/sign-in-code", headers=factory.headers(coordinator)
    )
    assert refused.status_code == 403, refused.get_json()
    assert _activate(client, factory.phone_of(admin), "00000000") == 401
    code = _issue(client, factory, other_admin, admin)
    assert _activate(client, factory.phone_of(admin), code) == 200
