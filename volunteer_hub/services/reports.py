"""Service-hours reports from the rollup and the ledger, and their CSV and XLSX exports.

Figures are sums of ledger entries, so corrections and reversals are counted where they apply.
`members` counts the members whose net minutes in the group are positive (a fully reversed
entry does not make someone a contributor); a group whose minutes, turns and members are all
zero (say, a credit and its reversal) is not a row.

Whole months come from rollups kept exact in the same transaction as every ledger entry:
`hours_span` and `hours_span_member` (running totals per branch and member, and per member,
over two calendar years) for ranges inside two years and groupings by branch, member or
month; `hours_rollup` (per year, branch, member, town and squad, a column pair per month) for
towns, squads and longer ranges. A range that starts or ends inside a month reads that month's
days from the ledger, or reads the whole month from a rollup and subtracts the days outside
the range, whichever touches fewer days. Either way a report is the same as aggregating the
ledger directly (`ledger_report`, which the tests compare it with).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVarTuple

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Select,
    Subquery,
    and_,
    any_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session

from volunteer_hub.models import Branch, Member, Squad, Town
from volunteer_hub.models.attendance import HoursEntry, HoursRollup, hours_span, hours_span_member
from volunteer_hub.services import hours_rollup
from volunteer_hub.services.turns import in_turns

DIMENSIONS = ("branch", "town", "squad", "member", "month")
COLUMNS: dict[str, Any] = {
    "branch": HoursEntry.branch_id,
    "town": HoursEntry.town_id,
    "squad": HoursEntry.squad_id,
    "member": HoursEntry.member_id,
    "month": HoursEntry.service_month,
}
# The rollup stores "no town" / "no squad" as 0 (a key column); reports show them as NULL.
ROLLUP_COLUMNS: dict[str, Any] = {
    "branch": HoursRollup.branch_id,
    "town": func.nullif(HoursRollup.town_id, 0),
    "squad": func.nullif(HoursRollup.squad_id, 0),
    "member": HoursRollup.member_id,
}
SHEET_NAMES = {
    "branch": "按分会",
    "town": "按镇街",
    "squad": "按分队",
    "member": "按队员",
    "month": "按月份",
}
DIMENSION_HEADERS = {
    "branch": "分会",
    "town": "镇街",
    "squad": "分队",
    "member": "队员",
    "month": "月份",
}


@dataclass(frozen=True)
class Filter:
    """What to count: a date range (inclusive, federation-local days), the branches and, for
    some of them, the towns (a town-scoped coordinator's report: (branch, towns) pairs; a
    branch not named there counts in every town, entries of no town included)."""

    date_from: date | None = None
    date_to: date | None = None
    branch_ids: frozenset[int] | None = None  # None: every branch
    towns: tuple[tuple[int, frozenset[int]], ...] = ()


# ---------------------------------------------------------------------- splitting a range


@dataclass(frozen=True)
class Piece:
    """Ledger days [first, last] (inside one month) added (+1) or subtracted (-1)."""

    first: date
    last: date
    sign: int


@dataclass
class Split:
    """A date range as whole rollup months per year plus signed ledger pieces."""

    whole: dict[int, list[int]] = field(default_factory=dict)
    pieces: list[Piece] = field(default_factory=list)

    def years(self) -> list[int]:
        return sorted(set(self.whole) | {p.first.year for p in self.pieces})


def _month_end(month: date) -> date:
    following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def split_range(flt: Filter, span: tuple[int, int] | None) -> Split:
    """Whole months and edge pieces covering the filter's days within `span` (the years that
    have any entry; outside them there is nothing to read)."""
    split = Split()
    if span is None:
        return split
    first = max(flt.date_from or date.min, date(span[0], 1, 1))
    last = min(flt.date_to or date.max, date(span[1], 12, 31))
    month = first.replace(day=1)
    while month <= last:
        end = _month_end(month)
        a, b = max(first, month), min(last, end)
        inside = (b - a).days + 1
        outside = (end - month).days + 1 - inside
        if outside == 0 or outside < inside:
            split.whole.setdefault(month.year, []).append(month.month)
            if a > month:
                split.pieces.append(Piece(month, a - timedelta(days=1), -1))
            if b < end:
                split.pieces.append(Piece(b + timedelta(days=1), end, -1))
        else:
            split.pieces.append(Piece(a, b, 1))
        month = end + timedelta(days=1)
    return split


# ---------------------------------------------------------------------- facts
# A "facts" subquery has one row per (dimension values, member) contribution with columns
# named after the dimensions (member as `mid`), `m` (minutes) and `t` (turns).


Ts = TypeVarTuple("Ts")


def _branch_filter(query: Select[*Ts], column: Any, flt: Filter, town: Any = None) -> Select[*Ts]:
    """The filter's branches (and towns, on a source with a `town` column: the ledger or the
    rollup, whose "no town" 0 no town set holds; the two-year spans have none and are not read
    for a filter with towns)."""
    if flt.branch_ids is not None:
        query = query.where(column.in_(sorted(flt.branch_ids)))
    if flt.towns:
        if town is None:
            raise ValueError("this source has no town to filter on")
        limited = [branch for branch, _ in flt.towns]
        query = query.where(
            or_(
                column.not_in(limited),
                *[and_(column == branch, town.in_(sorted(ids))) for branch, ids in flt.towns],
            )
        )
    return query


def _ledger_where(query: Select[*Ts], first: date | None, last: date | None) -> Select[*Ts]:
    if first is not None:
        query = query.where(HoursEntry.service_day >= first)
    if last is not None:
        query = query.where(HoursEntry.service_day <= last)
    return query


def _piece_filter(query: Select[Any], piece: Piece, flt: Filter) -> Select[Any]:
    """The ledger rows of one piece, in the filter's branches."""
    return _branch_filter(
        _ledger_where(query, piece.first, piece.last), HoursEntry.branch_id, flt, HoursEntry.town_id
    )


