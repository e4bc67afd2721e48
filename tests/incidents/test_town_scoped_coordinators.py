"""A coordinator grant scoped to a town covers the incidents of that town only: an incident of
another town of the branch looks absent to them (as one of another branch does), is not in
their list, and its escalation is not pushed to them; a branch-wide grant covers every town."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Factory
from tests.incidents.conftest import SCENE, Neighbourhood, offers_of, pushes, report


def test_a_town_coordinator_sees_and_handles_the_incidents_of_their_town_only(
    app: Flask, client: FlaskClient, factory: Factory, hood: Neighbourhood
) -> None:
    far = (SCENE[0] + 0.5, SCENE[1])  # 55 km north: nobody of the neighbourhood is in reach
    other_town = factory.create_town("下应街道", *far)
    own = factory.create_member(roles=(("coordinator", "hazard", hood.town),), home=None)
    other = factory.create_member(roles=(("coordinator", "hazard", other_town),), home=None)
    branch_wide = hood.coordinator
    here = report(client, factory, hood.grid_worker, needed=1, town=hood.town)
    # Nobody qualifies out there: escalated at once, its coordinators pushed.
    there = report(client, factory, hood.grid_worker, lat=far[0], lon=far[1], town=other_town)
    assert there["status"] == "escalated", there
    escalated = {r for r, _kind, _status in pushes(app, there["id"], "incident_escalated")}
    assert escalated == {other, branch_wide}

    def get(incident: dict, who: int) -> int:
        url = f"/api/v1/incidents/{incident['id']}"
        return client.get(url, headers=factory.headers(who)).status_code

    def listed(who: int, query: str = "") -> set[int]:
        response = client.get(f"/api/v1/incidents{query}", headers=factory.headers(who))
        assert response.status_code == 200, response.get_json()
        return {i["id"] for i in response.get_json()["items"]}

    assert (get(here, own), get(there, own)) == (200, 404)
    assert (get(here, other), get(there, other)) == (404, 200)
    assert (get(here, branch_wide), get(there, branch_wide)) == (200, 200)
    assert (
        "timeline"
        in client.get(f"/api/v1/incidents/{here['id']}", headers=factory.headers(own)).get_json()
    )
    for query in ("", "?branch=hazard"):
        assert listed(own, query) == {here["id"]}
        assert listed(other, query) == {there["id"]}
        assert listed(branch_wide, query) == {here["id"], there["id"]}

    # Dispatch, cancel and resolve in the other town: nothing there to act on (404).
    chosen = hood.volunteers[7]
    base = f"/api/v1/incidents/{there['id']}"
    headers = factory.headers(own)
    for path, body in (
        ("/dispatch", {"member": chosen}),
        ("/cancel", {"reason": "误报"}),
        ("/resolve", {"outcome": "handled"}),
    ):
        response = client.post(base + path, json=body, headers=headers)
        assert response.status_code == 404, (path, response.get_json())
    # In their own town they dispatch and call it off; the branch-wide coordinator too.
    base = f"/api/v1/incidents/{here['id']}"
    dispatched = client.post(f"{base}/dispatch", json={"member": chosen}, headers=headers)
    assert dispatched.status_code == 201, dispatched.get_json()
    assert chosen in offers_of(app, here["id"])
    refused = client.post(
        f"{base}/dispatch", json={"member": hood.volunteers[6]}, headers=factory.headers(other)
    )
    assert refused.status_code == 404, refused.get_json()
    wide = client.post(
        f"{base}/dispatch",
        json={"member": hood.volunteers[6]},
        headers=factory.headers(branch_wide),
    )
    assert wide.status_code == 201, wide.get_json()
    cancelled = client.post(f"{base}/cancel", json={"reason": "误报"}, headers=headers)
    assert cancelled.status_code == 200, cancelled.get_json()
    closed = client.post(
        f"/api/v1/incidents/{there['id']}/cancel",
        json={"reason": "已处理"},
        headers=factory.headers(branch_wide),
    )
    assert closed.status_code == 200, closed.get_json()
