"""A grid worker's report to credited minutes, through the real outbox drain and a fake FCM."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from notifications.fakefcm import FakeFcm
from notifications.fcm import FcmSender
from tests.conftest import Factory
from tests.incidents.conftest import SCENE, Neighbourhood, offers_of, pushes, report
from volunteer_hub.extensions import db
from volunteer_hub.models import AuditLog
from volunteer_hub.models.attendance import HoursEntry, HoursKind
from volunteer_hub.models.incidents import Offer
from volunteer_hub.models.notifications import Device, Platform
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import delivery


@pytest.fixture(scope="module")
def fcm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeFcm, FcmSender]]:
    fake = FakeFcm(log=io.StringIO(), project_id="vh-incidents")
    fake.start()
    path: Path = tmp_path_factory.mktemp("fcm") / "sa.json"
    fake.write_service_account(path)
    sender = FcmSender(path, endpoint=fake.base_url, timeout_s=5)
    yield fake, sender
    sender.close()
    fake.stop()


def _register_phones(app: Flask, member_ids: list[int]) -> dict[str, int]:
    with app.app_context():
        tokens = {f"phone-{member_id}": member_id for member_id in member_ids}
        db.session.add_all(
            Device(member_id=member_id, token=token, platform=Platform.ANDROID)
            for token, member_id in tokens.items()
        )
        db.session.commit()
    return tokens


def _drain(app: Flask, sender: FcmSender) -> None:
    with app.app_context():
        delivery.drain(db.session(), sender, worker_id="test-worker")
        db.session.remove()


def test_report_offers_to_nearest_accept_staffed_resolve_credits_minutes(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    hood: Neighbourhood,
    fcm: tuple[FakeFcm, FcmSender],
) -> None:
    fake, sender = fcm
    fake.reset()
    # Someone nearer than everyone but without first aid, and one far outside every radius.
    unskilled = factory.create_member(
        branches=("hazard",), skills=("driving",), home=(SCENE[0] + 0.0001, SCENE[1])
    )
    far = factory.create_member(branches=("hazard",), skills=("first_aid",), home=(31.2, 121.5))
    tokens = _register_phones(app, [*hood.volunteers, unskilled, far, hood.coordinator])

    incident = report(client, factory, hood.grid_worker, needed=2)
    assert incident["status"] == "dispatching"
    assert incident["wave"] == 1

    # needed x 3 = six offers, to the six nearest qualified volunteers, nearest first.
    offers = offers_of(app, incident["id"])
    assert set(offers) == set(hood.volunteers[:6])
    assert [offers[m]["distance_m"] for m in hood.volunteers[:6]] == [
        100,
        200,
        300,
        400,
        500,
        600,
    ]
    assert {r for r, kind, _ in pushes(app, incident["id"], "incident_offer")} == set(
        hood.volunteers[:6]
    )

    _drain(app, sender)
    delivered = [m for m in fake.messages() if m["message"]["data"]["kind"] == "incident_offer"]
    assert sorted(tokens[m["token"]] for m in delivered) == sorted(hood.volunteers[:6])
    assert all(m["message"]["android"]["priority"] == "high" for m in delivered)
    assert delivered[0]["message"]["data"]["incident_id"] == str(incident["id"])

    # The two nearest accept; the second staffs the incident.
    first, second = hood.volunteers[0], hood.volunteers[1]
    for member in (first, second):
        mine = client.get("/api/v1/me/offers", headers=factory.headers(member)).get_json()
        assert [o["incident"] for o in mine["items"]] == [incident["id"]]
        accepted = client.post(
            f"/api/v1/offers/{mine['items'][0]['id']}/accept", headers=factory.headers(member)
        )
        assert accepted.status_code == 200, accepted.get_json()
        assert accepted.get_json()["status"] == "accepted"

    shown = client.get(
        f"/api/v1/incidents/{incident['id']}", headers=factory.headers(hood.grid_worker)
    ).get_json()
    assert shown["status"] == "staffed"
    assert shown["accepted"] == 2
    statuses = {o["member"]["id"]: o["status"] for o in shown["offers"]}
    assert statuses[first] == statuses[second] == "accepted"
    assert {statuses[m] for m in hood.volunteers[2:6]} == {"withdrawn"}

    # A latecomer is told it is staffed; the four withdrawn phones got a withdrawal push.
    late = offers_of(app, incident["id"])[hood.volunteers[2]]["id"]
    refused = client.post(
        f"/api/v1/offers/{late}/accept", headers=factory.headers(hood.volunteers[2])
    )
    assert refused.status_code == 409
    assert refused.get_json()["reason"] == "staffed"
    _drain(app, sender)
    withdrawn = [m for m in fake.messages() if m["message"]["data"]["kind"] == "offer_withdrawn"]
    assert sorted(tokens[m["token"]] for m in withdrawn) == sorted(hood.volunteers[2:6])

    # Both arrive; pretend they have been on the scene for 45 and 30 minutes.
    for member in (first, second):
        arrived = client.post(
            f"/api/v1/incidents/{incident['id']}/arrive",
            json={"lat": SCENE[0] + 0.0002, "lon": SCENE[1]},
            headers=factory.headers(member),
        )
        assert arrived.status_code == 200, arrived.get_json()
        assert arrived.get_json()["arrived_at"] is not None
    with app.app_context():
        for member, minutes in ((first, 45), (second, 30)):
            db.session.execute(
                update(Offer)
                .where(Offer.incident_id == incident["id"], Offer.member_id == member)
                .values(arrived_at=utcnow() - timedelta(minutes=minutes, seconds=20))
            )
        db.session.commit()

    resolved = client.post(
        f"/api/v1/incidents/{incident['id']}/resolve",
        json={"outcome": "handled", "note": "关闭阀门，已通知燃气公司"},
        headers=factory.headers(first),
    )
    assert resolved.status_code == 200, resolved.get_json()
    assert resolved.get_json()["status"] == "resolved"
    with app.app_context():
        entries = db.session.scalars(
            select(HoursEntry).where(HoursEntry.incident_id == incident["id"])
        ).all()
        credited = {e.member_id: (e.kind, e.minutes, e.turns) for e in entries}
        assert credited == {
            first: (HoursKind.INCIDENT, 45, 1),
            second: (HoursKind.INCIDENT, 30, 1),
        }
        actions = db.session.scalars(
            select(AuditLog.action)
            .where(AuditLog.object_type == "incident", AuditLog.object_id == incident["id"])
            .order_by(AuditLog.id)
        ).all()
    assert actions == [
        "incident.reported",
        "incident.wave",
        "incident.offer_accepted",
        "incident.staffed",
        "incident.arrived",
        "incident.arrived",
        "incident.resolved",
    ]
