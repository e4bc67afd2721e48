"""`flask hub seed`: fill the database with the demo federation."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from volunteer_hub.extensions import db


def register(group: AppGroup) -> None:
    group.add_command(seed_command)


@click.command("seed")
@with_appcontext
@click.option("--members", default=40_000, show_default=True, type=click.IntRange(51, 1_000_000))
@click.option("--towns", default=24, show_default=True, type=click.IntRange(1, 28))
@click.option("--seed", "seed_value", default=1, show_default=True, type=int)
@click.option(
    "--password",
    required=True,
    envvar="HUB_SEED_PASSWORD",
    help="the password of every seeded member (or HUB_SEED_PASSWORD)",
)
@click.option("--force", is_flag=True, help="empty every table first, then seed")
@click.option("--if-empty", is_flag=True, help="do nothing when members exist already")
def seed_command(
    members: int, towns: int, seed_value: int, password: str, force: bool, if_empty: bool
) -> None:
    """Seed the demo federation; refuses a database with members unless --force."""
    from volunteer_hub.services.seed import has_members, seed_federation, wipe

    if len(password) < 8:
        raise click.BadParameter("at least 8 characters", param_hint="--password")
    session = db.session()
    if has_members(session):
        if if_empty:
            click.echo("seed: the database has members already; nothing to do", err=True)
            return
        if not force:
            raise click.ClickException(
                "the database has members already; use --force to replace them "
                "or --if-empty to skip"
            )
        click.echo("seed: --force: emptying every table except branches and skills", err=True)
        wipe(session)
    report = seed_federation(
        session,
        members=members,
        towns=towns,
        seed=seed_value,
        password=password,
        progress=lambda line: click.echo(line, err=True),
        timezone=current_app.config["HUB_TIMEZONE"],
    )
    click.echo(
        f"seeded {report.members} members ({report.core} core) in {report.towns} towns, "
        f"{report.squads} squads, {report.organizations} organisations in {report.seconds:.1f} s"
    )
