"""The Chinese texts and delivery settings of every push kind, in one table.

The outbox stores only ``kind`` + ``params`` and renders at send time, so a wording fix reaches
pushes that are already queued, and the table is the one place a translator has to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Priority = Literal["high", "normal"]

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True)
class Template:
    """How one kind of push looks and travels.

    ``data_keys`` are the params the phone needs to act (ids for deep links); free text stays
    out of the data payload because FCM caps the whole message at 4 KB.
    """

    kind: str
    title: str
    body: str
    required: tuple[str, ...]
    data_keys: tuple[str, ...]
    priority: Priority = "normal"
    ttl_seconds: int = DAY
    collapse_key: str | None = None
    optional: dict[str, str] = field(default_factory=dict)


_SHIFT = ("post", "date", "start", "end")

TEMPLATES: dict[str, Template] = {
    t.kind: t
    for t in (
        Template(
            kind="assignment_published",
            title="新的排班：{post} {date} {start}-{end}",
            body="您已被安排在{post}值班（{date} {start}-{end}），请在应用内确认。",
            required=("assignment_id", *_SHIFT),
            data_keys=("assignment_id",),
            ttl_seconds=2 * DAY,
        ),
        Template(
            kind="assignment_changed",
            title="排班变更：{post} {date} {start}-{end}",
            body="您的班次已调整为{post} {date} {start}-{end}。{reason}",
            required=("assignment_id", *_SHIFT),
            optional={"reason": ""},
            data_keys=("assignment_id",),
            ttl_seconds=2 * DAY,
        ),
        Template(
            kind="assignment_cancelled",
            title="排班取消：{post} {date} {start}-{end}",
            body="您在{post}的班次（{date} {start}-{end}）已取消，无需到岗。{reason}",
            required=("assignment_id", *_SHIFT),
            optional={"reason": ""},
            data_keys=("assignment_id",),
            ttl_seconds=2 * DAY,
        ),
        # A reminder is worthless after the shift has started, and a newer reminder for the
        # same assignment replaces an undelivered older one instead of stacking up.
        Template(
            kind="shift_reminder",
            title="值班提醒：{post} {start} 开始",
            body="您的班次将于{date} {start}开始（{post}），请按时到岗签到，并穿好志愿者马甲。",
            required=("assignment_id", *_SHIFT),
            data_keys=("assignment_id",),
            priority="high",
            ttl_seconds=HOUR,
            collapse_key="reminder-{assignment_id}",
        ),
        Template(
            kind="no_show_notice",
            title="缺勤提醒：{volunteer} 未到岗",
            body="{volunteer}未在{post}签到（班次 {date} {start}-{end}），请核实并确认考勤。",
            required=("assignment_id", "volunteer", *_SHIFT),
            data_keys=("assignment_id",),
            ttl_seconds=12 * HOUR,
        ),
        # An offer is only useful while the incident is open: high priority to wake the phone,
        # a short TTL so a phone that comes back online later is not sent to a closed incident.
        # The offer and its withdrawal share a collapse key, so a withdrawal replaces an offer
        # that has not reached the phone yet.
        Template(
            kind="incident_offer",
            title="紧急任务：{incident_type}",
            body="{location}附近需要志愿者：{summary}。请在{respond_by}前接受或拒绝。",
            required=(
                "incident_id",
                "offer_id",
                "incident_type",
                "location",
                "summary",
                "respond_by",
            ),
            data_keys=("incident_id", "offer_id"),
            priority="high",
            ttl_seconds=5 * MINUTE,
            collapse_key="offer-{offer_id}",
        ),
        Template(
            kind="offer_withdrawn",
            title="任务已撤回：{incident_type}",
            body="{location}的任务已有人接手或已结束，无需前往。",
            required=("incident_id", "offer_id", "incident_type", "location"),
            data_keys=("incident_id", "offer_id"),
            priority="high",
            ttl_seconds=HOUR,
            collapse_key="offer-{offer_id}",
        ),
        Template(
            kind="incident_escalated",
            title="事件升级：{incident_type}（{location}）",
            body="该事件在{minutes}分钟内无人接单（已发出{offers}个邀请），请人工调度。",
            required=("incident_id", "incident_type", "location", "minutes", "offers"),
            data_keys=("incident_id",),
            priority="high",
            ttl_seconds=HOUR,
        ),
        Template(
            kind="announcement",
            title="{title}",
            body="{body}",
            required=("announcement_id", "title", "body"),
            data_keys=("announcement_id",),
            ttl_seconds=7 * DAY,
        ),
    )
}

# ---------------------------------------------------------------------- shift plans
# A freed slot offered to a replacement, and swap requests between two volunteers. An offer
# is worth something only until the shift starts; its collapse key lets a later push about
# the same offer replace an undelivered one. ``in_return`` is the swap's other half ("and you
# hand over your shift of ...") and empty for a plain hand-over.

TEMPLATES.update(
    {
        t.kind: t
        for t in (
            Template(
                kind="slot_offer",
                title="空缺班次：{post} {date} {start}-{end}",
                body="{post}的班次（{date} {start}-{end}）有人请假，现有空缺。"
                "您可在应用内接受，先接受者得。",
                required=("offer_id", *_SHIFT),
                data_keys=("offer_id",),
                priority="high",
                ttl_seconds=12 * HOUR,
                collapse_key="slot-offer-{offer_id}",
            ),
            Template(
                kind="swap_request",
                title="换班请求：{requester}",
                body="{requester}请您接替{post}的班次（{date} {start}-{end}）{in_return}。"
                "请在应用内同意或拒绝。",
                required=("swap_request_id", "requester", *_SHIFT),
                optional={"in_return": ""},
                data_keys=("swap_request_id",),
                ttl_seconds=DAY,
                collapse_key="swap-{swap_request_id}",
            ),
            Template(
                kind="swap_decided",
                title="换班{outcome}：{post} {date} {start}-{end}",
                body="{post}班次（{date} {start}-{end}）的换班请求{outcome}。{detail}",
                required=("swap_request_id", "outcome", *_SHIFT),
                optional={"detail": ""},
                data_keys=("swap_request_id",),
                ttl_seconds=2 * DAY,
                collapse_key="swap-{swap_request_id}",
            ),
        )
    }
)
