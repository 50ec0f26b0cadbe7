"""Rewriting ``postgresql://`` connection URLs (user, password, database)."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

__all__ = ["with_database", "with_user"]

_CREDENTIAL_KEYS = frozenset({"user", "password"})
_DATABASE_KEYS = frozenset({"dbname", "database"})


def _drop_query_keys(query: str, keys: frozenset[str]) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k not in keys]
    return query if len(kept) == len(pairs) else urlencode(kept)


def with_user(dsn: str, user: str, password: str | None) -> str:
    """Return ``dsn`` connecting as ``user`` (with ``password``, or none).

    Works for host URLs (``postgresql://u:p@host:5432/db``) and for the
    socket form (``postgresql://postgres:@/db?host=/run/pg``); credentials
    given as query parameters are removed.
    """
    parts = urlsplit(dsn)
    _, _, hostspec = parts.netloc.rpartition("@")
    userinfo = quote(user, safe="")
    if password is not None:
        userinfo += ":" + quote(password, safe="")
    query = _drop_query_keys(parts.query, _CREDENTIAL_KEYS)
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{hostspec}", query=query))


def with_database(dsn: str, database: str) -> str:
    """Return ``dsn`` pointing at ``database`` instead of its own."""
    parts = urlsplit(dsn)
    query = _drop_query_keys(parts.query, _DATABASE_KEYS)
    return urlunsplit(parts._replace(path="/" + quote(database, safe=""), query=query))
