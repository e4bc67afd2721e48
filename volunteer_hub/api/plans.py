"""Plans: shifts, solve runs, the roster, manual adjustments and publishing."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from volunteer_hub.api import Blueprint
from volunteer_hub.auth.policy import current_actor
from volunteer_hub.extensions import db
from volunteer_hub.models.plans import Assignment, Shift, SolveRun
from volunteer_hub.schemas.plans import (
    AssignmentListArgs,
    AssignmentPage,
    AssignmentSchema,
    ManualAddArgs,
    MoveShiftArgs,
    OverrideArgs,
    PlanArgs,
    PlanListArgs,
    PlanPage,
    PlanSchema,
    ShiftListSchema,
    ShiftsArgs,
    ShiftSchema,
    SolveArgs,
    SolveRunSchema,
    SwapArgs,
)
from volunteer_hub.services import plans, posts, publish, solve_runs
from volunteer_hub.services.pagination import paginate
from volunteer_hub.services.problem_builder import BuilderSettings, settings_from_config
from volunteer_hub.services.quiet_hours import QuietHours

blp = Blueprint("plans", __name__, description="Shift plans")

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
PLAN = "/plans/<int(max=2147483647):plan_id>"
ID = "int(max=2147483647)"


def _tz() -> str:
    return str(current_app.config.get("HUB_TIMEZONE", "Asia/Shanghai"))


def _settings() -> BuilderSettings:
    return settings_from_config(current_app.config)


@blp.route("/plans")
class Plans(MethodView):
    @jwt_required()
    @blp.arguments(PlanArgs)
    @blp.response(201, PlanSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """A draft plan for a branch (optionally one town) over a date range."""
        session = db.session()
        plan = plans.create_plan(session, current_actor(), args)
        return plans.plan_view(session, plan)

    @jwt_required()
    @blp.arguments(PlanListArgs, location="query")
    @blp.response(200, PlanPage)
    @blp.doc(security=BEARER)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Plans of the branches the caller coordinates (all for the secretary-general)."""
        session = db.session()
        branch_id = posts.branch_by_code(session, args["branch"]).id if args.get("branch") else None
        query = plans.plan_query(current_actor(), branch_id, args.get("status"))
        page = paginate(session, query, args["page"], args["page_size"])
        page["items"] = [plans.plan_view(session, plan) for plan in page["items"]]
        return page


@blp.route(PLAN)
class PlanDetail(MethodView):
    @jwt_required()
    @blp.response(200, PlanSchema)
    @blp.doc(security=BEARER)
    def get(self, plan_id: int) -> dict[str, Any]:
        """The plan with counts of shifts, slots and filled slots."""
        session = db.session()
        return plans.plan_view(session, plans.visible_plan(session, current_actor(), plan_id))


@blp.route(PLAN + "/shifts")
class PlanShifts(MethodView):
    @jwt_required()
    @blp.arguments(ShiftsArgs)
    @blp.response(201, ShiftSchema(many=True))
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], plan_id: int) -> list[Shift]:
        """Add shifts in bulk."""
        return plans.add_shifts(db.session(), current_actor(), plan_id, args["shifts"], _tz())

    @jwt_required()
    @blp.response(200, ShiftSchema(many=True))
    @blp.doc(security=BEARER)
    def get(self, plan_id: int) -> list[Shift]:
        """The plan's shifts in time order."""
        return plans.list_shifts(db.session(), current_actor(), plan_id)


@blp.route(PLAN + "/shifts/generate")
class GenerateShifts(MethodView):
    @jwt_required()
    @blp.response(201, ShiftListSchema)
    @blp.doc(security=BEARER)
    def post(self, plan_id: int) -> dict[str, Any]:
        """Shifts from the weekly templates of the plan's posts, for every date of the plan."""
        return {"items": plans.generate_shifts(db.session(), current_actor(), plan_id, _tz())}


