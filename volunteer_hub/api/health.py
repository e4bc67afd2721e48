"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from volunteer_hub.api import Blueprint
from volunteer_hub.errors import DomainError
from volunteer_hub.extensions import db

blp = Blueprint("health", __name__, description="Liveness and readiness")


class StatusSchema(Schema):
    status = fields.String()


class DatabaseDown(DomainError):
    status = 503
    slug = "not-ready"
    title = "Not ready"


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, StatusSchema)
    def get(self) -> dict[str, Any]:
        """The process is up."""
        return {"status": "ok"}


@blp.route("/ready")
class Ready(MethodView):
    @blp.response(200, StatusSchema)
    @blp.alt_response(503, description="The database does not answer")
    def get(self) -> dict[str, Any]:
        """The database answers."""
        try:
            db.session.execute(text("SELECT 1"))
        except SQLAlchemyError:
            db.session.rollback()
            raise DatabaseDown("The database does not answer.") from None
        return {"status": "ok"}
