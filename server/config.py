"""Settings: every environment variable read once, validated, into one frozen object.

A bad value stops start-up with one line naming the variable (`ConfigError`).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ai.settings import AISettings
from server.service.address_allowlist import AddressAllowlist
from server.service.event_limits import EventLimits
from server.service.password_throttle import ThrottleLimits

__all__ = ["ConfigError", "Settings", "load_settings"]

_LOG = logging.getLogger(__name__)
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_MIN_SECRET_BYTES = 32
_MIN_METRICS_TOKEN_CHARS = 16
_SECRET_FILE = "secret_key"  # noqa: S105 - a file name


class ConfigError(Exception):
    """A configuration value is missing or wrong; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server is configured with. Built by `load_settings(os.environ)`."""

    secret_key: bytes = field(repr=False)
    # Secrets other instances may still seal with during a rolling rotation: accepted
    # when opening pub/sub messages and resume mirrors, never used to seal.
    extra_secret_keys: tuple[bytes, ...] = field(default=(), repr=False)
    database_url: str | None = field(default=None, repr=False)
    app_database_url: str | None = field(default=None, repr=False)
    db_app_role: str = "scca_app"
    db_app_password: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    redis_channel: str = "scca-socketio"
    cors_origins: tuple[str, ...] = ("http://localhost:3000",)
    host: str = "127.0.0.1"
    port: int = 8000
    socket_path: str = "/api/socket"
    ping_interval_s: float = 25.0
    ping_timeout_s: float = 60.0
    log_level: str = "INFO"
    production: bool = False
    data_dir: Path = Path(".data")
    ai: AISettings = field(default_factory=AISettings)
    access_token_ttl_s: int = 24 * 3600
    db_pool_min: int = 1
    db_pool_max: int = 10
    generation_lock_ttl_s: float = 30.0
    shutdown_grace_s: float = 20.0
    coalesce_ms: float = 0.0
    max_http_buffer_size: int = 1_000_000
    max_body_bytes: int = 1_000_000
    max_conversations_per_user: int = 10_000
    max_group_members: int = 256
    max_groups_per_user: int = 500
    max_sockets_per_user: int = 20
    handshake_timeout_s: float = 10.0
    session_check_interval_s: float = 5.0
    limits: EventLimits = field(default_factory=EventLimits)
    purge_retention_days: int = 30
    privacy_batch_size: int = 500
    trust_proxy: bool = False
    purge_interval_s: float = 3600.0
    session_key_sweep_interval_s: float = 60.0
    password_throttle: ThrottleLimits = field(default_factory=ThrottleLimits)
    # Exempt from the per-address limits (connections, registrations).
    rate_limit_allowlist: AddressAllowlist = field(default_factory=AddressAllowlist)
    # `GET /metrics` needs `Authorization: Bearer <it>`; without one, production has no
    # /metrics at all (404) and development serves it openly.
    metrics_token: str | None = field(default=None, repr=False)
    # A socket may carry its token as `?token=` (the seed's clients do). Off: refused, the
    # handshake's auth payload and the session cookie still work (URLs end up in logs).
    allow_query_tokens: bool = True

    @property
    def engineio_path(self) -> str:
        """The path python-socketio wants: no leading or trailing slash."""
        return self.socket_path.strip("/")


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _secret(env: Mapping[str, str], production: bool, data_dir: Path) -> bytes:
    raw = env.get("SECRET_KEY", "")
    if raw:
        secret = raw.encode("utf-8")
        if len(secret) < _MIN_SECRET_BYTES:
            raise ConfigError(
                f"SECRET_KEY must be at least {_MIN_SECRET_BYTES} bytes, got {len(secret)}"
            )
        if production and raw.lower() in ("changeme" * 4, "secret" * 6, "x" * 32):
            raise ConfigError("SECRET_KEY is a well-known default; refusing to start in production")
        return secret
    if production:
        raise ConfigError("SECRET_KEY is required in production (APP_ENV=production)")
    return _stored_secret(data_dir)


def _extra_secrets(env: Mapping[str, str]) -> tuple[bytes, ...]:
    found = []
    for raw in env.get("EXTRA_SECRET_KEYS", "").split(","):
        secret = raw.strip().encode("utf-8")
        if not secret:
            continue
        if len(secret) < _MIN_SECRET_BYTES:
            raise ConfigError(
                f"EXTRA_SECRET_KEYS: every secret must be at least {_MIN_SECRET_BYTES} bytes"
            )
        found.append(secret)
    return tuple(found)


def _allowlist(env: Mapping[str, str]) -> AddressAllowlist:
    try:
        return AddressAllowlist.parse(env.get("RATE_LIMIT_ALLOWLIST", ""))
    except ValueError as exc:
        raise ConfigError(f"RATE_LIMIT_ALLOWLIST: {exc}") from None


def _metrics_token(env: Mapping[str, str], production: bool) -> str | None:
    token = _optional(env, "METRICS_TOKEN")
    if token is not None and len(token) < _MIN_METRICS_TOKEN_CHARS:
        raise ConfigError(f"METRICS_TOKEN must be at least {_MIN_METRICS_TOKEN_CHARS} characters")
    if token is None and production:
        _LOG.warning("APP_ENV=production without METRICS_TOKEN: /metrics answers 404")
    return token


def _stored_secret(data_dir: Path) -> bytes:
    """Development secret kept in the data folder so tokens survive a restart."""
    path = data_dir / _SECRET_FILE
    if path.exists():
        secret = path.read_bytes().strip()
        if len(secret) >= _MIN_SECRET_BYTES:
            return secret
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(48))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(secret)
    _LOG.warning("SECRET_KEY not set: generated one and stored it in %s (development only)", path)
    return secret


def _origins(env: Mapping[str, str]) -> tuple[str, ...]:
    raw = env.get("CORS_ORIGINS", "http://localhost:3000")
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    if "*" in origins:
        raise ConfigError(
            "CORS_ORIGINS must list origins explicitly: '*' is refused because the "
            "socket endpoint allows credentials"
        )
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise ConfigError(
                f"CORS_ORIGINS entries must start with http:// or https://, got {origin!r}"
            )
    return origins


def _socket_path(env: Mapping[str, str]) -> str:
    raw = env.get("SOCKET_PATH", "/api/socket").strip()
    if not raw.startswith("/") or raw == "/" or " " in raw:
        raise ConfigError(f"SOCKET_PATH must be an absolute path like /api/socket, got {raw!r}")
    return "/" + raw.strip("/")


def _overrides(env: Mapping[str, str]) -> dict[str, str]:
    """`MODEL_PROVIDERS=llama:openai,mistral:openai` routes model prefixes to providers."""
    raw = env.get("MODEL_PROVIDERS", "").strip()
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        prefix, sep, provider = item.partition(":")
        if not sep or provider not in ("openai", "anthropic", "scripted") or not prefix:
            raise ConfigError(
                "MODEL_PROVIDERS entries must look like prefix:openai|anthropic|scripted, "
                f"got {item!r}"
            )
        result[prefix] = provider
    return result


def load_settings(env: Mapping[str, str]) -> Settings:
    """Read and validate the configuration; raise ConfigError naming the bad variable."""
    production = env.get("APP_ENV", "development").strip().lower() == "production"
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, got {log_level!r}")
    data_dir = Path(env.get("DATA_DIR", ".data")).expanduser()
    database_url = _optional(env, "DATABASE_URL")
    if database_url and not database_url.startswith(("postgres://", "postgresql://")):
        raise ConfigError("DATABASE_URL must be a postgresql:// URL")
    redis_url = _optional(env, "REDIS_URL")
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
    ai = AISettings(
        openai_api_key=_optional(env, "OPENAI_API_KEY"),
        openai_base_url=_optional(env, "OPENAI_BASE_URL"),
        anthropic_api_key=_optional(env, "ANTHROPIC_API_KEY"),
        anthropic_base_url=_optional(env, "ANTHROPIC_BASE_URL"),
        default_model=_optional(env, "DEFAULT_MODEL"),
        system_prompt=env.get("SYSTEM_PROMPT", "You are a helpful assistant."),
        scripted_tokens=_int(env, "SCRIPTED_TOKENS", 40, low=1, high=100_000),
        scripted_delay_ms=_float(env, "SCRIPTED_DELAY_MS", 15.0, low=0.0, high=60_000.0),
        request_timeout_s=_float(env, "AI_TIMEOUT_S", 60.0, low=1.0, high=3600.0),
        provider_overrides=_overrides(env),
    )
    if (
        production
        and database_url
        and not _optional(env, "APP_DATABASE_URL")
        and not _optional(env, "DB_APP_PASSWORD")
    ):
        # The server creates the application role from DATABASE_URL; without a password
        # it could only log in through `trust`, which must not reach production.
        raise ConfigError(
            "DB_APP_PASSWORD is required in production when the server creates its "
            "database role from DATABASE_URL (or set APP_DATABASE_URL yourself)"
        )
    if (
        production
        and ai.openai_api_key is None
        and ai.openai_base_url is None
        and (ai.anthropic_api_key is None)
    ):
        _LOG.warning("APP_ENV=production with no AI provider configured: replies are scripted")
    settings = Settings(
        secret_key=b"",
        extra_secret_keys=_extra_secrets(env),
        database_url=database_url,
        app_database_url=_optional(env, "APP_DATABASE_URL"),
        db_app_role=env.get("DB_APP_ROLE", "scca_app").strip() or "scca_app",
        db_app_password=_optional(env, "DB_APP_PASSWORD"),
        redis_url=redis_url,
        redis_channel=env.get("REDIS_CHANNEL", "scca-socketio").strip() or "scca-socketio",
        cors_origins=_origins(env),
        host=env.get("HOST", "127.0.0.1").strip() or "127.0.0.1",
        port=_int(env, "PORT", 8000, low=0, high=65535),
        socket_path=_socket_path(env),
        ping_interval_s=_float(env, "PING_INTERVAL_S", 25.0, low=1.0, high=600.0),
        ping_timeout_s=_float(env, "PING_TIMEOUT_S", 60.0, low=1.0, high=600.0),
        log_level=log_level,
        production=production,
        data_dir=data_dir,
        ai=ai,
        access_token_ttl_s=_int(env, "ACCESS_TOKEN_TTL_S", 24 * 3600, low=60, high=90 * 86400),
        db_pool_min=_int(env, "DB_POOL_MIN", 1, low=0, high=100),
        db_pool_max=_int(env, "DB_POOL_MAX", 10, low=1, high=200),
        generation_lock_ttl_s=_float(env, "GENERATION_LOCK_TTL_S", 30.0, low=2.0, high=3600.0),
        shutdown_grace_s=_float(env, "SHUTDOWN_GRACE_S", 20.0, low=0.0, high=3600.0),
        coalesce_ms=_float(env, "TOKEN_COALESCE_MS", 0.0, low=0.0, high=1000.0),
        max_conversations_per_user=_int(
            env, "MAX_CONVERSATIONS_PER_USER", 10_000, low=1, high=10_000_000
        ),
        max_sockets_per_user=_int(env, "MAX_SOCKETS_PER_USER", 20, low=1, high=10_000),
        max_group_members=_int(env, "MAX_GROUP_MEMBERS", 256, low=2, high=100_000),
        max_groups_per_user=_int(env, "MAX_GROUPS_PER_USER", 500, low=1, high=1_000_000),
        handshake_timeout_s=_float(env, "HANDSHAKE_TIMEOUT_S", 10.0, low=0.5, high=600.0),
        trust_proxy=_bool(env, "TRUST_PROXY", False),
        rate_limit_allowlist=_allowlist(env),
        metrics_token=_metrics_token(env, production),
        allow_query_tokens=_bool(env, "ALLOW_QUERY_TOKENS", True),
        privacy_batch_size=_int(env, "PRIVACY_BATCH_SIZE", 500, low=1, high=100_000),
        purge_retention_days=_int(env, "PURGE_RETENTION_DAYS", 30, low=1, high=3650),
        purge_interval_s=_float(env, "PURGE_INTERVAL_S", 3600.0, low=10.0, high=7 * 86400.0),
        password_throttle=ThrottleLimits(
            free=_int(env, "LOGIN_FREE_FAILURES", 3, low=1, high=1000),
            per_address=_int(env, "LOGIN_FAILURES_PER_ADDRESS_PER_HOUR", 100, low=1, high=10**6),
            per_account=_int(env, "LOGIN_FAILURES_PER_ACCOUNT_PER_HOUR", 1000, low=1, high=10**6),
        ),
        session_key_sweep_interval_s=_float(
            env, "SESSION_KEY_SWEEP_INTERVAL_S", 60.0, low=1.0, high=86400.0
        ),
        limits=EventLimits(
            sends=_int(env, "RATE_SENDS_PER_MIN", 60, low=1, high=1_000_000),
            edits=_int(env, "RATE_EDITS_PER_MIN", 60, low=1, high=1_000_000),
            joins=_int(env, "RATE_JOINS_PER_MIN", 240, low=1, high=1_000_000),
            other=_int(env, "RATE_EVENTS_PER_MIN", 1200, low=1, high=1_000_000),
            connects_per_ip=_int(env, "RATE_CONNECTS_PER_MIN_PER_IP", 600, low=1, high=1_000_000),
            flood_refusals=_int(env, "FLOOD_DISCONNECT_AFTER", 100, low=1, high=1_000_000),
            creates=_int(env, "RATE_CREATES_PER_MIN", 30, low=1, high=1_000_000),
            key_rotations=_int(env, "RATE_KEY_ROTATIONS_PER_MIN", 10, low=1, high=1_000_000),
            exports=_int(env, "RATE_EXPORTS_PER_MIN", 10, low=1, high=1_000_000),
            registers_per_ip=_int(
                env, "RATE_REGISTERS_PER_HOUR_PER_IP", 20, low=1, high=1_000_000
            ),
            lookups=_int(env, "RATE_LOOKUPS_PER_MIN", 30, low=1, high=1_000_000),
            member_adds=_int(env, "RATE_MEMBER_ADDS_PER_MIN", 60, low=1, high=1_000_000),
        ),
    )
    # Last: every other variable is valid before a development secret is written.
    return dataclasses.replace(settings, secret_key=_secret(env, production, data_dir))
