"""Fifty volunteers accept one incident that needs three, at the same moment.

Real threads, each with its own test client (so its own session and connection), released
together by a barrier. The incident row lock (PostgreSQL) or BEGIN IMMEDIATE (SQLite) must let
exactly three through.
"""

from __future__ import annotations

import threading
from collections import Counter

from flask import Flask
from sqlalchemy import select, update

from tests.conftest import Factory
from tests.incidents.conftest import SCENE, incident_row, north_of_scene, offers_of, report
from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import OutboxMessage, OutboxStatus

VOLUNTEERS = 50
NEEDED = 3


def test_fifty_accept_at_once_exactly_needed_win(
    app: Flask, factory: Factory, incident_config: dict[str, object]
) -> None:
    # Offer everyone in one wave, so all fifty hold an open offer when the race starts.
    incident_config["INCIDENT_WAVE_FACTOR"] = 20
    town = factory.create_town("钟公庙街道", *SCENE)
    reporter = factory.create_member(
        branches=("rescue",), roles=(("grid_worker", "rescue", town),), home=None
    )
    volunteers = [
        factory.create_member(branches=("rescue",), home=north_of_scene(20 * (i + 1)))
        for i in range(VOLUNTEERS)
    ]
    incident = report(
        app.test_client(),
        factory,
        reporter,
        kind="flood",
        branch="rescue",
        needed=NEEDED,
        skills=[],
    )
    offers = offers_of(app, incident["id"])
    assert len(offers) == VOLUNTEERS
    headers = {member: factory.headers(member) for member in volunteers}
    # Half the phones already have their call-out (as if the worker had sent it).
    delivered = set(volunteers[::2])
    with app.app_context():
        db.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.incident_id == incident["id"],
                OutboxMessage.recipient_id.in_(delivered),
            )
            .values(status=OutboxStatus.SENT)
        )
        db.session.commit()

    barrier = threading.Barrier(VOLUNTEERS)
    results: dict[int, tuple[int, dict[str, object]]] = {}

    def accept(member: int) -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            f"/api/v1/offers/{offers[member]['id']}/accept", headers=headers[member]
        )
        results[member] = (response.status_code, response.get_json())

    threads = [threading.Thread(target=accept, args=(m,)) for m in volunteers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == VOLUNTEERS

    codes = Counter(code for code, _ in results.values())
    assert codes == {200: NEEDED, 409: VOLUNTEERS - NEEDED}, codes
    assert all(body["reason"] == "staffed" for code, body in results.values() if code == 409)

    row = incident_row(app, incident["id"])
    assert row["status"] == "staffed"
    assert row["accepted"] == NEEDED
    final = offers_of(app, incident["id"])
    winners = {m for m, (code, _) in results.items() if code == 200}
    assert {m for m, o in final.items() if o["status"] == "accepted"} == winners
    assert {o["status"] for m, o in final.items() if m not in winners} == {"withdrawn"}
    losers = set(volunteers) - winners
    with app.app_context():
        rows = db.session.execute(
            select(OutboxMessage.recipient_id, OutboxMessage.kind, OutboxMessage.status).where(
                OutboxMessage.incident_id == incident["id"]
            )
        ).all()
    withdrawals = Counter(r for r, kind, _ in rows if kind == "offer_withdrawn")
    # A loser whose phone had the call-out gets exactly one withdrawal push; one whose push
    # was still queued has it cancelled instead, and hears nothing more.
    assert withdrawals == Counter(losers & delivered)
    cancelled = {r for r, kind, status in rows if status == OutboxStatus.CANCELLED}
    assert cancelled == (losers - delivered) | (winners - delivered)
