"""A database's schema read back from its catalogs, and the differences between two.

:func:`read_catalog` turns everything the schema defines into plain data:
``{kind: {object: {property: value}}}``, with names instead of OIDs and nothing
that depends on the rows stored (no sequence positions, no statistics), so two
databases built by different routes compare equal exactly when their schemas do.
:func:`differences` names every object that is missing on one side or whose
properties differ.

Roles themselves are cluster-wide, shared by every database of the cluster, so
there is nothing to compare about them; what each role may do *in this
database* is compared (grants, policies, owners).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped,unused-ignore]

__all__ = ["Catalog", "Difference", "differences", "read_catalog", "report"]

Catalog = dict[str, dict[str, dict[str, object]]]

_PUBLIC = "n.nspname = 'public'"
_NOT_FROM_EXTENSION = (
    "NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass"
    " AND e.objid = {oid} AND e.deptype = 'e')"
)

# kind -> query; each row is one object, its name in the column "key".
_QUERIES: dict[str, str] = {
    "relation": f"""
        SELECT c.relname AS key, c.relkind::text AS kind,
               pg_get_userbyid(c.relowner) AS owner, c.relpersistence::text AS persistence,
               c.reloptions AS options, c.relreplident::text AS replica_identity,
               am.amname AS access_method,
               CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS definition
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_am am ON am.oid = c.relam
        WHERE {_PUBLIC} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S', 'c')
          AND {_NOT_FROM_EXTENSION.format(catalog="pg_class", oid="c.oid")}
    """,
    "row-level security": f"""
        SELECT c.relname AS key, c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_PUBLIC} AND c.relkind IN ('r', 'p')
    """,
    "column": f"""
        SELECT c.relname || '.' || a.attname AS key,
               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position,
               format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null,
               pg_get_expr(d.adbin, d.adrelid) AS "default", a.attidentity::text AS identity,
               a.attgenerated::text AS generated, a.attstorage::text AS storage,
               a.attcompression::text AS compression,
               CASE WHEN a.attcollation <> t.typcollation
                    THEN a.attcollation::regcollation::text END AS collation
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE {_PUBLIC} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
          AND a.attnum > 0 AND NOT a.attisdropped
    """,
    "constraint": f"""
        SELECT coalesce(c.relname, t.typname) || '.' || k.conname AS key,
               k.contype::text AS type, pg_get_constraintdef(k.oid) AS definition
        FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace
        LEFT JOIN pg_class c ON c.oid = k.conrelid
        LEFT JOIN pg_type t ON t.oid = k.contypid
        WHERE {_PUBLIC}
    """,
    "index": f"""
        SELECT i.relname AS key, c.relname AS "table", pg_get_indexdef(i.oid) AS definition,
               x.indisclustered AS clustered, x.indisreplident AS replica_identity
        FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        JOIN pg_class c ON c.oid = x.indrelid
        JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE {_PUBLIC}
    """,
    "policy": """
        SELECT tablename || '.' || policyname AS key, permissive,
               (SELECT array_agg(r::text ORDER BY r::text) FROM unnest(roles) AS r) AS roles,
               cmd, qual, with_check
        FROM pg_policies WHERE schemaname = 'public'
    """,
    "function": f"""
        SELECT p.oid::regprocedure::text AS key, p.prokind::text AS kind,
               pg_get_userbyid(p.proowner) AS owner, p.prosecdef AS security_definer,
               p.proconfig AS config, p.provolatile::text AS volatility,
               p.proleakproof AS leakproof, p.proisstrict AS strict,
               p.proparallel::text AS parallel,
               CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END
                   AS definition
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {_PUBLIC} AND {_NOT_FROM_EXTENSION.format(catalog="pg_proc", oid="p.oid")}
    """,
    # One row per (object, grantee, privilege). A NULL acl means the owner's
    # defaults, which acldefault spells out, so "never granted" and "granted
    # back to the defaults" compare equal, as they behave.
    "grant": f"""
        WITH acl (object, acl) AS (
            SELECT 'database', coalesce(datacl, acldefault('d', datdba))
            FROM pg_database WHERE datname = current_database()
          UNION ALL
            SELECT 'schema ' || n.nspname, coalesce(n.nspacl, acldefault('n', n.nspowner))
            FROM pg_namespace n WHERE {_PUBLIC}
          UNION ALL
            SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' ELSE 'table ' END || c.relname,
                   coalesce(c.relacl, acldefault(
                       CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE {_PUBLIC} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          UNION ALL
            SELECT 'column ' || c.relname || '.' || a.attname, a.attacl
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE {_PUBLIC} AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
          UNION ALL
            SELECT 'function ' || p.oid::regprocedure::text,
                   coalesce(p.proacl, acldefault('f', p.proowner))
            FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE {_PUBLIC}
          UNION ALL
            SELECT 'default privileges of ' || pg_get_userbyid(d.defaclrole)
                   || ' on objtype ' || d.defaclobjtype::text, d.defaclacl
            FROM pg_default_acl d
        )
        SELECT acl.object || ' to '
               || CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(e.grantee) END
               || ': ' || e.privilege_type AS key,
               pg_get_userbyid(e.grantor) AS grantor, e.is_grantable AS grantable
        FROM acl, aclexplode(acl.acl) AS e
    """,
    "trigger": f"""
        SELECT c.relname || '.' || t.tgname AS key, pg_get_triggerdef(t.oid) AS definition,
               t.tgenabled::text AS enabled
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_PUBLIC} AND NOT t.tgisinternal
    """,
    "event trigger": """
        SELECT evtname AS key, evtevent AS event, evtfoid::regproc::text AS function,
               evtenabled::text AS enabled, evttags AS tags
        FROM pg_event_trigger
    """,
    "sequence": f"""
        SELECT c.relname AS key, format_type(s.seqtypid, NULL) AS type, s.seqstart AS start,
               s.seqincrement AS increment, s.seqmin AS min, s.seqmax AS max,
               s.seqcache AS cache, s.seqcycle AS cycle,
               (SELECT r.relname || '.' || a.attname
                FROM pg_depend d
                JOIN pg_class r ON r.oid = d.refobjid
                JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
                   AS owned_by
        FROM pg_sequence s
        JOIN pg_class c ON c.oid = s.seqrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {_PUBLIC}
    """,
    # Types of their own (enums, domains, ranges, composites made by CREATE
    # TYPE), not the row and array types every table brings along.
    "type": f"""
        SELECT t.typname AS key, t.typtype::text AS kind, pg_get_userbyid(t.typowner) AS owner,
               CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END
                   AS base_type,
               t.typnotnull AS not_null, t.typdefault AS "default",
               (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
                FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE {_PUBLIC}
          AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
          AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid)
          AND {_NOT_FROM_EXTENSION.format(catalog="pg_type", oid="t.oid")}
    """,
    "extension": """
        SELECT e.extname AS key, e.extversion AS version, n.nspname AS schema
        FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
    """,
    "rule": """
        SELECT tablename || '.' || rulename AS key, definition
        FROM pg_rules WHERE schemaname = 'public'
    """,
}


async def read_catalog(dsn: str) -> Catalog:
    """Everything the schema of the database at ``dsn`` defines (connect as superuser)."""
    con = await asyncpg.connect(dsn)
    try:
        catalog: Catalog = {}
        for kind, query in _QUERIES.items():
            objects: dict[str, dict[str, object]] = {}
            for row in await con.fetch(query):
                properties = dict(row)
                key = str(properties.pop("key"))
                assert key not in objects, f"{kind} {key} read twice"
                objects[key] = properties
            catalog[kind] = objects
        version = None
        if await con.fetchval("SELECT to_regclass('public.schema_migrations') IS NOT NULL"):
            version = await con.fetchval("SELECT max(version) FROM schema_migrations")
        catalog["schema version"] = {"schema_migrations": {"version": version}}
        return catalog
    finally:
        await con.close()


@dataclass(frozen=True, slots=True)
class Difference:
    """One object that is missing on one side, or whose properties differ."""

    kind: str
    key: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.key}: {self.detail}"


def _show(value: object) -> str:
    return repr(value) if not isinstance(value, str) or "\n" not in value else "(text)"


def _property_detail(
    name: str, left: object, right: object, left_name: str, right_name: str
) -> str:
    if isinstance(left, str) and isinstance(right, str) and ("\n" in left or "\n" in right):
        diff = difflib.unified_diff(
            left.splitlines(), right.splitlines(), left_name, right_name, lineterm="", n=1
        )
        return f"{name} differs:\n    " + "\n    ".join(diff)
    return f"{name} is {_show(left)} in {left_name} but {_show(right)} in {right_name}"


def differences(
    left: Catalog, right: Catalog, left_name: str = "left", right_name: str = "right"
) -> list[Difference]:
    """Every object whose presence or properties differ between two catalogs."""
    found: list[Difference] = []
    for kind in sorted(set(left) | set(right)):
        ours, theirs = left.get(kind, {}), right.get(kind, {})
        for key in sorted(set(ours) | set(theirs)):
            if key not in theirs:
                found.append(Difference(kind, key, f"only in {left_name}"))
            elif key not in ours:
                found.append(Difference(kind, key, f"only in {right_name}"))
            else:
                a, b = ours[key], theirs[key]
                for name in sorted(set(a) | set(b)):
                    if a.get(name) != b.get(name):
                        detail = _property_detail(
                            name, a.get(name), b.get(name), left_name, right_name
                        )
                        found.append(Difference(kind, key, detail))
    return found


def report(found: list[Difference]) -> str:
    """The differences, one per line, for an assertion message."""
    return f"{len(found)} difference(s):\n" + "\n".join(f"  {d}" for d in found)
