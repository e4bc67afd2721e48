"""A manual award is for service already done: its time may be no later than now plus the
phone clock skew that attendance corrections allow (ATTENDANCE_CLOCK_SKEW_MIN)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.attendance.conftest import World, iso
from tests.conftest import Factory
from volunteer_hub.models import AuditLog
from volunteer_hub.models.attendance import HoursEntry
from volunteer_hub.models.types import utcnow


class Scene:
    def __init__(self, factory: Factory) -> None:
        self.coordinator = factory.create_member(
            name="协调员", roles=(("coordinator", "patrol", None),)
        )
        self.volunteer = factory.create_member(name="王小明")


@pytest.fixture
def scene(factory: Factory) -> Scene:
    return Scene(factory)


def award(client: FlaskClient, factory: Factory, scene: Scene, ahead: timedelta):
    return client.post(
        "/api/v1/hours/manual",
        json={
            "member": scene.volunteer,
            "branch": "patrol",
            "minutes": 60,
            "occurred_at": iso(utcnow() + ahead),
            "reason": "信访局轮值",
        },
        headers=factory.headers(scene.coordinator),
    )


def test_an_award_dated_in_the_future_is_refused_saying_what_is_allowed(
    client: FlaskClient, factory: Factory, world: World, scene: Scene
) -> None:
    refused = award(client, factory, scene, timedelta(hours=1))
    assert refused.status_code == 422, refused.get_json()
    problem = refused.get_json()
    assert problem["type"].endswith("/validation")
    assert "occurred_at" in problem["errors"]
    assert "service already done" in problem["detail"] and "2 min" in problem["detail"]
    assert world.rows(HoursEntry) == [] and world.rows(AuditLog) == []
    # A coordinator's clock a minute ahead of ours is within the skew corrections allow.
    assert award(client, factory, scene, timedelta(minutes=1)).status_code == 201
    assert award(client, factory, scene, -timedelta(days=30)).status_code == 201


def test_an_award_may_be_ahead_by_the_configured_clock_skew(
    app: Flask,
    client: FlaskClient,
    factory: Factory,
    scene: Scene,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(app.config, "ATTENDANCE_CLOCK_SKEW_MIN", 90)
    assert award(client, factory, scene, timedelta(hours=1)).status_code == 201
    refused = award(client, factory, scene, timedelta(hours=2))
    assert refused.status_code == 422
    assert "90 min" in refused.get_json()["detail"]
