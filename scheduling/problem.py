"""The roster Problem and Solution of ROSTER_FORMAT.md as frozen dataclasses, with JSON I/O.

Readers ignore fields they do not know; every malformed value raises `ProblemError` naming the
field (``volunteers[3].limits.max_minutes``), so the command line and the app can show the
coordinator what to fix instead of a traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROBLEM_FORMAT = "roster-problem/1"
SOLUTION_FORMAT = "roster-solution/1"
OBJECTIVE_PARTS = ("under", "over", "skill_under", "requests", "fairness", "distance", "change")
MAX_COUNT = 1_000_000
MAX_WEIGHT = 10**13


class ProblemError(ValueError):
    """A problem or solution document that does not follow the format; `path` names the field."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-volunteer hard limits; None means no limit."""

    max_minutes: int | None = None
    min_minutes: int | None = None
    max_minutes_per_week: int | None = None
    max_shifts: int | None = None
    max_shifts_by_kind: Mapping[str, int] = field(default_factory=dict)
    max_consecutive_days: int | None = None
    min_consecutive_days: int | None = None
    min_consecutive_days_off: int | None = None
    max_weekends: int | None = None


@dataclass(frozen=True, slots=True)
class Request:
    shift: str
    want: bool
    weight: int


@dataclass(frozen=True, slots=True)
class Volunteer:
    id: str
    skills: frozenset[str] = frozenset()
    location: Location | None = None
    unavailable: tuple[Window, ...] = ()
    target_minutes: int | None = None
    limits: Limits = field(default_factory=Limits)
    requests: tuple[Request, ...] = ()


@dataclass(frozen=True, slots=True)
class Shift:
    id: str
    start: datetime
    end: datetime
    kind: str = "day"
    location: Location | None = None
    required: int = 1
    capacity: int | None = None
    under_weight: int | None = None
    over_weight: int | None = None
    skills: Mapping[str, int] = field(default_factory=dict)

    @property
    def minutes(self) -> int:
        return int((self.end - self.start).total_seconds() // 60)

    @property
    def max_people(self) -> int:
        return self.required if self.capacity is None else self.capacity


@dataclass(frozen=True, slots=True)
class Rules:
    min_rest_minutes: int = 0
    one_shift_per_day: bool = False
    forbidden_successions: tuple[tuple[str, str], ...] = ()
    max_distance_km: float | None = None
    weekend_days: tuple[int, ...] = (5, 6)


@dataclass(frozen=True, slots=True)
class Weights:
    under: int = 1000
    over: int = 0
    skill_under: int = 500
    fairness: int = 0
    distance: int = 0
    change: int = 0


@dataclass(frozen=True, slots=True)
class Pair:
    volunteer: str
    shift: str


@dataclass(frozen=True, slots=True)
class Problem:
    timezone: str
    horizon_start: date
    horizon_days: int
    volunteers: tuple[Volunteer, ...]
    shifts: tuple[Shift, ...]
    rules: Rules = field(default_factory=Rules)
    weights: Weights = field(default_factory=Weights)
    pinned: tuple[Pair, ...] = ()
    forbidden: tuple[Pair, ...] = ()
    previous: tuple[Pair, ...] = ()
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)

    def day_index(self, moment: datetime) -> int:
        """The horizon day (0-based) a moment falls on, in the problem's time zone."""
        return (moment.astimezone(self.tz).date() - self.horizon_start).days

    def under_weight(self, shift: Shift) -> int:
        return self.weights.under if shift.under_weight is None else shift.under_weight

    def over_weight(self, shift: Shift) -> int:
        return self.weights.over if shift.over_weight is None else shift.over_weight


