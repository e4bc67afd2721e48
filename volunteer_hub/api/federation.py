"""Branches and towns."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_jwt_extended import jwt_required
from marshmallow import Schema, fields
from sqlalchemy import func, select

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.extensions import db
from volunteer_hub.models import Branch, Member, MemberBranch, MemberStatus, Town

blp = Blueprint("federation", __name__, description="The federation's structure")


class BranchSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    name_en = fields.String()
    member_count = fields.Integer()


class TownSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    lat = fields.Float()
    lon = fields.Float()


@blp.route("/branches")
class Branches(MethodView):
    @jwt_required()
    @blp.response(200, BranchSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> list[dict[str, Any]]:
        """The seven branches with their active member counts."""
        current_actor()
        counts = dict(
            db.session.execute(
                select(MemberBranch.branch_id, func.count())
                .join(Member, Member.id == MemberBranch.member_id)
                .where(Member.status == MemberStatus.ACTIVE)
                .group_by(MemberBranch.branch_id)
            ).all()
        )
        branches = db.session.scalars(select(Branch).order_by(Branch.id))
        return [
            {
                "id": b.id,
                "code": b.code,
                "name": b.name,
                "name_en": b.name_en,
                "member_count": counts.get(b.id, 0),
            }
            for b in branches
        ]


@blp.route("/towns")
class Towns(MethodView):
    @jwt_required()
    @blp.response(200, TownSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> list[Town]:
        """The district's towns and sub-districts."""
        current_actor()
        return list(db.session.scalars(select(Town).order_by(Town.id)))
