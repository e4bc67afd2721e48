"""Blueprints: every module in this package that defines `blp` is registered under /api/v1.

Discovering them keeps features independent: a new feature adds a module, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

import flask_smorest
from flask_smorest import Api
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser

PREFIX = "/api/v1"


class StrictParser(FlaskParser):
    """webargs' Flask parser, except that an unknown query parameter is an error (webargs
    leaves it out by default): a misspelt filter (`?brnach=3`) would otherwise be answered as
    if there were no filter, say a report of the whole federation's hours read as one
    branch's."""

    DEFAULT_UNKNOWN_BY_LOCATION = {  # noqa: RUF012 (webargs declares it so)
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": RAISE,
        "querystring": RAISE,
    }


class Blueprint(flask_smorest.Blueprint):
    """The blueprint every API module uses: query arguments are parsed strictly."""

    ARGUMENTS_PARSER = StrictParser()


def register_blueprints(api: Api) -> None:
    api.spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        blueprint = getattr(module, "blp", None)
        if isinstance(blueprint, Blueprint):
            api.register_blueprint(blueprint, url_prefix=PREFIX)
