"""The shared field types every feature's schemas use."""

from __future__ import annotations

import pytest
from marshmallow import Schema, ValidationError

from volunteer_hub.schemas.common import Latitude, Longitude
from volunteer_hub.schemas.incidents import IncidentCancelArgs
from volunteer_hub.schemas.members_admin import MemberReasonArgs
from volunteer_hub.schemas.plans import (
    DeclineArgs,
    ManualAddArgs,
    MoveShiftArgs,
    SwapDeclineArgs,
)


class Position(Schema):
    lat = Latitude(required=True)
    lon = Longitude(required=True)


@pytest.mark.parametrize(
    "body",
    [
        {"lat": "29.8", "lon": 121.5},
        {"lat": True, "lon": 121.5},
        {"lat": float("nan"), "lon": 121.5},
        {"lat": float("inf"), "lon": 121.5},
        {"lat": 90.5, "lon": 121.5},
        {"lat": 29.8, "lon": -180.5},
        {"lat": None, "lon": 121.5},
    ],
)
def test_positions_must_be_finite_json_numbers_in_range(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Position().load(body)


def test_a_position_loads() -> None:
    assert Position().load({"lat": 29, "lon": 121.55}) == {"lat": 29.0, "lon": 121.55}


_REASONED = [
    (DeclineArgs, {}),
    (MemberReasonArgs, {}),
    (IncidentCancelArgs, {}),
    (SwapDeclineArgs, {}),
    (ManualAddArgs, {"member": 1, "shift": 2, "override": True}),
    (
        MoveShiftArgs,
        {"starts_at": "2026-12-01T08:00:00+08:00", "ends_at": "2026-12-01T12:00:00+08:00"},
    ),
]


@pytest.mark.parametrize(("schema", "rest"), _REASONED, ids=lambda v: getattr(v, "__name__", ""))
def test_a_reason_of_only_blanks_is_refused_and_one_given_is_kept_stripped(
    schema: type[Schema], rest: dict[str, object]
) -> None:
    """Whatever asks for a reason (a declined shift, a suspension, a cancelled call-out, an
    override of the hard rules, a moved published shift) refuses one of only spaces, the
    ideographic space included, and keeps a given one without the spaces around it."""
    for blank in ("", "   ", "\u3000\t "):
        with pytest.raises(ValidationError) as refused:
            schema().load({**rest, "reason": blank})
        assert "reason" in refused.value.messages
    loaded = schema().load({**rest, "reason": " \u3000家里有事 "})
    assert loaded["reason"] == "家里有事"