@blp.route(PLAN + f"/shifts/<{ID}:shift_id>")
class ShiftDetail(MethodView):
    @jwt_required()
    @blp.arguments(MoveShiftArgs)
    @blp.response(200, ShiftSchema)
    @blp.doc(security=BEARER)
    def patch(self, args: dict[str, Any], plan_id: int, shift_id: int) -> Shift:
        """Move a shift; its volunteers hear of it when the plan is next published."""
        return plans.move_shift(db.session(), current_actor(), plan_id, shift_id, args, _tz())


@blp.route(PLAN + "/solve")
class Solve(MethodView):
    @jwt_required()
    @blp.arguments(SolveArgs)
    @blp.response(202, SolveRunSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], plan_id: int) -> SolveRun:
        """Queue a solve run; a worker picks it up."""
        return solve_runs.request_solve(
            db.session(), current_actor(), plan_id, args["time_limit_s"]
        )


@blp.route(PLAN + f"/solve-runs/<{ID}:run_id>")
class SolveRunDetail(MethodView):
    @jwt_required()
    @blp.response(200, SolveRunSchema)
    @blp.doc(security=BEARER)
    def get(self, plan_id: int, run_id: int) -> SolveRun:
        """A solve run with its progress or its result."""
        return solve_runs.visible_run(db.session(), current_actor(), plan_id, run_id)


@blp.route(PLAN + f"/solve-runs/<{ID}:run_id>/cancel")
class CancelSolveRun(MethodView):
    @jwt_required()
    @blp.response(200, SolveRunSchema)
    @blp.doc(security=BEARER)
    def post(self, plan_id: int, run_id: int) -> SolveRun:
        """Cancel a queued or running solve run."""
        return solve_runs.cancel_run(db.session(), current_actor(), plan_id, run_id)


@blp.route(PLAN + "/assignments")
class PlanAssignments(MethodView):
    @jwt_required()
    @blp.arguments(AssignmentListArgs, location="query")
    @blp.response(200, AssignmentPage)
    @blp.doc(security=BEARER)
    def get(self, args: dict[str, Any], plan_id: int) -> dict[str, Any]:
        """The roster, by shift, town, volunteer or status."""
        session = db.session()
        query = plans.assignment_query(session, current_actor(), plan_id, args)
        return paginate(session, query, args["page"], args["page_size"])

    @jwt_required()
    @blp.arguments(ManualAddArgs)
    @blp.response(201, AssignmentSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], plan_id: int) -> Assignment:
        """Put a volunteer on a shift by hand, checked against every hard rule."""
        return plans.add_assignment(db.session(), current_actor(), plan_id, args, _settings())


@blp.route(PLAN + f"/assignments/<{ID}:assignment_id>/remove")
class RemoveAssignment(MethodView):
    @jwt_required()
    @blp.arguments(OverrideArgs)
    @blp.response(200, AssignmentSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], plan_id: int, assignment_id: int) -> Assignment:
        """Take a volunteer off a shift (a published one is cancelled on the next publish)."""
        return plans.remove_assignment(
            db.session(), current_actor(), plan_id, assignment_id, args.get("reason")
        )


@blp.route(PLAN + f"/assignments/<{ID}:assignment_id>/swap")
class SwapAssignment(MethodView):
    @jwt_required()
    @blp.arguments(SwapArgs)
    @blp.response(200, AssignmentSchema)
    @blp.doc(security=BEARER)
    def post(self, args: dict[str, Any], plan_id: int, assignment_id: int) -> Assignment:
        """Give the shift to another volunteer, checked against every hard rule."""
        return plans.swap_assignment(
            db.session(), current_actor(), plan_id, assignment_id, args, _settings()
        )


@blp.route(PLAN + "/publish")
class Publish(MethodView):
    @jwt_required()
    @blp.response(200, PlanSchema)
    @blp.alt_response(409, description="A volunteer would be double-booked")
    @blp.doc(security=BEARER)
    def post(self, plan_id: int) -> dict[str, Any]:
        """Publish the roster and tell the volunteers whose shifts changed."""
        session = db.session()
        plan = publish.publish_plan(
            session,
            current_actor(),
            plan_id,
            reminder_offsets_h=publish.reminder_offsets(current_app.config),
            quiet=QuietHours.from_config(current_app.config),
        )
        return plans.plan_view(session, plan)
