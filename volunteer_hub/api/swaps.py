"""Shift swap requests between two volunteers."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.api.my_shifts import volunteer_rules
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.extensions import db
from volunteer_hub.models.plans import SwapRequest
from volunteer_hub.schemas.plans import (
    MySwapsArgs,
    SwapDeclineArgs,
    SwapProposeArgs,
    SwapRequestPage,
    SwapRequestSchema,
)
from volunteer_hub.services import swaps
from volunteer_hub.services.quiet_hours import QuietHours

blp = Blueprint("swaps", __name__, description="Shift swaps between volunteers")

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
ID = "int(max=2147483647)"


@blp.route(f"/assignments/<{ID}:assignment_id>/swap-requests")
class ProposeSwap(MethodView):
    @jwt_required()
    @blp.arguments(SwapProposeArgs)
    @blp.response(201, SwapRequestSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], assignment_id: int) -> SwapRequest:
        """Ask another volunteer to take this shift, for one of theirs or as a hand-over."""
        return swaps.propose(
            db.session(), current_actor().member_id, assignment_id, args, volunteer_rules()
        )


@blp.route("/me/swap-requests")
class MySwaps(MethodView):
    @jwt_required()
    @blp.arguments(MySwapsArgs, location="query")
    @blp.response(200, SwapRequestPage)
    @blp.doc(security=BEARER)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Swap requests the caller made or was asked, newest first."""
        return swaps.my_swaps(
            db.session(),
            current_actor().member_id,
            role=args["role"],
            status=args["status"],
            page=args["page"],
            page_size=args["page_size"],
        )


@blp.route(f"/swap-requests/<{ID}:swap_id>")
class SwapDetail(MethodView):
    @jwt_required()
    @blp.response(200, SwapRequestSchema)
    @blp.doc(security=BEARER)
    def get(self, swap_id: int) -> SwapRequest:
        """One swap request (its two volunteers and the branch's coordinators)."""
        return swaps.get_swap(db.session(), current_actor(), swap_id)


@blp.route(f"/swap-requests/<{ID}:swap_id>/accept")
class AcceptSwap(MethodView):
    @jwt_required()
    @blp.response(200, SwapRequestSchema)
    @blp.doc(security=BEARER)
    def post(self, swap_id: int) -> SwapRequest:
        """Agree to the swap; it is made at once if every rule holds, refused otherwise."""
        return swaps.accept(db.session(), current_actor(), swap_id, volunteer_rules())


@blp.route(f"/swap-requests/<{ID}:swap_id>/decline")
class DeclineSwap(MethodView):
    @jwt_required()
    @blp.arguments(SwapDeclineArgs)
    @blp.response(200, SwapRequestSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], swap_id: int) -> SwapRequest:
        """Say no to a swap request, optionally with a reason."""
        return swaps.decline(
            db.session(),
            current_actor(),
            swap_id,
            args["reason"],
            QuietHours.from_config(current_app.config),
        )


@blp.route(f"/swap-requests/<{ID}:swap_id>/cancel")
class CancelSwap(MethodView):
    @jwt_required()
    @blp.response(200, SwapRequestSchema)
    @blp.doc(security=BEARER)
    def post(self, swap_id: int) -> SwapRequest:
        """Withdraw a swap request the caller made."""
        return swaps.cancel(
            db.session(), current_actor(), swap_id, QuietHours.from_config(current_app.config)
        )
