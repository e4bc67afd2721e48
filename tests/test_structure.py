"""The shape of the project: one migration head, migrations equal to the models, and the
pure packages kept pure."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask

from volunteer_hub.config import MIGRATIONS_DIR
from volunteer_hub.extensions import Base, db


def test_migrations_have_a_single_head(app: Flask) -> None:
    from alembic.config import Config

    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    heads = ScriptDirectory.from_config(config).get_heads()
    assert len(heads) == 1, f"more than one Alembic head: {heads}"


def test_models_and_migrations_agree(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "render_as_batch": True}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"the models differ from the migrations; add a revision: {diff}"


def test_reference_data_comes_from_the_migration(app: Flask) -> None:
    from volunteer_hub.models import Branch

    with app.app_context():
        codes = [b.code for b in db.session.query(Branch).order_by(Branch.id)]
    assert codes == ["mediation", "hazard", "patrol", "rescue", "cyber", "assistance", "publicity"]


def _modules_loaded_after_importing(package: str) -> set[str]:
    code = (
        "import importlib, pkgutil, sys\n"
        f"import {package}\n"
        f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_scheduling_is_pure() -> None:
    loaded = _modules_loaded_after_importing("scheduling")
    assert not loaded & {"flask", "sqlalchemy", "volunteer_hub", "notifications"}


def test_notifications_is_pure() -> None:
    loaded = _modules_loaded_after_importing("notifications")
    assert not loaded & {"flask", "sqlalchemy", "volunteer_hub", "scheduling"}
