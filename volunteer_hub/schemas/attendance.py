"""Check-in/out bodies, leaders' corrections, hours and reports: shape only."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from volunteer_hub.schemas.common import (
    AwareDateTime,
    Id,
    Latitude,
    Longitude,
    Number,
    PageArgs,
    Reason,
    StrictSchema,
    plain_text,
)

MAX_ENTRY_MINUTES = 7 * 24 * 60
DIMENSIONS = ("branch", "town", "squad", "member", "month")


def Text(maximum: int, **kwargs: Any) -> fields.String:
    return fields.String(validate=[validate.Length(1, maximum), plain_text], **kwargs)


class FixArgs(StrictSchema):
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    accuracy_m = Number(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, 100_000),
        metadata={"description": "GPS accuracy radius in metres"},
    )
    client_time = AwareDateTime(
        load_default=None,
        allow_none=True,
        metadata={"description": "when the phone recorded the tap (offline sync)"},
    )


class TapSchema(Schema):
    lat = fields.Float(allow_none=True)
    lon = fields.Float(allow_none=True)
    accuracy_m = fields.Float(allow_none=True)
    client_time = fields.String(allow_none=True)


class AttendanceSchema(Schema):
    id = fields.Integer()
    assignment = fields.Integer()
    member = fields.Integer()
    status = fields.String(metadata={"description": "open, closed, auto_closed, confirmed"})
    check_in_at = fields.String()
    check_out_at = fields.String(allow_none=True)
    check_in = fields.Nested(TapSchema)
    check_out = fields.Nested(TapSchema, allow_none=True)
    synced_late = fields.Boolean()
    service_minutes = fields.Integer(allow_none=True)
    confirmed_by = fields.Integer(allow_none=True)
    confirmed_at = fields.String(allow_none=True)


class CorrectionArgs(StrictSchema):
    check_in_at = AwareDateTime(load_default=None, allow_none=True)
    check_out_at = AwareDateTime(load_default=None, allow_none=True)
    reason = Reason(required=True)

    @validates_schema
    def _one_time(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("check_in_at") is None and data.get("check_out_at") is None:
            raise ValidationError("Give check_in_at, check_out_at or both.", "check_out_at")


class AwardArgs(StrictSchema):
    member = Id(required=True)
    branch = Text(32, required=True)
    town = Id(load_default=None, allow_none=True)
    minutes = fields.Integer(
        strict=True, required=True, validate=validate.Range(1, MAX_ENTRY_MINUTES)
    )
    occurred_at = AwareDateTime(required=True)
    reason = Reason(required=True)


class ReasonArgs(StrictSchema):
    reason = Reason(required=True)


class HoursEntrySchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    minutes = fields.Integer()
    turns = fields.Integer()
    member = fields.Integer()
    branch = fields.Integer()
    town = fields.Integer(allow_none=True)
    squad = fields.Integer(allow_none=True)
    occurred_at = fields.DateTime()
    service_day = fields.Date()
    assignment = fields.Integer(allow_none=True)
    attendance = fields.Integer(allow_none=True)
    incident = fields.Integer(allow_none=True)
    references = fields.Integer(allow_none=True)
    actor = fields.Integer(allow_none=True)
    reason = fields.String(allow_none=True)
    created_at = fields.DateTime()


class RangeArgs(PageArgs):
    date_from = fields.Date(data_key="from", load_default=None)
    date_to = fields.Date(data_key="to", load_default=None)

    @validates_schema
    def _ordered(self, data: dict[str, Any], **_kwargs: Any) -> None:
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            raise ValidationError("`to` is before `from`.", "to")


class MeHoursSchema(Schema):
    total_minutes = fields.Integer()
    turns = fields.Integer()
    entries = fields.List(fields.Nested(HoursEntrySchema))
    total = fields.Integer(metadata={"description": "entries in the range (paged)"})
    page = fields.Integer()
    page_size = fields.Integer()


def _dimensions(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts or len(parts) > 2 or len(set(parts)) != len(parts):
        raise ValidationError("Give one grouping, or two separated by a comma.")
    unknown = [p for p in parts if p not in DIMENSIONS]
    if unknown:
        raise ValidationError(f"Unknown grouping {unknown[0]!r}; use {', '.join(DIMENSIONS)}.")
    return parts


class Dimensions(fields.String):
    def _deserialize(  # type: ignore[override]
        self, value: Any, attr: str | None, data: Any, **kwargs: Any
    ) -> list[str]:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        if len(text) > 60:
            raise ValidationError("Too long.")
        return _dimensions(text)


class ReportArgs(RangeArgs):
    group_by = Dimensions(
        required=True,
        metadata={"description": "branch, town, squad, member or month; or two: month,branch"},
    )
    branch = Text(32, load_default=None)


class ExportArgs(ReportArgs):
    sheets = fields.String(
        load_default=None,
        validate=validate.Length(1, 60),
        metadata={"description": "xlsx: one sheet per grouping, e.g. branch,town,month"},
    )

    @validates_schema
    def _sheets(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data.get("sheets"):
            names = [p.strip() for p in data["sheets"].split(",") if p.strip()]
            unknown = [p for p in names if p not in DIMENSIONS]
            if not names or unknown or len(names) != len(set(names)):
                raise ValidationError(
                    f"A comma-separated list of distinct groupings among {', '.join(DIMENSIONS)}.",
                    "sheets",
                )


class ReportRowSchema(Schema):
    key = fields.String()
    name = fields.String()
    minutes = fields.Integer()
    turns = fields.Integer()
    members = fields.Integer()
    branch = fields.String()
    town = fields.String()
    squad = fields.String()
    member = fields.String()
    month = fields.String()


class ReportSchema(Schema):
    group_by = fields.List(fields.String())
    rows = fields.List(fields.Nested(ReportRowSchema))
    total_minutes = fields.Integer()
    turns = fields.Integer()
    members = fields.Integer()
    total = fields.Integer(metadata={"description": "member groupings: rows in all pages"})
    page = fields.Integer()
    page_size = fields.Integer()
