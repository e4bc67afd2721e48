"""Posts and their weekly shift templates."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.extensions import db
from volunteer_hub.models.plans import Post, ShiftTemplate
from volunteer_hub.schemas.plans import (
    PostArgs,
    PostListArgs,
    PostPage,
    PostSchema,
    TemplateArgs,
    TemplateSchema,
)
from volunteer_hub.services import posts
from volunteer_hub.services.pagination import paginate

blp = Blueprint("posts", __name__, description="Posts and shift templates")


@blp.route("/posts")
class Posts(MethodView):
    @jwt_required()
    @blp.arguments(PostArgs)
    @blp.response(201, PostSchema)
    @blp.doc(security=[{"bearer": []}])
    def post(self, args: dict[str, Any]) -> Post:
        """Add a post (coordinator of the branch)."""
        return posts.create_post(db.session(), current_actor(), args)

    @jwt_required()
    @blp.arguments(PostListArgs, location="query")
    @blp.response(200, PostPage)
    @blp.doc(security=[{"bearer": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Active posts, by branch and town."""
        current_actor()
        session = db.session()
        query = posts.post_query(session, args.get("branch"), args.get("town"))
        return paginate(session, query, args["page"], args["page_size"])


@blp.route("/posts/<int(max=2147483647):post_id>/templates")
class Templates(MethodView):
    @jwt_required()
    @blp.arguments(TemplateArgs)
    @blp.response(201, TemplateSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def post(self, args: dict[str, Any], post_id: int) -> list[ShiftTemplate]:
        """Add a weekly need at the post on the given weekdays."""
        return posts.add_templates(db.session(), current_actor(), post_id, args)

    @jwt_required()
    @blp.response(200, TemplateSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self, post_id: int) -> list[ShiftTemplate]:
        """The post's weekly templates."""
        current_actor()
        return posts.list_templates(db.session(), post_id)
