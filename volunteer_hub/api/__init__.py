"""Blueprints: every module in this package that defines `blp` is registered under /api/v1.

Discovering them keeps features independent: a new feature adds a module, nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil

from flask_smorest import Api, Blueprint

PREFIX = "/api/v1"


def register_blueprints(api: Api) -> None:
    api.spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        blueprint = getattr(module, "blp", None)
        if isinstance(blueprint, Blueprint):
            api.register_blueprint(blueprint, url_prefix=PREFIX)
