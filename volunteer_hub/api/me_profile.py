"""The caller's own weekly availability and leave, which the planner respects."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.extensions import db
from volunteer_hub.models import Leave
from volunteer_hub.schemas.members_admin import (
    AvailabilityArgs,
    AvailabilitySchema,
    LeaveArgs,
    LeaveListArgs,
    LeavePageSchema,
    LeaveSchema,
)
from volunteer_hub.services import members as service

blp = Blueprint("me_profile", __name__, description="The caller's availability and leave")

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _availability(windows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"windows": windows, "timezone": current_app.config["HUB_TIMEZONE"]}


@blp.route("/me/availability")
class MyAvailability(MethodView):
    @jwt_required()
    @blp.response(200, AvailabilitySchema)
    @blp.doc(security=BEARER)
    def get(self) -> dict[str, Any]:
        """The caller's weekly windows, in the federation's time zone."""
        actor = current_actor()
        return _availability(service.get_availability(db.session(), actor.member_id))

    @jwt_required()
    @blp.arguments(AvailabilityArgs)
    @blp.response(200, AvailabilitySchema)
    @blp.doc(security=BEARER)
    def put(self, args: dict[str, Any]) -> dict[str, Any]:
        """Replace the caller's weekly windows (weekday 0 = Monday, "HH:MM" in the federation's
        time zone, end up to "24:00"); overlapping or touching windows are merged."""
        actor = current_actor()
        windows = service.replace_availability(db.session(), actor.member_id, args["windows"])
        return _availability(windows)


@blp.route("/me/leaves")
class MyLeaves(MethodView):
    @jwt_required()
    @blp.arguments(LeaveListArgs, location="query")
    @blp.response(200, LeavePageSchema)
    @blp.doc(security=BEARER)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The caller's leaves that have not ended (all with include_past), soonest first."""
        actor = current_actor()
        return service.list_leaves(db.session(), actor.member_id, **args)

    @jwt_required()
    @blp.arguments(LeaveArgs)
    @blp.response(201, LeaveSchema)
    @blp.alt_response(409, description="It overlaps another leave of the caller")
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any]) -> Leave:
        """Record a leave: times with offsets, the end after the start, at most a year."""
        actor = current_actor()
        return service.add_leave(
            db.session(), actor.member_id, args["starts_at"], args["ends_at"], args.get("reason")
        )


@blp.route("/me/leaves/<int(min=1, max=2147483647):leave_id>")
class MyLeave(MethodView):
    @jwt_required()
    @blp.response(204)
    @blp.alt_response(404, description="No such leave of the caller")
    @blp.doc(security=BEARER)
    def delete(self, leave_id: int) -> None:
        """Withdraw one of the caller's leaves."""
        actor = current_actor()
        service.delete_leave(db.session(), actor.member_id, leave_id)
