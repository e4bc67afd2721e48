"""Configuration read from the environment when the app is created, never at import time."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any


def instance_dir() -> Path:
    """The folder for local state (SQLite file, generated secrets); created on demand."""
    path = Path(os.environ.get("HUB_INSTANCE_DIR", Path.cwd() / "instance"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _jwt_secret() -> str:
    """`JWT_SECRET_KEY`, or a key generated once into instance/ so restarts keep sessions."""
    configured = os.environ.get("JWT_SECRET_KEY")
    if configured:
        return configured
    key_file = instance_dir() / "jwt_secret.key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(48))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def normalise_database_url(url: str) -> str:
    """Accept the usual `postgres://` and `postgresql://` spellings and use psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# Feature settings (check-in windows, wave timing, solver workers, ...) keep their defaults
# beside the code that uses them; any of them can be set from the environment by name.
FEATURE_PREFIXES = (
    "ATTENDANCE_",
    "DECLINE_",
    "FCM_",
    "INCIDENT_",
    "LOGIN_LIMIT_",
    "OUTBOX_",
    "PLAN_",
    "PUSH_",
    "REMINDER_",
    "REPLACEMENT_",
    "SIGN_IN_CODE_",
    "SOLVE_",
    "SOLVER_",
)


def _parse_setting(raw: str) -> Any:
    """Numbers, booleans and lists as JSON (`3`, `true`, `[24, 2]`); anything else as text."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def feature_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    return {
        name: _parse_setting(value)
        for name, value in environ.items()
        if name.startswith(FEATURE_PREFIXES)
    }


def from_environment() -> dict[str, Any]:
    """Every setting the app reads, with its default."""
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_dir() / 'hub.db'}"
    redis_url = os.environ.get("REDIS_URL")
    return {
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(database_url),
        "JWT_SECRET_KEY": _jwt_secret(),
        "JWT_ACCESS_TOKEN_EXPIRES": timedelta(minutes=15),
        "JWT_REFRESH_TOKEN_EXPIRES": timedelta(days=30),
        "HUB_TIMEZONE": os.environ.get("HUB_TIMEZONE", "Asia/Shanghai"),
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "LOGIN_LIMIT_PER_PHONE": os.environ.get("LOGIN_LIMIT_PER_PHONE", "5 per 5 minutes"),
        "LOGIN_LIMIT_PER_IP": os.environ.get("LOGIN_LIMIT_PER_IP", "50 per 5 minutes"),
        "FCM_CREDENTIALS": os.environ.get("FCM_CREDENTIALS"),
        "FCM_URL": os.environ.get("FCM_URL"),
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        **feature_settings(os.environ),
    }


BASE: dict[str, Any] = {
    "API_TITLE": "Volunteer Hub",
    "API_VERSION": "v1",
    "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api/v1",
    "OPENAPI_JSON_PATH": "openapi.json",
    "SQLALCHEMY_TRACK_MODIFICATIONS": False,
    "JSON_SORT_KEYS": False,
    "RATELIMIT_HEADERS_ENABLED": True,
    "RATELIMIT_STRATEGY": "fixed-window",
    "PROPAGATE_EXCEPTIONS": False,
    "JWT_ERROR_MESSAGE_KEY": "detail",
}

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
