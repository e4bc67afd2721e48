"""notifications/ stays independent of the app and the solver (DESIGN.md)."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("flask", "sqlalchemy", "volunteer_hub", "scheduling")

PROBE = """
import importlib, json, pkgutil, sys
import notifications
names = [m.name for m in pkgutil.walk_packages(notifications.__path__, "notifications.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
"""


def test_notifications_imports_neither_flask_sqlalchemy_app_nor_solver() -> None:
    output = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    report = json.loads(output)

    assert "notifications.fcm" in report["modules"]
    assert "notifications.fakefcm" in report["modules"]
    leaked = [
        name
        for name in report["loaded"]
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
    ]
    assert leaked == []
