"""The caller's own weekly availability and leave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models import AuditLog, Leave

API = "/api/v1"


def iso(delta: timedelta, offset: str = "+08:00") -> str:
    moment = datetime.now(UTC) + delta
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + offset


# ---------------------------------------------------------------------- availability


def test_availability_is_replaced_and_overlaps_merged(
    client: FlaskClient, factory: Factory
) -> None:
    member = factory.create_member()
    headers = factory.headers(member)
    assert client.get(f"{API}/me/availability", headers=headers).get_json() == {
        "windows": [],
        "timezone": "Asia/Shanghai",
    }
    windows = [
        {"weekday": 0, "start": "18:00", "end": "21:00"},
        {"weekday": 0, "start": "20:00", "end": "23:00"},  # overlaps the first
        {"weekday": 0, "start": "23:00", "end": "24:00"},  # touches it
        {"weekday": 6, "start": "08:00", "end": "12:00"},
        {"weekday": 5, "start": "00:00", "end": "24:00"},
    ]
    response = client.put(f"{API}/me/availability", json={"windows": windows}, headers=headers)
    assert response.status_code == 200, response.get_json()
    expected = [
        {"weekday": 0, "start": "18:00", "end": "24:00"},
        {"weekday": 5, "start": "00:00", "end": "24:00"},
        {"weekday": 6, "start": "08:00", "end": "12:00"},
    ]
    assert response.get_json()["windows"] == expected
    assert client.get(f"{API}/me/availability", headers=headers).get_json()["windows"] == expected
    cleared = client.put(f"{API}/me/availability", json={"windows": []}, headers=headers)
    assert cleared.get_json()["windows"] == []


def test_availability_refuses_bad_windows_naming_the_field(
    client: FlaskClient, factory: Factory
) -> None:
    member = factory.create_member()
    headers = factory.headers(member)
    factory_windows = [{"weekday": 1, "start": "08:00", "end": "09:00"}]
    client.put(f"{API}/me/availability", json={"windows": factory_windows}, headers=headers)
    for window, field in [
        ({"weekday": 7, "start": "08:00", "end": "09:00"}, "windows.0.weekday"),
        ({"weekday": -1, "start": "08:00", "end": "09:00"}, "windows.0.weekday"),
        ({"weekday": "1", "start": "08:00", "end": "09:00"}, "windows.0.weekday"),
        ({"weekday": 1, "start": "8:00", "end": "09:00"}, "windows.0.start"),
        ({"weekday": 1, "start": "08:00\n", "end": "09:00"}, "windows.0.start"),
        ({"weekday": 1, "start": "24:00", "end": "24:00"}, "windows[0].end"),
        ({"weekday": 1, "start": "08:00", "end": "25:00"}, "windows.0.end"),
        ({"weekday": 1, "start": "22:00", "end": "02:00"}, "windows[0].end"),
        ({"weekday": 1, "start": "08:00"}, "windows.0.end"),
        ({"weekday": 1, "start": "08:00", "end": "09:00", "note": 1}, "windows.0.note"),
    ]:
        response = client.put(f"{API}/me/availability", json={"windows": [window]}, headers=headers)
        assert response.status_code == 422, (window, response.get_json())
        assert field in response.get_json()["errors"], (window, response.get_json())
    too_many = [{"weekday": 1, "start": "08:00", "end": "09:00"}] * 201
    response = client.put(f"{API}/me/availability", json={"windows": too_many}, headers=headers)
    assert response.status_code == 422
    assert client.put(f"{API}/me/availability", json=[], headers=headers).status_code == 422
    # Nothing refused was stored.
    kept = client.get(f"{API}/me/availability", headers=headers).get_json()["windows"]
    assert kept == factory_windows


def test_availability_needs_a_sign_in(client: FlaskClient) -> None:
    assert client.get(f"{API}/me/availability").status_code == 401
    assert client.put(f"{API}/me/availability", json={"windows": []}).status_code == 401


# ---------------------------------------------------------------------- leave


def test_leave_is_recorded_listed_and_withdrawn(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    member = factory.create_member()
    headers = factory.headers(member)
    body = {
        "starts_at": iso(timedelta(days=2)),
        "ends_at": iso(timedelta(days=5)),
        "reason": "探亲",
    }
    created = client.post(f"{API}/me/leaves", json=body, headers=headers)
    assert created.status_code == 201, created.get_json()
    leave = created.get_json()
    assert leave["reason"] == "探亲"
    assert leave["starts_at"].endswith("+00:00")
    listed = client.get(f"{API}/me/leaves", headers=headers).get_json()
    assert [item["id"] for item in listed["items"]] == [leave["id"]]
    assert listed["total"] == 1
    overlap = {"starts_at": iso(timedelta(days=4)), "ends_at": iso(timedelta(days=8))}
    assert client.post(f"{API}/me/leaves", json=overlap, headers=headers).status_code == 409
    assert client.delete(f"{API}/me/leaves/{leave['id']}", headers=headers).status_code == 204
    assert client.get(f"{API}/me/leaves", headers=headers).get_json()["total"] == 0
    with app.app_context():
        row = db.session.scalar(select(AuditLog).where(AuditLog.action == "leave.delete"))
        assert row is not None and row.actor_id == member and row.object_id == leave["id"]


def test_leave_refuses_bad_times(client: FlaskClient, factory: Factory) -> None:
    member = factory.create_member()
    headers = factory.headers(member)
    for body, field in [
        ({"starts_at": "2030-01-01T08:00:00", "ends_at": "2030-01-02T08:00:00+08:00"}, "starts_at"),
        ({"starts_at": iso(timedelta(days=3)), "ends_at": iso(timedelta(days=2))}, "ends_at"),
        ({"starts_at": iso(timedelta(days=3)), "ends_at": iso(timedelta(days=3))}, "ends_at"),
        ({"starts_at": iso(timedelta(days=1)), "ends_at": iso(timedelta(days=400))}, "ends_at"),
        ({"starts_at": iso(-timedelta(days=9)), "ends_at": iso(-timedelta(days=2))}, "ends_at"),
        ({"starts_at": "tomorrow", "ends_at": iso(timedelta(days=2))}, "starts_at"),
        (
            {"starts_at": "9999-01-01T00:00:00+00:00", "ends_at": iso(timedelta(days=2))},
            "starts_at",
        ),
        ({"ends_at": iso(timedelta(days=2))}, "starts_at"),
        (
            {
                "starts_at": iso(timedelta(days=1)),
                "ends_at": iso(timedelta(days=2)),
                "reason": "x" * 201,
            },
            "reason",
        ),
        (
            {
                "starts_at": iso(timedelta(days=1)),
                "ends_at": iso(timedelta(days=2)),
                "reason": "病\x00假",
            },
            "reason",
        ),
    ]:
        response = client.post(f"{API}/me/leaves", json=body, headers=headers)
        assert response.status_code == 422, (body, response.get_json())
        assert field in response.get_json()["errors"], (body, response.get_json())


def test_other_members_leaves_look_absent(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    owner = factory.create_member()
    other = factory.create_member()
    body = {"starts_at": iso(timedelta(days=2)), "ends_at": iso(timedelta(days=3))}
    leave_id = client.post(
        f"{API}/me/leaves", json=body, headers=factory.headers(owner)
    ).get_json()["id"]
    other_headers = factory.headers(other)
    assert client.delete(f"{API}/me/leaves/{leave_id}", headers=other_headers).status_code == 404
    assert client.get(f"{API}/me/leaves", headers=other_headers).get_json()["total"] == 0
    huge = client.delete(f"{API}/me/leaves/99999999999999999999", headers=other_headers)
    assert huge.status_code == 404
    assert client.delete(f"{API}/me/leaves/{leave_id}").status_code == 401
    with app.app_context():
        assert db.session.get(Leave, leave_id) is not None


def test_past_leaves_are_listed_on_request(
    client: FlaskClient, factory: Factory, app: Flask
) -> None:
    member = factory.create_member()
    with app.app_context():
        now = datetime.now(UTC)
        db.session.add(
            Leave(
                member_id=member, starts_at=now - timedelta(days=9), ends_at=now - timedelta(days=8)
            )
        )
        db.session.commit()
    headers = factory.headers(member)
    assert client.get(f"{API}/me/leaves", headers=headers).get_json()["total"] == 0
    past = client.get(f"{API}/me/leaves?include_past=true", headers=headers).get_json()
    assert past["total"] == 1
    bad = client.get(f"{API}/me/leaves?page_size=0", headers=headers)
    assert bad.status_code == 422
