"""Devices, the inbox, announcements and the operators' outbox view (shape only)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from volunteer_hub.models.notifications import OutboxStatus
from volunteer_hub.schemas.common import Id, PageArgs, StrictSchema, page_schema

# FCM registration tokens are printable ASCII without spaces (about 160 characters today).
TOKEN_PATTERN = r"^[\x21-\x7e]+$"
MAX_TOKEN = 4096


class DeviceArgs(StrictSchema):
    token = fields.String(
        required=True,
        validate=[
            validate.Length(1, MAX_TOKEN),
            validate.Regexp(TOKEN_PATTERN, error="A token is printable ASCII without spaces."),
        ],
    )
    platform = fields.String(required=True, validate=validate.OneOf(["android", "ios"]))


class DeviceSchema(Schema):
    id = fields.Integer()
    token = fields.String()
    platform = fields.String()
    created_at = fields.DateTime()
    last_seen_at = fields.DateTime()


class InboxArgs(PageArgs):
    unread = fields.Boolean(load_default=False, metadata={"description": "only unread items"})


class InboxItemSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    title = fields.String()
    body = fields.String()
    data = fields.Dict(keys=fields.String(), values=fields.String())
    created_at = fields.DateTime(
        attribute="visible_at",
        metadata={"description": "when the message was sent (a reminder: when it was due)"},
    )
    read_at = fields.DateTime(allow_none=True)


InboxPageSchema: type[Schema] = type(
    "InboxPage",
    (page_schema(InboxItemSchema, "InboxPageBase"),),
    {"unread": fields.Integer(metadata={"description": "unread items in the whole inbox"})},
)


class ReadAllSchema(Schema):
    marked = fields.Integer()


class AnnouncementArgs(StrictSchema):
    title = fields.String(required=True, validate=validate.Length(1, 100))
    body = fields.String(required=True, validate=validate.Length(1, 5000))
    branch = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 32))
    town = Id(load_default=None, allow_none=True)

    @validates_schema
    def _has_audience(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("branch") is None and data.get("town") is None:
            raise ValidationError("Name a branch, a town, or both.", "branch")


class AnnouncementSchema(Schema):
    id = fields.Integer()
    title = fields.String()
    body = fields.String()
    branch = fields.String(allow_none=True)
    town = fields.Integer(allow_none=True)
    status = fields.String(metadata={"description": "fanning_out or done"})
    recipients = fields.Integer()
    created_at = fields.DateTime()


class OutboxArgs(PageArgs):
    status = fields.String(
        load_default=None, validate=validate.OneOf([s.value for s in OutboxStatus])
    )


class OutboxItemSchema(Schema):
    id = fields.Integer()
    message_id = fields.String()
    recipient = fields.Integer(attribute="recipient_id")
    kind = fields.String()
    status = fields.String()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    deliver_after = fields.DateTime()
    next_attempt_at = fields.DateTime()
    created_at = fields.DateTime()
    sent_at = fields.DateTime(allow_none=True)
    assignment_id = fields.Integer(allow_none=True)
    incident_id = fields.Integer(allow_none=True)


OutboxPageSchema = page_schema(OutboxItemSchema, "OutboxPage")
