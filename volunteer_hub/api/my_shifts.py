"""The volunteer's shifts, calendar feed, accept/decline and offered slots."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, current_app, url_for
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.extensions import db
from volunteer_hub.models.plans import Assignment
from volunteer_hub.models.types import utcnow
from volunteer_hub.schemas.plans import (
    AssignmentSchema,
    CalendarLinkSchema,
    DeclineArgs,
    MyShiftsArgs,
    SlotOfferListSchema,
)
from volunteer_hub.services import my_shifts, publish
from volunteer_hub.services.problem_builder import settings_from_config
from volunteer_hub.services.quiet_hours import QuietHours

blp = Blueprint("my_shifts", __name__, description="A volunteer's shifts")

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
ID = "int(max=2147483647)"
ICS = "text/calendar; charset=utf-8"


def volunteer_rules() -> my_shifts.VolunteerRules:
    config = current_app.config
    return my_shifts.VolunteerRules(
        decline_cutoff=timedelta(hours=float(config.get("DECLINE_CUTOFF_H", 3))),
        replacement_offers=int(config.get("REPLACEMENT_OFFERS", 3)),
        reminder_offsets_h=publish.reminder_offsets(config),
        builder=settings_from_config(config),
        quiet=QuietHours.from_config(config),
    )


def _ics(assignments: list[Assignment], name: str) -> Response:
    body = my_shifts.calendar_feed(assignments, name, utcnow())
    return Response(body, mimetype="text/calendar", headers={"Content-Type": ICS})


@blp.route("/me/shifts")
class MyShifts(MethodView):
    @jwt_required()
    @blp.arguments(MyShiftsArgs, location="query")
    @blp.response(200, AssignmentSchema(many=True))
    @blp.doc(security=BEARER)
    def get(self, args: dict[str, Any]) -> list[Assignment]:
        """The caller's published assignments with their shift and post."""
        actor = current_actor()
        return my_shifts.my_shifts(db.session(), actor.member_id, args["from_"], args["to"])


@blp.route("/me/shifts.ics")
class MyShiftsCalendar(MethodView):
    @jwt_required()
    @blp.response(200, content_type="text/calendar")
    @blp.doc(security=BEARER)
    def get(self) -> Response:
        """The caller's shifts as an iCalendar feed."""
        actor = current_actor()
        start, end = my_shifts.feed_window(utcnow())
        return _ics(my_shifts.my_shifts(db.session(), actor.member_id, start, end), "志愿者值班")


@blp.route("/me/calendar")
class MyCalendarLink(MethodView):
    @jwt_required()
    @blp.response(200, CalendarLinkSchema)
    @blp.doc(security=BEARER)
    def get(self) -> dict[str, str]:
        """The secret feed URL calendar apps can subscribe to without a token."""
        secret = my_shifts.calendar_secret(db.session(), current_actor().member_id)
        return {"secret": secret, "url": url_for("my_shifts.SecretCalendar", secret=secret)}


@blp.route("/me/calendar/rotate")
class RotateCalendarLink(MethodView):
    @jwt_required()
    @blp.response(200, CalendarLinkSchema)
    @blp.doc(security=BEARER)
    def post(self) -> dict[str, str]:
        """Replace the feed secret; the old URL stops working."""
        secret = my_shifts.calendar_secret(db.session(), current_actor().member_id, rotate=True)
        return {"secret": secret, "url": url_for("my_shifts.SecretCalendar", secret=secret)}


@blp.route("/calendar/<string(length=43):secret>.ics")
class SecretCalendar(MethodView):
    @blp.response(200, content_type="text/calendar")
    def get(self, secret: str) -> Response:
        """A member's shift feed by its secret URL (no bearer token)."""
        session = db.session()
        member = my_shifts.member_by_calendar_secret(session, secret)
        start, end = my_shifts.feed_window(utcnow())
        return _ics(my_shifts.my_shifts(session, member.id, start, end), "志愿者值班")


@blp.route(f"/assignments/<{ID}:assignment_id>/accept")
class Accept(MethodView):
    @jwt_required()
    @blp.response(200, AssignmentSchema)
    @blp.doc(security=BEARER)
    def post(self, assignment_id: int) -> Assignment:
        """Confirm a published shift."""
        return my_shifts.accept(db.session(), current_actor().member_id, assignment_id)


@blp.route(f"/assignments/<{ID}:assignment_id>/decline")
class Decline(MethodView):
    @jwt_required()
    @blp.arguments(DeclineArgs)
    @blp.response(200, AssignmentSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], assignment_id: int) -> Assignment:
        """Give a shift back with a reason; the slot is offered to replacements."""
        return my_shifts.decline(
            db.session(),
            current_actor().member_id,
            assignment_id,
            args["reason"],
            volunteer_rules(),
        )


@blp.route("/me/slot-offers")
class MySlotOffers(MethodView):
    @jwt_required()
    @blp.response(200, SlotOfferListSchema)
    @blp.doc(security=BEARER)
    def get(self) -> dict[str, Any]:
        """Freed slots offered to the caller."""
        return {"items": my_shifts.my_offers(db.session(), current_actor().member_id)}


@blp.route(f"/slot-offers/<{ID}:offer_id>/accept")
class TakeSlotOffer(MethodView):
    @jwt_required()
    @blp.response(200, AssignmentSchema)
    @blp.doc(security=BEARER)
    def post(self, offer_id: int) -> Assignment:
        """Take an offered slot; the first to accept gets it."""
        return my_shifts.take_offer(
            db.session(), current_actor().member_id, offer_id, volunteer_rules()
        )
