"""Convert a Curtois & Qu staff scheduling instance (InstanceN.txt) into a roster Problem.

The conversion keeps the benchmark's objective: with the Problem built here, the checker's
objective of a roster equals the benchmark's own. How each part maps:

- one Shift per (day, shift type), all starting at 00:00 UTC of their day and lasting the type's
  length (at most 12 h in the published data), so shifts of different days never overlap and
  `min_rest_minutes` is 0: only the benchmark's own rules (one shift a day, forbidden
  successions) restrict what follows what;
- `required` and the under/over weights come from SECTION_COVER; `capacity` is the staff size,
  since the benchmark has no hard upper cover; a (day, type) with no cover line is free;
- per-staff limits map one to one onto `Limits`; days off become whole-day unavailable windows;
- shift-on requests are `want=true` requests, shift-off requests `want=false`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from scheduling.problem import (
    Limits,
    Problem,
    ProblemError,
    Request,
    Rules,
    Shift,
    Volunteer,
    Weights,
    Window,
)

# A Monday, like the benchmark's own day 0.
HORIZON_START = date(2026, 12, 7)
SECTIONS = (
    "SECTION_HORIZON",
    "SECTION_SHIFTS",
    "SECTION_STAFF",
    "SECTION_DAYS_OFF",
    "SECTION_SHIFT_ON_REQUESTS",
    "SECTION_SHIFT_OFF_REQUESTS",
    "SECTION_COVER",
)


@dataclass(frozen=True, slots=True)
class ShiftType:
    id: str
    minutes: int
    cannot_follow: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Cover:
    requirement: int
    under_weight: int
    over_weight: int


@dataclass(slots=True)
class CurtoisInstance:
    """The instance as read, before conversion; line numbers are kept for error messages."""

    days: int = 0
    shift_types: dict[str, ShiftType] = field(default_factory=dict)
    staff: dict[str, Limits] = field(default_factory=dict)
    days_off: dict[str, list[int]] = field(default_factory=dict)
    requests: dict[str, list[tuple[int, str, bool, int]]] = field(default_factory=dict)
    cover: dict[tuple[int, str], Cover] = field(default_factory=dict)


def shift_id(day: int, shift_type: str) -> str:
    return f"d{day}_{shift_type}"


def _lines(text: str) -> Iterator[tuple[int, str, list[str]]]:
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("SECTION_"):
            if line not in SECTIONS:
                raise ProblemError(f"line {number}", f"unknown section {line!r}")
            section = line
            continue
        if not section:
            raise ProblemError(f"line {number}", "data before the first SECTION_ header")
        yield number, section, [part.strip() for part in line.split(",")]


def _int(value: str, number: int, what: str) -> int:
    try:
        result = int(value)
    except ValueError:
        raise ProblemError(f"line {number}", f"{what} {value!r} is not a whole number") from None
    if result < 0:
        raise ProblemError(f"line {number}", f"{what} must not be negative")
    return result


def _fields(parts: list[str], count: int, number: int, section: str) -> list[str]:
    if len(parts) < count:
        raise ProblemError(
            f"line {number}", f"{section} needs {count} comma-separated fields, got {len(parts)}"
        )
    return parts


def _read_staff(parts: list[str], number: int, instance: CurtoisInstance) -> None:
    staff_id, max_shifts, max_minutes, min_minutes, max_cons, min_cons, min_off, max_weekends = (
        _fields(parts, 8, number, "SECTION_STAFF")[:8]
    )
    by_kind: dict[str, int] = {}
    for item in filter(None, max_shifts.split("|")):
        kind, _, cap = item.partition("=")
        if kind not in instance.shift_types:
            raise ProblemError(f"line {number}", f"unknown shift type {kind!r}")
        by_kind[kind] = _int(cap, number, f"max shifts of {kind}")
    max_total = _int(max_minutes, number, "MaxTotalMinutes")
    min_total = _int(min_minutes, number, "MinTotalMinutes")
    if min_total > max_total:
        raise ProblemError(f"line {number}", "MinTotalMinutes exceeds MaxTotalMinutes")
    instance.staff[staff_id] = Limits(
        max_minutes=max_total,
        min_minutes=min_total,
        max_shifts_by_kind=by_kind,
        max_consecutive_days=_int(max_cons, number, "MaxConsecutiveShifts"),
        min_consecutive_days=_int(min_cons, number, "MinConsecutiveShifts"),
        min_consecutive_days_off=_int(min_off, number, "MinConsecutiveDaysOff"),
        max_weekends=_int(max_weekends, number, "MaxWeekends"),
    )


def _day(value: str, number: int, instance: CurtoisInstance) -> int:
    day = _int(value, number, "day")
    if day >= instance.days:
        raise ProblemError(f"line {number}", f"day {day} is beyond the horizon")
    return day


def _known(kind: str | None, staff: str | None, number: int, instance: CurtoisInstance) -> None:
    if kind is not None and kind not in instance.shift_types:
        raise ProblemError(f"line {number}", f"unknown shift type {kind!r}")
    if staff is not None and staff not in instance.staff:
        raise ProblemError(f"line {number}", f"unknown staff {staff!r}")


def parse_instance(text: str) -> CurtoisInstance:
    """Read the text format; raises ProblemError naming the line of any bad value."""
    instance = CurtoisInstance()
    for number, section, parts in _lines(text):
        if section == "SECTION_HORIZON":
            instance.days = _int(parts[0], number, "horizon")
        elif section == "SECTION_SHIFTS":
            type_id, minutes, *rest = _fields(parts, 2, number, section)
            cannot_follow = tuple(filter(None, (rest[0] if rest else "").split("|")))
            length = _int(minutes, number, "length")
            if length == 0:
                raise ProblemError(f"line {number}", f"shift type {type_id!r} has no length")
            instance.shift_types[type_id] = ShiftType(type_id, length, cannot_follow)
        elif section == "SECTION_STAFF":
            _read_staff(parts, number, instance)
        elif section == "SECTION_DAYS_OFF":
            staff, *days = _fields(parts, 1, number, section)
            _known(None, staff, number, instance)
            instance.days_off.setdefault(staff, []).extend(
                _day(day, number, instance) for day in days if day
            )
        elif section in ("SECTION_SHIFT_ON_REQUESTS", "SECTION_SHIFT_OFF_REQUESTS"):
            staff, day, kind, weight = _fields(parts, 4, number, section)[:4]
            _known(kind, staff, number, instance)
            want = section == "SECTION_SHIFT_ON_REQUESTS"
            instance.requests.setdefault(staff, []).append(
                (_day(day, number, instance), kind, want, _int(weight, number, "weight"))
            )
        else:
            day, kind, requirement, under, over = _fields(parts, 5, number, section)[:5]
            _known(kind, None, number, instance)
            instance.cover[(_day(day, number, instance), kind)] = Cover(
                _int(requirement, number, "requirement"),
                _int(under, number, "under weight"),
                _int(over, number, "over weight"),
            )
    if instance.days < 1:
        raise ProblemError("SECTION_HORIZON", "missing or zero horizon")
    if not instance.shift_types:
        raise ProblemError("SECTION_SHIFTS", "no shift types")
    return instance


def _midnight(day: int) -> datetime:
    start = datetime(HORIZON_START.year, HORIZON_START.month, HORIZON_START.day, tzinfo=UTC)
    return start + timedelta(days=day)


def to_problem(instance: CurtoisInstance, name: str = "") -> Problem:
    staff_count = len(instance.staff)
    shifts = []
    for day in range(instance.days):
        for kind, shift_type in instance.shift_types.items():
            cover = instance.cover.get((day, kind), Cover(0, 0, 0))
            start = _midnight(day)
            shifts.append(
                Shift(
                    id=shift_id(day, kind),
                    start=start,
                    end=start + timedelta(minutes=shift_type.minutes),
                    kind=kind,
                    required=cover.requirement,
                    capacity=max(staff_count, cover.requirement),
                    under_weight=cover.under_weight,
                    over_weight=cover.over_weight,
                )
            )
    volunteers = tuple(
        Volunteer(
            id=staff_id,
            limits=limits,
            unavailable=tuple(
                Window(_midnight(day), _midnight(day + 1))
                for day in sorted(set(instance.days_off.get(staff_id, [])))
            ),
            requests=tuple(
                Request(shift_id(day, kind), want, weight)
                for day, kind, want, weight in instance.requests.get(staff_id, [])
            ),
        )
        for staff_id, limits in instance.staff.items()
    )
    successions = tuple(
        (first.id, second)
        for first in instance.shift_types.values()
        for second in first.cannot_follow
    )
    return Problem(
        timezone="UTC",
        horizon_start=HORIZON_START,
        horizon_days=instance.days,
        volunteers=volunteers,
        shifts=tuple(shifts),
        rules=Rules(
            min_rest_minutes=0,
            one_shift_per_day=True,
            forbidden_successions=successions,
            weekend_days=(5, 6),
        ),
        weights=Weights(under=0, over=0, skill_under=0, fairness=0, distance=0, change=0),
        meta={"source": "Curtois & Qu staff scheduling benchmark", "instance": name},
    )


def parse_curtois(text: str, name: str = "") -> Problem:
    return to_problem(parse_instance(text), name)


def read_curtois(path: str) -> Problem:
    text = Path(path).read_text(encoding="utf-8")
    return parse_curtois(text, Path(path).stem)
