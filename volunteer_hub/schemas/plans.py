"""Posts, templates, plans, shifts, solve runs, assignments: shapes in and out.

Shape only (bounds, lengths, required fields); anything needing the database or the caller's
role is checked in the services.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from volunteer_hub.schemas.common import (
    MAX_ID,
    AwareDateTime,
    Id,
    Latitude,
    Longitude,
    PageArgs,
    Reason,
    StrictSchema,
)

BRANCH_CODE = validate.Regexp(r"^[a-z_]{1,32}$", error="Not a branch code.")


class _QueryInteger(fields.Integer):
    """Plain ASCII digits only: int() would also take " 7", "7_0" or fullwidth digits."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{1,20}", value):
            raise self.make_error("invalid")
        result: int = super()._deserialize(value, attr, data, **kwargs)
        return result


def QueryId(**kwargs: Any) -> fields.Integer:
    """An id given in a query string. Not Id(): query values are text, and its strict integer
    refuses every one of them; this takes digits and still bounds the value like Id()."""
    return _QueryInteger(validate=validate.Range(1, MAX_ID), **kwargs)


def _plain_text(value: str) -> None:
    """:raise ValidationError: control characters (PostgreSQL refuses NUL in text) or lone
    surrogates (not encodable as UTF-8); neither belongs in a name or a reason."""
    if any(
        (ord(char) < 32 and char not in "\t\n\r")
        or ord(char) == 127
        or 0xD800 <= ord(char) < 0xE000
        for char in value
    ):
        raise ValidationError("Control characters and unpaired surrogates are not allowed.")


def _text(low: int, high: int) -> validate.Validator:
    return validate.And(validate.Length(low, high), _plain_text)


MAX_HEADCOUNT = 500
MAX_SHIFTS_PER_REQUEST = 5000


def _skill_map() -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=_text(1, 32)),
        values=fields.Integer(strict=True, validate=validate.Range(1, MAX_HEADCOUNT)),
        load_default=dict,
        validate=validate.Length(max=20),
    )


# ------------------------------------------------------------------------- posts


class PostArgs(StrictSchema):
    name = fields.String(required=True, validate=_text(1, 100))
    town = Id(required=True)
    lat = Latitude(required=True)
    lon = Longitude(required=True)
    radius_m = fields.Integer(strict=True, required=True, validate=validate.Range(5, 20_000))
    branch = fields.String(required=True, validate=BRANCH_CODE)
    kind = fields.String(load_default="point", validate=validate.OneOf(["point", "route"]))


class PostListArgs(PageArgs):
    branch = fields.String(validate=BRANCH_CODE)
    town = QueryId()


class PostSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    town = fields.Integer(attribute="town_id")
    branch = fields.Function(lambda post: post.branch.code)
    lat = fields.Float()
    lon = fields.Float()
    radius_m = fields.Integer()
    kind = fields.Function(lambda post: post.kind.value)
    active = fields.Boolean()


