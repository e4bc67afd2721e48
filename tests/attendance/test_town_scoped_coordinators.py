"""A coordinator grant scoped to a town covers that town only: the attendance of posts in
another town of the branch is not theirs to see or correct; a branch-wide grant covers all."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient

from tests.attendance.conftest import World, iso
from tests.conftest import Factory
from volunteer_hub.models.types import utcnow


def test_a_town_coordinator_corrects_attendance_in_their_town_only(
    client: FlaskClient, factory: Factory, world: World
) -> None:
    town, other_town = factory.create_town("首南街道"), factory.create_town("下应街道")
    own = factory.create_member(roles=(("coordinator", "patrol", town),))
    other = factory.create_member(roles=(("coordinator", "patrol", other_town),))
    branch_wide = factory.create_member(roles=(("coordinator", "patrol", None),))
    volunteer = factory.create_member(town_id=town)
    now = utcnow()
    starts, ends = now - timedelta(hours=5), now - timedelta(hours=1)
    assignment = world.assignment(
        volunteer, post_id=world.post(town_id=town), starts_at=starts, ends_at=ends
    )
    url = f"/api/v1/assignments/{assignment}/attendance/correction"
    body = {"check_in_at": iso(starts), "check_out_at": iso(ends), "reason": "忘记签到"}
    refused = client.post(url, json=body, headers=factory.headers(other))
    assert refused.status_code == 404, refused.get_json()  # not theirs: it looks absent
    seen = client.get(
        f"/api/v1/assignments/{assignment}/attendance", headers=factory.headers(other)
    )
    assert seen.status_code == 404, seen.get_json()
    corrected = client.post(url, json=body, headers=factory.headers(own))
    assert corrected.status_code == 200, corrected.get_json()
    again = client.post(
        url, json={**body, "reason": "再改一次"}, headers=factory.headers(branch_wide)
    )
    assert again.status_code == 200, again.get_json()


def test_a_town_coordinator_awards_and_reverses_hours_in_their_town_only(
    client: FlaskClient, factory: Factory
) -> None:
    town, other_town = factory.create_town("首南街道"), factory.create_town("下应街道")
    own = factory.create_member(roles=(("coordinator", "patrol", town),))
    other = factory.create_member(roles=(("coordinator", "patrol", other_town),))
    volunteer = factory.create_member(town_id=town)
    award = {
        "member": volunteer,
        "branch": "patrol",
        "minutes": 90,
        "occurred_at": iso(utcnow() - timedelta(days=1)),
        "reason": "信访局值班",
    }
    # The entry's town is the volunteer's when none is given.
    refused = client.post("/api/v1/hours/manual", json=award, headers=factory.headers(other))
    assert refused.status_code == 403, refused.get_json()
    elsewhere = client.post(
        "/api/v1/hours/manual", json={**award, "town": town}, headers=factory.headers(other)
    )
    assert elsewhere.status_code == 403, elsewhere.get_json()
    awarded = client.post("/api/v1/hours/manual", json=award, headers=factory.headers(own))
    assert awarded.status_code == 201, awarded.get_json()
    assert awarded.get_json()["town"] == town
    entry = awarded.get_json()["id"]
    # The other town's coordinator's own-town award for the volunteer is theirs to make.
    theirs = client.post(
        "/api/v1/hours/manual",
        json={**award, "town": other_town},
        headers=factory.headers(other),
    )
    assert theirs.status_code == 201, theirs.get_json()

    reverse = f"/api/v1/hours/{entry}/reverse"
    hidden = client.post(reverse, json={"reason": "录错"}, headers=factory.headers(other))
    assert hidden.status_code == 404, hidden.get_json()
    reversed_ = client.post(reverse, json={"reason": "录错"}, headers=factory.headers(own))
    assert reversed_.status_code == 201, reversed_.get_json()
