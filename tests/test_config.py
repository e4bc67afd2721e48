"""Configuration from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from volunteer_hub import config


def test_feature_settings_are_read_by_name_and_parsed() -> None:
    settings = config.feature_settings(
        {
            "INCIDENT_RADII_M": "[1000, 3000]",
            "SOLVER_WORKERS": "1",
            "PLAN_ONE_SHIFT_PER_DAY": "false",
            "LOGIN_LIMIT_PER_PHONE": "3 per minute",
            "HOME": "/root",
        }
    )
    assert settings == {
        "INCIDENT_RADII_M": [1000, 3000],
        "SOLVER_WORKERS": 1,
        "PLAN_ONE_SHIFT_PER_DAY": False,
        "LOGIN_LIMIT_PER_PHONE": "3 per minute",
    }


def test_database_url_spellings_use_psycopg3() -> None:
    assert config.normalise_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert config.normalise_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert config.normalise_database_url("sqlite:///x.db") == "sqlite:///x.db"


def test_jwt_secret_is_generated_once_into_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("HUB_INSTANCE_DIR", str(tmp_path))
    first = config.from_environment()
    second = config.from_environment()
    assert first["JWT_SECRET_KEY"] == second["JWT_SECRET_KEY"]
    assert len(first["JWT_SECRET_KEY"]) >= 40
    assert (tmp_path / "jwt_secret.key").stat().st_mode & 0o077 == 0
    assert first["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'hub.db'}"
