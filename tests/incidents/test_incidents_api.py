"""Input validation, permissions and the coordinator's tools."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from tests.conftest import Factory
from tests.incidents.conftest import (
    SCENE,
    Neighbourhood,
    offers_of,
    pushes,
    report,
    report_body,
)
from volunteer_hub.extensions import db
from volunteer_hub.models.incidents import Offer
from volunteer_hub.models.notifications import OutboxMessage


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lat": 90.5}, "lat"),
        ({"lon": -180.01}, "lon"),
        ({"lat": "29.8"}, "lat"),
        ({"needed": 0}, "needed"),
        ({"needed": 51}, "needed"),
        ({"needed": 2.5}, "needed"),
        ({"needed": True}, "needed"),
        ({"kind": ""}, "kind"),
        ({"kind": "x" * 41}, "kind"),
        ({"skills": ["nope"]}, "skills"),
        ({"skills": "first_aid"}, "skills"),
        ({"branch": "nope"}, "branch"),
        ({"urgency": "extreme"}, "urgency"),
        ({"town": 2**40}, "town"),
        ({"town": 999_999}, "town"),
        ({"colour": "red"}, "colour"),
        ({"description": "x" * 2001}, "description"),
    ],
)
def test_bad_reports_name_the_field(
    client: FlaskClient, factory: Factory, hood: Neighbourhood, change: dict, field: str
) -> None:
    response = client.post(
        "/api/v1/incidents",
        json=report_body(**change),
        headers=factory.headers(hood.grid_worker),
    )
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_positions_are_refused(
    client: FlaskClient, factory: Factory, hood: Neighbourhood, literal: str
) -> None:
    body = json.dumps(report_body()).replace(f"{SCENE[0]}", literal)
    response = client.post(
        "/api/v1/incidents",
        data=body,
        content_type="application/json",
        headers=factory.headers(hood.grid_worker),
    )
    assert response.status_code == 422
    assert "lat" in response.get_json()["errors"]


def test_missing_fields_and_no_token(client: FlaskClient, factory: Factory, hood: Neighbourhood):
    response = client.post("/api/v1/incidents", json={}, headers=factory.headers(hood.grid_worker))
    assert response.status_code == 422
    assert {"kind", "branch", "lat", "lon", "needed"} <= set(response.get_json()["errors"])
    assert client.post("/api/v1/incidents", json=report_body()).status_code == 401


def test_who_may_report(client: FlaskClient, factory: Factory, hood: Neighbourhood) -> None:
    volunteer = hood.volunteers[0]
    patrol_grid_worker = factory.create_member(
        branches=("patrol",), roles=(("grid_worker", "patrol", None),)
    )
    squad_leader = factory.create_member(
        branches=("hazard",), roles=(("squad_leader", "hazard", hood.town),)
    )
    secretary = factory.create_member(roles=(("secretary_general", None, None),))
    for member, expected in (
        (volunteer, 403),
        (patrol_grid_worker, 403),
        (squad_leader, 201),
        (hood.coordinator, 201),
        (secretary, 201),
    ):
        response = client.post(
            "/api/v1/incidents", json=report_body(), headers=factory.headers(member)
        )
        assert response.status_code == expected, (member, response.get_json())


def test_who_may_see_an_incident(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, needed=1)
    url = f"/api/v1/incidents/{incident['id']}"
    stranger = factory.create_member(branches=("hazard",), skills=("first_aid",), home=None)
    other_coordinator = factory.create_member(roles=(("coordinator", "patrol", None),))
    for member in (stranger, other_coordinator, hood.volunteers[7]):
        assert client.get(url, headers=factory.headers(member)).status_code == 404

    offered = client.get(url, headers=factory.headers(hood.volunteers[0])).get_json()
    assert [o["member"]["id"] for o in offered["offers"]] == [hood.volunteers[0]]
    assert "timeline" not in offered
    coordinator_view = client.get(url, headers=factory.headers(hood.coordinator)).get_json()
    assert len(coordinator_view["offers"]) == 3
    assert [t["action"] for t in coordinator_view["timeline"]] == [
        "incident.reported",
        "incident.wave",
    ]
    for bad in (
        "/api/v1/incidents/99999",
        "/api/v1/incidents/99999999999999",
        "/api/v1/incidents/0",
    ):
        assert client.get(bad, headers=factory.headers(hood.coordinator)).status_code == 404


def test_offers_belong_to_their_volunteer(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, needed=1)
    offers = offers_of(app, incident["id"])
    mine = offers[hood.volunteers[0]]["id"]
    intruder = factory.headers(hood.volunteers[1])
    assert client.post(f"/api/v1/offers/{mine}/accept", headers=intruder).status_code == 404
    assert client.post(f"/api/v1/offers/{mine}/decline", headers=intruder).status_code == 404
    coordinator = factory.headers(hood.coordinator)
    assert client.post(f"/api/v1/offers/{mine}/accept", headers=coordinator).status_code == 404
    assert client.post("/api/v1/offers/2147483648/accept", headers=intruder).status_code == 404
    listing = client.get("/api/v1/me/offers", headers=intruder).get_json()
    assert [o["id"] for o in listing["items"]] == [offers[hood.volunteers[1]]["id"]]
    assert listing["items"][0]["incident_summary"]["kind"] == "hazard"
    assert client.get("/api/v1/me/offers?page_size=501", headers=intruder).status_code == 422


def test_listing_is_scoped_to_coordinated_branches(
    client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    hazard = report(client, factory, hood.grid_worker, needed=1)
    patrol_coordinator = factory.create_member(
        branches=("patrol",), roles=(("coordinator", "patrol", None),), home=None
    )
    report(client, factory, patrol_coordinator, branch="patrol", skills=[])
    secretary = factory.create_member(roles=(("secretary_general", None, None),))

    own = client.get("/api/v1/incidents", headers=factory.headers(hood.coordinator)).get_json()
    assert [i["id"] for i in own["items"]] == [hazard["id"]]
    assert own["items"][0]["branch"] == "hazard"
    everything = client.get("/api/v1/incidents", headers=factory.headers(secretary)).get_json()
    assert everything["total"] == 2
    escalated = client.get(
        "/api/v1/incidents?status=escalated", headers=factory.headers(secretary)
    ).get_json()
    assert [i["branch"] for i in escalated["items"]] == ["patrol"]

    headers = factory.headers(hood.coordinator)
    assert client.get("/api/v1/incidents?branch=patrol", headers=headers).status_code == 403
    assert client.get("/api/v1/incidents?status=lost", headers=headers).status_code == 422
    assert client.get("/api/v1/incidents?branch=nope", headers=headers).status_code == 422
    volunteer = factory.headers(hood.volunteers[0])
    assert client.get("/api/v1/incidents", headers=volunteer).status_code == 403


def test_coordinator_dispatches_a_named_volunteer(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, needed=1)
    url = f"/api/v1/incidents/{incident['id']}/dispatch"
    chosen = hood.volunteers[7]
    coordinator = factory.headers(hood.coordinator)
    response = client.post(url, json={"member": chosen}, headers=coordinator)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["dispatched_by"] == hood.coordinator
    assert (chosen, "incident_offer", "pending") in pushes(app, incident["id"])

    again = client.post(url, json={"member": chosen}, headers=coordinator)
    assert again.status_code == 409
    outsider = factory.create_member(branches=("patrol",))
    bad = client.post(url, json={"member": outsider}, headers=coordinator)
    assert bad.status_code == 422 and "member" in bad.get_json()["errors"]
    for value in (2**40, 0, "7", None):
        bad = client.post(url, json={"member": value}, headers=coordinator)
        assert bad.status_code == 422, value
    # An offered volunteer sees the incident but may not dispatch; a stranger sees nothing.
    offered = factory.headers(hood.volunteers[0])
    assert client.post(url, json={"member": chosen}, headers=offered).status_code == 403
    stranger = factory.headers(factory.create_member(branches=("hazard",)))
    assert client.post(url, json={"member": chosen}, headers=stranger).status_code == 404


def test_cancel_withdraws_offers_and_tells_responders(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, needed=2)
    offers = offers_of(app, incident["id"])
    responder = hood.volunteers[0]
    client.post(
        f"/api/v1/offers/{offers[responder]['id']}/accept", headers=factory.headers(responder)
    )
    url = f"/api/v1/incidents/{incident['id']}/cancel"
    assert (
        client.post(url, json={"reason": "误报"}, headers=factory.headers(responder)).status_code
        == 403
    )
    assert client.post(url, json={}, headers=factory.headers(hood.coordinator)).status_code == 422
    response = client.post(url, json={"reason": "误报"}, headers=factory.headers(hood.coordinator))
    assert response.status_code == 200
    assert response.get_json()["status"] == "cancelled"
    final = offers_of(app, incident["id"])
    assert final[responder]["status"] == "accepted"
    assert {o["status"] for m, o in final.items() if m != responder} == {"withdrawn"}
    assert (responder, "offer_withdrawn", "pending") in pushes(app, incident["id"])
    again = client.post(url, json={"reason": "x"}, headers=factory.headers(hood.coordinator))
    assert again.status_code == 409
    resolve = client.post(
        f"/api/v1/incidents/{incident['id']}/resolve",
        json={"outcome": "handled"},
        headers=factory.headers(hood.coordinator),
    )
    assert resolve.status_code == 409


def test_arrive_and_resolve_rules(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    incident = report(client, factory, hood.grid_worker, needed=2)
    offers = offers_of(app, incident["id"])
    responder, bystander = hood.volunteers[0], hood.volunteers[1]
    client.post(
        f"/api/v1/offers/{offers[responder]['id']}/accept", headers=factory.headers(responder)
    )
    arrive = f"/api/v1/incidents/{incident['id']}/arrive"
    near = {"lat": SCENE[0], "lon": SCENE[1] + 0.001}
    assert client.post(arrive, json=near, headers=factory.headers(bystander)).status_code == 403
    far = client.post(arrive, json={"lat": 29.9, "lon": 121.6}, headers=factory.headers(responder))
    assert far.status_code == 422 and "lat" in far.get_json()["errors"]
    for body in ({"lat": 91, "lon": 0}, {"lat": 0}, {"lat": 0, "lon": 0, "x": 1}):
        assert client.post(arrive, json=body, headers=factory.headers(responder)).status_code == 422
    assert client.post(arrive, json=near, headers=factory.headers(responder)).status_code == 200
    moved = client.post(
        arrive, json={"lat": SCENE[0], "lon": SCENE[1]}, headers=factory.headers(responder)
    )
    assert moved.get_json()["arrived_lon"] == SCENE[1]

    resolve = f"/api/v1/incidents/{incident['id']}/resolve"
    assert (
        client.post(
            resolve, json={"outcome": "handled"}, headers=factory.headers(bystander)
        ).status_code
        == 403
    )
    wrong = client.post(
        resolve, json={"outcome": "settled_on_site"}, headers=factory.headers(responder)
    )
    assert wrong.status_code == 422 and "outcome" in wrong.get_json()["errors"]
    ok = client.post(resolve, json={"outcome": "handled"}, headers=factory.headers(responder))
    assert ok.status_code == 200
    assert ok.get_json()["outcome"] == "handled"
    assert {o["status"] for m, o in offers_of(app, incident["id"]).items() if m != responder} == {
        "withdrawn"
    }


def test_mediation_outcomes(client: FlaskClient, factory: Factory) -> None:
    town = factory.create_town("首南街道", *SCENE)
    coordinator = factory.create_member(
        branches=("mediation",), roles=(("coordinator", "mediation", None),), home=None
    )
    factory.create_member(branches=("mediation",), skills=("mediation",), home=SCENE, town_id=town)
    incident = report(
        client,
        factory,
        coordinator,
        kind="dispute",
        branch="mediation",
        needed=1,
        skills=["mediation"],
    )
    assert incident["town"] == town  # the nearest town, when none is given
    resolve = f"/api/v1/incidents/{incident['id']}/resolve"
    headers = factory.headers(coordinator)
    assert client.post(resolve, json={"outcome": "handled"}, headers=headers).status_code == 422
    done = client.post(resolve, json={"outcome": "settled_on_site"}, headers=headers)
    assert done.status_code == 200
    assert done.get_json()["outcome"] == "settled_on_site"


def test_an_offer_says_when_to_answer_by_in_the_configured_zone(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    hood: Neighbourhood,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "HUB_TIMEZONE", "Asia/Urumqi")  # UTC+6, not the default
    incident = report(client, factory, hood.grid_worker, needed=1)
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.params, Offer.expires_at)
            .join(Offer, Offer.member_id == OutboxMessage.recipient_id)
            .where(
                OutboxMessage.incident_id == incident["id"],
                OutboxMessage.kind == "incident_offer",
                Offer.incident_id == incident["id"],
            )
        ).all()
    assert rows
    for params, expires_at in rows:
        local = expires_at.astimezone(ZoneInfo("Asia/Urumqi"))
        assert params["respond_by"] == local.strftime("%H:%M")
