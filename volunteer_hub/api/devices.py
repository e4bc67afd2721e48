"""The caller's phones, registered for pushes."""

from __future__ import annotations

from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.errors import NotFound
from volunteer_hub.extensions import db
from volunteer_hub.models.notifications import Device
from volunteer_hub.schemas.notifications import MAX_TOKEN, DeviceArgs, DeviceSchema
from volunteer_hub.services import devices

blp = Blueprint("devices", __name__, description="Phones registered for pushes")


@blp.route("/me/devices")
class MyDevices(MethodView):
    @jwt_required()
    @blp.response(200, DeviceSchema(many=True))
    @blp.doc(security=[{"bearer": []}])
    def get(self) -> list[Device]:
        """The caller's registered phones."""
        actor = current_actor()
        return devices.list_own(db.session(), actor.member_id)

    @jwt_required()
    @blp.arguments(DeviceArgs)
    @blp.response(201, DeviceSchema)
    @blp.alt_response(200, schema=DeviceSchema, description="The token was already yours")
    @blp.doc(security=[{"bearer": []}])
    def post(self, args: dict[str, str]) -> tuple[Device, int]:
        """Register a phone's FCM token; a token registered by someone else moves to you."""
        actor = current_actor()
        device, new_here = devices.register(
            db.session(), actor.member_id, args["token"], args["platform"]
        )
        return device, 201 if new_here else 200


@blp.route("/me/devices/<string:token>")
class MyDevice(MethodView):
    @jwt_required()
    @blp.response(204)
    @blp.doc(security=[{"bearer": []}])
    def delete(self, token: str) -> None:
        """Stop pushes to this phone (sign-out on the phone)."""
        actor = current_actor()
        if len(token) > MAX_TOKEN:
            raise NotFound("No such device.")
        devices.unregister(db.session(), actor.member_id, token)
