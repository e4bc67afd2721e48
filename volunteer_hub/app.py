"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter, Map

from volunteer_hub import config as hub_config
from volunteer_hub.check_in_lane import install as install_check_in_lane
from volunteer_hub.database import engine_options, init_database
from volunteer_hub.errors import register_error_handlers
from volunteer_hub.extensions import api, db, jwt, limiter, migrate
from volunteer_hub.services.quiet_hours import QuietHours
from volunteer_hub.textguard import init_text_guard

MAX_ID = 2**31 - 1


class BoundedIntConverter(IntegerConverter):
    """`<int:...>` in every route stops at the database's integer range, so an absurd id in
    a path is a 404 rather than an overflow deep in a query."""

    def __init__(
        self,
        url_map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(url_map, fixed_digits, min, MAX_ID if max is None else max, signed)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build an app; `config` overrides what the environment says (tests pass theirs)."""
    app = Flask(__name__, instance_path=str(hub_config.instance_dir()))
    app.config.update(hub_config.BASE)
    app.config.update(hub_config.from_environment())
    if config:
        app.config.update(config)
    app.config["SQLALCHEMY_DATABASE_URI"] = hub_config.normalise_database_url(
        app.config["SQLALCHEMY_DATABASE_URI"]
    )
    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config["SQLALCHEMY_DATABASE_URI"])
    )
    # A misspelt PUSH_QUIET_HOURS stops the app here, not the first publish at night.
    QuietHours.from_config(app.config)
    app.url_map.converters["int"] = BoundedIntConverter
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    logging.basicConfig(level=app.config.get("LOG_LEVEL", "INFO"))

    from volunteer_hub import models  # noqa: F401  (every table known before migrations)

    db.init_app(app)
    init_database(app)
    migrate.init_app(app, db, directory=str(hub_config.MIGRATIONS_DIR))
    jwt.init_app(app)
    limiter.init_app(app)
    api.init_app(app)

    from volunteer_hub.api import register_blueprints
    from volunteer_hub.auth.tokens import register_jwt_callbacks
    from volunteer_hub.cli import register_cli

    register_jwt_callbacks(jwt)
    register_blueprints(api)
    register_error_handlers(app)
    init_text_guard(app)
    register_cli(app)
    install_check_in_lane(app)
    return app
