"""Exports of many rows: the XLSX written row by row keeps every row, format and style, and a
long export lets the worker's other requests run while it writes."""

from __future__ import annotations

import csv
import io
import itertools
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import load_workbook

from volunteer_hub.services import reports, turns


def _member_report(count: int) -> dict[str, Any]:
    rows = [
        {
            "member": 1000 + i,
            "key": f"139{i:08d}",
            "name": "=HYPERLINK(0)" if i == 7 else f"队员{i}",
            "minutes": 30 + i,
            "turns": 1 + i % 5,
            "members": 1,
        }
        for i in range(count)
    ]
    return {
        "group_by": ["member"],
        "rows": rows,
        "total_minutes": sum(r["minutes"] for r in rows),
        "turns": sum(r["turns"] for r in rows),
        "members": count,
    }


def test_an_xlsx_of_thousands_of_rows_keeps_every_row_format_and_style() -> None:
    report = _member_report(3000)
    sheet = load_workbook(io.BytesIO(reports.to_xlsx([report], title="t"))).active
    rows = list(sheet.iter_rows())
    assert len(rows) == 1 + 3000 + 1
    assert sheet.freeze_panes == "A2"
    assert all(cell.font.bold for cell in rows[0]) and rows[0][3].value == "服务时长（小时）"
    for number, row in enumerate(rows[1:-1]):
        assert row[0].value == 1000 + number and row[2].data_type == "s"
        assert row[3].value == pytest.approx((30 + number) / 60)
        assert [c.number_format for c in row[3:7]] == ["0.0", "0", "0", "0"]
        assert not row[0].font.bold
    assert rows[8][2].value == "=HYPERLINK(0)"  # text, never a formula
    total = rows[-1]
    assert total[0].value == "合计" and total[0].font.bold
    assert total[4].value == report["total_minutes"] and total[4].number_format == "0"


def test_a_long_export_pauses_to_let_other_requests_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that moves 1 ms each time it is read (once per row): with turns of 20 ms, a
    pause about every 20 rows, and every row still written once, in order."""
    written: list[int] = []
    pauses: list[int] = []

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls) -> float:
            cls.now += 0.001
            return cls.now

        @staticmethod
        def sleep(_seconds: float) -> None:
            pauses.append(len(written))

    monkeypatch.setattr(turns, "time", Clock)
    for row in turns.in_turns(range(100), turn_s=0.02):
        written.append(row)
    assert written == list(range(100))
    assert len(pauses) == 5
    assert {b - a for a, b in itertools.pairwise(pauses)} <= {19, 20}


def test_both_exports_of_one_report_agree_row_by_row() -> None:
    report = _member_report(500)
    lines = list(csv.reader(io.StringIO(reports.to_csv(report).decode("utf-8-sig"))))
    sheet = load_workbook(io.BytesIO(reports.to_xlsx([report], title="t"))).active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert len(lines) == len(cells) == 502
    for line, row in zip(lines[1:-1], cells[1:-1], strict=True):
        assert line[0] == str(row[0]) and line[4] == str(row[4])
        hours = Decimal(str(row[3])).quantize(Decimal("0.1"), rounding="ROUND_HALF_UP")
        assert line[3] == str(hours)
