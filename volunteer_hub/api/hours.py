"""Service hours: the caller's own, manual awards and reversals."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_jwt_extended import jwt_required
from sqlalchemy import func, select

from volunteer_hub.api import Blueprint
from volunteer_hub.api.attendance import bounded, require_not_own
from volunteer_hub.auth.policy import can_award_hours, current_actor, require, require_visible
from volunteer_hub.database import is_postgresql
from volunteer_hub.extensions import db
from volunteer_hub.models import Member
from volunteer_hub.models.attendance import HoursEntry
from volunteer_hub.schemas.attendance import (
    AwardArgs,
    HoursEntrySchema,
    MeHoursSchema,
    RangeArgs,
    ReasonArgs,
)
from volunteer_hub.services import hours

blp = Blueprint("hours", __name__, description="Service hours ledger")


@blp.route("/me/hours")
class MyHours(MethodView):
    @jwt_required()
    @blp.arguments(RangeArgs, location="query")
    @blp.response(200, MeHoursSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The caller's minutes, turns and ledger entries (newest first, paged)."""
        actor = current_actor()
        session = db.session()
        query = select(HoursEntry).where(HoursEntry.member_id == actor.member_id)
        if args["date_from"]:
            query = query.where(HoursEntry.service_day >= args["date_from"])
        if args["date_to"]:
            query = query.where(HoursEntry.service_day <= args["date_to"])
        sums = query.with_only_columns(
            func.coalesce(func.sum(HoursEntry.minutes), 0),
            func.coalesce(func.sum(HoursEntry.turns), 0),
            func.count(),
        )
        minutes, turns, count = session.execute(sums).one()
        page, size = args["page"], args["page_size"]
        entries = session.scalars(
            query.order_by(HoursEntry.occurred_at.desc(), HoursEntry.id.desc())
            .limit(size)
            .offset((page - 1) * size)
        )
        return {
            "total_minutes": int(minutes),
            "turns": int(turns),
            "entries": [hours.entry_view(e) for e in entries],
            "total": int(count),
            "page": page,
            "page_size": size,
        }


@blp.route("/hours/manual")
class ManualAward(MethodView):
    @jwt_required()
    @blp.arguments(AwardArgs)
    @blp.response(201, HoursEntrySchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Award hours for service outside any shift (rota duty at an outside office).

        Coordinators of the branch, the secretary-general, admins; never to themselves (403).
        """
        actor = current_actor()
        session = db.session()
        branch = hours.branch_by_code(session, args["branch"])
        member = session.get(Member, args["member"])
        # The entry's town: the one given, else the member's (as award_manual records it).
        town = args["town"] if args["town"] is not None or member is None else member.town_id
        require(
            can_award_hours(actor, branch.id, town),
            "Only the coordinators of the branch (in the entry's town) award hours.",
        )
        require_not_own(
            actor,
            args["member"],
            "Nobody awards hours to themselves; another coordinator of the branch or the "
            "secretary-general must award them.",
        )
        entry = hours.award_manual(
            session,
            actor_id=actor.member_id,
            member_id=args["member"],
            branch_id=branch.id,
            town_id=args["town"],
            minutes=args["minutes"],
            occurred_at=args["occurred_at"],
            reason=args["reason"],
        )
        return hours.entry_view(entry)


@blp.route("/hours/<int:entry_id>/reverse")
class Reverse(MethodView):
    @jwt_required()
    @blp.arguments(ReasonArgs)
    @blp.response(201, HoursEntrySchema)
    @blp.alt_response(409, description="already reversed, or not an original entry")
    @blp.doc(security=[{"bearer": []}])
    def post(self, args: dict[str, Any], entry_id: int) -> dict[str, Any]:
        """Cancel a ledger entry (and its corrections) with a reversal entry; audited.

        Coordinators of the branch, the secretary-general, admins; never their own (403).
        """
        actor = current_actor()
        session = db.session()
        entry = hours.get_entry(session, bounded(entry_id, "hours entry"))
        allowed = can_award_hours(actor, entry.branch_id, entry.town_id)
        require_visible(allowed or entry.member_id == actor.member_id, "hours entry")
        require(allowed, "Only the branch's coordinators reverse hours.")
        require_not_own(
            actor,
            entry.member_id,
            "Nobody reverses their own hours; another coordinator of the branch or the "
            "secretary-general must reverse them.",
        )
        reversal = hours.reverse_entry(
            session,
            actor_id=actor.member_id,
            entry=entry,
            reason=args["reason"],
            lock=is_postgresql(),
        )
        return hours.entry_view(reversal)
