"""An entry that corrects or reverses another counts where that entry counts: in its branch,
town and squad as written, even when (branch, town) has gained a squad since. Otherwise a
report by squad shows the entry under （未归属） and its correction or reversal in the new
squad, two rows where there should be one (or none)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from flask.testing import FlaskClient

from tests.attendance.conftest import World, iso, tap
from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models.attendance import HoursEntry, HoursKind
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import attendance, hours

SH = ZoneInfo("Asia/Shanghai")


def by_squad(client: FlaskClient, factory: Factory) -> dict:
    sg = factory.create_member(name="秘书长", roles=(("secretary_general", None, None),))
    response = client.get(
        "/api/v1/reports/hours", query_string={"group_by": "squad"}, headers=factory.headers(sg)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_reversal_cancels_its_entry_in_the_squad_the_entry_counted_in(
    client: FlaskClient, factory: Factory, world: World
) -> None:
    town = factory.create_town("新镇")
    coordinator = factory.create_member(name="协调员", roles=(("coordinator", "patrol", None),))
    member = factory.create_member(name="赵六", town_id=town)
    award = client.post(
        "/api/v1/hours/manual",
        json={
            "member": member,
            "branch": "patrol",
            "town": town,
            "minutes": 120,
            "occurred_at": "2026-03-03T09:00:00+08:00",
            "reason": "值班",
        },
        headers=factory.headers(coordinator),
    )
    assert award.status_code == 201, award.get_json()
    assert award.get_json()["squad"] is None
    factory.create_squad("patrol", town)  # the town gets a patrol squad afterwards
    reversal = client.post(
        f"/api/v1/hours/{award.get_json()['id']}/reverse",
        json={"reason": "录错"},
        headers=factory.headers(coordinator),
    )
    assert reversal.status_code == 201, reversal.get_json()
    assert (reversal.get_json()["town"], reversal.get_json()["squad"]) == (town, None)
    body = by_squad(client, factory)
    assert (body["rows"], body["total_minutes"], body["turns"]) == ([], 0, 0)


def test_a_leaders_correction_counts_in_the_squad_of_the_credit(
    client: FlaskClient, factory: Factory, world: World
) -> None:
    town = factory.create_town("新镇")
    coordinator = factory.create_member(name="协调员", roles=(("coordinator", "patrol", None),))
    volunteer = factory.create_member(name="王小明", town_id=town)
    now = utcnow()
    starts, ends = now - timedelta(hours=5), now - timedelta(hours=1)
    assignment = world.assignment(
        volunteer, post_id=world.post(town_id=town), starts_at=starts, ends_at=ends
    )
    assert tap(client, factory.headers(volunteer), assignment, client_time=iso(starts)).status_code
    url = f"/api/v1/assignments/{assignment}/attendance/correction"
    headers = factory.headers(coordinator)
    early = {"check_out_at": iso(ends - timedelta(hours=1)), "reason": "手机没电"}
    assert client.post(url, json=early, headers=headers).status_code == 200
    factory.create_squad("patrol", town)
    full = {"check_out_at": iso(ends), "reason": "实际到班次结束"}
    assert client.post(url, json=full, headers=headers).status_code == 200
    entries = world.rows(HoursEntry)
    assert [(e.kind, e.minutes, e.squad_id) for e in entries] == [
        (HoursKind.ATTENDANCE, 180, None),
        (HoursKind.CORRECTION, 60, None),
    ]
    body = by_squad(client, factory)
    assert [(r["key"], r["minutes"], r["turns"]) for r in body["rows"]] == [("none", 240, 1)]


def test_a_check_out_synced_after_the_sweep_corrects_in_the_squad_of_the_credit(
    app: Flask, client: FlaskClient, factory: Factory, world: World
) -> None:
    """The sweep credits a forgotten check-out; a squad is formed for the post's town; then the
    phone syncs its offline check-out and the credit is corrected: under the credit's squad."""
    town = factory.create_town("新镇")
    volunteer = factory.create_member(name="王小明", town_id=town)
    now = utcnow()
    starts, ends = now - timedelta(hours=5), now - timedelta(hours=3)
    assignment = world.assignment(
        volunteer, post_id=world.post(town_id=town), starts_at=starts, ends_at=ends
    )
    headers = factory.headers(volunteer)
    assert tap(client, headers, assignment, client_time=iso(starts)).status_code == 201
    with app.app_context():
        rules = attendance.Rules.from_config(app.config)
        assert attendance.close_forgotten(db.session(), now=now, rules=rules) == 1
    factory.create_squad("patrol", town)
    left = iso(ends - timedelta(hours=1))
    synced = tap(client, headers, assignment, action="check-out", client_time=left)
    assert synced.status_code == 200, synced.get_json()
    assert [(e.kind, e.minutes, e.squad_id) for e in world.rows(HoursEntry)] == [
        (HoursKind.ATTENDANCE, 120, None),
        (HoursKind.CORRECTION, -60, None),
    ]
    body = by_squad(client, factory)
    assert [(r["key"], r["minutes"], r["turns"]) for r in body["rows"]] == [("none", 60, 1)]


def test_a_referring_entry_takes_the_grouping_keys_of_the_entry_it_refers_to(
    app: Flask, factory: Factory
) -> None:
    """Whatever branch and town the caller passes, a correction or reversal is written (and
    rolled up) under the referenced entry's branch, town and squad."""
    town, other_town = factory.create_town("新镇"), factory.create_town("旧镇")
    member = factory.create_member(branches=("patrol", "rescue"), town_id=town)
    at = datetime(2026, 3, 3, 9, tzinfo=SH)
    with app.app_context():
        s = db.session()
        original = hours.add_entry(
            s,
            member_id=member,
            kind=HoursKind.MANUAL,
            minutes=90,
            occurred_at=at,
            branch_id=factory.branch_id("patrol"),
            town_id=town,
        )
        s.commit()
        squad = factory.create_squad("patrol", town)
        correction = hours.add_entry(
            s,
            member_id=member,
            kind=HoursKind.CORRECTION,
            minutes=-30,
            occurred_at=at,
            branch_id=factory.branch_id("rescue"),
            town_id=other_town,
            references_id=original.id,
        )
        fresh = hours.add_entry(
            s,
            member_id=member,
            kind=HoursKind.MANUAL,
            minutes=15,
            occurred_at=at,
            branch_id=factory.branch_id("patrol"),
            town_id=town,
        )
        s.commit()
        keys = (original.branch_id, original.town_id, original.squad_id)
        assert (correction.branch_id, correction.town_id, correction.squad_id) == keys
        assert keys[2] is None and fresh.squad_id == squad  # a new entry takes today's squad
        db.session.remove()