def _signed(column: Any, sign: int) -> ColumnElement[Any]:
    return column if sign > 0 else -column


def ledger_facts(dims: Sequence[str], flt: Filter) -> Subquery:
    """Every ledger entry in the filter: the direct aggregation that the rollup must equal."""
    query: Select[Any] = select(
        *[COLUMNS[d].label(d) for d in dims],
        HoursEntry.member_id.label("mid"),
        HoursEntry.minutes.label("m"),
        HoursEntry.turns.label("t"),
    )
    query = _ledger_where(query, flt.date_from, flt.date_to)
    return _branch_filter(query, HoursEntry.branch_id, flt, HoursEntry.town_id).subquery("facts")


def rollup_facts(dims: Sequence[str], flt: Filter, split: Split) -> Subquery | None:
    """The same rows as `ledger_facts` would sum to, per member: whole months from the rollup
    (one row per rollup row and year), edge pieces from the ledger. `dims` has no month."""
    parts: list[Select[Any]] = []
    for year, months in sorted(split.whole.items()):
        minutes = sum(
            (hours_rollup.minutes_col(k) for k in months[1:]), hours_rollup.minutes_col(months[0])
        )
        turns = sum(
            (hours_rollup.turns_col(k) for k in months[1:]), hours_rollup.turns_col(months[0])
        )
        query: Select[Any] = select(
            *[ROLLUP_COLUMNS[d].label(d) for d in dims],
            HoursRollup.member_id.label("mid"),
            minutes.label("m"),
            turns.label("t"),
        ).where(HoursRollup.year == year)
        parts.append(_branch_filter(query, HoursRollup.branch_id, flt, HoursRollup.town_id))
    return _facts(parts, split.pieces, dims, flt)


# ---------------------------------------------------------------------- two-year windows
# `hours_span` holds running totals per (branch, member) over the years Y-1 and Y. A range
# inside those two years reads one row per branch and member: a sum over whole months is the
# difference of two columns, and in a branch grouping each row is already one member's net.


@dataclass(frozen=True)
class Window:
    """Window year Y and the run [first, last] of its month indices (1 = January of Y-1)
    that the split's whole months cover (first > last: none)."""

    year: int
    first: int
    last: int

    def index(self, month: date) -> int:
        return (month.year - self.year + 1) * 12 + month.month


def span_window(split: Split) -> Window | None:
    """The window holding every month of the split, or None (a range over more than two
    calendar years, or nothing to read)."""
    years = split.years()
    if not years or years[0] < years[-1] - 1:
        return None
    year = years[-1]
    indices = [(y - year + 1) * 12 + m for y, months in split.whole.items() for m in months]
    if not indices:
        return Window(year, 1, 0)
    return Window(year, min(indices), max(indices))


KINDS = ("minutes", "turns")


def _cum(kind: str, j: int) -> ColumnElement[Any]:
    return hours_span.c[f"{kind}_{j}"] if j > 0 else literal_column("0")


def _run(kind: str, first: int, last: int) -> ColumnElement[Any]:
    """The sum of months first..last of a window row."""
    return _cum(kind, last) - _cum(kind, first - 1)


SPAN_COLUMNS: dict[str, Any] = {"branch": hours_span.c.branch_id, "member": hours_span.c.member_id}


