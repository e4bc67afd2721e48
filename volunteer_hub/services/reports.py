"""Service-hours reports from the ledger, and their CSV and XLSX exports.

Figures are sums of ledger entries, so corrections and reversals are counted where they apply.
`members` counts the members whose net minutes in the group are positive (a fully reversed
entry does not make someone a contributor). The query aggregates per member first and then
per group: on PostgreSQL the first step streams from a covering index in key order, which
keeps a year of a 40,000-member federation fast without a rollup table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVarTuple

from sqlalchemy import Select, case, func, select, text
from sqlalchemy.orm import Session

from volunteer_hub.models import Branch, Member, Squad, Town
from volunteer_hub.models.attendance import HoursEntry

DIMENSIONS = ("branch", "town", "squad", "member", "month")
COLUMNS: dict[str, Any] = {
    "branch": HoursEntry.branch_id,
    "town": HoursEntry.town_id,
    "squad": HoursEntry.squad_id,
    "member": HoursEntry.member_id,
    "month": HoursEntry.service_month,
}
GROUP_ORDER = ("branch", "month", "member", "town", "squad")
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
    """What to count: a date range (inclusive, federation-local days) and the branches."""

    date_from: date | None = None
    date_to: date | None = None
    branch_ids: frozenset[int] | None = None  # None: every branch


Ts = TypeVarTuple("Ts")


def _where(query: Select[*Ts], flt: Filter) -> Select[*Ts]:
    if flt.date_from is not None:
        query = query.where(HoursEntry.service_day >= flt.date_from)
    if flt.date_to is not None:
        query = query.where(HoursEntry.service_day <= flt.date_to)
    if flt.branch_ids is not None:
        query = query.where(HoursEntry.branch_id.in_(sorted(flt.branch_ids)))
    return query


def _grouped(group_by: Sequence[str], flt: Filter) -> Select[Any]:
    """Per group: minutes, turns and contributing members, in two aggregation steps."""
    dims = [COLUMNS[d].label(d) for d in group_by]
    per_member = _where(
        select(
            *dims,
            HoursEntry.member_id.label("mid"),
            func.sum(HoursEntry.minutes).label("m"),
            func.sum(HoursEntry.turns).label("t"),
        ),
        flt,
    )
    names = list(group_by)
    # Group in the covering index's column order (branch, month, member): PostgreSQL 15 does
    # not reorder GROUP BY keys itself, and in index order it streams instead of hashing.
    keys = sorted({*group_by, "member"}, key=GROUP_ORDER.index)
    per_member = per_member.group_by(*[COLUMNS[d] for d in keys])
    inner = per_member.subquery()
    outer_dims = [inner.c[n] for n in names]
    positive = func.sum(case((inner.c.m > 0, 1), else_=0))
    return select(
        *outer_dims,
        func.sum(inner.c.m).label("minutes"),
        func.sum(inner.c.t).label("turns"),
        positive.label("members"),
    ).group_by(*outer_dims)


def totals(session: Session, flt: Filter) -> dict[str, int]:
    """Whole-range totals: minutes, turns and contributing members."""
    per_member = _where(
        select(
            func.sum(HoursEntry.minutes).label("m"), func.sum(HoursEntry.turns).label("t")
        ).group_by(HoursEntry.member_id),
        flt,
    ).subquery()
    row = session.execute(
        select(
            func.coalesce(func.sum(per_member.c.m), 0),
            func.coalesce(func.sum(per_member.c.t), 0),
            func.count().filter(per_member.c.m > 0),
        )
    ).one()
    return {"total_minutes": int(row[0]), "turns": int(row[1]), "members": int(row[2])}


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
        members = session.execute(select(Member.id, Member.name).where(Member.id.in_(ids)))
        return {i: (str(i), name) for i, name in members}
    squads = session.execute(
        select(Squad.id, Branch.name, Town.name)
        .join(Branch, Branch.id == Squad.branch_id)
        .join(Town, Town.id == Squad.town_id)
        .where(Squad.id.in_(ids))
    )
    return {i: (str(i), f"{town}{branch}分队") for i, branch, town in squads}


NO_VALUE = ("none", "（未归属）")


def _rows(session: Session, group_by: Sequence[str], raw: Sequence[Any]) -> list[dict[str, Any]]:
    labels = {d: _labels(session, d, {r._mapping[d] for r in raw}) for d in group_by}
    rows = []
    for r in raw:
        parts = [labels[d].get(r._mapping[d], NO_VALUE) for d in group_by]
        row: dict[str, Any] = {
            "key": "/".join(p[0] for p in parts),
            "name": " ".join(p[1] for p in parts),
        }
        row.update({d: parts[i][0] for i, d in enumerate(group_by)})
        row.update(
            minutes=int(r.minutes or 0), turns=int(r.turns or 0), members=int(r.members or 0)
        )
        rows.append(row)
    return rows


def hours_report(
    session: Session,
    *,
    group_by: Sequence[str],
    flt: Filter,
    page: int | None = None,
    page_size: int = 50,
) -> dict[str, Any]:
    """Minutes, turns and members per group over the filter.

    :param group_by: one or two of DIMENSIONS (e.g. ``["month", "branch"]``).
    :param page: for member groupings, which page (ordered by minutes, most first); None
        returns every row (exports).
    :return: ``{"group_by", "rows", "total_minutes", "turns", "members"}`` plus ``total``,
        ``page``, ``page_size`` when paged.
    :raise ValueError: an unknown or repeated dimension (the schema refuses these first).
    """
    if not group_by or len(set(group_by)) != len(group_by) or set(group_by) - set(DIMENSIONS):
        raise ValueError(f"bad grouping {group_by!r}")
    if session.get_bind().dialect.name == "postgresql":
        # Compiling these sub-second aggregates with JIT costs more than it saves.
        session.execute(text("SET LOCAL jit = off"))
    result: dict[str, Any] = {"group_by": list(group_by)}
    if page is not None and list(group_by) == ["member"]:
        return result | _member_page(session, flt, page, page_size)
    query = _grouped(group_by, flt)
    if "member" in group_by:
        query = query.order_by(
            query.selected_columns.minutes.desc(), *[query.selected_columns[d] for d in group_by]
        )
    else:
        query = query.order_by(*[query.selected_columns[d] for d in group_by])
    if page is not None and "member" in group_by:
        sub = query.order_by(None).subquery()
        result.update(
            total=int(session.scalar(select(func.count()).select_from(sub)) or 0),
            page=page,
            page_size=page_size,
        )
        query = query.limit(page_size).offset((page - 1) * page_size)
    result["rows"] = _rows(session, group_by, session.execute(query).all())
    result.update(totals(session, flt))
    return result


def _member_page(session: Session, flt: Filter, page: int, page_size: int) -> dict[str, Any]:
    """One page of the member grouping with the totals, from a single aggregation pass:
    window sums over every member's row ride along with the page."""
    grouped = _grouped(["member"], flt).subquery()
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
    raw = session.execute(query).all()
    result: dict[str, Any] = {"rows": _rows(session, ["member"], raw), "page": page}
    result["page_size"] = page_size
    if raw:
        first = raw[0]
        result.update(
            total=int(first.n_groups),
            total_minutes=int(first.all_minutes or 0),
            turns=int(first.all_turns or 0),
            members=int(first.all_members or 0),
        )
        return result
    # Past the last page: nothing to ride along with, so count separately.
    counted = select(func.count()).select_from(grouped)
    result.update(total=int(session.scalar(counted) or 0), **totals(session, flt))
    return result


