"""Shared fixtures: an app per database backend built by running the migrations, a clean
database for every test, and `create_*` factories.

Every test that uses `app` runs on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set.
Each pytest process gets its own PostgreSQL database, so parallel runs never share rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import create_access_token
from sqlalchemy import make_url, select, text

from volunteer_hub.app import create_app
from volunteer_hub.auth.passwords import hash_password
from volunteer_hub.extensions import Base, db, limiter
from volunteer_hub.models import (
    Branch,
    Member,
    MemberBranch,
    MemberSkill,
    Role,
    RoleGrant,
    Skill,
    Squad,
    Town,
)

# The fake FCM server fixtures (fake_server, service_account, fake_fcm) for every folder.
pytest_plugins = ["tests.fake_fcm_fixtures"]

TEST_PASSWORD = "correct horse 1"
REFERENCE_TABLES = {"branch", "skill", "alembic_version"}
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get("TEST_DATABASE_URL") else [])


def _postgres_database(base_url: str) -> tuple[str, Callable[[], None]]:
    """Create a private database beside TEST_DATABASE_URL's and a function that drops it."""
    url = make_url(base_url)
    name = f"hub_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def run(sql: str) -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    run(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.set(database=name).render_as_string(hide_password=False), drop


def make_test_config(database_url: str, tmp: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "JWT_SECRET_KEY": "test-secret-" + "x" * 32,
        "RATELIMIT_STORAGE_URI": "memory://",
        "HUB_INSTANCE_DIR": str(tmp),
        # Pushes go at once whatever the hour the suite runs; tests of quiet hours set them.
        "PUSH_QUIET_HOURS": "off",
    }


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'hub.db'}"
        return
    url, drop = _postgres_database(os.environ["TEST_DATABASE_URL"])
    yield url
    drop()


@pytest.fixture(scope="session")
def migrated_app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app per backend; the schema comes from running every migration."""
    from flask_migrate import upgrade

    os.environ.setdefault("HUB_INSTANCE_DIR", str(tmp_path_factory.mktemp("instance")))
    app = create_app(make_test_config(database_url, tmp_path_factory.mktemp("inst")))
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _clean(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        tables = [
            t for t in reversed(Base.metadata.sorted_tables) if t.name not in REFERENCE_TABLES
        ]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(table.delete())


@pytest.fixture
def app(migrated_app: Flask) -> Iterator[Flask]:
    """The backend's app with an empty database (reference data kept) and fresh limits."""
    _clean(migrated_app)
    limiter.reset()
    yield migrated_app
    with migrated_app.app_context():
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


# ------------------------------------------------------------------------- factories


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(TEST_PASSWORD)


class Factory:
    """`create_*` helpers; each commits and returns plain ids so tests need no app context."""

    def __init__(self, app: Flask, password_hash: str) -> None:
        self.app = app
        self.password_hash = password_hash
        self._phones = 0
        # Reference data from the migration; read once so factories never nest sessions
        # (on SQLite a second session would wait on the first one's write lock).
        with app.app_context():
            self._branches = dict(db.session.execute(select(Branch.code, Branch.id)).all())
            self._skills = dict(db.session.execute(select(Skill.code, Skill.id)).all())

    def branch_id(self, code: str) -> int:
        return int(self._branches[code])

    def skill_id(self, code: str) -> int:
        return int(self._skills[code])

    def create_town(self, name: str = "", lat: float = 29.82, lon: float = 121.55) -> int:
        with self.app.app_context():
            town = Town(name=name or f"Town {uuid.uuid4().hex[:6]}", lat=lat, lon=lon)
            db.session.add(town)
            db.session.commit()
            return town.id

    def create_squad(self, branch: str, town_id: int, leader_id: int | None = None) -> int:
        with self.app.app_context():
            squad = Squad(branch_id=self.branch_id(branch), town_id=town_id, leader_id=leader_id)
            db.session.add(squad)
            db.session.commit()
            return squad.id

    def create_member(
        self,
        *,
        name: str = "测试队员",
        phone: str | None = None,
        branches: tuple[str, ...] = ("patrol",),
        skills: tuple[str, ...] = (),
        roles: tuple[tuple[str, str | None, int | None], ...] = (),
        town_id: int | None = None,
        home: tuple[float, float] | None = (29.82, 121.55),
        id_number: str | None = "330212199001011234",
        is_core: bool = False,
        skill_expiry: date | None = None,
    ) -> int:
        """A member; `roles` are (role, branch code or None, town id or None)."""
        self._phones += 1
        with self.app.app_context():
            member = Member(
                name=name,
                phone=phone or f"137{self._phones:08d}",
                password_hash=self.password_hash,
                id_number=id_number,
                town_id=town_id,
                home_lat=home[0] if home else None,
                home_lon=home[1] if home else None,
                is_core=is_core,
            )
            db.session.add(member)
            db.session.flush()
            for code in branches:
                db.session.add(MemberBranch(member_id=member.id, branch_id=self.branch_id(code)))
            for code in skills:
                db.session.add(
                    MemberSkill(
                        member_id=member.id, skill_id=self.skill_id(code), expires_on=skill_expiry
                    )
                )
            for role, branch, town in roles:
                db.session.add(
                    RoleGrant(
                        member_id=member.id,
                        role=Role(role),
                        branch_id=self.branch_id(branch) if branch else None,
                        town_id=town,
                    )
                )
            db.session.commit()
            return member.id

    def phone_of(self, member_id: int) -> str:
        with self.app.app_context():
            return db.session.get_one(Member, member_id).phone

    def headers(self, member_id: int) -> dict[str, str]:
        """A bearer header for the member, without spending a password hash per test."""
        with self.app.app_context():
            member = db.session.get_one(Member, member_id)
            token = create_access_token(
                identity=str(member_id),
                additional_claims={"fam": uuid.uuid4().hex, "tv": member.token_version},
            )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def factory(app: Flask, password_hash: str) -> Factory:
    return Factory(app, password_hash)