def span_facts(dims: Sequence[str], flt: Filter, split: Split, window: Window) -> Subquery | None:
    """As `rollup_facts`, for dimensions among branch and member, from one window's rows."""
    parts: list[Select[Any]] = []
    if window.first <= window.last:
        query: Select[Any] = select(
            *[SPAN_COLUMNS[d].label(d) for d in dims],
            hours_span.c.member_id.label("mid"),
            _run("minutes", window.first, window.last).label("m"),
            _run("turns", window.first, window.last).label("t"),
        ).where(hours_span.c.year == window.year)
        parts.append(_branch_filter(query, hours_span.c.branch_id, flt))
    return _facts(parts, split.pieces, dims, flt)


def _facts(
    parts: list[Select[Any]], pieces: Sequence[Piece], dims: Sequence[str], flt: Filter
) -> Subquery | None:
    """The rollup parts with the ledger's own rows for `pieces` (the range's ragged ends),
    as one `facts` subquery, or None when there is nothing to read."""
    for piece in pieces:
        piece_query: Select[Any] = select(
            *[COLUMNS[d].label(d) for d in dims],
            HoursEntry.member_id.label("mid"),
            _signed(HoursEntry.minutes, piece.sign).label("m"),
            _signed(HoursEntry.turns, piece.sign).label("t"),
        )
        parts.append(_piece_filter(piece_query, piece, flt))
    if not parts:
        return None
    return (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("facts")


# A facts subquery of this name has exactly one row per member: no per-member step needed.
MEMBER_FACTS = "member_facts"


def member_span_facts(flt: Filter, split: Split, window: Window) -> Subquery | None:
    """Federation-wide facts with one row per member: the window's per-member row plus that
    member's edge pieces, summed and joined (no branch filter: `span_facts` does that)."""
    if flt.branch_ids is not None:
        return span_facts([], flt, split, window)
    span = hours_span_member
    zero: ColumnElement[Any] = literal_column("0")
    m: ColumnElement[Any] = zero
    t: ColumnElement[Any] = zero
    if window.first <= window.last:
        m = span.c[f"minutes_{window.last}"] - (
            span.c[f"minutes_{window.first - 1}"] if window.first > 1 else zero
        )
        t = span.c[f"turns_{window.last}"] - (
            span.c[f"turns_{window.first - 1}"] if window.first > 1 else zero
        )
    joined: Any = span
    if split.pieces:
        parts = [
            _piece_filter(
                select(
                    HoursEntry.member_id.label("member_id"),
                    _signed(HoursEntry.minutes, piece.sign).label("m"),
                    _signed(HoursEntry.turns, piece.sign).label("t"),
                ),
                piece,
                flt,
            )
            for piece in split.pieces
        ]
        pieces = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("pieces")
        summed = (
            select(
                pieces.c.member_id,
                func.sum(pieces.c.m).label("m"),
                func.sum(pieces.c.t).label("t"),
            )
            .group_by(pieces.c.member_id)
            .subquery("piece_sums")
        )
        joined = span.outerjoin(summed, summed.c.member_id == span.c.member_id)
        m = m + func.coalesce(summed.c.m, 0)
        t = t + func.coalesce(summed.c.t, 0)
    return (
        select(span.c.member_id.label("mid"), m.label("m"), t.label("t"))
        .select_from(joined)
        .where(span.c.year == window.year)
        .subquery(MEMBER_FACTS)
    )


def _span_month_rows(
    session: Session, group_by: Sequence[str], flt: Filter, split: Split, window: Window
) -> list[dict[str, Any]]:
    """Month-by-branch rows from one window: a row is one member's net in a branch, so each
    month's members count is a plain filtered count. Edge pieces from the ledger are summed
    per (branch, member): on their own when their months are not also read whole (the usual
    case: a partial first or last month), else joined to the window's rows (an entry of the
    window's years is always in one of them)."""
    piece_index = {window.index(p.first.replace(day=1)) for p in split.pieces}
    whole = set(range(window.first, window.last + 1))
    months = sorted(whole | piece_index)
    if not months:
        return []
    zero: ColumnElement[Any] = literal_column("0")
    joined: Any = hours_span
    extra: dict[str, Any] = {}
    piece_sums: dict[int, Any] = {}  # branch -> edge months' sums, when read on their own
    if split.pieces:
        parts = []
        for piece in split.pieces:
            mine = window.index(piece.first.replace(day=1))
            piece_query: Select[Any] = select(
                HoursEntry.branch_id.label("branch_id"),
                HoursEntry.member_id.label("member_id"),
                *[
                    (_signed(HoursEntry.minutes, piece.sign) if k == mine else zero).label(f"m{k}")
                    for k in sorted(piece_index)
                ],
                *[
                    (_signed(HoursEntry.turns, piece.sign) if k == mine else zero).label(f"t{k}")
                    for k in sorted(piece_index)
                ],
            )
            parts.append(_piece_filter(piece_query, piece, flt))
        pieces = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("pieces")
        summed = (
            select(
                pieces.c.branch_id,
                pieces.c.member_id,
                *[
                    func.sum(pieces.c[f"{c}{k}"]).label(f"{c}{k}")
                    for c in "mt"
                    for k in piece_index
                ],
            )
            .group_by(pieces.c.branch_id, pieces.c.member_id)
            .subquery("piece_sums")
        )
        if piece_index & whole:
            # A month read as a whole month less a piece: each member's net needs both.
            joined = hours_span.outerjoin(
                summed,
                and_(
                    summed.c.branch_id == hours_span.c.branch_id,
                    summed.c.member_id == hours_span.c.member_id,
                ),
            )
            extra = {
                f"{c}{k}": func.coalesce(summed.c[f"{c}{k}"], 0) for c in "mt" for k in piece_index
            }
        else:
            # The edge months come from the ledger alone (2,700 rows for a year to date on the
            # bench's million entries): summed on their own, not joined to 47,000 window rows.
            alone = select(
                summed.c.branch_id.label("branch"),
                *[
                    func.sum(summed.c[f"{c}{k}"]).label(f"{c}{k}x")
                    for c in "mt"
                    for k in piece_index
                ],
                *[func.count().filter(summed.c[f"m{k}"] > 0).label(f"n{k}") for k in piece_index],
            ).group_by(summed.c.branch_id)
            piece_sums = {r["branch"]: r for r in session.execute(alone).mappings()}

    def value(kind: str, k: int) -> ColumnElement[Any]:
        own = _run(kind, k, k) if k in whole else zero
        return own + extra[f"{kind[0]}{k}"] if f"{kind[0]}{k}" in extra else own

    def positive(k: int) -> ColumnElement[bool]:
        """The member's net minutes in month k are above 0 (for a whole month without an edge
        piece, a comparison of two running totals rather than a difference)."""
        if k in whole and f"m{k}" not in extra:
            return _cum("minutes", k) > _cum("minutes", k - 1)
        return value("minutes", k) > 0

    # A month's sum over the rows is a difference of two sums of running totals, so each
    # running total is summed once (28 sums for a year, not 26 differences a row).
    cums = sorted({j for k in months if k in whole for j in (k - 1, k) if j > 0})
    in_window = [k for k in months if k in whole or f"m{k}" in extra]
    grouped = _branch_filter(
        select(
            hours_span.c.branch_id.label("branch"),
            *[func.sum(_cum(kind, j)).label(f"{kind[0]}c{j}") for kind in KINDS for j in cums],
            *[func.sum(extra[name]).label(f"{name}x") for name in sorted(extra)],
            *[func.count().filter(positive(k)).label(f"n{k}") for k in in_window],
        )
        .select_from(joined)
        .where(hours_span.c.year == window.year)
        .group_by(hours_span.c.branch_id),
        hours_span.c.branch_id,
        flt,
    )
    window_sums = {r["branch"]: r for r in session.execute(grouped).mappings()}

    def figures(branch: int, k: int) -> Any:
        """The row holding month k's figures for the branch: the edge pieces' own when the
        month was summed on its own, else the window's; None when the branch has none."""
        alone = k not in whole and f"m{k}" not in extra
        return (piece_sums if alone else window_sums).get(branch)

    def total(r: Any, c: str, k: int) -> int:
        own = 0
        if k in whole:
            own = int(r[f"{c}c{k}"] or 0) - (int(r[f"{c}c{k - 1}"] or 0) if k > 1 else 0)
        return own + (int(r[f"{c}{k}x"] or 0) if k in piece_index else 0)

    rows: list[dict[str, Any]] = []
    for branch in sorted(window_sums.keys() | piece_sums.keys()):
        for k in months:
            r = figures(branch, k)
            if r is None:
                continue
            minutes, turns, count = total(r, "m", k), total(r, "t", k), int(r[f"n{k}"] or 0)
            if minutes or turns or count:
                year, month = window.year - 1 + (k - 1) // 12, (k - 1) % 12 + 1
                rows.append(
                    {
                        "branch": branch,
                        "month": date(year, month, 1),
                        "minutes": minutes,
                        "turns": turns,
                        "members": count,
                    }
                )
    rows.sort(key=lambda r: tuple(r[d] for d in group_by))
    return rows


# ---------------------------------------------------------------------- aggregation


def _grouped(facts: Subquery, group_by: Sequence[str]) -> Select[Any]:
    """Per group: minutes, turns and contributing members, in two aggregation steps (per
    member, then per group); all-zero groups are left out."""
    if facts.name == MEMBER_FACTS and list(group_by) == ["member"]:
        # One row per member already: the groups are the rows.
        m, t = facts.c.m, facts.c.t
        return select(
            facts.c.mid.label("member"),
            m.label("minutes"),
            t.label("turns"),
            case((m > 0, 1), else_=0).label("members"),
        ).where(or_(m != 0, t != 0))
    keys = [facts.c[d] for d in group_by if d != "member"]
    per_member = (
        select(
            *keys,
            facts.c.mid,
            func.sum(facts.c.m).label("m"),
            func.sum(facts.c.t).label("t"),
        )
        .group_by(*keys, facts.c.mid)
        .subquery("per_member")
    )
    outer = [
        per_member.c.mid.label("member") if d == "member" else per_member.c[d] for d in group_by
    ]
    minutes = func.sum(per_member.c.m)
    turns = func.sum(per_member.c.t)
    members = func.sum(case((per_member.c.m > 0, 1), else_=0))
    query = select(*outer, minutes.label("minutes"), turns.label("turns"), members.label("members"))
    group_cols = [per_member.c.mid if d == "member" else per_member.c[d] for d in group_by]
    return query.group_by(*group_cols).having(or_(minutes != 0, turns != 0, members > 0))


def _members(session: Session, facts: Subquery | None) -> int:
    """The totals' member count: members whose net minutes over the facts are positive."""
    if facts is None:
        return 0
    per_member: Any = facts
    if facts.name != MEMBER_FACTS:
        per_member = select(func.sum(facts.c.m).label("m")).group_by(facts.c.mid).subquery()
    counted = select(func.count()).select_from(per_member).where(per_member.c.m > 0)
    return int(session.scalar(counted) or 0)


def _row_totals(session: Session, raw: Sequence[Any], facts: Subquery | None) -> dict[str, int]:
    """Totals of a grouping by month: every entry of the range is in exactly one row (its month
    and its value of the other dimension, None included; a row left out sums to zero), so
    minutes and turns are the rows' sums and only the member count reads the facts. Summing
    them there again read the window's turns columns too, and PostgreSQL ran that statement in
    parallel with each worker re-reading the edge pieces: month-by-branch's totals statement
    cost a third more CPU that way on the bench's million entries."""
    return {
        "total_minutes": sum(int(r["minutes"]) for r in raw),
        "turns": sum(int(r["turns"]) for r in raw),
        "members": _members(session, facts),
    }


def _totals(session: Session, facts: Subquery | None) -> dict[str, int]:
    """Whole-range totals: minutes, turns and contributing members."""
    if facts is None:
        return {"total_minutes": 0, "turns": 0, "members": 0}
    per_member: Any = facts
    if facts.name != MEMBER_FACTS:
        per_member = (
            select(func.sum(facts.c.m).label("m"), func.sum(facts.c.t).label("t"))
            .group_by(facts.c.mid)
            .subquery()
        )
    row = session.execute(
        select(
            func.coalesce(func.sum(per_member.c.m), 0),
            func.coalesce(func.sum(per_member.c.t), 0),
            func.count().filter(per_member.c.m > 0),
        )
    ).one()
    return {"total_minutes": int(row[0]), "turns": int(row[1]), "members": int(row[2])}


def _month_rows(
    session: Session, group_by: Sequence[str], flt: Filter, split: Split
) -> list[dict[str, Any]]:
    """Rows of a grouping by month (and branch, town or squad) from the rollup: one query per
    calendar year with a column per month, so the per-member step reads each rollup row once
    instead of once per month; pivoted to (month, ...) rows here."""
    other = [d for d in group_by if d != "month"]
    rows: list[dict[str, Any]] = []
    zero: ColumnElement[Any] = literal_column("0")
    for year in split.years():
        whole = split.whole.get(year, [])
        pieces = [p for p in split.pieces if p.first.year == year]
        months = sorted(set(whole) | {p.first.month for p in pieces})
        parts: list[Select[Any]] = []
        if whole:
            query: Select[Any] = select(
                *[ROLLUP_COLUMNS[d].label(d) for d in other],
                HoursRollup.member_id.label("mid"),
                *[
                    (hours_rollup.minutes_col(k) if k in whole else zero).label(f"m{k}")
                    for k in months
                ],
                *[
                    (hours_rollup.turns_col(k) if k in whole else zero).label(f"t{k}")
                    for k in months
                ],
            ).where(HoursRollup.year == year)
            parts.append(_branch_filter(query, HoursRollup.branch_id, flt, HoursRollup.town_id))
        for piece in pieces:
            mine = piece.first.month
            piece_query: Select[Any] = select(
                *[COLUMNS[d].label(d) for d in other],
                HoursEntry.member_id.label("mid"),
                *[
                    (_signed(HoursEntry.minutes, piece.sign) if k == mine else zero).label(f"m{k}")
                    for k in months
                ],
                *[
                    (_signed(HoursEntry.turns, piece.sign) if k == mine else zero).label(f"t{k}")
                    for k in months
                ],
            )
            parts.append(_piece_filter(piece_query, piece, flt))
        facts = (parts[0] if len(parts) == 1 else union_all(*parts)).subquery("facts")
        keys = [facts.c[d] for d in other]
        per_member = (
            select(
                *keys,
                *[func.sum(facts.c[f"{c}{k}"]).label(f"{c}{k}") for c in "mt" for k in months],
            )
            .group_by(*keys, facts.c.mid)
            .subquery("per_member")
        )
        outer = [per_member.c[d] for d in other]
        grouped = select(
            *outer,
            *[func.sum(per_member.c[f"{c}{k}"]).label(f"{c}{k}") for c in "mt" for k in months],
            *[
                func.sum(case((per_member.c[f"m{k}"] > 0, 1), else_=0)).label(f"n{k}")
                for k in months
            ],
        ).group_by(*outer)
        for r in session.execute(grouped).mappings():
            for k in months:
                minutes, turns, members = (int(r[f"{c}{k}"] or 0) for c in "mtn")
                if minutes or turns or members:
                    row = {d: r[d] for d in other}
                    row.update(
                        month=date(year, k, 1), minutes=minutes, turns=turns, members=members
                    )
                    rows.append(row)
    rows.sort(key=lambda r: tuple((r[d] is None, r[d] or 0) for d in group_by))
    return rows


# ---------------------------------------------------------------------- labels


def _labels(session: Session, dim: str, ids: set[Any]) -> dict[Any, tuple[str, str]]:
    """(key, name) for each id of a dimension."""
    ids.discard(None)
    if dim == "month":
        return {m: (f"{m:%Y-%m}", f"{m.year}年{m.month}月") for m in ids}
    if not ids:
        return {}
    if dim == "branch":
        branches = session.execute(
            select(Branch.id, Branch.code, Branch.name).where(Branch.id.in_(ids))
        )
        return {i: (code, name) for i, code, name in branches}
    if dim == "town":
        towns = session.execute(select(Town.id, Town.name).where(Town.id.in_(ids)))
        return {i: (str(i), name) for i, name in towns}
    if dim == "member":
        return {i: (str(i), name) for i, name in _member_names(session, ids)}
    squads = session.execute(
        select(Squad.id, Branch.name, Town.name)
        .join(Branch, Branch.id == Squad.branch_id)
        .join(Town, Town.id == Squad.town_id)
        .where(Squad.id.in_(ids))
    )
    return {i: (str(i), f"{town}{branch}分队") for i, branch, town in squads}


# Ids per query when a database takes them one parameter each (SQLite allows 32,766 by
# default).
ID_CHUNK = 1000


def _member_names(session: Session, ids: set[Any]) -> Iterator[tuple[int, str]]:
    """(id, name) of each member in `ids`: every member of the federation in a whole export.

    On PostgreSQL the ids go as one array (`= ANY`): as an IN list of 40,000 parameters the
    driver spent 0.9 s of CPU rewriting the statement's placeholders. Elsewhere, in chunks:
    SQLite refuses a statement of more parameters than it was built to take (32,766 by
    default)."""
    if session.get_bind().dialect.name == "postgresql":
        wanted = bindparam("ids", sorted(ids), type_=ARRAY(Integer))
        yield from session.execute(select(Member.id, Member.name).where(Member.id == any_(wanted)))
        return
    ordered = sorted(ids)
    for start in range(0, len(ordered), ID_CHUNK):
        chunk = ordered[start : start + ID_CHUNK]
        yield from session.execute(select(Member.id, Member.name).where(Member.id.in_(chunk)))


NO_VALUE = ("none", "（未归属）")


def _rows(session: Session, group_by: Sequence[str], raw: Sequence[Any]) -> list[dict[str, Any]]:
    """API rows from raw rows (mappings with the dimensions, minutes, turns, members)."""
    labels = {d: _labels(session, d, {r[d] for r in raw}) for d in group_by}
    rows = []
    for r in in_turns(raw):
        parts = [labels[d].get(r[d], NO_VALUE) for d in group_by]
        row: dict[str, Any] = {
            "key": "/".join(p[0] for p in parts),
            "name": " ".join(p[1] for p in parts),
        }
        row.update({d: parts[i][0] for i, d in enumerate(group_by)})
        row.update(
            minutes=int(r["minutes"] or 0),
            turns=int(r["turns"] or 0),
            members=int(r["members"] or 0),
        )
        rows.append(row)
    return rows


# ---------------------------------------------------------------------- reports


def _check(group_by: Sequence[str]) -> None:
    if not group_by or len(set(group_by)) != len(group_by) or set(group_by) - set(DIMENSIONS):
        raise ValueError(f"bad grouping {group_by!r}")


def _no_jit(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # Compiling these sub-second aggregates with JIT costs more than it saves, and the
        # per-member step of a year's rollup (~50k rows, a column pair per month) spills to
        # disk at the default 4 MB of work memory.
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '64MB'"))


def hours_report(
    session: Session,
    *,
    group_by: Sequence[str],
    flt: Filter,
    page: int | None = None,
    page_size: int = 50,
) -> dict[str, Any]:
    """Minutes, turns and members per group over the filter, from the rollup.

    :param group_by: one or two of DIMENSIONS (e.g. ``["month", "branch"]``).
    :param page: for member groupings, which page (ordered by minutes, most first); None
        returns every row (exports).
    :return: ``{"group_by", "rows", "total_minutes", "turns", "members"}`` plus ``total``,
        ``page``, ``page_size`` when paged.
    :raise ValueError: an unknown or repeated dimension (the schema refuses these first).
    """
    _check(group_by)
    _no_jit(session)
    if "month" in group_by and "member" in group_by:
        # Member-month cells are about as many as ledger entries: the rollup saves nothing.
        return ledger_report(session, group_by=group_by, flt=flt, page=page, page_size=page_size)
    split = split_range(flt, hours_rollup.year_span(session))
    # The two-year spans have no town: a report limited to some towns reads the rollup.
    window = None if flt.towns else span_window(split)
    others = [d for d in group_by if d != "month"]
    result: dict[str, Any] = {"group_by": list(group_by)}
    if window is not None:
        totals_facts = member_span_facts(flt, split, window)
    else:
        totals_facts = rollup_facts([], flt, split)
    if "month" in group_by:
        if window is not None and sorted(group_by) == ["branch", "month"]:
            raw = _span_month_rows(session, group_by, flt, split, window)
        else:
            raw = _month_rows(session, group_by, flt, split)
        result["rows"] = _rows(session, group_by, raw)
        return result | _row_totals(session, raw, totals_facts)
    if window is not None and list(group_by) == ["member"]:
        facts = member_span_facts(flt, split, window)
    elif window is not None and "town" not in group_by and "squad" not in group_by:
        facts = span_facts(others, flt, split, window)
    else:
        facts = rollup_facts(others, flt, split)
    if facts is None:
        empty = {"rows": [], "total_minutes": 0, "turns": 0, "members": 0}
        paged = {"total": 0, "page": page, "page_size": page_size}
        return result | empty | (paged if page is not None and "member" in group_by else {})
    return result | _finish(session, group_by, facts, totals_facts, page, page_size)


def ledger_report(
    session: Session,
    *,
    group_by: Sequence[str],
    flt: Filter,
    page: int | None = None,
    page_size: int = 50,
) -> dict[str, Any]:
    """The same report aggregated directly from the ledger (the reference for the rollup, and
    the way for member-by-month groupings). Arguments and result as `hours_report`."""
    _check(group_by)
    _no_jit(session)
    dims = [d for d in group_by if d != "member"]
    facts = ledger_facts(dims, flt)
    totals_facts = ledger_facts([], flt)
    return {"group_by": list(group_by)} | _finish(
        session, group_by, facts, totals_facts, page, page_size
    )


def _finish(
    session: Session,
    group_by: Sequence[str],
    facts: Subquery,
    totals_facts: Subquery | None,
    page: int | None,
    page_size: int,
) -> dict[str, Any]:
    """Order, page, label and total the grouped facts."""
    if page is not None and list(group_by) == ["member"]:
        return _member_page(session, facts, totals_facts, page, page_size)
    query = _grouped(facts, group_by)
    cols = query.selected_columns
    # No town or no squad last, as `_month_rows` puts it: left to the database, SQLite sorts
    # NULL first and PostgreSQL last.
    keys = [cols[d].nulls_last() for d in group_by]
    if "member" in group_by:
        query = query.order_by(cols.minutes.desc(), *keys)
    else:
        query = query.order_by(*keys)
    result: dict[str, Any] = {}
    if page is not None and "member" in group_by:
        sub = query.order_by(None).subquery()
        result.update(
            total=int(session.scalar(select(func.count()).select_from(sub)) or 0),
            page=page,
            page_size=page_size,
        )
        query = query.limit(page_size).offset((page - 1) * page_size)
    raw = list(session.execute(query).mappings())
    result["rows"] = _rows(session, group_by, raw)
    return result | _totals(session, totals_facts)


def _member_page(
    session: Session, facts: Subquery, totals_facts: Subquery | None, page: int, page_size: int
) -> dict[str, Any]:
    """One page of the member grouping with the totals, from a single aggregation pass:
    window sums over every member's row ride along with the page."""
    grouped = _grouped(facts, ["member"]).subquery()
    query = (
        select(
            grouped,
            func.count().over().label("n_groups"),
            func.sum(grouped.c.minutes).over().label("all_minutes"),
            func.sum(grouped.c.turns).over().label("all_turns"),
            func.sum(grouped.c.members).over().label("all_members"),
        )
        .order_by(grouped.c.minutes.desc(), grouped.c.member)
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    raw = list(session.execute(query).mappings())
    result: dict[str, Any] = {"rows": _rows(session, ["member"], raw), "page": page}
    result["page_size"] = page_size
    if raw:
        first = raw[0]
        # Every member with any minutes, turns or a positive net is a row here, so the sums
        # over the rows are the range's totals.
        result.update(
            total=int(first["n_groups"]),
            total_minutes=int(first["all_minutes"] or 0),
            turns=int(first["all_turns"] or 0),
            members=int(first["all_members"] or 0),
        )
        return result
    # Past the last page: nothing to ride along with, so count separately.
    counted = select(func.count()).select_from(grouped)
    result.update(total=int(session.scalar(counted) or 0), **_totals(session, totals_facts))
    return result


# ---------------------------------------------------------------------- exports

HEADERS = ["键", "名称", "服务时长（小时）", "服务分钟", "人次", "人数"]
TENTH = Decimal("0.1")


def hours_of(minutes: int) -> Decimal:
    """Minutes as hours, exactly: a float of minutes / 60 is a hair below or above the tenths
    that people round (9 minutes are 0.15 h, 0.1499... as a float)."""
    return Decimal(minutes) / 60


def _table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[Any]]:
    """Header, body rows and the totals row of one report, as cells."""
    dims = report["group_by"]
    header = [DIMENSION_HEADERS[d] for d in dims] + HEADERS
    body = [
        [r[d] for d in dims]
        + [r["key"], r["name"], hours_of(r["minutes"]), r["minutes"], r["turns"], r["members"]]
        for r in report["rows"]
    ]
    total = (
        ["合计"]
        + [""] * len(dims)
        + [
            "",
            hours_of(report["total_minutes"]),
            report["total_minutes"],
            report["turns"],
            report["members"],
        ]
    )
    return header, body, total


# Text that Excel and WPS would read as a formula when it starts a cell (CSV injection): a
# name such as =HYPERLINK(...) must open as the text it is.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """Hours with one decimal, halves rounded away from zero as Excel and WPS show the XLSX's
    0.0 cells (Python's float formatting rounds half to even, and from the float: 2.25 h came
    out as 2.2); text that would start a formula behind an apostrophe (OWASP's advice: the
    sheet shows the text, and never evaluates it)."""
    if isinstance(value, Decimal):
        return str(value.quantize(TENTH, rounding=ROUND_HALF_UP))
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(report: dict[str, Any]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel and WPS read the Chinese headers correctly."""
    header, body, total = _table(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in in_turns((*body, total)):
        writer.writerow([_csv_cell(c) for c in row])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def to_xlsx(reports: Sequence[dict[str, Any]], *, title: str) -> bytes:
    """One sheet per report: Chinese headers in bold, frozen, hours as 0.0, a totals row.

    Written row by row (openpyxl's write-only mode): the whole-federation member report is
    40,000 rows, which took 444 s the other way (finding the last row after each append
    walked every row before it) and takes about 6 s this way."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

    bold = Font(bold=True)

    def cells(
        sheet: WriteOnlyWorksheet, row: Sequence[Any], formats: dict[int, str], strong: bool
    ) -> list[WriteOnlyCell]:
        made = []
        for col, value in enumerate(row, 1):
            # Hours as the number nearest the exact value; the 0.0 format rounds it for display.
            cell = WriteOnlyCell(sheet, float(value) if isinstance(value, Decimal) else value)
            if isinstance(value, str):
                cell.data_type = "s"  # text, never a formula (openpyxl reads "=…" as one)
            if col in formats:
                cell.number_format = formats[col]
            if strong:
                cell.font = bold
            made.append(cell)
        return made

    book = Workbook(write_only=True)
    for report in reports:
        header, body, total = _table(report)
        sheet = book.create_sheet("、".join(SHEET_NAMES[d] for d in report["group_by"])[:31])
        for col in range(1, len(header) + 1):
            sheet.column_dimensions[get_column_letter(col)].width = 14 if col <= 2 else 18
        sheet.freeze_panes = "A2"
        hours_col = len(report["group_by"]) + 3
        formats = {
            col: "0.0" if col == hours_col else "0" for col in range(hours_col, hours_col + 4)
        }
        sheet.append(cells(sheet, header, {}, strong=True))
        for row in in_turns(body):
            sheet.append(cells(sheet, row, formats, strong=False))
        sheet.append(cells(sheet, total, formats, strong=True))
    book.properties.title = title
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
