"""Devices, inbox, announcements and the operators' outbox over HTTP, nasty inputs included."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import Factory
from tests.push.conftest import SHIFT, Push
from volunteer_hub.extensions import db
from volunteer_hub.models import AuditLog, Member, MemberStatus
from volunteer_hub.models.notifications import (
    Announcement,
    InboxItem,
    OutboxMessage,
    OutboxStatus,
)
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import announcements, devices, outbox

# ---------------------------------------------------------------------- devices


def test_registering_a_token_twice_answers_201_then_200(
    client: FlaskClient, factory: Factory
) -> None:
    member = factory.create_member()
    headers = factory.headers(member)

    first = client.post(
        "/api/v1/me/devices", json={"token": "tok:A-1", "platform": "android"}, headers=headers
    )
    again = client.post(
        "/api/v1/me/devices", json={"token": "tok:A-1", "platform": "ios"}, headers=headers
    )

    assert first.status_code == 201 and again.status_code == 200
    assert again.json["platform"] == "ios"
    listed = client.get("/api/v1/me/devices", headers=headers).json
    assert [d["token"] for d in listed] == ["tok:A-1"]


def test_a_token_registered_by_another_member_moves(client: FlaskClient, factory: Factory) -> None:
    old, new = factory.create_member(), factory.create_member()
    body = {"token": "shared-phone", "platform": "android"}
    client.post("/api/v1/me/devices", json=body, headers=factory.headers(old))

    moved = client.post("/api/v1/me/devices", json=body, headers=factory.headers(new))

    assert moved.status_code == 201
    assert client.get("/api/v1/me/devices", headers=factory.headers(old)).json == []
    assert len(client.get("/api/v1/me/devices", headers=factory.headers(new)).json) == 1


def test_only_the_owner_deletes_a_device(client: FlaskClient, factory: Factory) -> None:
    owner, other = factory.create_member(), factory.create_member()
    client.post(
        "/api/v1/me/devices",
        json={"token": "owned", "platform": "ios"},
        headers=factory.headers(owner),
    )

    assert (
        client.delete("/api/v1/me/devices/owned", headers=factory.headers(other)).status_code == 404
    )
    assert (
        client.delete("/api/v1/me/devices/owned", headers=factory.headers(owner)).status_code == 204
    )
    assert (
        client.delete("/api/v1/me/devices/owned", headers=factory.headers(owner)).status_code == 404
    )
    assert (
        client.delete(
            "/api/v1/me/devices/" + "x" * 5000, headers=factory.headers(owner)
        ).status_code
        == 404
    )
    assert client.delete("/api/v1/me/devices/owned").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"token": "", "platform": "android"}, "token"),
        ({"token": "has space", "platform": "android"}, "token"),
        ({"token": "x" * 4097, "platform": "android"}, "token"),
        ({"token": 12345, "platform": "android"}, "token"),
        ({"token": "ok", "platform": "symbian"}, "platform"),
        ({"platform": "ios"}, "token"),
        ({"token": "ok", "platform": "ios", "extra": 1}, "extra"),
    ],
)
def test_bad_device_registrations_name_the_field(
    client: FlaskClient, factory: Factory, body: dict[str, object], field: str
) -> None:
    response = client.post(
        "/api/v1/me/devices", json=body, headers=factory.headers(factory.create_member())
    )

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert field in response.json["errors"]


def test_a_member_keeps_at_most_ten_devices(app: object, factory: Factory, push: Push) -> None:
    member = factory.create_member()
    for index in range(12):
        push.run(lambda session, i=index: devices.register(session, member, f"t{i}", "android"))

    tokens = push.run(lambda session: [d.token for d in devices.list_own(session, member)])
    assert len(tokens) == 10 and "t0" not in tokens and "t11" in tokens


# ---------------------------------------------------------------------- inbox


def test_the_inbox_shows_what_was_sent_newest_first_and_hides_future_and_withdrawn(
    client: FlaskClient, factory: Factory, push: Push
) -> None:
    member = factory.create_member()
    older = push.enqueue(member, params={"assignment_id": "1", **SHIFT})
    newer = push.enqueue(member, params={"assignment_id": "2", **SHIFT})
    push.enqueue(
        member,
        kind="shift_reminder",
        params={"assignment_id": "3", **SHIFT},
        deliver_after=utcnow() + timedelta(hours=5),
        assignment_id=3,
    )
    push.enqueue(
        member,
        kind="shift_reminder",
        params={"assignment_id": "4", **SHIFT},
        deliver_after=utcnow() + timedelta(hours=5),
        assignment_id=4,
    )
    push.run(lambda session: outbox.cancel_pending(session, assignment_id=4))

    page = client.get("/api/v1/me/inbox", headers=factory.headers(member)).json

    assert page["total"] == 2 and page["unread"] == 2
    ids = [item["data"]["assignment_id"] for item in page["items"]]
    assert ids == ["2", "1"]
    item = page["items"][0]
    assert set(item) == {"id", "kind", "title", "body", "data", "created_at", "read_at"}
    assert item["kind"] == "assignment_published" and item["read_at"] is None
    assert older < newer


def test_reading_messages(client: FlaskClient, factory: Factory, push: Push) -> None:
    member, other = factory.create_member(), factory.create_member()
    for n in range(3):
        push.enqueue(member, params={"assignment_id": str(n), **SHIFT})
    push.enqueue(other)
    headers = factory.headers(member)
    items = client.get("/api/v1/me/inbox", headers=headers).json["items"]
    with push.app.app_context():
        others = db.session.scalar(select(InboxItem.id).where(InboxItem.member_id == other))

    read = client.post(f"/api/v1/me/inbox/{items[0]['id']}/read", headers=headers)
    assert read.status_code == 200 and read.json["read_at"] is not None
    again = client.post(f"/api/v1/me/inbox/{items[0]['id']}/read", headers=headers)
    assert again.json["read_at"] == read.json["read_at"]
    assert client.post(f"/api/v1/me/inbox/{others}/read", headers=headers).status_code == 404
    assert client.post("/api/v1/me/inbox/99999999999/read", headers=headers).status_code == 404
    unread = client.get("/api/v1/me/inbox?unread=true", headers=headers).json
    assert unread["total"] == 2 and unread["unread"] == 2

    assert client.post("/api/v1/me/inbox/read-all", headers=headers).json == {"marked": 2}
    assert client.get("/api/v1/me/inbox", headers=headers).json["unread"] == 0
    assert client.get("/api/v1/me/inbox", headers=factory.headers(other)).json["unread"] == 1


@pytest.mark.parametrize(
    "query", ["page=0", "page_size=501", "page=abc", "page=1e400", "unread=maybe"]
)
def test_bad_inbox_queries_are_422(client: FlaskClient, factory: Factory, query: str) -> None:
    response = client.get(
        f"/api/v1/me/inbox?{query}", headers=factory.headers(factory.create_member())
    )
    assert response.status_code == 422
    assert response.json["errors"]


def test_the_inbox_needs_a_token(client: FlaskClient) -> None:
    assert client.get("/api/v1/me/inbox").status_code == 401


# ---------------------------------------------------------------------- announcements


def _announce(client: FlaskClient, headers: dict[str, str], **body: object):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/announcements",
        json={"title": "台风预警", "body": "请各队做好准备。", **body},
        headers=headers,
    )


def test_a_coordinator_announces_to_the_active_members_of_their_branch(
    client: FlaskClient, factory: Factory, push: Push
) -> None:
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    patrol = [factory.create_member(branches=("patrol",)) for _ in range(3)]
    suspended = factory.create_member(branches=("patrol",))
    hazard = factory.create_member(branches=("hazard",))
    with push.app.app_context():
        db.session.get_one(Member, suspended).status = MemberStatus.SUSPENDED
        db.session.commit()
    long_body = "详细说明。" * 200  # 1,000 characters: more than a push carries

    response = _announce(client, factory.headers(coordinator), branch="patrol", body=long_body)

    assert response.status_code == 201
    assert response.json["status"] == "done"
    assert response.json["recipients"] == 4  # three volunteers and the coordinator
    inbox = client.get("/api/v1/me/inbox", headers=factory.headers(patrol[0])).json["items"]
    assert inbox[0]["kind"] == "announcement" and inbox[0]["body"] == long_body
    assert client.get("/api/v1/me/inbox", headers=factory.headers(hazard)).json["total"] == 0
    with push.app.app_context():
        told = set(db.session.scalars(select(OutboxMessage.recipient_id)))
        db.session.remove()
    assert told == {coordinator, *patrol}
    with push.app.app_context():
        assert (
            db.session.scalar(select(func.count()).where(AuditLog.action == "announcement.create"))
            == 1
        )
    got = client.get(
        f"/api/v1/announcements/{response.json['id']}", headers=factory.headers(coordinator)
    )
    assert got.status_code == 200 and got.json["branch"] == "patrol"


def test_announcing_to_a_town(client: FlaskClient, factory: Factory) -> None:
    town, elsewhere = factory.create_town("东柳街道"), factory.create_town("明楼街道")
    sg = factory.create_member(roles=(("secretary_general", None, None),), town_id=elsewhere)
    factory.create_member(branches=("patrol",), town_id=town)
    factory.create_member(branches=("hazard",), town_id=town)
    factory.create_member(branches=("patrol",), town_id=elsewhere)
    town_coordinator = factory.create_member(roles=(("coordinator", "patrol", town),), town_id=town)

    everyone = _announce(client, factory.headers(sg), town=town)
    patrol_only = _announce(client, factory.headers(town_coordinator), town=town, branch="patrol")
    whole_branch = _announce(client, factory.headers(town_coordinator), branch="patrol")
    whole_town = _announce(client, factory.headers(town_coordinator), town=town)

    assert everyone.status_code == 201 and everyone.json["recipients"] == 3
    assert patrol_only.status_code == 201 and patrol_only.json["recipients"] == 2
    assert whole_branch.status_code == 403
    assert whole_town.status_code == 403


def test_who_may_not_announce(client: FlaskClient, factory: Factory) -> None:
    volunteer = factory.create_member()
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    other = factory.create_member(roles=(("coordinator", "hazard", None),))
    made = _announce(client, factory.headers(coordinator), branch="patrol").json["id"]

    assert _announce(client, factory.headers(volunteer), branch="patrol").status_code == 403
    assert _announce(client, factory.headers(coordinator), branch="hazard").status_code == 403
    assert (
        client.get(f"/api/v1/announcements/{made}", headers=factory.headers(other)).status_code
        == 404
    )
    assert (
        client.get(f"/api/v1/announcements/{made}", headers=factory.headers(volunteer)).status_code
        == 404
    )
    assert (
        client.get(
            "/api/v1/announcements/99999999999", headers=factory.headers(coordinator)
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "branch"),
        ({"branch": "nosuch"}, "branch"),
        ({"town": 2**31}, "town"),
        ({"town": 999999}, "town"),
        ({"town": "1"}, "town"),
        ({"branch": "patrol", "title": ""}, "title"),
        ({"branch": "patrol", "title": "长" * 101}, "title"),
        ({"branch": "patrol", "body": "x" * 5001}, "body"),
        ({"branch": "patrol", "title": None}, "title"),
    ],
)
def test_bad_announcements_name_the_field(
    client: FlaskClient, factory: Factory, body: dict[str, object], field: str
) -> None:
    sg = factory.create_member(roles=(("secretary_general", None, None),))
    response = _announce(client, factory.headers(sg), **body)
    assert response.status_code == 422
    assert field in response.json["errors"]


def test_a_fan_out_cut_short_is_finished_by_the_worker_without_duplicates(
    factory: Factory, push: Push
) -> None:
    sg = factory.create_member(roles=(("secretary_general", None, None),))
    members = [factory.create_member(branches=("rescue",)) for _ in range(7)]

    # The request died after its first chunk of three.
    with push.app.app_context():
        session = db.session()
        announcement = Announcement(
            author_id=sg, branch_id=factory.branch_id("rescue"), title="演练", body="周六演练"
        )
        session.add(announcement)
        session.commit()
        announcement_id = announcement.id
        announcements.fan_out(session, announcement_id, chunk_size=3, max_chunks=1)
        db.session.remove()

    with push.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 3
        assert announcements.resume_stale(db.session(), now=utcnow()) == 0  # not stale yet
        assert announcements.resume_stale(db.session(), now=utcnow() + timedelta(minutes=2)) == 1
        recipients = sorted(db.session.scalars(select(OutboxMessage.recipient_id)))
        done = db.session.get_one(Announcement, announcement_id)
        db.session.remove()
    assert recipients == sorted(members)
    assert done.recipients == 7 and done.status.value == "done"


# ---------------------------------------------------------------------- operators' outbox


def test_failed_pushes_are_listed_for_the_secretary_general_and_can_be_retried(
    client: FlaskClient, factory: Factory, push: Push
) -> None:
    sg = factory.create_member(roles=(("secretary_general", None, None),))
    coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    member = factory.create_member()
    failed = push.enqueue(member)
    pending = push.enqueue(member, params={"assignment_id": "8", **SHIFT})
    with push.app.app_context():
        row = db.session.get_one(OutboxMessage, failed)
        row.status = OutboxStatus.FAILED
        row.last_error = "gave up: UNAVAILABLE"
        db.session.commit()

    listed = client.get("/api/v1/admin/outbox?status=failed", headers=factory.headers(sg))
    assert listed.status_code == 200 and listed.json["total"] == 1
    assert listed.json["items"][0]["id"] == failed
    assert listed.json["items"][0]["last_error"] == "gave up: UNAVAILABLE"
    assert (
        client.get("/api/v1/admin/outbox", headers=factory.headers(coordinator)).status_code == 403
    )
    assert (
        client.get("/api/v1/admin/outbox?status=lost", headers=factory.headers(sg)).status_code
        == 422
    )

    retried = client.post(f"/api/v1/admin/outbox/{failed}/retry", headers=factory.headers(sg))
    assert retried.status_code == 200 and retried.json["status"] == "pending"
    assert (
        client.post(
            f"/api/v1/admin/outbox/{pending}/retry", headers=factory.headers(sg)
        ).status_code
        == 409
    )
    assert (
        client.post(
            "/api/v1/admin/outbox/99999999999/retry", headers=factory.headers(sg)
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/api/v1/admin/outbox/{failed}/retry", headers=factory.headers(coordinator)
        ).status_code
        == 403
    )
    with push.app.app_context():
        assert (
            db.session.scalar(select(func.count()).where(AuditLog.action == "outbox.requeue")) == 1
        )
