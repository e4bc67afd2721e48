"""Schemas shared by every blueprint: pagination, bounded ids, times with offsets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from volunteer_hub.schemas.members import no_control_characters

MAX_ID = 2**31 - 1
MAX_PAGE = 1_000_000


class StrictSchema(Schema):
    """Unknown fields are an error, so a misspelt field is reported instead of ignored."""

    class Meta:
        ordered = True


def Id(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(1, MAX_ID), **kwargs)


class AwareDateTime(fields.AwareDateTime):
    """ISO 8601 with an offset; a time without one is refused rather than guessed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.error_messages["invalid"] = "Not a valid ISO 8601 date-time."
        self.error_messages["invalid_awareness"] = (
            "The time needs a UTC offset, e.g. 2026-12-07T08:00:00+08:00."
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str) or len(value) > 40:
            raise ValidationError(self.error_messages["invalid"])
        result: datetime = super()._deserialize(value, attr, data, **kwargs)
        if not 1900 <= result.year <= 2200:
            raise ValidationError("The year must be between 1900 and 2200.")
        return result


class PageArgs(StrictSchema):
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))
    page_size = fields.Integer(load_default=50, validate=validate.Range(1, 500))


def page_schema(item: type[Schema], name: str) -> type[Schema]:
    """The list envelope `{"items", "total", "page", "page_size"}` around `item`."""
    return type(
        name,
        (Schema,),
        {
            "items": fields.List(fields.Nested(item)),
            "total": fields.Integer(),
            "page": fields.Integer(),
            "page_size": fields.Integer(),
        },
    )


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


class Number(fields.Float):
    """A JSON number: strings, booleans, NaN and infinities are refused, since a position or a
    measurement sent as text is a client bug rather than a value to guess at."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("Not a number.")
        result: float = super()._deserialize(value, attr, data, **kwargs)
        return result


def Latitude(**kwargs: Any) -> Number:
    return Number(validate=validate.Range(-90, 90), **kwargs)


def Longitude(**kwargs: Any) -> Number:
    return Number(validate=validate.Range(-180, 180), **kwargs)


def plain_text(value: str) -> None:
    """:raise ValidationError: control characters, or lone surrogates (not encodable as UTF-8,
    so the database driver would fail on them)."""
    no_control_characters(value)
    if any(0xD800 <= ord(char) <= 0xDFFF for char in value):
        raise ValidationError("Not valid Unicode text.")


def not_blank(value: str) -> None:
    """:raise ValidationError: nothing but spaces (after stripping, nothing at all)."""
    if not value:
        raise ValidationError("Give a reason; blank is not one.")


class Stripped(fields.String):
    """Text without the spaces around it (Unicode ones too, such as the ideographic space)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text: str = super()._deserialize(value, attr, data, **kwargs)
        return text.strip()


def Reason(maximum: int = 500, **kwargs: Any) -> fields.String:
    """Why someone changed, refused or cancelled something, as the audit and the people told
    see it: stored stripped, and refused when blank (given at all, when optional)."""
    return Stripped(validate=[not_blank, validate.Length(max=maximum), plain_text], **kwargs)