# ---------------------------------------------------------------------- exports

HEADERS = ["键", "名称", "服务时长（小时）", "服务分钟", "人次", "人数"]


def _table(report: dict[str, Any]) -> tuple[list[str], list[list[Any]], list[Any]]:
    """Header, body rows and the totals row of one report, as cells."""
    dims = report["group_by"]
    header = [DIMENSION_HEADERS[d] for d in dims] + HEADERS
    body = [
        [r[d] for d in dims]
        + [r["key"], r["name"], r["minutes"] / 60, r["minutes"], r["turns"], r["members"]]
        for r in report["rows"]
    ]
    total = (
        ["合计"]
        + [""] * len(dims)
        + [
            "",
            report["total_minutes"] / 60,
            report["total_minutes"],
            report["turns"],
            report["members"],
        ]
    )
    return header, body, total


def to_csv(report: dict[str, Any]) -> bytes:
    """UTF-8 with a byte-order mark, so Excel and WPS read the Chinese headers correctly."""
    header, body, total = _table(report)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for row in body:
        writer.writerow([f"{c:.1f}" if isinstance(c, float) else c for c in row])
    writer.writerow([f"{c:.1f}" if isinstance(c, float) else c for c in total])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def to_xlsx(reports: Sequence[dict[str, Any]], *, title: str) -> bytes:
    """One sheet per report: Chinese headers in bold, frozen, hours as 0.0, a totals row."""
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    bold = Font(bold=True)
    for report in reports:
        header, body, total = _table(report)
        sheet = book.create_sheet("、".join(SHEET_NAMES[d] for d in report["group_by"])[:31])
        sheet.append(header)
        for row in body:
            sheet.append(row)
        sheet.append(total)
        for cell in sheet[1]:
            cell.font = bold
        for cell in sheet[sheet.max_row]:
            cell.font = bold
        hours_col = len(report["group_by"]) + 3
        for col in range(hours_col, hours_col + 4):
            fmt = "0.0" if col == hours_col else "0"
            for (cell,) in sheet.iter_rows(min_row=2, min_col=col, max_col=col):
                cell.number_format = fmt
        for col in range(1, len(header) + 1):
            sheet.column_dimensions[get_column_letter(col)].width = 14 if col <= 2 else 18
        sheet.freeze_panes = "A2"
    book.properties.title = title
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
