"""The shift-plan push kinds: a freed slot offered to a replacement, a swap request between two
volunteers, and its outcome."""

from __future__ import annotations

import pytest

from notifications import messages
from notifications.fcm import to_fcm_message
from notifications.messages import MissingParamsError, build_push

SHIFT = {"post": "东湖花园南门", "date": "6月3日（周二）", "start": "19:00", "end": "23:00"}
PARAMS: dict[str, dict[str, str]] = {
    "slot_offer": {"offer_id": "17", **SHIFT},
    "swap_request": {"swap_request_id": "5", "requester": "王芳", **SHIFT},
    "swap_decided": {"swap_request_id": "5", "outcome": "已生效", **SHIFT},
}


def test_the_plan_kinds_are_registered() -> None:
    assert set(PARAMS) <= set(messages.kinds())


@pytest.mark.parametrize("kind", sorted(PARAMS))
def test_plan_kinds_render_chinese_with_ids_only_in_the_data(kind: str) -> None:
    push = build_push(kind, PARAMS[kind], token="tok", message_id="m-1")

    assert any("\u4e00" <= char <= "\u9fff" for char in push.title + push.body)
    assert "{" not in push.title + push.body
    id_key = next(key for key in PARAMS[kind] if key.endswith("_id"))
    assert push.data == {id_key: PARAMS[kind][id_key], "kind": kind, "message_id": "m-1"}
    assert len(push.title) <= messages.MAX_TITLE_CHARS


def test_slot_offer_names_the_shift_wakes_the_phone_and_collapses_per_offer() -> None:
    push = build_push("slot_offer", PARAMS["slot_offer"], token="t", message_id="m")
    again = build_push("slot_offer", PARAMS["slot_offer"], token="t", message_id="n")

    assert push.title == "空缺班次：东湖花园南门 6月3日（周二） 19:00-23:00"
    assert "先接受者得" in push.body
    assert push.android_priority == "high"
    assert push.collapse_key == again.collapse_key == "slot-offer-17"
    # An offer for a shift later today must not arrive tomorrow.
    assert push.ttl_seconds <= 12 * 3600
    encoded = to_fcm_message(push, now=1_000_000)
    assert encoded.android is not None and encoded.android.collapse_key == "slot-offer-17"


def test_swap_request_is_a_hand_over_unless_something_is_given_in_return() -> None:
    hand_over = build_push("swap_request", PARAMS["swap_request"], token="t", message_id="m")
    in_return = "，并接替您在北门 6月4日（周三） 08:00-12:00 的班次"
    swap = build_push(
        "swap_request",
        {**PARAMS["swap_request"], "in_return": in_return},
        token="t",
        message_id="n",
    )

    assert hand_over.title == "换班请求：王芳"
    assert hand_over.body == (
        "王芳请您接替东湖花园南门的班次（6月3日（周二） 19:00-23:00）。请在应用内同意或拒绝。"
    )
    assert "北门 6月4日（周三） 08:00-12:00" in swap.body
    assert hand_over.android_priority == "normal"


def test_swap_decision_replaces_the_undelivered_request() -> None:
    request = build_push("swap_request", PARAMS["swap_request"], token="t", message_id="m")
    decided = build_push(
        "swap_decided",
        {**PARAMS["swap_decided"], "outcome": "未通过", "detail": "违反规则：休息时间不足。"},
        token="t",
        message_id="n",
    )

    assert decided.collapse_key == request.collapse_key == "swap-5"
    assert decided.title == "换班未通过：东湖花园南门 6月3日（周二） 19:00-23:00"
    assert decided.body.endswith("换班请求未通过。违反规则：休息时间不足。")
    plain = build_push("swap_decided", PARAMS["swap_decided"], token="t", message_id="o")
    assert plain.body.endswith("换班请求已生效。")


@pytest.mark.parametrize("kind", sorted(PARAMS))
@pytest.mark.parametrize("missing", ["post", "date", "start", "end"])
def test_plan_kinds_refuse_missing_shift_params(kind: str, missing: str) -> None:
    params = {k: v for k, v in PARAMS[kind].items() if k != missing}
    with pytest.raises(MissingParamsError, match=missing):
        build_push(kind, params, token="t", message_id="m")


def test_swap_request_refuses_a_missing_requester_and_non_text_values() -> None:
    params = {k: v for k, v in PARAMS["swap_request"].items() if k != "requester"}
    with pytest.raises(MissingParamsError, match="requester"):
        build_push("swap_request", params, token="t", message_id="m")
    with pytest.raises(MissingParamsError, match="strings"):
        build_push(
            "slot_offer",
            {**PARAMS["slot_offer"], "offer_id": 17},  # type: ignore[dict-item]
            token="t",
            message_id="m",
        )
