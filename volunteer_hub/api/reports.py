"""Service-hours reports, on screen and as CSV or XLSX files."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor, hours_report_scope
from volunteer_hub.extensions import db
from volunteer_hub.schemas.attendance import ExportArgs, ReportArgs, ReportSchema
from volunteer_hub.services import hours, reports

blp = Blueprint("reports", __name__, description="Service-hours reports")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _filter(args: dict[str, Any]) -> reports.Filter:
    """The caller's scope applied to the requested branch: a coordinator's branches, and for
    a town-scoped grant that branch's entries in the grant's towns only.

    :raise ValidationFailed: unknown branch code. :raise Forbidden: another branch.
    """
    actor = current_actor()
    branch_id = hours.branch_by_code(db.session(), args["branch"]).id if args["branch"] else None
    scope = hours_report_scope(actor, branch_id)
    return reports.Filter(
        date_from=args["date_from"],
        date_to=args["date_to"],
        branch_ids=scope.branch_ids,
        towns=scope.towns,
    )


def _filename(args: dict[str, Any], ext: str) -> str:
    span = "-".join(str(d) for d in (args["date_from"], args["date_to"]) if d) or "all"
    return f"hours_{'_'.join(args['group_by'])}_{span}.{ext}"


@blp.route("/reports/hours")
class HoursReport(MethodView):
    @jwt_required()
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, ReportSchema)
    @blp.doc(security=[{"bearer": []}])
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Minutes, turns (人次) and members by branch, town, squad, member or month.

        Secretary-general and admins: everything; coordinators: their branch (a coordinator
        of some towns of it: the entries of those towns). Member groupings are paged (most
        minutes first).
        """
        flt = _filter(args)
        return reports.hours_report(
            db.session(),
            group_by=args["group_by"],
            flt=flt,
            page=args["page"],
            page_size=args["page_size"],
        )


@blp.route("/reports/hours.csv")
class HoursCsv(MethodView):
    @jwt_required()
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, description="UTF-8 CSV with a byte-order mark (opens in Excel and WPS)")
    @blp.doc(security=[{"bearer": []}])
    def get(self, args: dict[str, Any]) -> Response:
        """The report's rows as CSV, every row (no paging), with a totals row."""
        report = reports.hours_report(db.session(), group_by=args["group_by"], flt=_filter(args))
        return Response(
            reports.to_csv(report),
            mimetype="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="{_filename(args, "csv")}"',
                "Content-Type": "text/csv; charset=utf-8",
            },
        )


@blp.route("/reports/hours.xlsx")
class HoursXlsx(MethodView):
    @jwt_required()
    @blp.arguments(ExportArgs, location="query")
    @blp.response(200, description="An Excel workbook, one sheet per grouping")
    @blp.doc(security=[{"bearer": []}])
    def get(self, args: dict[str, Any]) -> Response:
        """The report as a workbook; `sheets=branch,town,month` adds one sheet per grouping."""
        flt = _filter(args)
        groupings = [args["group_by"]]
        if args["sheets"]:
            extra = [[p.strip()] for p in args["sheets"].split(",") if p.strip()]
            groupings += [g for g in extra if g != args["group_by"]]
        session = db.session()
        books = [reports.hours_report(session, group_by=g, flt=flt) for g in groupings]
        return Response(
            reports.to_xlsx(books, title="志愿服务时长统计"),
            mimetype=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{_filename(args, "xlsx")}"'},
        )
