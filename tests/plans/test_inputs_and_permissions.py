"""Bad input is a 4xx naming the field; other branches' plans look absent (404); a wrong role
is refused (403)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import Factory
from tests.plans.conftest import World, create_plan, next_monday
from volunteer_hub.extensions import db
from volunteer_hub.models.plans import (
    Assignment,
    AssignmentStatus,
    Plan,
    PlanStatus,
    Post,
    PostKind,
    Shift,
    ShiftKind,
)


def _post(world: World, **change: Any) -> dict[str, Any]:
    body = {
        "name": "点",
        "town": world.town,
        "lat": 29.8,
        "lon": 121.5,
        "radius_m": 100,
        "branch": "patrol",
    }
    body.update(change)
    return body


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"lat": float("nan")}, "lat"),
        ({"lat": 91}, "lat"),
        ({"lon": -180.5}, "lon"),
        ({"radius_m": 0}, "radius_m"),
        ({"radius_m": "100"}, "radius_m"),
        ({"town": 2**40}, "town"),
        ({"name": "x" * 101}, "name"),
        ({"branch": "nope"}, "branch"),
        ({"town": 999999}, "town"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_posts_name_the_field(
    client: FlaskClient, factory: Factory, world: World, change: dict[str, Any], field: str
) -> None:
    if "lat" in change and change["lat"] != change["lat"]:
        response = client.post(
            "/api/v1/posts",
            data='{"name":"x","town":1,"lat":NaN,"lon":121.5,"radius_m":100,"branch":"patrol"}',
            content_type="application/json",
            headers=world.coordinator_headers(factory),
        )
    else:
        response = client.post(
            "/api/v1/posts", json=_post(world, **change), headers=world.coordinator_headers(factory)
        )
    assert response.status_code in (400, 422), response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json().get("errors", {}), response.get_json()


def test_shift_inputs(client: FlaskClient, factory: Factory, world: World) -> None:
    headers = world.coordinator_headers(factory)
    start = next_monday()
    plan = create_plan(client, headers, world, start)
    base = {
        "post": world.posts[0],
        "starts_at": f"{start}T08:00:00+08:00",
        "ends_at": f"{start}T12:00:00+08:00",
        "kind": "day",
        "headcount": 2,
    }
    cases = [
        ({"starts_at": f"{start}T08:00:00"}, "shifts.0.starts_at"),
        ({"ends_at": f"{start}T07:00:00+08:00"}, "shifts.0.ends_at"),
        ({"headcount": 0}, "shifts.0.headcount"),
        ({"headcount": 10**9}, "shifts.0.headcount"),
        ({"kind": "evening"}, "shifts.0.kind"),
        ({"post": 2**31}, "shifts.0.post"),
        ({"skills": {"first_aid": -1}}, "shifts.0.skills"),
        ({"post": 999999}, "shifts.0.post"),
        ({"skills": {"juggling": 1}}, "shifts.0.skills"),
        (
            {
                "starts_at": f"{start + timedelta(days=30)}T08:00:00+08:00",
                "ends_at": f"{start + timedelta(days=30)}T12:00:00+08:00",
            },
            "shifts.0.starts_at",
        ),
    ]
    for change, field in cases:
        response = client.post(
            f"/api/v1/plans/{plan}/shifts", json={"shifts": [{**base, **change}]}, headers=headers
        )
        assert response.status_code == 422, (change, response.get_json())
        assert any(key.startswith(field) for key in response.get_json()["errors"]), change
    ok = client.post(f"/api/v1/plans/{plan}/shifts", json={"shifts": [base]}, headers=headers)
    assert ok.status_code == 201


def test_plan_inputs(client: FlaskClient, factory: Factory, world: World) -> None:
    headers = world.coordinator_headers(factory)
    for body, field in [
        (
            {"branch": "patrol", "name": "x", "starts_on": "2026-12-07", "ends_on": "2026-12-01"},
            "ends_on",
        ),
        (
            {"branch": "patrol", "name": "x", "starts_on": "2026-12-07", "ends_on": "2027-12-01"},
            "ends_on",
        ),
        (
            {"branch": "patrol", "name": "x", "starts_on": "yesterday", "ends_on": "2026-12-01"},
            "starts_on",
        ),
        (
            {"branch": "patrol", "name": "", "starts_on": "2026-12-07", "ends_on": "2026-12-08"},
            "name",
        ),
    ]:
        response = client.post("/api/v1/plans", json=body, headers=headers)
        assert response.status_code == 422 and field in response.get_json()["errors"]
    plan = create_plan(client, headers, world, next_monday())
    assert (
        client.post(
            f"/api/v1/plans/{plan}/solve", json={"time_limit_s": 0}, headers=headers
        ).status_code
        == 422
    )
    assert (
        client.post(
            f"/api/v1/plans/{plan}/solve", json={"time_limit_s": 10**6}, headers=headers
        ).status_code
        == 422
    )
    # A plan with no shifts has nothing to solve.
    assert client.post(f"/api/v1/plans/{plan}/solve", json={}, headers=headers).status_code == 409
    for path in (
        "/api/v1/plans/99999999999999999999",
        "/api/v1/plans/2147483648",
        f"/api/v1/plans/{plan}/solve-runs/99999999999",
    ):
        assert client.get(path, headers=headers).status_code == 404
    assert (
        client.get(f"/api/v1/plans/{plan}/assignments?page=0", headers=headers).status_code == 422
    )
    assert (
        client.get(f"/api/v1/plans/{plan}/assignments?member=abc", headers=headers).status_code
        == 422
    )
    me = client.get("/api/v1/me/shifts?from=2026-12-07T00:00:00", headers=headers)
    assert me.status_code == 422 and "from" in me.get_json()["errors"]


def test_other_branches_and_roles(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    headers = world.coordinator_headers(factory)
    plan = create_plan(client, headers, world, next_monday())
    rescue = factory.create_member(
        name="救援协调", branches=("rescue",), roles=(("coordinator", "rescue", None),)
    )
    volunteer = factory.headers(world.volunteers[0])
    secretary = factory.create_member(name="秘书长", roles=(("secretary_general", None, None),))
    no_token = client.get(f"/api/v1/plans/{plan}")
    assert no_token.status_code == 401
    # Another branch's coordinator and a volunteer: the plan looks absent.
    for other in (factory.headers(rescue), volunteer):
        assert client.get(f"/api/v1/plans/{plan}", headers=other).status_code == 404
        assert client.post(f"/api/v1/plans/{plan}/publish", headers=other).status_code == 404
        assert client.post(f"/api/v1/plans/{plan}/solve", json={}, headers=other).status_code == 404
        assert client.get(f"/api/v1/plans/{plan}/assignments", headers=other).status_code == 404
    # The secretary-general sees it but may not change it.
    sg = factory.headers(secretary)
    assert client.get(f"/api/v1/plans/{plan}", headers=sg).status_code == 200
    assert client.post(f"/api/v1/plans/{plan}/publish", headers=sg).status_code == 403
    # Wrong role for creating posts and plans in a branch.
    assert client.post("/api/v1/posts", json=_post(world), headers=volunteer).status_code == 403
    assert (
        client.post(
            "/api/v1/plans",
            json={
                "branch": "patrol",
                "name": "x",
                "starts_on": "2026-12-07",
                "ends_on": "2026-12-08",
            },
            headers=factory.headers(rescue),
        ).status_code
        == 403
    )
    assert client.get("/api/v1/plans", headers=volunteer).status_code == 403
    listed = client.get("/api/v1/plans", headers=factory.headers(rescue)).get_json()
    assert listed["total"] == 0
    # Templates on another branch's post.
    assert (
        client.post(
            f"/api/v1/posts/{world.posts[0]}/templates",
            json={"weekdays": [0], "start": "08:00", "end": "12:00", "kind": "day", "headcount": 1},
            headers=factory.headers(rescue),
        ).status_code
        == 403
    )
    # Someone else's assignment and offer ids look absent.
    assert client.post("/api/v1/assignments/1/accept", headers=volunteer).status_code == 404
    assert (
        client.post(
            "/api/v1/assignments/1/decline", json={"reason": "x"}, headers=volunteer
        ).status_code
        == 404
    )
    assert client.post("/api/v1/slot-offers/1/accept", headers=volunteer).status_code == 404
    assert (
        client.post("/api/v1/assignments/1/decline", json={}, headers=volunteer).status_code == 422
    )


# ---------------------------------------------------------------------- query filters


def _roster_in_two_towns(app: Flask, factory: Factory, world: World, other_town: int) -> int:
    """A draft plan of no town with a shift at a post of each town: world.volunteers[0] on
    both shifts, [1] on the first only; returns the plan id."""
    start = datetime.combine(next_monday(), time(8), UTC)
    with app.app_context():
        other_post = Post(
            branch_id=factory.branch_id("patrol"),
            town_id=other_town,
            name="乙镇巡逻点",
            lat=29.9,
            lon=121.6,
            radius_m=200,
            kind=PostKind.POINT,
        )
        plan = Plan(
            branch_id=factory.branch_id("patrol"),
            name="两镇",
            starts_on=start.date(),
            ends_on=start.date() + timedelta(days=6),
            status=PlanStatus.DRAFT,
        )
        db.session.add_all([other_post, plan])
        db.session.flush()
        for day, post in enumerate((world.posts[0], other_post.id)):
            starts_at = start + timedelta(days=day)
            shift = Shift(
                plan_id=plan.id,
                post_id=post,
                starts_at=starts_at,
                ends_at=starts_at + timedelta(hours=4),
                kind=ShiftKind.DAY,
                headcount=2,
                skills={},
            )
            db.session.add(shift)
            db.session.flush()
            for member in world.volunteers[: 2 - day]:
                db.session.add(
                    Assignment(
                        plan_id=plan.id,
                        shift_id=shift.id,
                        member_id=member,
                        status=AssignmentStatus.PROPOSED,
                        starts_at=shift.starts_at,
                        ends_at=shift.ends_at,
                    )
                )
        db.session.commit()
        return plan.id


def test_posts_and_the_roster_filter_by_id_from_the_query_string(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """GET /posts?town= and the roster's shift, town and member filters take the ids as the
    query string carries them (text), and answer the matching rows."""
    headers = world.coordinator_headers(factory)
    other_town = factory.create_town("乙镇")
    other = client.post("/api/v1/posts", json=_post(world, town=other_town), headers=headers)
    assert other.status_code == 201, other.get_json()
    posts = client.get(f"/api/v1/posts?town={other_town}", headers=headers)
    assert posts.status_code == 200, posts.get_json()
    assert [post["id"] for post in posts.get_json()["items"]] == [other.get_json()["id"]]
    plan = _roster_in_two_towns(app, factory, world, other_town)
    url = f"/api/v1/plans/{plan}/assignments"
    everyone = client.get(url, headers=headers).get_json()["items"]
    assert len(everyone) == 3
    first_shift = everyone[0]["shift"]["id"]

    def rows(query: str) -> list[tuple[int, int]]:
        response = client.get(f"{url}?{query}", headers=headers)
        assert response.status_code == 200, (query, response.get_json())
        return [
            (item["shift"]["id"], item["member"]["id"]) for item in response.get_json()["items"]
        ]

    first, second = world.volunteers[:2]
    assert rows(f"shift={first_shift}") == [(first_shift, first), (first_shift, second)]
    assert [member for _, member in rows(f"member={second}")] == [second]
    assert rows(f"town={other_town}") == [(everyone[2]["shift"]["id"], first)]
    assert rows(f"town={world.town}&member={first}") == [(first_shift, first)]
    for bad in ("abc", "0", "-1", "1.5", "1_0", "%201", str(2**31), "99999999999999999999"):
        for path in (f"/api/v1/posts?town={bad}", f"{url}?town={bad}", f"{url}?member={bad}"):
            response = client.get(path, headers=headers)
            assert response.status_code == 422, (path, response.get_json())
        assert client.get(f"{url}?shift={bad}", headers=headers).status_code == 422, bad
