"""Incident and offer shapes. Shape only: branch and skill codes are checked by the service."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from volunteer_hub.models.incidents import IncidentStatus, OfferStatus, Urgency
from volunteer_hub.schemas.common import (
    Id,
    Latitude,
    Longitude,
    PageArgs,
    Reason,
    StrictSchema,
    page_schema,
)


class IncidentArgs(StrictSchema):
    kind = fields.String(
        required=True,
        validate=[validate.Length(1, 40), validate.Regexp(r"^\S(.*\S)?$")],
        metadata={"description": "dispute, hazard, flood, fire, accident, rescue, ..."},
    )
    branch = fields.String(required=True, validate=validate.Length(1, 32))
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    description = fields.String(load_default="", validate=validate.Length(0, 2000))
    needed = fields.Integer(required=True, strict=True, validate=validate.Range(1, 50))
    skills = fields.List(
        fields.String(validate=validate.Length(1, 32)),
        load_default=list,
        validate=validate.Length(0, 12),
        metadata={"description": "skill codes every responder must hold"},
    )
    urgency = fields.String(
        load_default=Urgency.NORMAL.value, validate=validate.OneOf([u.value for u in Urgency])
    )
    town = Id(load_default=None, allow_none=True)
    address = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 200))


class IncidentListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf([s.value for s in IncidentStatus]))
    branch = fields.String(validate=validate.Length(1, 32))


class IncidentPositionArgs(StrictSchema):
    lat = Latitude(required=True)
    lon = Longitude(required=True)


class IncidentResolveArgs(StrictSchema):
    outcome = fields.String(
        required=True,
        validate=validate.Length(1, 24),
        metadata={
            "description": "mediation: settled_on_site, referred, not_settled; "
            "other branches: handled, referred, false_alarm, not_handled"
        },
    )
    note = fields.String(load_default=None, allow_none=True, validate=validate.Length(0, 1000))


class IncidentDispatchArgs(StrictSchema):
    member = Id(required=True)


class IncidentCancelArgs(StrictSchema):
    reason = Reason(required=True)


class IncidentOfferMemberSchema(Schema):
    id = fields.Integer()
    name = fields.String()


class IncidentOfferSchema(Schema):
    id = fields.Integer()
    incident = fields.Integer()
    member = fields.Nested(IncidentOfferMemberSchema)
    wave = fields.Integer()
    distance_m = fields.Integer(allow_none=True)
    dispatched_by = fields.Integer(allow_none=True)
    status = fields.String(metadata={"enum": [s.value for s in OfferStatus]})
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    answered_at = fields.DateTime(allow_none=True)
    arrived_at = fields.DateTime(allow_none=True)
    arrived_lat = fields.Float(allow_none=True)
    arrived_lon = fields.Float(allow_none=True)
    left_at = fields.DateTime(allow_none=True)
    minutes_credited = fields.Integer(allow_none=True)


class OfferIncidentSummarySchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    lat = fields.Float()
    lon = fields.Float()
    address = fields.String(allow_none=True)
    description = fields.String()
    urgency = fields.String()
    status = fields.String()


class MyIncidentOfferSchema(IncidentOfferSchema):
    incident_summary = fields.Nested(OfferIncidentSummarySchema)


class IncidentTimelineEntrySchema(Schema):
    at = fields.DateTime()
    action = fields.String()
    actor = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)


class IncidentSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    branch = fields.String()
    town = fields.Integer(allow_none=True)
    lat = fields.Float()
    lon = fields.Float()
    address = fields.String(allow_none=True)
    description = fields.String()
    needed = fields.Integer()
    accepted = fields.Integer()
    skills = fields.List(fields.String())
    urgency = fields.String()
    status = fields.String(metadata={"enum": [s.value for s in IncidentStatus]})
    reporter = fields.Integer()
    wave = fields.Integer()
    next_wave_at = fields.DateTime(allow_none=True)
    deadline_at = fields.DateTime()
    staffed_at = fields.DateTime(allow_none=True)
    escalated_at = fields.DateTime(allow_none=True)
    resolved_at = fields.DateTime(allow_none=True)
    outcome = fields.String(allow_none=True)
    outcome_note = fields.String(allow_none=True)
    created_at = fields.DateTime()
    offers = fields.List(fields.Nested(IncidentOfferSchema))
    timeline = fields.List(
        fields.Nested(IncidentTimelineEntrySchema),
        metadata={"description": "coordinators and the reporter only"},
    )


class IncidentListItemSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    branch = fields.Function(lambda incident: incident.branch.code)
    town = fields.Integer(attribute="town_id", allow_none=True)
    lat = fields.Float()
    lon = fields.Float()
    needed = fields.Integer()
    accepted = fields.Integer(attribute="accepted_count")
    urgency = fields.Function(lambda incident: incident.urgency.value)
    status = fields.Function(lambda incident: incident.status.value)
    wave = fields.Integer()
    created_at = fields.DateTime()
    staffed_at = fields.DateTime(allow_none=True)
    escalated_at = fields.DateTime(allow_none=True)


IncidentPageSchema = page_schema(IncidentListItemSchema, "IncidentPage")
MyOfferPageSchema = page_schema(MyIncidentOfferSchema, "MyIncidentOfferPage")
