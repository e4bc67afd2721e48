"""Check-in and check-out at the post, and leaders' confirmations and corrections."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, json, request
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import (
    Actor,
    can_manage_attendance,
    current_actor,
    require,
    require_visible,
)
from volunteer_hub.errors import NotFound
from volunteer_hub.extensions import db
from volunteer_hub.models.types import utcnow
from volunteer_hub.schemas.attendance import AttendanceSchema, CorrectionArgs, FixArgs
from volunteer_hub.schemas.common import MAX_ID
from volunteer_hub.services import attendance, idempotency

blp = Blueprint("attendance", __name__, description="Check-in, check-out and attendance")

KEY_DOC = {
    "parameters": [
        {
            "name": idempotency.HEADER,
            "in": "header",
            "required": True,
            "schema": {"type": "string", "maxLength": idempotency.MAX_KEY_LENGTH},
            "description": "a fresh random key per tap; a repeat returns the first answer",
        }
    ],
    "security": [{"bearer": []}],
}


def bounded(object_id: int, what: str) -> int:
    """:raise NotFound: an id beyond any stored one (the database would refuse to compare)."""
    if object_id > MAX_ID:
        raise NotFound(f"No such {what}.")
    return object_id


def require_not_own(actor: Actor, member_id: int, detail: str) -> None:
    """Nobody reviews their own hours: a leader's or coordinator's own attendance is corrected
    and confirmed, and their hours awarded and reversed, by someone else.

    :raise Forbidden: `member_id` is the caller.
    """
    require(member_id != actor.member_id, detail)


def _rules() -> attendance.Rules:
    return attendance.Rules.from_config(current_app.config)


def _json(outcome: idempotency.Outcome) -> Response:
    response = Response(
        json.dumps(outcome.body, ensure_ascii=False),
        status=outcome.status,
        mimetype="application/json",
    )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _fix(args: dict[str, Any]) -> attendance.Fix:
    return attendance.Fix(args["lat"], args["lon"], args["accuracy_m"], args["client_time"])


@blp.route("/assignments/<int:assignment_id>/check-in")
class CheckIn(MethodView):
    @jwt_required()
    @blp.arguments(FixArgs)
    @blp.response(201, AttendanceSchema)
    @blp.alt_response(200, schema=AttendanceSchema, description="a repeat: the same attendance")
    @blp.alt_response(422, description="too far, outside the window, or a reused key")
    @blp.doc(**KEY_DOC)
    def post(self, args: dict[str, Any], assignment_id: int) -> Response:
        """Check in at the post of one of the caller's assignments.

        On PostgreSQL an ordinary tap is answered before it reaches this view, by the same
        rules in one statement (`volunteer_hub.check_in_lane`)."""
        actor = current_actor()
        key = idempotency.check_key(request.headers.get(idempotency.HEADER))
        outcome = attendance.check_in(
            db.session(),
            member_id=actor.member_id,
            assignment_id=bounded(assignment_id, "assignment"),
            fix=_fix(args),
            key=key,
            now=utcnow(),
            rules=_rules(),
        )
        return _json(outcome)


@blp.route("/assignments/<int:assignment_id>/check-out")
class CheckOut(MethodView):
    @jwt_required()
    @blp.arguments(FixArgs)
    @blp.response(200, AttendanceSchema)
    @blp.alt_response(409, description="not checked in")
    @blp.alt_response(422, description="too far, outside the window, or a reused key")
    @blp.doc(**KEY_DOC)
    def post(self, args: dict[str, Any], assignment_id: int) -> Response:
        """Check out; the answer carries the service minutes credited."""
        actor = current_actor()
        key = idempotency.check_key(request.headers.get(idempotency.HEADER))
        outcome = attendance.check_out(
            db.session(),
            member_id=actor.member_id,
            assignment_id=bounded(assignment_id, "assignment"),
            fix=_fix(args),
            key=key,
            now=utcnow(),
            rules=_rules(),
        )
        return _json(outcome)


@blp.route("/assignments/<int:assignment_id>/attendance")
class AssignmentAttendance(MethodView):
    @jwt_required()
    @blp.response(200, AttendanceSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, assignment_id: int) -> dict[str, Any]:
        """The attendance of an assignment: the volunteer's own, or one a leader manages."""
        actor = current_actor()
        session = db.session()
        assignment = attendance.load_assignment(
            session, bounded(assignment_id, "assignment"), lock=False
        )
        branch_id, town_id = attendance.scope_of(session, assignment)
        require_visible(
            assignment.member_id == actor.member_id
            or can_manage_attendance(actor, branch_id, town_id),
            "assignment",
        )
        att = attendance.attendance_of(session, assignment.id)
        require_visible(att is not None, "attendance")
        assert att is not None
        return attendance.attendance_view(att)


@blp.route("/assignments/<int:assignment_id>/attendance/correction")
class Correction(MethodView):
    @jwt_required()
    @blp.arguments(CorrectionArgs)
    @blp.response(200, AttendanceSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, args: dict[str, Any], assignment_id: int) -> dict[str, Any]:
        """Record a missed check-in or check-out, or fix one, with a reason (audited).

        Squad leader of the post's squad, coordinators of its branch, the secretary-general;
        never on their own assignment (403).
        """
        actor = current_actor()
        session = db.session()
        assignment = attendance.load_assignment(
            session, bounded(assignment_id, "assignment"), lock=True
        )
        branch_id, town_id = attendance.scope_of(session, assignment)
        manages = can_manage_attendance(actor, branch_id, town_id)
        require_visible(manages or assignment.member_id == actor.member_id, "assignment")
        require(manages, "Only the squad leader or a coordinator corrects attendance.")
        require_not_own(
            actor,
            assignment.member_id,
            "Nobody corrects their own attendance; another squad leader or your coordinator "
            "must record it.",
        )
        att = attendance.correct(
            session,
            actor_id=actor.member_id,
            assignment=assignment,
            check_in_at=args["check_in_at"],
            check_out_at=args["check_out_at"],
            reason=args["reason"],
            now=utcnow(),
            rules=_rules(),
        )
        return attendance.attendance_view(att)


@blp.route("/attendance/<int:attendance_id>/confirm")
class Confirm(MethodView):
    @jwt_required()
    @blp.response(200, AttendanceSchema)
    @blp.alt_response(409, description="the volunteer has not checked out")
    @blp.doc(security=[{"bearer": []}])
    def post(self, attendance_id: int) -> dict[str, Any]:
        """A squad leader or coordinator confirms a closed attendance, never their own (403)."""
        actor = current_actor()
        session = db.session()
        att = attendance.get_attendance(session, bounded(attendance_id, "attendance"))
        assignment = attendance.load_assignment(session, att.assignment_id, lock=True)
        branch_id, town_id = attendance.scope_of(session, assignment)
        manages = can_manage_attendance(actor, branch_id, town_id)
        require_visible(manages or att.member_id == actor.member_id, "attendance")
        require(manages, "Only the squad leader or a coordinator confirms attendance.")
        require_not_own(
            actor,
            att.member_id,
            "Nobody confirms their own attendance; another squad leader or your coordinator "
            "must confirm it.",
        )
        att = attendance.confirm(session, actor_id=actor.member_id, att=att, now=utcnow())
        return attendance.attendance_view(att)
