"""Bring a database to the schema in ``schema.sql``; create the roles it needs.

The conventions (version line, ``migrations/NNN_name.sql``, the
``@every-apply`` section) are described in the header of ``schema.sql``.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg  # type: ignore[import-untyped,unused-ignore]

from storage.dsn import with_user
from storage.exceptions import MigrationError, convert_errors

__all__ = [
    "LOGIN_LOOKUP_ROLE",
    "SCHEMA_PATH",
    "SchemaFile",
    "app_dsn",
    "apply_schema",
    "pending_migrations",
    "read_schema",
]

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schema.sql"
LOGIN_LOOKUP_ROLE = "scca_login_lookup"

_VERSION_LINE = re.compile(r"-- schema-version: (\d+)\s*")
_EVERY_APPLY = re.compile(r"^-- @every-apply\b.*$", re.MULTILINE)
_MIGRATION_NAME = re.compile(r"(\d{3})_\w+\.sql")
# Any constant works; it only has to be the same for every server instance.
_MIGRATION_LOCK_KEY = 0x5CCA_0001
_ROLE_RACE_ATTEMPTS = 6

_APP_ROLE_ATTRS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
_LOOKUP_ROLE_ATTRS = (
    "NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
)


@dataclass(frozen=True, slots=True)
class SchemaFile:
    """schema.sql split into its parts."""

    version: int
    structure: str
    every_apply: str


def read_schema(path: Path) -> SchemaFile:
    """Parse a schema file: version line, structure, ``@every-apply`` part."""
    text = path.read_text(encoding="utf-8")
    first_line = text.split("\n", 1)[0]
    version_match = _VERSION_LINE.fullmatch(first_line)
    if version_match is None:
        raise MigrationError(f"{path}: first line must be '-- schema-version: N'")
    marker = _EVERY_APPLY.search(text)
    if marker is None:
        raise MigrationError(f"{path}: no '-- @every-apply' line")
    return SchemaFile(
        version=int(version_match.group(1)),
        structure=text[: marker.start()],
        every_apply=text[marker.start() :],
    )


def pending_migrations(directory: Path, current: int, target: int) -> list[tuple[int, Path]]:
    """The migration files that take a database from ``current`` to ``target``.

    Raises :class:`MigrationError` if a version in between has no file, or
    has more than one.
    """
    found: dict[int, list[Path]] = {}
    if directory.is_dir():
        for path in directory.iterdir():
            match = _MIGRATION_NAME.fullmatch(path.name)
            if match is not None:
                found.setdefault(int(match.group(1)), []).append(path)
    steps: list[tuple[int, Path]] = []
    for version in range(current + 1, target + 1):
        candidates = found.get(version, [])
        if len(candidates) != 1:
            raise MigrationError(
                f"need exactly one {directory}/{version:03d}_*.sql to reach version "
                f"{version}, found {len(candidates)}"
            )
        steps.append((version, candidates[0]))
    return steps


def app_dsn(admin_dsn: str, *, app_role: str, app_password: str | None) -> str:
    """The admin DSN with its credentials replaced by the application role's."""
    return with_user(admin_dsn, app_role, app_password)


async def _quote_ident(con: asyncpg.Connection, name: str) -> str:
    return str(await con.fetchval("SELECT pg_catalog.quote_ident($1)", name))


async def _role_matches(con: asyncpg.Connection, name: str, *, login: bool) -> bool | None:
    """None if the role is missing, else whether its attributes are as wanted."""
    row = await con.fetchrow(
        "SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreatedb, rolcreaterole,"
        " rolreplication FROM pg_catalog.pg_roles WHERE rolname = $1",
        name,
    )
    if row is None:
        return None
    return tuple(row.values()) == (login, False, False, False, False, False)


async def _ensure_role(con: asyncpg.Connection, name: str, attrs: str, *, login: bool) -> None:
    # Roles are cluster-wide and several databases may be set up at once:
    # losing a race to create or alter the same role is expected, so retry.
    ident = await _quote_ident(con, name)
    for attempt in range(_ROLE_RACE_ATTEMPTS):
        try:
            matches = await _role_matches(con, name, login=login)
            if matches is None:
                await con.execute(f"CREATE ROLE {ident} {attrs}")
            elif not matches:
                await con.execute(f"ALTER ROLE {ident} {attrs}")
            return
        except (
            asyncpg.DuplicateObjectError,
            asyncpg.UniqueViolationError,
            asyncpg.InternalServerError,  # "tuple concurrently updated"
        ):
            if attempt == _ROLE_RACE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.02 * (attempt + 1))


async def _set_password(con: asyncpg.Connection, name: str, password: str) -> None:
    statement = await con.fetchval(
        "SELECT pg_catalog.format('ALTER ROLE %I PASSWORD %L', $1::text, $2::text)",
        name,
        password,
    )
    for attempt in range(_ROLE_RACE_ATTEMPTS):
        try:
            await con.execute(statement)
            return
        except asyncpg.InternalServerError:
            if attempt == _ROLE_RACE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.02 * (attempt + 1))


async def _current_version(con: asyncpg.Connection) -> int:
    exists = await con.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL")
    if not exists:
        return 0
    return int(await con.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))


async def _migrate(con: asyncpg.Connection, schema: SchemaFile, migrations: Path) -> None:
    current = await _current_version(con)
    if current > schema.version:
        raise MigrationError(
            f"database is at schema version {current}, newer than this code's {schema.version}"
        )
    if current == 0:
        await con.execute(schema.structure)
        await con.execute("INSERT INTO schema_migrations (version) VALUES ($1)", schema.version)
        return
    for version, path in pending_migrations(migrations, current, schema.version):
        await con.execute(path.read_text(encoding="utf-8"))
        await con.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)


async def apply_schema(
    admin_dsn: str,
    *,
    app_role: str = "scca_app",
    app_password: str | None = None,
    schema_path: Path | None = None,
) -> int:
    """Create or migrate the database at ``admin_dsn``; return its schema version.

    ``admin_dsn`` must connect as a superuser (or an owner able to create
    roles and hand the lookup function to its role). Creates the application
    role ``app_role`` (LOGIN, not superuser, not BYPASSRLS; its password is set
    when ``app_password`` is given) and the ``scca_login_lookup`` role if they
    are missing, runs the schema or the pending migrations under an advisory
    lock, then resets the application role's grants. Safe to call repeatedly
    and concurrently. ``schema_path`` defaults to the repository's schema.sql;
    migrations are looked up in the ``migrations`` folder beside it.
    """
    path = schema_path or SCHEMA_PATH
    schema = read_schema(path)
    with convert_errors():
        con = await asyncpg.connect(admin_dsn)
        try:
            admin = await con.fetchval("SELECT current_user")
            if app_role in (admin, LOGIN_LOOKUP_ROLE):
                raise MigrationError(f"the application role cannot be {app_role!r}")
            await _ensure_role(con, LOGIN_LOOKUP_ROLE, _LOOKUP_ROLE_ATTRS, login=False)
            await _ensure_role(con, app_role, _APP_ROLE_ATTRS, login=True)
            if app_password is not None:
                await _set_password(con, app_role, app_password)
            async with con.transaction():
                await con.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK_KEY)
                await _migrate(con, schema, path.parent / "migrations")
                await con.execute("SELECT set_config('scca.app_role', $1, true)", app_role)
                await con.execute(schema.every_apply)
        finally:
            await con.close()
    return schema.version
