"""Announcements to a branch, a town, or a branch's members in one town."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.errors import NotFound
from volunteer_hub.extensions import db
from volunteer_hub.models import Branch
from volunteer_hub.models.notifications import Announcement
from volunteer_hub.schemas.common import MAX_ID
from volunteer_hub.schemas.notifications import AnnouncementArgs, AnnouncementSchema
from volunteer_hub.services import announcements

blp = Blueprint("announcements", __name__, description="Notices pushed to many members")


def _view(announcement: Announcement) -> dict[str, Any]:
    branch = db.session.get(Branch, announcement.branch_id) if announcement.branch_id else None
    return {
        "id": announcement.id,
        "title": announcement.title,
        "body": announcement.body,
        "branch": branch.code if branch else None,
        "town": announcement.town_id,
        "status": announcement.status.value,
        "recipients": announcement.recipients,
        "created_at": announcement.created_at,
    }


@blp.route("/announcements")
class Announcements(MethodView):
    @jwt_required()
    @blp.arguments(AnnouncementArgs)
    @blp.response(201, AnnouncementSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Push a notice to every active member of a branch and/or town; kept in their inbox.

        Coordinators announce within the branch (and town) they coordinate; the
        secretary-general and admins anywhere, also to a town across all branches.
        """
        actor = current_actor()
        announcement = announcements.create(
            db.session(),
            actor,
            title=args["title"],
            body=args["body"],
            branch_code=args["branch"],
            town_id=args["town"],
        )
        return _view(announcement)


@blp.route("/announcements/<int:announcement_id>")
class AnnouncementItem(MethodView):
    @jwt_required()
    @blp.response(200, AnnouncementSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, announcement_id: int) -> dict[str, Any]:
        """An announcement and how many members it reached; its author and coordinators."""
        actor = current_actor()
        if announcement_id > MAX_ID:
            raise NotFound("No such announcement.")
        return _view(announcements.get_visible(db.session(), actor, announcement_id))
