"""`python -m server.admin`: operate a deployment from the shell.

    apply-schema                          create or migrate the database (DATABASE_URL)
    purge [--retention-days N]            destroy conversations soft-deleted > N days ago
    verify --user-email E [--password P | --password-stdin]
                                          check every conversation of one user
    storage-report                        bytes per table, row and message counts

Configuration is read from the environment exactly as the server reads it
(`server.config.load_settings`). `apply-schema` and `storage-report` connect with the
administrator's DSN (`DATABASE_URL`); `purge` and `verify` connect as the application
role, like the server, and reach other users' rows only through the same narrow doors
(the purge function; the user's own password).

`verify` needs the user's password: messages and chain links are keyed by the user's
data key, which only the password unwraps. With it, the command logs in as the user
(a `login` and a `logout` appear in that user's audit log), recomputes every chain and
decrypts every message. Without it (no `--password`, no `--password-stdin`, no
terminal to prompt on), it can only check structure and says the rest is unverifiable.

One line per result on standard output. Exit codes: 0 done and everything checked out;
1 something was found wrong, or the database failed; 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TextIO

import asyncpg

import storage
from server.app import database_dsn, password_throttle
from server.config import ConfigError, Settings, load_settings
from server.service import exceptions as errors
from server.service.accounts import Accounts
from server.service.generation_tracker import LocalTracker
from server.service.generations import LocalGenerations
from server.service.privacy import PrivacyService, VerifyReport
from server.service.timefmt import iso
from storage import privacy as privacy_sql

__all__ = ["main"]

OK, FOUND_PROBLEMS, USAGE = 0, 1, 2
_ALL = 2**31 - 1


class _UsageError(Exception):
    """Bad arguments or configuration: exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server.admin", description="Operate a chat server deployment."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("apply-schema", help="create or migrate the database (DATABASE_URL)")
    purge = commands.add_parser("purge", help="destroy old soft-deleted conversations")
    purge.add_argument(
        "--retention-days",
        type=int,
        default=None,
        help="keep soft-deleted conversations this many days (default PURGE_RETENTION_DAYS, 30)",
    )
    verify = commands.add_parser("verify", help="check every conversation of a user")
    verify.add_argument("--user-email", required=True)
    source = verify.add_mutually_exclusive_group()
    source.add_argument("--password", help="the user's password (visible to `ps`: prefer stdin)")
    source.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line"
    )
    commands.add_parser("storage-report", help="bytes per table, row and message counts")
    return parser


def _retention_days(arg: int | None, settings: Settings) -> int:
    """`--retention-days` (0 purges every soft-deleted conversation), else the server's
    `PURGE_RETENTION_DAYS`."""
    if arg is None:
        return settings.purge_retention_days
    if not 0 <= arg <= 3650:
        raise _UsageError(f"--retention-days must be between 0 and 3650, got {arg}")
    return arg


def _admin_dsn(settings: Settings) -> str:
    if not settings.database_url:
        raise _UsageError("DATABASE_URL (the administrator's DSN) is required for this command")
    return settings.database_url


def _app_dsn(settings: Settings) -> str:
    try:
        return database_dsn(settings)
    except RuntimeError:
        raise _UsageError("set DATABASE_URL or APP_DATABASE_URL") from None


def _privacy(pool: asyncpg.Pool, settings: Settings) -> PrivacyService:
    # Nothing generates replies in this process: the tracker has nothing to cancel. The
    # operator's own password checks are throttled in this process only.
    return PrivacyService(
        pool, LocalTracker(LocalGenerations()), throttle=password_throttle(settings, None)
    )


async def _apply_schema(settings: Settings, out: TextIO) -> int:
    version = await storage.apply_schema(
        _admin_dsn(settings),
        app_role=settings.db_app_role,
        app_password=settings.db_app_password,
    )
    print(f"schema at version {version}", file=out)
    return OK


async def _purge(settings: Settings, days: int, out: TextIO) -> int:
    pool = await storage.create_pool(_app_dsn(settings), min_size=1, max_size=1)
    try:
        now = datetime.now(UTC)
        purged = await _privacy(pool, settings).purge(timedelta(days=days), now=now)
    finally:
        await pool.close()
    cutoff = iso(now - timedelta(days=days))
    print(
        f"purged {purged} conversation(s) soft-deleted before {cutoff} (retention {days} days)",
        file=out,
    )
    return OK


def _problems(report: VerifyReport) -> str:
    found = []
    if report.first_bad_sequence is not None:
        found.append(f"chain breaks at message {report.first_bad_sequence}")
    if not report.root_matches:
        found.append("stored head does not match the recomputed chain")
    if report.undecryptable:
        found.append("undecryptable: " + ", ".join(map(str, report.undecryptable)))
    return "; ".join(found)


async def _verify_with_password(
    pool: asyncpg.Pool, settings: Settings, email: str, password: str, out: TextIO
) -> int:
    accounts = Accounts(
        pool,
        settings.secret_key,
        token_ttl=timedelta(minutes=10),
        throttle=password_throttle(settings, None),
    )
    try:
        login = await accounts.login(email, password, ip=None, user_agent="server.admin verify")
    except errors.Unauthorized:
        raise _UsageError("wrong email or password") from None
    identity = await accounts.authenticate(login.token)
    privacy = _privacy(pool, settings)
    failed = 0
    try:
        async with storage.user_tx(pool, identity.user_id) as con:
            records = await storage.list_conversations(con, limit=_ALL, offset=0)
        for record in records:
            try:
                report = await privacy.verify(identity, record.id)
            except errors.NotFound:
                continue  # deleted meanwhile
            if report.valid:
                print(
                    f"conversation {record.id}: ok, {report.message_count} messages "
                    "(chain, head and decryption verified)",
                    file=out,
                )
            else:
                failed += 1
                print(f"conversation {record.id}: FAILED: {_problems(report)}", file=out)
    finally:
        await accounts.logout(identity, ip=None)
    print(
        f"user {email}: {len(records)} conversation(s), {len(records) - failed} verified, "
        f"{failed} failed",
        file=out,
    )
    return FOUND_PROBLEMS if failed else OK