class PostPage(Schema):
    items = fields.List(fields.Nested(PostSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class TemplateArgs(StrictSchema):
    weekdays = fields.List(
        fields.Integer(strict=True, validate=validate.Range(0, 6)),
        required=True,
        validate=validate.Length(1, 7),
        metadata={"description": "Monday = 0"},
    )
    start = fields.Time(required=True, metadata={"description": "local time, HH:MM"})
    end = fields.Time(required=True, metadata={"description": "before start = next day"})
    kind = fields.String(required=True, validate=validate.OneOf(["day", "night"]))
    headcount = fields.Integer(
        strict=True, required=True, validate=validate.Range(1, MAX_HEADCOUNT)
    )
    skills = _skill_map()
    leader_required = fields.Boolean(load_default=False)

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("start") is not None and data.get("start") == data.get("end"):
            raise ValidationError("The shift must not start and end at the same time.", "end")


class TemplateSchema(Schema):
    id = fields.Integer()
    post = fields.Integer(attribute="post_id")
    weekday = fields.Integer()
    start = fields.Function(lambda t: t.start_time.strftime("%H:%M"))
    end = fields.Function(lambda t: t.end_time.strftime("%H:%M"))
    kind = fields.Function(lambda t: t.kind.value)
    headcount = fields.Integer()
    skills = fields.Dict()
    leader_required = fields.Boolean()


# ------------------------------------------------------------------------- plans


class PlanArgs(StrictSchema):
    branch = fields.String(required=True, validate=BRANCH_CODE)
    name = fields.String(required=True, validate=_text(1, 100))
    starts_on = fields.Date(required=True)
    ends_on = fields.Date(required=True)
    town = Id(load_default=None, allow_none=True)

    @validates_schema
    def _period(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("starts_on"), data.get("ends_on")
        if start is None or end is None:
            return
        if end < start:
            raise ValidationError("ends_on must not be before starts_on.", "ends_on")
        if (end - start).days > 62:
            raise ValidationError("A plan covers at most 63 days.", "ends_on")
        if not 2000 <= start.year <= 2200:
            raise ValidationError("The year must be between 2000 and 2200.", "starts_on")


class PlanListArgs(PageArgs):
    branch = fields.String(validate=BRANCH_CODE)
    status = fields.String(validate=validate.OneOf(["draft", "solving", "solved", "published"]))


class PlanSchema(Schema):
    id = fields.Integer()
    branch = fields.String()
    town = fields.Integer(allow_none=True)
    name = fields.String()
    starts_on = fields.Date()
    ends_on = fields.Date()
    status = fields.String()
    version = fields.Integer()
    published_at = fields.DateTime(allow_none=True)
    shifts = fields.Integer()
    slots = fields.Integer()
    filled_slots = fields.Integer()
    pending_changes = fields.Integer()


class PlanPage(Schema):
    items = fields.List(fields.Nested(PlanSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


def _check_window(data: dict[str, Any]) -> None:
    start, end = data.get("starts_at"), data.get("ends_at")
    if start is None or end is None:
        return
    if end <= start:
        raise ValidationError("ends_at must be after starts_at.", "ends_at")
    if (end - start).total_seconds() > 24 * 3600:
        raise ValidationError("A shift lasts at most 24 hours.", "ends_at")


class ShiftArgs(StrictSchema):
    post = Id(required=True)
    starts_at = AwareDateTime(required=True)
    ends_at = AwareDateTime(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["day", "night"]))
    headcount = fields.Integer(
        strict=True, required=True, validate=validate.Range(1, MAX_HEADCOUNT)
    )
    skills = _skill_map()
    leader_required = fields.Boolean(load_default=False)

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        _check_window(data)


class ShiftsArgs(StrictSchema):
    shifts = fields.List(
        fields.Nested(ShiftArgs), required=True, validate=validate.Length(1, MAX_SHIFTS_PER_REQUEST)
    )


class MoveShiftArgs(StrictSchema):
    starts_at = AwareDateTime(required=True)
    ends_at = AwareDateTime(required=True)
    reason = Reason(load_default=None)

    @validates_schema
    def _window(self, data: dict[str, Any], **_: Any) -> None:
        _check_window(data)


class PostBriefSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    lat = fields.Float()
    lon = fields.Float()
    radius_m = fields.Integer()
    town = fields.Integer(attribute="town_id")


class ShiftSchema(Schema):
    id = fields.Integer()
    plan = fields.Integer(attribute="plan_id")
    post = fields.Nested(PostBriefSchema)
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    kind = fields.Function(lambda s: s.kind.value)
    headcount = fields.Integer()
    skills = fields.Dict()
    leader_required = fields.Boolean()


class ShiftListSchema(Schema):
    items = fields.List(fields.Nested(ShiftSchema))


class SolveArgs(StrictSchema):
    time_limit_s = fields.Integer(strict=True, load_default=30, validate=validate.Range(1, 600))


class ShortfallSchema(Schema):
    shift = fields.Integer()
    missing = fields.Integer()
    skills = fields.Dict()
    reason = fields.String()


class SolveRunSchema(Schema):
    id = fields.Integer()
    plan = fields.Integer(attribute="plan_id")
    status = fields.Function(lambda r: r.status.value)
    time_limit_s = fields.Integer()
    attempts = fields.Integer()
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    heartbeat_at = fields.DateTime(allow_none=True)
    filled_slots = fields.Integer(allow_none=True)
    total_slots = fields.Integer(allow_none=True)
    solver_status = fields.String(allow_none=True)
    objective = fields.Integer(allow_none=True)
    bound = fields.Integer(allow_none=True)
    wall_s = fields.Float(allow_none=True)
    shortfalls = fields.List(fields.Nested(ShortfallSchema), allow_none=True)
    progress = fields.Dict(allow_none=True)
    error = fields.String(allow_none=True)
    cancel_requested = fields.Boolean()


# ------------------------------------------------------------------- assignments


class MemberBriefSchema(Schema):
    id = fields.Integer()
    name = fields.String()


class AssignmentSchema(Schema):
    id = fields.Integer()
    plan = fields.Integer(attribute="plan_id")
    shift = fields.Nested(ShiftSchema)
    member = fields.Nested(MemberBriefSchema)
    status = fields.Function(lambda a: a.status.value)
    source = fields.Function(lambda a: a.source.value)
    starts_at = fields.DateTime()
    ends_at = fields.DateTime()
    pending_removal = fields.Boolean()
    decline_reason = fields.String(allow_none=True)
    published_at = fields.DateTime(allow_none=True)
    responded_at = fields.DateTime(allow_none=True)


class AssignmentPage(Schema):
    items = fields.List(fields.Nested(AssignmentSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()


class AssignmentListArgs(PageArgs):
    shift = QueryId()
    town = QueryId()
    member = QueryId()
    status = fields.String(
        validate=validate.OneOf(
            ["proposed", "published", "accepted", "declined", "cancelled", "completed", "no_show"]
        )
    )


class OverrideArgs(StrictSchema):
    override = fields.Boolean(load_default=False)
    reason = Reason(load_default=None)

    @validates_schema
    def _reason_with_override(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("override") and not data.get("reason"):
            raise ValidationError("An override needs a reason.", "reason")


class ManualAddArgs(OverrideArgs):
    member = Id(required=True)
    shift = Id(required=True)


class SwapArgs(OverrideArgs):
    member = Id(required=True, metadata={"description": "the volunteer who takes the shift"})


class DeclineArgs(StrictSchema):
    reason = Reason(required=True)


class MyShiftsArgs(StrictSchema):
    from_ = AwareDateTime(data_key="from", load_default=None)
    to = AwareDateTime(load_default=None)

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("from_"), data.get("to")
        if start is not None and end is not None:
            if end <= start:
                raise ValidationError("to must be after from.", "to")
            if (end - start).days > 400:
                raise ValidationError("At most 400 days at a time.", "to")


class CalendarLinkSchema(Schema):
    url = fields.String()
    secret = fields.String()


class SlotOfferSchema(Schema):
    id = fields.Integer()
    shift = fields.Nested(ShiftSchema)
    rank = fields.Integer()
    status = fields.Function(lambda o: o.status.value)
    created_at = fields.DateTime()


class SlotOfferListSchema(Schema):
    items = fields.List(fields.Nested(SlotOfferSchema))


# ------------------------------------------------------------------- swap requests


class SwapProposeArgs(StrictSchema):
    assignment = Id(
        load_default=None,
        metadata={"description": "the other volunteer's assignment (same plan) to take in return"},
    )
    member = Id(
        load_default=None,
        metadata={"description": "hand the shift over to this volunteer, taking nothing back"},
    )
    message = fields.String(load_default=None, validate=_text(1, 500))

    @validates_schema
    def _one_target(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("assignment") is None) == (data.get("member") is None):
            raise ValidationError(
                "Give either the assignment to swap with or the member to hand over to.",
                "assignment",
            )


class SwapDeclineArgs(StrictSchema):
    reason = Reason(load_default=None)


class MySwapsArgs(PageArgs):
    role = fields.String(load_default=None, validate=validate.OneOf(["requester", "target"]))
    status = fields.String(
        load_default=None,
        validate=validate.OneOf(["pending", "approved", "declined", "cancelled", "refused"]),
    )


class SwapViolationSchema(Schema):
    rule = fields.String()
    message = fields.String()
    shifts = fields.List(fields.Integer())


class SwapRequestSchema(Schema):
    id = fields.Integer()
    plan = fields.Integer(attribute="plan_id")
    status = fields.Function(lambda s: s.status.value)
    requester = fields.Nested(MemberBriefSchema)
    target = fields.Nested(MemberBriefSchema)
    requester_assignment = fields.Nested(AssignmentSchema)
    target_assignment = fields.Nested(AssignmentSchema, allow_none=True)
    message = fields.String(allow_none=True)
    refusal = fields.String(allow_none=True)
    violations = fields.List(fields.Nested(SwapViolationSchema), allow_none=True)
    requester_new_assignment = fields.Integer(
        attribute="requester_new_assignment_id", allow_none=True
    )
    target_new_assignment = fields.Integer(attribute="target_new_assignment_id", allow_none=True)
    created_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)


class SwapRequestPage(Schema):
    items = fields.List(fields.Nested(SwapRequestSchema))
    total = fields.Integer()
    page = fields.Integer()
    page_size = fields.Integer()
