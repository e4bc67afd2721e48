"""A coordinator grant scoped to a town covers the posts and plans of that town only: a plan
or post of another town of the branch looks absent (a plan, 404) or is not theirs to change (a
post, which every member sees: 403), and a plan of the whole branch (no town) is the
branch-wide coordinators'; a branch-wide grant covers every town."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.conftest import Factory
from tests.plans.conftest import World, next_monday

TEMPLATE = {"weekdays": [0], "start": "08:00", "end": "12:00", "kind": "day", "headcount": 1}


def _post(town: int) -> dict[str, Any]:
    return {
        "name": "巡逻点",
        "town": town,
        "lat": 29.83,
        "lon": 121.56,
        "radius_m": 200,
        "branch": "patrol",
    }


def _plan(town: int | None) -> dict[str, Any]:
    start = next_monday()
    body: dict[str, Any] = {
        "branch": "patrol",
        "name": "一周巡逻",
        "starts_on": start.isoformat(),
        "ends_on": (start + timedelta(days=6)).isoformat(),
    }
    return body | ({"town": town} if town is not None else {})


def _shift(post: int) -> dict[str, Any]:
    start = next_monday()
    return {
        "shifts": [
            {
                "post": post,
                "starts_at": f"{start}T08:00:00+08:00",
                "ends_at": f"{start}T12:00:00+08:00",
                "kind": "day",
                "headcount": 1,
            }
        ]
    }


def test_a_town_coordinator_manages_the_posts_and_plans_of_their_town_only(
    client: FlaskClient, factory: Factory, world: World
) -> None:
    other_town = factory.create_town("下应街道")
    branch_wide = world.coordinator_headers(factory)
    own = factory.headers(factory.create_member(roles=(("coordinator", "patrol", world.town),)))
    other = factory.headers(factory.create_member(roles=(("coordinator", "patrol", other_town),)))

    def made(path: str, body: dict[str, Any], headers: dict[str, str]) -> int:
        response = client.post(f"/api/v1{path}", json=body, headers=headers)
        assert response.status_code == 201, response.get_json()
        return int(response.get_json()["id"])

    # Posts: each town's coordinator adds them in their own town only.
    own_post = made("/posts", _post(world.town), own)
    other_post = made("/posts", _post(other_town), other)
    assert client.post("/api/v1/posts", json=_post(other_town), headers=own).status_code == 403
    assert client.post("/api/v1/posts", json=_post(world.town), headers=other).status_code == 403
    made("/posts", _post(other_town), branch_wide)
    # Templates at a post: posts are public, so another town's is seen but refused (403).
    templates = f"/api/v1/posts/{other_post}/templates"
    assert client.post(templates, json=TEMPLATE, headers=own).status_code == 403
    assert client.post(templates, json=TEMPLATE, headers=other).status_code == 201
    assert client.post(templates, json=TEMPLATE, headers=branch_wide).status_code == 201
    assert (
        client.post(f"/api/v1/posts/{own_post}/templates", json=TEMPLATE, headers=own).status_code
        == 201
    )

    # Plans: of their town only; a plan of the whole branch is the branch-wide coordinators'.
    own_plan = made("/plans", _plan(world.town), own)
    other_plan = made("/plans", _plan(other_town), other)
    assert client.post("/api/v1/plans", json=_plan(other_town), headers=own).status_code == 403
    assert client.post("/api/v1/plans", json=_plan(None), headers=own).status_code == 403
    whole_plan = made("/plans", _plan(None), branch_wide)
    for plan in (other_plan, whole_plan):
        base = f"/api/v1/plans/{plan}"
        assert client.get(base, headers=own).status_code == 404
        assert client.get(f"{base}/shifts", headers=own).status_code == 404
        assert client.get(f"{base}/assignments", headers=own).status_code == 404
        assert client.post(f"{base}/shifts", json=_shift(other_post), headers=own).status_code == (
            404
        )
        assert client.post(f"{base}/solve", json={}, headers=own).status_code == 404
        assert client.post(f"{base}/publish", headers=own).status_code == 404
    added = client.post(f"/api/v1/plans/{own_plan}/shifts", json=_shift(own_post), headers=own)
    assert added.status_code == 201, added.get_json()
    assert client.get(f"/api/v1/plans/{own_plan}/assignments", headers=own).status_code == 200
    assert client.get(f"/api/v1/plans/{own_plan}", headers=other).status_code == 404
    listed = client.get("/api/v1/plans", headers=own).get_json()
    assert {p["id"] for p in listed["items"]} == {own_plan}
    # The branch-wide coordinator sees and changes every one of them.
    everything = client.get("/api/v1/plans?page_size=100", headers=branch_wide).get_json()
    assert {own_plan, other_plan, whole_plan} <= {p["id"] for p in everything["items"]}
    for plan, post in ((own_plan, own_post), (other_plan, other_post)):
        response = client.post(
            f"/api/v1/plans/{plan}/shifts", json=_shift(post), headers=branch_wide
        )
        assert response.status_code == 201, response.get_json()
    assert client.get(f"/api/v1/plans/{whole_plan}", headers=branch_wide).status_code == 200


@pytest.mark.parametrize("whole_branch", [False, True])
def test_a_town_coordinator_sees_the_swap_requests_of_their_towns_plans_only(
    client: FlaskClient, factory: Factory, world: World, whole_branch: bool
) -> None:
    """A swap request is seen by its two volunteers and by the coordinators who see its plan:
    of the plan's town (a plan of the whole branch: branch-wide coordinators only)."""
    a, b = world.volunteers[:2]
    branch_wide = world.coordinator_headers(factory)
    own = factory.headers(factory.create_member(roles=(("coordinator", "patrol", world.town),)))
    other_town = factory.create_town("下应街道")
    other = factory.headers(factory.create_member(roles=(("coordinator", "patrol", other_town),)))
    plan = client.post(
        "/api/v1/plans", json=_plan(None if whole_branch else world.town), headers=branch_wide
    ).get_json()["id"]
    added = client.post(
        f"/api/v1/plans/{plan}/shifts", json=_shift(world.posts[0]), headers=branch_wide
    )
    assert added.status_code == 201, added.get_json()
    assignment = client.post(
        f"/api/v1/plans/{plan}/assignments",
        json={"member": a, "shift": added.get_json()[0]["id"]},
        headers=branch_wide,
    )
    assert assignment.status_code == 201, assignment.get_json()
    published = client.post(f"/api/v1/plans/{plan}/publish", headers=branch_wide)
    assert published.status_code == 200, published.get_json()
    proposed = client.post(
        f"/api/v1/assignments/{assignment.get_json()['id']}/swap-requests",
        json={"member": b},
        headers=factory.headers(a),
    )
    assert proposed.status_code == 201, proposed.get_json()
    path = f"/api/v1/swap-requests/{proposed.get_json()['id']}"
    assert client.get(path, headers=branch_wide).status_code == 200
    assert client.get(path, headers=other).status_code == 404
    assert client.get(path, headers=own).status_code == (404 if whole_branch else 200)
    assert client.get(path, headers=factory.headers(b)).status_code == 200
    for action in ("accept", "decline", "cancel"):  # looking is all a coordinator may do
        assert client.post(f"{path}/{action}", headers=own).status_code == 404
