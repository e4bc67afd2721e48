"""Periodic work run by the worker process, and the commands that start it."""

from __future__ import annotations

from flask.cli import AppGroup


def register_commands(group: AppGroup) -> None:
    """Attach every command module's commands (seed, worker, ...) to `flask hub`."""
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(group)
