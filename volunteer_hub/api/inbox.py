"""The caller's inbox: every push they were sent, readable whatever happened to the phone."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import can_view_outbox, current_actor, require
from volunteer_hub.errors import NotFound
from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import InboxItem, OutboxMessage
from volunteer_hub.schemas.common import MAX_ID
from volunteer_hub.schemas.notifications import (
    InboxArgs,
    InboxItemSchema,
    InboxPageSchema,
    OutboxArgs,
    OutboxItemSchema,
    OutboxPageSchema,
    ReadAllSchema,
)
from volunteer_hub.services import outbox

blp = Blueprint("inbox", __name__, description="In-app messages, and the outbox for operators")


@blp.route("/me/inbox")
class MyInbox(MethodView):
    @jwt_required()
    @blp.arguments(InboxArgs, location="query")
    @blp.response(200, InboxPageSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Messages the caller was sent, newest first, with the unread count."""
        actor = current_actor()
        return outbox.inbox_page(
            db.session(),
            actor.member_id,
            page=args["page"],
            page_size=args["page_size"],
            unread_only=args["unread"],
        )


@blp.route("/me/inbox/<int:item_id>/read")
class ReadItem(MethodView):
    @jwt_required()
    @blp.response(200, InboxItemSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, item_id: int) -> InboxItem:
        """Mark one message read."""
        actor = current_actor()
        if item_id > MAX_ID:
            raise NotFound("No such message.")
        return outbox.mark_read(db.session(), actor.member_id, item_id)


@blp.route("/me/inbox/read-all")
class ReadAll(MethodView):
    @jwt_required()
    @blp.response(200, ReadAllSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self) -> dict[str, int]:
        """Mark every message read."""
        actor = current_actor()
        return {"marked": outbox.mark_all_read(db.session(), actor.member_id)}


@blp.route("/admin/outbox")
class Outbox(MethodView):
    @jwt_required()
    @blp.arguments(OutboxArgs, location="query")
    @blp.response(200, OutboxPageSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Pushes by status (``failed``: given up after the bounded tries); SG and admins."""
        actor = current_actor()
        require(can_view_outbox(actor), "Only the secretary-general and admins see the outbox.")
        return outbox.outbox_page(
            db.session(), status=args["status"], page=args["page"], page_size=args["page_size"]
        )


@blp.route("/admin/outbox/<int:outbox_id>/retry")
class RetryOutbox(MethodView):
    @jwt_required()
    @blp.response(200, OutboxItemSchema)
    @blp.alt_response(409, description="The message is not failed")
    @blp.doc(security=[{"bearer": []}])
    def post(self, outbox_id: int) -> OutboxMessage:
        """Give a failed push another round of attempts (audited)."""
        actor = current_actor()
        require(can_view_outbox(actor), "Only the secretary-general and admins retry pushes.")
        if outbox_id > MAX_ID:
            raise NotFound("No such outbox message.")
        return outbox.requeue_failed(db.session(), actor.member_id, outbox_id)
