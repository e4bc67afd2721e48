"""Leaders confirm and correct attendance; coordinators award and reverse hours. Every change
is audited and the ledger only grows."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.attendance.conftest import World, iso, tap
from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models import AuditLog
from volunteer_hub.models.attendance import Attendance, AttendanceStatus, HoursEntry, HoursKind
from volunteer_hub.models.plans import Assignment, AssignmentStatus
from volunteer_hub.models.types import utcnow
from volunteer_hub.services import attendance


class Scene:
    def __init__(self, factory: Factory, world: World) -> None:
        self.town = factory.create_town("首南街道")
        self.other_town = factory.create_town("下应街道")
        self.leader = factory.create_member(
            name="队长", roles=(("squad_leader", "patrol", self.town),)
        )
        self.other_leader = factory.create_member(
            name="别队队长", roles=(("squad_leader", "patrol", self.other_town),)
        )
        self.coordinator = factory.create_member(
            name="协调员", roles=(("coordinator", "patrol", None),)
        )
        self.rescue_coordinator = factory.create_member(
            name="救援协调员", branches=("rescue",), roles=(("coordinator", "rescue", None),)
        )
        self.volunteer = factory.create_member(name="王小明", town_id=self.town)
        self.post = world.post(town_id=self.town)
        now = utcnow()
        self.starts, self.ends = now - timedelta(hours=5), now - timedelta(hours=1)
        self.assignment = world.assignment(
            self.volunteer, post_id=self.post, starts_at=self.starts, ends_at=self.ends
        )


@pytest.fixture
def scene(factory: Factory, world: World) -> Scene:
    return Scene(factory, world)


def correct(client: FlaskClient, factory: Factory, who: int, assignment: int, **body):
    return client.post(
        f"/api/v1/assignments/{assignment}/attendance/correction",
        json=body,
        headers=factory.headers(who),
    )


def test_leader_records_a_missed_check_out_then_corrects_it(
    client: FlaskClient, factory: Factory, world: World, scene: Scene
) -> None:
    headers = factory.headers(scene.volunteer)
    checked_in = tap(client, headers, scene.assignment, client_time=iso(scene.starts))
    assert checked_in.status_code == 201

    fixed = correct(
        client,
        factory,
        scene.leader,
        scene.assignment,
        check_out_at=iso(scene.ends - timedelta(hours=1)),
        reason="手机没电，队长核实",
    )
    assert fixed.status_code == 200, fixed.get_json()
    assert fixed.get_json()["service_minutes"] == 180
    (credit,) = world.rows(HoursEntry)
    assert (credit.kind, credit.minutes, credit.actor_id) == (
        HoursKind.ATTENDANCE,
        180,
        scene.leader,
    )

    again = correct(
        client,
        factory,
        scene.coordinator,
        scene.assignment,
        check_out_at=iso(scene.ends),
        reason="实际到班次结束",
    )
    assert again.status_code == 200
    assert again.get_json()["service_minutes"] == 240
    entries = world.rows(HoursEntry)
    assert [(e.kind, e.minutes, e.references_id) for e in entries] == [
        (HoursKind.ATTENDANCE, 180, None),
        (HoursKind.CORRECTION, 60, credit.id),
    ]
    assert entries[0].minutes == 180  # the original entry is never edited
    audits = world.rows(AuditLog, AuditLog.action == "attendance.correct")
    assert [a.reason for a in audits] == ["手机没电，队长核实", "实际到班次结束"]
    assert audits[1].before["service_minutes"] == 180
    assert audits[1].after["service_minutes"] == 240


def test_leader_records_a_missed_check_in(
    client: FlaskClient, factory: Factory, world: World, scene: Scene
) -> None:
    response = correct(
        client,
        factory,
        scene.leader,
        scene.assignment,
        check_in_at=iso(scene.starts),
        check_out_at=iso(scene.ends),
        reason="纸质签到表",
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["service_minutes"] == 240
    (att,) = world.rows(Attendance)
    assert att.status == AttendanceStatus.CLOSED
    # Nothing to check in against yet: a check-out without a check-in time is refused.
    other = world.assignment(
        factory.create_member(name="赵六"),
        post_id=scene.post,
        starts_at=scene.starts,
        ends_at=scene.ends,
    )
    missing = correct(
        client, factory, scene.leader, other, check_out_at=iso(scene.ends), reason="x"
    )
    assert missing.status_code == 422
    assert "check_in_at" in missing.get_json()["errors"]


@pytest.mark.parametrize(
    ("times", "status"),
    [(("check_in_at",), "accepted"), (("check_in_at", "check_out_at"), "completed")],
)
def test_a_leader_clearing_a_no_show_is_audited_on_the_assignment(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    world: World,
    scene: Scene,
    times: tuple[str, ...],
    status: str,
) -> None:
    """The sweep's no_show and a late arrival that clears it are audited on the assignment;
    a leader recording the missed check-in clears it too, and says who, when and why."""
    with app.app_context():
        rules = attendance.Rules.from_config(app.config)
        assert attendance.mark_no_shows(db.session(), now=utcnow(), rules=rules) == 1
    given = {"check_in_at": iso(scene.starts), "check_out_at": iso(scene.ends)}
    body = {name: given[name] for name in times}
    fixed = correct(
        client, factory, scene.leader, scene.assignment, reason="纸质签到表：准时到岗", **body
    )
    assert fixed.status_code == 200, fixed.get_json()
    (assignment,) = world.rows(Assignment, Assignment.id == scene.assignment)
    assert assignment.status == AssignmentStatus(status)
    rows = world.rows(
        AuditLog, AuditLog.object_type == "assignment", AuditLog.object_id == scene.assignment
    )
    assert [a.action for a in rows] == ["assignment.no_show", "assignment.no_show_cleared"]
    cleared = rows[1]
    assert (cleared.actor_id, cleared.before, cleared.after, cleared.reason) == (
        scene.leader,
        {"status": "no_show"},
        {"status": status},
        "纸质签到表：准时到岗",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"check_out_at": "2026-01-01T08:00:00", "reason": "x"}, "check_out_at"),
        ({"reason": "x"}, "check_out_at"),
        ({"check_out_at": "2026-01-01T08:00:00+08:00"}, "reason"),
        ({"check_out_at": "2026-01-01T08:00:00+08:00", "reason": ""}, "reason"),
        ({"check_out_at": "2026-01-01T08:00:00+08:00", "reason": "   "}, "reason"),
        ({"check_out_at": "2026-01-01T08:00:00+08:00", "reason": "\u3000\n\t"}, "reason"),
        ({"check_out_at": "2026-01-01T08:00:00+08:00", "reason": "a\x00b"}, "reason"),
    ],
)
def test_correction_bodies_are_checked(
    client: FlaskClient, factory: Factory, scene: Scene, body: dict, field: str
) -> None:
    response = correct(client, factory, scene.leader, scene.assignment, **body)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


def test_correction_times_must_make_sense(
    client: FlaskClient, factory: Factory, scene: Scene
) -> None:
    backwards = correct(
        client,
        factory,
        scene.leader,
        scene.assignment,
        check_in_at=iso(scene.ends),
        check_out_at=iso(scene.starts),
        reason="x",
    )
    assert backwards.status_code == 422
    future = correct(
        client,
        factory,
        scene.leader,
        scene.assignment,
        check_in_at=iso(scene.starts),
        check_out_at=iso(utcnow() + timedelta(hours=3)),
        reason="x",
    )
    assert future.status_code == 422


def test_who_may_correct(client: FlaskClient, factory: Factory, scene: Scene) -> None:
    body = {"check_in_at": iso(scene.starts), "check_out_at": iso(scene.ends), "reason": "x"}
    # Another squad's leader and another branch's coordinator cannot see it.
    assert correct(client, factory, scene.other_leader, scene.assignment, **body).status_code == 404
    assert (
        correct(client, factory, scene.rescue_coordinator, scene.assignment, **body).status_code
        == 404
    )
    # The volunteer sees their own assignment but may not correct it.
    assert correct(client, factory, scene.volunteer, scene.assignment, **body).status_code == 403
    assert correct(client, factory, scene.leader, 10**12, **body).status_code == 404


@pytest.mark.parametrize("role", ["squad_leader", "coordinator", "secretary_general"])
def test_nobody_corrects_or_confirms_their_own_attendance(
    client: FlaskClient, factory: Factory, world: World, scene: Scene, role: str
) -> None:
    """A leader on a shift of their own squad is a volunteer there: another leader or their
    coordinator records and confirms their attendance."""
    scope = {"squad_leader": ("patrol", scene.town), "coordinator": ("patrol", None)}
    branch, town = scope.get(role, (None, None))
    me = factory.create_member(name="值班队长", town_id=scene.town, roles=((role, branch, town),))
    mine = world.assignment(me, post_id=scene.post, starts_at=scene.starts, ends_at=scene.ends)
    body = {"check_in_at": iso(scene.starts), "check_out_at": iso(scene.ends), "reason": "补签"}

    own = correct(client, factory, me, mine, **body)
    assert own.status_code == 403, own.get_json()
    assert "another squad leader or your coordinator" in own.get_json()["detail"]
    assert world.rows(Attendance) == [] and world.rows(HoursEntry) == []

    by_another = correct(client, factory, scene.leader, mine, **body)
    assert by_another.status_code == 200, by_another.get_json()
    url = f"/api/v1/attendance/{by_another.get_json()['id']}/confirm"
    own_confirm = client.post(url, headers=factory.headers(me))
    assert own_confirm.status_code == 403, own_confirm.get_json()
    assert "another squad leader or your coordinator" in own_confirm.get_json()["detail"]
    assert client.post(url, headers=factory.headers(scene.leader)).status_code == 200


def test_confirm(client: FlaskClient, factory: Factory, world: World, scene: Scene) -> None:
    headers = factory.headers(scene.volunteer)
    att = tap(client, headers, scene.assignment, client_time=iso(scene.starts)).get_json()
    url = f"/api/v1/attendance/{att['id']}/confirm"
    still_open = client.post(url, headers=factory.headers(scene.leader))
    assert still_open.status_code == 409
    tap(client, headers, scene.assignment, action="check-out")
    assert client.post(url, headers=factory.headers(scene.other_leader)).status_code == 404
    assert client.post(url, headers=factory.headers(scene.volunteer)).status_code == 403
    done = client.post(url, headers=factory.headers(scene.leader))
    assert done.status_code == 200
    assert done.get_json()["status"] == "confirmed"
    assert done.get_json()["confirmed_by"] == scene.leader
    assert world.rows(AuditLog, AuditLog.action == "attendance.confirm")
    assert client.post("/api/v1/attendance/99999999999/confirm", headers=headers).status_code == 404


def test_attendance_is_readable_by_its_volunteer_and_leaders_only(
    client: FlaskClient, factory: Factory, scene: Scene
) -> None:
    tap(client, factory.headers(scene.volunteer), scene.assignment, client_time=iso(scene.starts))
    url = f"/api/v1/assignments/{scene.assignment}/attendance"
    assert client.get(url, headers=factory.headers(scene.volunteer)).status_code == 200
    assert client.get(url, headers=factory.headers(scene.leader)).status_code == 200
    assert client.get(url, headers=factory.headers(scene.other_leader)).status_code == 404


def award(client: FlaskClient, factory: Factory, who: int, **body):
    # Encoded here with ASCII escapes, so a lone surrogate reaches the server as JSON allows.
    return client.post(
        "/api/v1/hours/manual",
        data=json.dumps(body),
        content_type="application/json",
        headers=factory.headers(who),
    )


def test_manual_award_and_reversal(
    client: FlaskClient, factory: Factory, world: World, scene: Scene
) -> None:
    body = {
        "member": scene.volunteer,
        "branch": "patrol",
        "minutes": 240,
        "occurred_at": "2026-03-02T09:00:00+08:00",
        "reason": "信访局轮值",
    }
    assert award(client, factory, scene.rescue_coordinator, **body).status_code == 403
    assert award(client, factory, scene.leader, **body).status_code == 403
    assert award(client, factory, scene.volunteer, **body).status_code == 403
    given = award(client, factory, scene.coordinator, **body)
    assert given.status_code == 201, given.get_json()
    entry = given.get_json()
    assert (entry["kind"], entry["minutes"], entry["turns"]) == ("manual", 240, 0)
    assert entry["service_day"] == "2026-03-02"
    assert entry["town"] == scene.town  # the member's town when none is given

    reverse_url = f"/api/v1/hours/{entry['id']}/reverse"
    assert (
        client.post(
            reverse_url, json={"reason": "重复录入"}, headers=factory.headers(scene.volunteer)
        ).status_code
        == 403
    )
    assert (
        client.post(
            reverse_url,
            json={"reason": "重复录入"},
            headers=factory.headers(scene.rescue_coordinator),
        ).status_code
        == 404
    )
    reversed_ = client.post(
        reverse_url, json={"reason": "重复录入"}, headers=factory.headers(scene.coordinator)
    )
    assert reversed_.status_code == 201
    assert reversed_.get_json()["minutes"] == -240
    assert reversed_.get_json()["references"] == entry["id"]
    twice = client.post(
        reverse_url, json={"reason": "again"}, headers=factory.headers(scene.coordinator)
    )
    assert twice.status_code == 409
    reversal_of_reversal = client.post(
        f"/api/v1/hours/{reversed_.get_json()['id']}/reverse",
        json={"reason": "x"},
        headers=factory.headers(scene.coordinator),
    )
    assert reversal_of_reversal.status_code == 409
    assert [a.action for a in world.rows(AuditLog)] == ["hours.award", "hours.reverse"]
    me = client.get("/api/v1/me/hours", headers=factory.headers(scene.volunteer)).get_json()
    assert me["total_minutes"] == 0 and len(me["entries"]) == 2


def test_nobody_awards_or_reverses_their_own_hours(
    client: FlaskClient, factory: Factory, world: World, scene: Scene
) -> None:
    """Another coordinator of the branch (or the secretary-general) awards a coordinator's
    hours, and reverses them: the person credited never reviews their own hours."""
    body = {
        "branch": "patrol",
        "minutes": 600,
        "occurred_at": "2026-03-02T09:00:00+08:00",
        "reason": "信访局值班",
    }
    own = award(client, factory, scene.coordinator, member=scene.coordinator, **body)
    assert own.status_code == 403, own.get_json()
    assert "another coordinator" in own.get_json()["detail"]
    assert world.rows(HoursEntry) == []

    colleague = factory.create_member(name="协调员二", roles=(("coordinator", "patrol", None),))
    given = award(client, factory, colleague, member=scene.coordinator, **body)
    assert given.status_code == 201, given.get_json()
    reverse_url = f"/api/v1/hours/{given.get_json()['id']}/reverse"
    own_reversal = client.post(
        reverse_url, json={"reason": "重复录入"}, headers=factory.headers(scene.coordinator)
    )
    assert own_reversal.status_code == 403, own_reversal.get_json()
    assert "another coordinator" in own_reversal.get_json()["detail"]
    reversed_ = client.post(
        reverse_url, json={"reason": "重复录入"}, headers=factory.headers(colleague)
    )
    assert reversed_.status_code == 201, reversed_.get_json()


def test_reasons_are_stored_without_surrounding_blanks_and_a_blank_one_is_refused(
    client: FlaskClient, factory: Factory, world: World, scene: Scene
) -> None:
    """A reason is what the audit shows as "why": blank is no reason, for a correction, an
    award or a reversal alike; spaces around one are not kept."""
    fixed = correct(
        client,
        factory,
        scene.leader,
        scene.assignment,
        check_in_at=iso(scene.starts),
        check_out_at=iso(scene.ends),
        reason="  纸质签到表\n",
    )
    assert fixed.status_code == 200, fixed.get_json()
    (audited,) = world.rows(AuditLog, AuditLog.action == "attendance.correct")
    (credit,) = world.rows(HoursEntry)
    assert (audited.reason, credit.reason) == ("纸质签到表", "纸质签到表")

    body = {
        "member": scene.volunteer,
        "branch": "patrol",
        "minutes": 60,
        "occurred_at": "2026-03-02T09:00:00+08:00",
    }
    given = award(client, factory, scene.coordinator, reason="\u3000信访局轮值 ", **body)
    assert given.status_code == 201, given.get_json()
    assert given.get_json()["reason"] == "信访局轮值"
    reverse_url = f"/api/v1/hours/{given.get_json()['id']}/reverse"
    coordinator = factory.headers(scene.coordinator)
    blank = client.post(reverse_url, json={"reason": " \t "}, headers=coordinator)
    assert blank.status_code == 422, blank.get_json()
    assert "reason" in blank.get_json()["errors"]
    reversed_ = client.post(reverse_url, json={"reason": " 重复录入 "}, headers=coordinator)
    assert reversed_.status_code == 201, reversed_.get_json()
    assert reversed_.get_json()["reason"] == "重复录入"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"minutes": 0}, "minutes"),
        ({"minutes": 60 * 24 * 8}, "minutes"),
        ({"minutes": "60"}, "minutes"),
        ({"minutes": 1.5}, "minutes"),
        ({"occurred_at": "2026-03-02T09:00:00"}, "occurred_at"),
        ({"member": 10**12}, "member"),
        ({"member": -1}, "member"),
        ({"branch": "nope"}, "branch"),
        ({"reason": ""}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "\u3000\u3000"}, "reason"),
        ({"reason": "轮值\x00"}, "reason"),
        ({"reason": "lone \ud800 surrogate"}, "reason"),
        ({"branch": "patrol\x00"}, "branch"),
    ],
)
def test_award_input_is_checked(
    client: FlaskClient, factory: Factory, scene: Scene, change: dict, field: str
) -> None:
    body = {
        "member": scene.volunteer,
        "branch": "patrol",
        "minutes": 60,
        "occurred_at": "2026-03-02T09:00:00+08:00",
        "reason": "x",
        **change,
    }
    response = award(client, factory, scene.coordinator, **body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


def test_award_to_a_member_of_another_branch_or_nobody(
    client: FlaskClient, factory: Factory, scene: Scene
) -> None:
    outsider = factory.create_member(branches=("rescue",))
    body = {
        "branch": "patrol",
        "minutes": 60,
        "occurred_at": "2026-03-02T09:00:00+08:00",
        "reason": "x",
    }
    wrong = award(client, factory, scene.coordinator, member=outsider, **body)
    assert wrong.status_code == 422 and "member" in wrong.get_json()["errors"]
    assert award(client, factory, scene.coordinator, member=999999, **body).status_code == 404