async def _verify_structure(pool: asyncpg.Pool, email: str, out: TextIO) -> int:
    async with storage.anonymous_tx(pool) as con:
        user = await storage.find_user_for_login(con, email)
    if user is None:
        raise _UsageError(f"no user with email {email}")
    async with storage.user_tx(pool, user.id) as con:
        records = await storage.list_conversations(con, limit=_ALL, offset=0)
    broken = 0
    for record in records:
        async with storage.user_tx(pool, user.id) as con:
            head = await privacy_sql.get_conversation_for_share(con, record.id)
            rows = await storage.list_messages(con, record.id) if head else []
        if head is None:
            continue
        contiguous = [r.seq for r in rows] == list(range(1, len(rows) + 1))
        head_ok = len(rows) == head.message_count and (
            (rows[-1].link if rows else None) == head.merkle_root
        )
        if contiguous and head_ok:
            print(
                f"conversation {record.id}: structure intact, {len(rows)} messages "
                "(chain and decryption unverifiable without the user's password)",
                file=out,
            )
        else:
            broken += 1
            print(
                f"conversation {record.id}: structure BROKEN: {len(rows)} stored of "
                f"{head.message_count}, contiguous={contiguous}, head matches={head_ok}",
                file=out,
            )
    print(
        f"user {email}: {len(records)} conversation(s), {broken} with broken structure; "
        "unverifiable without the user's password",
        file=out,
    )
    return FOUND_PROBLEMS if broken else OK


def _password(args: argparse.Namespace, stdin: TextIO) -> str | None:
    if args.password is not None:
        return str(args.password)
    if args.password_stdin:
        line = stdin.readline().rstrip("\r\n")
        if not line:
            raise _UsageError("--password-stdin: no password on standard input")
        return line
    if stdin.isatty():
        return getpass.getpass(f"Password for {args.user_email}: ")
    return None


async def _verify(settings: Settings, args: argparse.Namespace, stdin: TextIO, out: TextIO) -> int:
    password = _password(args, stdin)
    pool = await storage.create_pool(_app_dsn(settings), min_size=1, max_size=2)
    try:
        if password is None:
            return await _verify_structure(pool, args.user_email, out)
        return await _verify_with_password(pool, settings, args.user_email, password, out)
    finally:
        await pool.close()


async def _storage_report(settings: Settings, out: TextIO) -> int:
    dsn = _admin_dsn(settings)
    with storage.convert_errors():
        con = await asyncpg.connect(dsn)
    try:
        tables = await privacy_sql.table_storage(con)
        exact = await privacy_sql.bypasses_row_security(con)
        counts = await privacy_sql.row_counts(con) if exact else None
    finally:
        await con.close()
    for table in tables:
        rows = (
            f"{counts[table.name]} rows"
            if counts is not None
            else f"~{table.estimated_rows} rows (estimate)"
        )
        print(
            f"table {table.name}: {table.total_bytes} bytes = heap {table.heap_bytes}"
            f" + toast {table.toast_bytes} + indexes {table.index_bytes}; {rows}",
            file=out,
        )
    print(f"total: {sum(t.total_bytes for t in tables)} bytes in {len(tables)} tables", file=out)
    if counts is None:
        print(
            "counts: estimates only; this role is subject to row-level security "
            "(use a superuser or BYPASSRLS role for exact counts)",
            file=out,
        )
    else:
        print(
            f"conversations: {counts['conversations']} ({counts['deleted_conversations']} "
            f"soft-deleted); messages: {counts['messages']}; longest conversation: "
            f"{counts['longest_conversation']} messages; users: {counts['users']}",
            file=out,
        )
    return OK


async def _run(
    args: argparse.Namespace,
    settings: Settings,
    env: Mapping[str, str],
    stdin: TextIO,
    out: TextIO,
) -> int:
    if args.command == "apply-schema":
        return await _apply_schema(settings, out)
    if args.command == "purge":
        return await _purge(settings, _retention_days(args.retention_days, settings), out)
    if args.command == "verify":
        return await _verify(settings, args, stdin, out)
    return await _storage_report(settings, out)


def main(
    argv: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command; returns the exit code (0, 1 or 2, see the module doc)."""
    out, err, stdin = out or sys.stdout, err or sys.stderr, stdin or sys.stdin
    environ = os.environ if env is None else env
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage
        return USAGE if exc.code else OK
    try:
        settings = load_settings(environ)
        return asyncio.run(_run(args, settings, environ, stdin, out))
    except (ConfigError, _UsageError) as exc:
        print(f"error: {exc}", file=err)
        return USAGE
    except storage.StorageError as exc:
        print(f"database error: {exc}", file=err)
        return FOUND_PROBLEMS
    except errors.ServiceError as exc:
        print(f"error: {exc.message}", file=err)
        return FOUND_PROBLEMS


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    sys.exit(main())
