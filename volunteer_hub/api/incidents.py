"""Incidents: report, follow, answer call-outs, arrive, resolve; coordinators dispatch and
cancel."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.extensions import db
from volunteer_hub.models.types import utcnow
from volunteer_hub.schemas.common import PageArgs
from volunteer_hub.schemas.incidents import (
    IncidentArgs,
    IncidentCancelArgs,
    IncidentDispatchArgs,
    IncidentListArgs,
    IncidentOfferSchema,
    IncidentPageSchema,
    IncidentPositionArgs,
    IncidentResolveArgs,
    IncidentSchema,
    MyOfferPageSchema,
)
from volunteer_hub.services import incidents
from volunteer_hub.services.incidents import DispatchSettings

blp = Blueprint("incidents", __name__, description="Incidents and call-outs")

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _settings() -> DispatchSettings:
    return DispatchSettings.from_config(current_app.config)


def _view(incident_id: int) -> dict[str, Any]:
    actor = current_actor()
    session = db.session()
    return incidents.incident_view(
        session, actor, incidents.get_incident(session, actor, incident_id)
    )


@blp.route("/incidents")
class Incidents(MethodView):
    @jwt_required()
    @blp.arguments(IncidentArgs)
    @blp.response(201, IncidentSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Report an incident; the first wave of call-outs is queued before this returns."""
        actor = current_actor()
        incident = incidents.report_incident(
            db.session(), actor, args, now=utcnow(), settings=_settings()
        )
        return _view(incident.id)

    @jwt_required()
    @blp.arguments(IncidentListArgs, location="query")
    @blp.response(200, IncidentPageSchema)
    @blp.doc(security=BEARER)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Incidents of the branches the caller coordinates (all for the secretary-general)."""
        return incidents.list_incidents(
            db.session(),
            current_actor(),
            status=args.get("status"),
            branch=args.get("branch"),
            page=args["page"],
            page_size=args["page_size"],
        )


@blp.route("/incidents/<int(min=1, max=2147483647):incident_id>")
class IncidentById(MethodView):
    @jwt_required()
    @blp.response(200, IncidentSchema)
    @blp.doc(security=BEARER)
    def get(self, incident_id: int) -> dict[str, Any]:
        """The incident with its offers (the caller's own offer for a volunteer)."""
        return _view(incident_id)


@blp.route("/incidents/<int(min=1, max=2147483647):incident_id>/arrive")
class Arrive(MethodView):
    @jwt_required()
    @blp.arguments(IncidentPositionArgs)
    @blp.response(200, IncidentOfferSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, float], incident_id: int) -> dict[str, Any]:
        """A responder arrives at the scene (again: updates their position)."""
        offer = incidents.arrive(
            db.session(),
            current_actor(),
            incident_id,
            args["lat"],
            args["lon"],
            now=utcnow(),
            settings=_settings(),
        )
        return incidents.offer_view(offer)


@blp.route("/incidents/<int(min=1, max=2147483647):incident_id>/resolve")
class Resolve(MethodView):
    @jwt_required()
    @blp.arguments(IncidentResolveArgs)
    @blp.response(200, IncidentSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], incident_id: int) -> dict[str, Any]:
        """Close with an outcome; responders' minutes go to the hours ledger."""
        incidents.resolve(
            db.session(), current_actor(), incident_id, args["outcome"], args["note"], now=utcnow()
        )
        return _view(incident_id)


@blp.route("/incidents/<int(min=1, max=2147483647):incident_id>/dispatch")
class Dispatch(MethodView):
    @jwt_required()
    @blp.arguments(IncidentDispatchArgs)
    @blp.response(201, IncidentOfferSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, int], incident_id: int) -> dict[str, Any]:
        """A coordinator calls out a named volunteer of the branch."""
        offer = incidents.dispatch_member(
            db.session(),
            current_actor(),
            incident_id,
            args["member"],
            now=utcnow(),
            settings=_settings(),
        )
        return incidents.offer_view(offer)


@blp.route("/incidents/<int(min=1, max=2147483647):incident_id>/cancel")
class Cancel(MethodView):
    @jwt_required()
    @blp.arguments(IncidentCancelArgs)
    @blp.response(200, IncidentSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, str], incident_id: int) -> dict[str, Any]:
        """Call the incident off; everyone called out is told."""
        incidents.cancel(db.session(), current_actor(), incident_id, args["reason"], now=utcnow())
        return _view(incident_id)


@blp.route("/me/offers")
class MyOffers(MethodView):
    @jwt_required()
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, MyOfferPageSchema)
    @blp.doc(security=BEARER)
    def get(self, args: dict[str, int]) -> dict[str, Any]:
        """The caller's open call-outs."""
        return incidents.my_offers(
            db.session(),
            current_actor(),
            now=utcnow(),
            page=args["page"],
            page_size=args["page_size"],
        )


@blp.route("/offers/<int(min=1, max=2147483647):offer_id>/accept")
class AcceptOffer(MethodView):
    @jwt_required()
    @blp.response(200, IncidentOfferSchema)
    @blp.alt_response(409, description="The incident is already staffed or closed")
    @blp.doc(security=BEARER)
    def post(self, offer_id: int) -> dict[str, Any]:
        """Accept a call-out; exactly `needed` volunteers are accepted."""
        offer = incidents.accept_offer(db.session(), current_actor(), offer_id, now=utcnow())
        return incidents.offer_view(offer)


@blp.route("/offers/<int(min=1, max=2147483647):offer_id>/decline")
class DeclineOffer(MethodView):
    @jwt_required()
    @blp.response(200, IncidentOfferSchema)
    @blp.doc(security=BEARER)
    def post(self, offer_id: int) -> dict[str, Any]:
        """Decline a call-out; you will not be asked for this incident again."""
        offer = incidents.decline_offer(db.session(), current_actor(), offer_id, now=utcnow())
        return incidents.offer_view(offer)