@dataclass(frozen=True, slots=True)
class Shortfall:
    shift: str
    missing: int
    skills: Mapping[str, int] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Solution:
    status: str
    assignments: tuple[Pair, ...]
    objective: int | None = None
    bound: int | None = None
    objective_parts: Mapping[str, int] = field(default_factory=dict)
    shortfalls: tuple[Shortfall, ...] = ()
    conflicts: tuple[str, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- reading


class _Reader:
    """Typed accessors over a JSON object that report the path of any bad value."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ProblemError(path, "must be an object")
        self.data: dict[str, Any] = data
        self.path = path

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        return self.data.get(key)

    def string(self, key: str, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or not value:
            raise ProblemError(self.sub(key), "must be a non-empty string")
        return value

    def integer(
        self, key: str, default: int | None = None, low: int = 0, high: int = MAX_WEIGHT
    ) -> int:
        value = self.data.get(key)
        if value is None:
            if default is None:
                raise ProblemError(self.sub(key), "is required")
            return default
        return _int(value, self.sub(key), low, high)

    def optional_int(self, key: str, low: int = 0, high: int = MAX_WEIGHT) -> int | None:
        value = self.data.get(key)
        return None if value is None else _int(value, self.sub(key), low, high)

    def number(self, key: str, low: float, high: float) -> float:
        value = self.data.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProblemError(self.sub(key), "must be a number")
        if not math.isfinite(value) or not low <= value <= high:
            raise ProblemError(self.sub(key), f"must be between {low} and {high}")
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise ProblemError(self.sub(key), "must be true or false")
        return value

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise ProblemError(self.sub(key), "must be a list")
        return value

    def moment(self, key: str) -> datetime:
        return _moment(self.data.get(key), self.sub(key))


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProblemError(path, "must be a whole number")
    if not low <= value <= high:
        raise ProblemError(path, f"must be between {low} and {high}")
    return value


def _moment(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise ProblemError(path, "must be an ISO 8601 date-time string with an offset")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ProblemError(path, f"{value!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise ProblemError(path, f"{value!r} has no UTC offset")
    return moment


def _location(value: Any, path: str) -> Location | None:
    if value is None:
        return None
    reader = _Reader(value, path)
    return Location(reader.number("lat", -90, 90), reader.number("lon", -180, 180))


def _window(value: Any, path: str) -> Window:
    reader = _Reader(value, path)
    window = Window(reader.moment("start"), reader.moment("end"))
    if window.end <= window.start:
        raise ProblemError(path, "end must be after start")
    return window


def _limits(value: Any, path: str) -> Limits:
    if value is None:
        return Limits()
    reader = _Reader(value, path)
    by_kind_reader = _Reader(
        reader.raw("max_shifts_by_kind") or {}, reader.sub("max_shifts_by_kind")
    )
    by_kind = {
        kind: _int(count, by_kind_reader.sub(kind), 0, MAX_COUNT)
        for kind, count in by_kind_reader.data.items()
        if count is not None
    }
    limits = Limits(
        max_minutes=reader.optional_int("max_minutes"),
        min_minutes=reader.optional_int("min_minutes"),
        max_minutes_per_week=reader.optional_int("max_minutes_per_week"),
        max_shifts=reader.optional_int("max_shifts", high=MAX_COUNT),
        max_shifts_by_kind=by_kind,
        max_consecutive_days=reader.optional_int("max_consecutive_days", high=MAX_COUNT),
        min_consecutive_days=reader.optional_int("min_consecutive_days", high=MAX_COUNT),
        min_consecutive_days_off=reader.optional_int("min_consecutive_days_off", high=MAX_COUNT),
        max_weekends=reader.optional_int("max_weekends", high=MAX_COUNT),
    )
    if (
        limits.max_minutes is not None
        and limits.min_minutes is not None
        and limits.min_minutes > limits.max_minutes
    ):
        raise ProblemError(reader.sub("min_minutes"), "must not exceed max_minutes")
    return limits


def _skill_counts(value: Any, path: str) -> dict[str, int]:
    reader = _Reader(value or {}, path)
    return (
        {skill: _int(count, reader.sub(skill), 0, MAX_COUNT) for skill, count in value.items()}
        if value
        else {}
    )


def _volunteer(value: Any, path: str) -> Volunteer:
    reader = _Reader(value, path)
    skills = reader.items("skills")
    for index, skill in enumerate(skills):
        if not isinstance(skill, str) or not skill:
            raise ProblemError(f"{reader.sub('skills')}[{index}]", "must be a skill code")
    requests = []
    for index, item in enumerate(reader.items("requests")):
        request = _Reader(item, f"{reader.sub('requests')}[{index}]")
        requests.append(
            Request(
                request.string("shift"), request.boolean("want", True), request.integer("weight", 1)
            )
        )
    return Volunteer(
        id=reader.string("id"),
        skills=frozenset(skills),
        location=_location(reader.raw("location"), reader.sub("location")),
        unavailable=tuple(
            _window(item, f"{reader.sub('unavailable')}[{index}]")
            for index, item in enumerate(reader.items("unavailable"))
        ),
        target_minutes=reader.optional_int("target_minutes"),
        limits=_limits(reader.raw("limits"), reader.sub("limits")),
        requests=tuple(requests),
    )


def _shift(value: Any, path: str) -> Shift:
    reader = _Reader(value, path)
    start, end = reader.moment("start"), reader.moment("end")
    if end <= start:
        raise ProblemError(reader.sub("end"), "must be after start")
    required = reader.integer("required", 1, high=MAX_COUNT)
    capacity = reader.optional_int("capacity", high=MAX_COUNT)
    if capacity is not None and capacity < required:
        raise ProblemError(reader.sub("capacity"), "must be at least required")
    return Shift(
        id=reader.string("id"),
        start=start,
        end=end,
        kind=reader.string("kind", "day"),
        location=_location(reader.raw("location"), reader.sub("location")),
        required=required,
        capacity=capacity,
        under_weight=reader.optional_int("under_weight"),
        over_weight=reader.optional_int("over_weight"),
        skills=_skill_counts(reader.raw("skills"), reader.sub("skills")),
    )


def _rules(value: Any, path: str) -> Rules:
    reader = _Reader(value or {}, path)
    successions = []
    for index, item in enumerate(reader.items("forbidden_successions")):
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(kind, str) and kind for kind in item)
        ):
            raise ProblemError(
                f"{reader.sub('forbidden_successions')}[{index}]", "must be [kind_a, kind_b]"
            )
        successions.append((item[0], item[1]))
    weekend = reader.items("weekend_days") if reader.has("weekend_days") else [5, 6]
    for index, day in enumerate(weekend):
        _int(day, f"{reader.sub('weekend_days')}[{index}]", 0, 6)
    max_distance = (
        reader.number("max_distance_km", 0, 40_075) if reader.has("max_distance_km") else None
    )
    return Rules(
        min_rest_minutes=reader.integer("min_rest_minutes", 0, high=MAX_COUNT),
        one_shift_per_day=reader.boolean("one_shift_per_day", False),
        forbidden_successions=tuple(successions),
        max_distance_km=max_distance,
        weekend_days=tuple(sorted(set(weekend))),
    )


def _weights(value: Any, path: str) -> Weights:
    reader = _Reader(value or {}, path)
    defaults = Weights()
    return Weights(
        **{
            name: reader.integer(name, getattr(defaults, name))
            for name in Weights.__dataclass_fields__
        }
    )


def _pairs(reader: _Reader, key: str, volunteers: set[str], shifts: set[str]) -> tuple[Pair, ...]:
    pairs = []
    for index, item in enumerate(reader.items(key)):
        path = f"{key}[{index}]"
        pair_reader = _Reader(item, path)
        pair = Pair(pair_reader.string("volunteer"), pair_reader.string("shift"))
        if pair.volunteer not in volunteers:
            raise ProblemError(f"{path}.volunteer", f"unknown volunteer {pair.volunteer!r}")
        if pair.shift not in shifts:
            raise ProblemError(f"{path}.shift", f"unknown shift {pair.shift!r}")
        pairs.append(pair)
    return tuple(pairs)


def _unique(ids: Sequence[str], path: str) -> set[str]:
    seen: set[str] = set()
    for index, item in enumerate(ids):
        if item in seen:
            raise ProblemError(f"{path}[{index}].id", f"duplicate id {item!r}")
        seen.add(item)
    return seen


def problem_from_dict(data: Any) -> Problem:
    """Build a Problem from parsed JSON.

    :raise ProblemError: naming the first field that does not follow the format.
    """
    reader = _Reader(data, "")
    fmt = reader.raw("format")
    if fmt is not None and fmt != PROBLEM_FORMAT:
        raise ProblemError("format", f"expected {PROBLEM_FORMAT!r}, got {fmt!r}")
    timezone = reader.string("timezone", "UTC")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ProblemError("timezone", f"unknown time zone {timezone!r}") from None
    horizon = _Reader(reader.raw("horizon"), "horizon")
    try:
        start = date.fromisoformat(horizon.string("start"))
    except ValueError:
        raise ProblemError("horizon.start", "must be a date YYYY-MM-DD") from None
    days = horizon.integer("days", high=3660)
    if days < 1:
        raise ProblemError("horizon.days", "must be at least 1")
    volunteers = tuple(
        _volunteer(item, f"volunteers[{index}]")
        for index, item in enumerate(reader.items("volunteers"))
    )
    shifts = tuple(
        _shift(item, f"shifts[{index}]") for index, item in enumerate(reader.items("shifts"))
    )
    volunteer_ids = _unique([v.id for v in volunteers], "volunteers")
    shift_ids = _unique([s.id for s in shifts], "shifts")
    for v_index, volunteer in enumerate(volunteers):
        for r_index, request in enumerate(volunteer.requests):
            if request.shift not in shift_ids:
                raise ProblemError(
                    f"volunteers[{v_index}].requests[{r_index}].shift",
                    f"unknown shift {request.shift!r}",
                )
    meta = reader.raw("meta")
    return Problem(
        timezone=timezone,
        horizon_start=start,
        horizon_days=days,
        volunteers=volunteers,
        shifts=shifts,
        rules=_rules(reader.raw("rules"), "rules"),
        weights=_weights(reader.raw("weights"), "weights"),
        pinned=_pairs(reader, "pinned", volunteer_ids, shift_ids),
        forbidden=_pairs(reader, "forbidden", volunteer_ids, shift_ids),
        previous=_pairs(reader, "previous", volunteer_ids, shift_ids),
        meta=meta if isinstance(meta, dict) else {},
    )


def solution_from_dict(data: Any) -> Solution:
    """Build a Solution from parsed JSON.

    :raise ProblemError: naming the first field that does not follow the format.
    """
    reader = _Reader(data, "")
    fmt = reader.raw("format")
    if fmt is not None and fmt != SOLUTION_FORMAT:
        raise ProblemError("format", f"expected {SOLUTION_FORMAT!r}, got {fmt!r}")
    assignments = []
    for index, item in enumerate(reader.items("assignments")):
        pair = _Reader(item, f"assignments[{index}]")
        assignments.append(Pair(pair.string("volunteer"), pair.string("shift")))
    shortfalls = []
    for index, item in enumerate(reader.items("shortfalls")):
        entry = _Reader(item, f"shortfalls[{index}]")
        shortfalls.append(
            Shortfall(
                shift=entry.string("shift"),
                missing=entry.integer("missing", 0, high=MAX_COUNT),
                skills=_skill_counts(entry.raw("skills"), entry.sub("skills")),
                reason=str(entry.raw("reason") or ""),
            )
        )
    parts = reader.raw("objective_parts") or {}
    stats = reader.raw("stats") or {}
    return Solution(
        status=reader.string("status", "unknown"),
        assignments=tuple(assignments),
        objective=reader.optional_int("objective", low=-MAX_WEIGHT * 1000, high=MAX_WEIGHT * 1000),
        bound=reader.optional_int("bound", low=-MAX_WEIGHT * 1000, high=MAX_WEIGHT * 1000),
        objective_parts={k: int(v) for k, v in parts.items()} if isinstance(parts, dict) else {},
        shortfalls=tuple(shortfalls),
        conflicts=tuple(str(c) for c in reader.items("conflicts")),
        stats=stats if isinstance(stats, dict) else {},
    )


def load_json(text: str, what: str = "document") -> Any:
    """Parse JSON, turning a syntax error into a ProblemError with line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProblemError(
            "", f"{what} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def read_problem(path: str) -> Problem:
    with open(path, encoding="utf-8") as handle:
        return problem_from_dict(load_json(handle.read(), path))


def read_solution(path: str) -> Solution:
    with open(path, encoding="utf-8") as handle:
        return solution_from_dict(load_json(handle.read(), path))


# --------------------------------------------------------------------------- writing


def _location_dict(location: Location | None) -> dict[str, float] | None:
    return None if location is None else {"lat": location.lat, "lon": location.lon}


def _limits_dict(limits: Limits) -> dict[str, Any]:
    out: dict[str, Any] = {
        name: getattr(limits, name)
        for name in Limits.__dataclass_fields__
        if name != "max_shifts_by_kind" and getattr(limits, name) is not None
    }
    if limits.max_shifts_by_kind:
        out["max_shifts_by_kind"] = dict(limits.max_shifts_by_kind)
    return out


def problem_to_dict(problem: Problem) -> dict[str, Any]:
    def pairs(items: Sequence[Pair]) -> list[dict[str, str]]:
        return [{"volunteer": p.volunteer, "shift": p.shift} for p in items]

    rules = problem.rules
    out: dict[str, Any] = {
        "format": PROBLEM_FORMAT,
        "timezone": problem.timezone,
        "horizon": {"start": problem.horizon_start.isoformat(), "days": problem.horizon_days},
        "volunteers": [
            {
                "id": v.id,
                "skills": sorted(v.skills),
                "location": _location_dict(v.location),
                "unavailable": [
                    {"start": w.start.isoformat(), "end": w.end.isoformat()} for w in v.unavailable
                ],
                "target_minutes": v.target_minutes,
                "limits": _limits_dict(v.limits),
                "requests": [
                    {"shift": r.shift, "want": r.want, "weight": r.weight} for r in v.requests
                ],
            }
            for v in problem.volunteers
        ],
        "shifts": [
            {
                key: value
                for key, value in {
                    "id": s.id,
                    "start": s.start.isoformat(),
                    "end": s.end.isoformat(),
                    "kind": s.kind,
                    "location": _location_dict(s.location),
                    "required": s.required,
                    "capacity": s.capacity,
                    "under_weight": s.under_weight,
                    "over_weight": s.over_weight,
                    "skills": dict(s.skills),
                }.items()
                if value is not None or key == "location"
            }
            for s in problem.shifts
        ],
        "rules": {
            "min_rest_minutes": rules.min_rest_minutes,
            "one_shift_per_day": rules.one_shift_per_day,
            "forbidden_successions": [list(pair) for pair in rules.forbidden_successions],
            "max_distance_km": rules.max_distance_km,
            "weekend_days": list(rules.weekend_days),
        },
        "weights": {name: getattr(problem.weights, name) for name in Weights.__dataclass_fields__},
        "pinned": pairs(problem.pinned),
        "forbidden": pairs(problem.forbidden),
        "previous": pairs(problem.previous),
    }
    if problem.meta:
        out["meta"] = dict(problem.meta)
    return out


def solution_to_dict(solution: Solution) -> dict[str, Any]:
    out: dict[str, Any] = {
        "format": SOLUTION_FORMAT,
        "status": solution.status,
        "assignments": [{"volunteer": p.volunteer, "shift": p.shift} for p in solution.assignments],
        "objective": solution.objective,
        "bound": solution.bound,
        "objective_parts": dict(solution.objective_parts),
        "shortfalls": [
            {"shift": s.shift, "missing": s.missing, "skills": dict(s.skills), "reason": s.reason}
            for s in solution.shortfalls
        ],
        "stats": dict(solution.stats),
    }
    if solution.conflicts:
        out["conflicts"] = list(solution.conflicts)
    return out


def horizon_days(problem: Problem) -> list[date]:
    return [problem.horizon_start + timedelta(days=i) for i in range(problem.horizon_days)]
