"""`flask hub ...` commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

hub = AppGroup("hub", help="Volunteer Hub commands.")


def register_cli(app: Flask) -> None:
    from volunteer_hub.jobs import register_commands

    register_commands(hub)
    app.cli.add_command(hub)


@hub.command("check")
def check() -> None:
    """Print the database the app would use."""
    from flask import current_app

    click.echo(current_app.config["SQLALCHEMY_DATABASE_URI"])
