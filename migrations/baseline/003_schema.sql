-- schema-version: 3
-- ======================== FROZEN BASELINE: NEVER EDIT THIS FILE ========================
-- The database as version 3 was released: where migrations/004_*.sql starts from.
-- tests/storage/test_storage_schema_drift.py builds a database from this file with
-- apply_schema, upgrades it with apply_schema through migrations/004_*.sql onwards, and
-- requires the result to equal a database built from schema.sql; the upgrade tests fill
-- one the way version 3 wrote its rows (every conversation one user's, with an AI).
--
-- Apart from this block, the file is byte for byte schema.sql as of commit f59f450 (git
-- blob acdf8623289e48a760b179b3735d4f066807c3f1), the last version 3 before migration
-- 004, which was written against it; the drift test checks that blob id. To change the
-- database, edit schema.sql and add a migration, never this file.
-- ======================== end of the frozen-baseline header =============================
--
-- The whole database of the chat server: tables, indexes, row-level security
-- policies, the login lookup function and the application's grants.
--
-- How this file is applied (storage/migrate.py, `apply_schema`):
--
--   * The first line names the version this file describes. Versions are
--     recorded in schema_migrations, one row per version reached.
--   * Before this file runs, migrate.py creates the cluster-wide roles: the
--     application's LOGIN role (name chosen by the caller, default scca_app)
--     and scca_login_lookup (NOLOGIN), which owns find_user_for_login().
--   * The structure part (everything above the "@every-apply" marker line)
--     runs once, on a database that has no schema_migrations table yet.
--   * A database at an older version V is brought forward by the files
--     migrations/NNN_name.sql (NNN = three digits, beside this file), for
--     every NNN from V+1 up to the version above, in order. Each file takes
--     the database from NNN-1 to NNN. A missing file is an error.
--   * Everything runs in one transaction under an advisory lock, so two
--     servers starting at once cannot both migrate, and a failed migration
--     leaves nothing behind. (So: no CREATE INDEX CONCURRENTLY in here.)
--   * The part below the "@every-apply" marker runs on every apply, also
--     when the version is current: it resets the application role's grants
--     to exactly what this file says. It reads that role's name from the
--     transaction-local setting scca.app_role.
--
-- To change the structure: edit this file to describe the new complete
-- structure, bump the version, and add migrations/NNN_name.sql that performs
-- the same change on a database at the previous version.
--
-- Row-level security: every table has ENABLE and FORCE ROW LEVEL SECURITY.
-- Policies compare the row's owner with
--     NULLIF(current_setting('app.current_user_id', true), '')::uuid
-- which storage.pool.user_tx sets for the duration of one transaction; unset
-- or empty matches nothing. The policies wrap it in a scalar sub-select so it
-- is evaluated once per statement rather than once per row scanned. The
-- application role owns nothing, is neither superuser nor BYPASSRLS, and has
-- only the grants at the end of this file.

-- ---------------------------------------------------------------- tables ---

CREATE TABLE users (
    id               uuid        PRIMARY KEY,
    email            text        NOT NULL,
    password_hash    text        NOT NULL,
    kek_salt         bytea       NOT NULL,
    wrapped_data_key bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_lowercase CHECK (email = lower(email))
);

-- wrapped_data_key is the user's data key wrapped for this session; it is blanked
-- ('') when the session is revoked and, by blank_expired_session_keys(), once it has
-- expired: a row kept for the record holds no key material.
CREATE TABLE sessions (
    id               uuid        PRIMARY KEY,
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    wrapped_data_key bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    last_seen_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    ip               text,
    user_agent       text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
-- The sessions that still hold a key, by expiry: what the expiry sweep looks for.
CREATE INDEX sessions_key_expiry_idx
    ON sessions (expires_at) WHERE wrapped_data_key <> ''::bytea;

-- Every append rewrites this row (message_count, merkle_root, updated_at):
-- leave room on each page so the new version can often stay on it.
--
-- Titles are content (DESIGN "Trust boundary"): sealed_title holds the title
-- encrypted under the conversation's key (AES-256-GCM, bound to the conversation,
-- its key version and the purpose). title is the clear text of rows written before
-- version 3, kept only until the chat service, holding the owner's data key at their
-- next login or read, seals it and sets title to NULL; the application may not insert
-- it (see the grants), and a row never holds both.
CREATE TABLE conversations (
    id            uuid        PRIMARY KEY,
    user_id       uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         text,
    model         text        NOT NULL,
    message_count integer     NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    merkle_root   bytea,
    wrapped_key   bytea       NOT NULL,
    key_version   integer     NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    sealed_title  bytea,
    -- Target of the (conversation_id, user_id) foreign keys below: a row that
    -- hangs off a conversation must carry that conversation's real owner, so
    -- nobody can attach rows to a conversation id they happen to know.
    CONSTRAINT conversations_id_user_id_key UNIQUE (id, user_id),
    CONSTRAINT conversations_one_title CHECK (title IS NULL OR sealed_title IS NULL)
) WITH (fillfactor = 85);
CREATE INDEX conversations_user_updated_idx
    ON conversations (user_id, updated_at DESC, id) WHERE deleted_at IS NULL;
CREATE INDEX conversations_user_deleted_idx
    ON conversations (user_id, deleted_at) WHERE deleted_at IS NOT NULL;
-- The clear titles left from version 2: each read looks here first, so it must cost
-- nothing once they are all sealed.
CREATE INDEX conversations_legacy_title_idx
    ON conversations (user_id) WHERE title IS NOT NULL;

-- One row per message. Columns are ordered widest-alignment first so the
-- fixed part of a row packs without padding. user_id is the conversation's
-- owner, copied so the policy is a plain equality on the row itself.
CREATE TABLE messages (
    conversation_id uuid        NOT NULL,
    user_id         uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    seq             integer     NOT NULL CHECK (seq > 0),
    role            smallint    NOT NULL CHECK (role BETWEEN 0 AND 2),
    stopped         boolean     NOT NULL DEFAULT false,
    token           bytea       NOT NULL,
    link            bytea       NOT NULL,
    client_msg_id   text,
    CONSTRAINT messages_pkey PRIMARY KEY (conversation_id, seq),
    CONSTRAINT messages_conversation_fkey FOREIGN KEY (conversation_id, user_id)
        REFERENCES conversations (id, user_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX messages_client_msg_id_key
    ON messages (conversation_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
-- Tokens are ciphertext: compressing them is wasted work, so never try.
-- Links are 32-byte digests: keep them inline and uncompressed.
ALTER TABLE messages
    ALTER COLUMN token SET STORAGE EXTERNAL,
    ALTER COLUMN link SET STORAGE PLAIN;

-- One running generation per conversation across all server instances; a
-- crashed instance's row expires and can then be taken over.
CREATE TABLE generation_locks (
    conversation_id uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    owner           uuid        NOT NULL,
    sequence        integer     NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    CONSTRAINT generation_locks_conversation_fkey FOREIGN KEY (conversation_id, user_id)
        REFERENCES conversations (id, user_id) ON DELETE CASCADE
);

-- details never holds message content. conversation_id has no foreign key:
-- entries outlive hard-deleted conversations. user_id may be NULL for events
-- without a known user (a failed login for an unknown email).
CREATE TABLE audit_log (
    id              bigserial   PRIMARY KEY,
    user_id         uuid        REFERENCES users (id) ON DELETE CASCADE,
    conversation_id uuid,
    action          text        NOT NULL,
    details         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    ip              text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_user_created_idx ON audit_log (user_id, created_at);

CREATE TABLE schema_migrations (
    version    integer     PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- ------------------------------------------------------ row-level security ---

ALTER TABLE users             ENABLE ROW LEVEL SECURITY;
ALTER TABLE users             FORCE ROW LEVEL SECURITY;
ALTER TABLE sessions          ENABLE ROW LEVEL SECURITY;
ALTER TABLE sessions          FORCE ROW LEVEL SECURITY;
ALTER TABLE conversations     ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations     FORCE ROW LEVEL SECURITY;
ALTER TABLE messages          ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages          FORCE ROW LEVEL SECURITY;
ALTER TABLE generation_locks  ENABLE ROW LEVEL SECURITY;
ALTER TABLE generation_locks  FORCE ROW LEVEL SECURITY;
ALTER TABLE audit_log         ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log         FORCE ROW LEVEL SECURITY;
ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY;
ALTER TABLE schema_migrations FORCE ROW LEVEL SECURITY;

CREATE POLICY users_owner ON users
    USING (id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid))
    WITH CHECK (id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));

-- The login lookup function runs as scca_login_lookup: it may read any user
-- row, and nothing else. A policy instead of BYPASSRLS keeps that role's
-- reach to this one table and this one command.
CREATE POLICY users_login_lookup ON users FOR SELECT TO scca_login_lookup
    USING (true);

CREATE POLICY sessions_owner ON sessions
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));

CREATE POLICY conversations_owner ON conversations
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));

CREATE POLICY messages_owner ON messages
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));

CREATE POLICY generation_locks_owner ON generation_locks
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));

-- The audit log is append-only for the application: it reads its own rows,
-- and may add rows for itself or for nobody (user_id NULL); those are never
-- readable by it. No UPDATE or DELETE policy: such commands match no row.
CREATE POLICY audit_log_read ON audit_log FOR SELECT
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));
CREATE POLICY audit_log_append ON audit_log FOR INSERT
    WITH CHECK (
        user_id IS NULL
        OR user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
    );

-- Only the role that migrates touches schema_migrations.
CREATE POLICY schema_migrations_admin ON schema_migrations TO CURRENT_USER
    USING (true) WITH CHECK (true);

-- ---------------------------------------------------- login lookup function ---

-- Login happens before anyone is identified, so the lookup by email cannot go
-- through the policies above. This function is the one narrow door: it runs
-- as scca_login_lookup, with a fixed search_path and fully qualified names.
CREATE FUNCTION find_user_for_login(p_email text)
RETURNS TABLE (
    id               uuid,
    email            text,
    password_hash    text,
    kek_salt         bytea,
    wrapped_data_key bytea,
    created_at       timestamptz
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
    SELECT u.id, u.email, u.password_hash, u.kek_salt, u.wrapped_data_key, u.created_at
    FROM public.users AS u
    WHERE u.email = pg_catalog.lower(p_email)
$fn$;
REVOKE ALL ON FUNCTION find_user_for_login(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO scca_login_lookup;
GRANT SELECT ON users TO scca_login_lookup;
ALTER FUNCTION find_user_for_login(text) OWNER TO scca_login_lookup;

-- Version 2: the purge of soft-deleted conversations (see migrations/002_purge.sql).

DO $role$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'scca_purge') THEN
        CREATE ROLE scca_purge
            NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION
    -- Roles are cluster-wide: another database may be creating it at this moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$role$;

CREATE POLICY conversations_purge ON conversations TO scca_purge
    USING (deleted_at IS NOT NULL)
    WITH CHECK (deleted_at IS NOT NULL);
CREATE POLICY audit_log_purge ON audit_log FOR INSERT TO scca_purge
    WITH CHECK (action = 'purge');

GRANT USAGE ON SCHEMA public TO scca_purge;
GRANT SELECT, DELETE ON conversations TO scca_purge;
GRANT UPDATE (wrapped_key) ON conversations TO scca_purge;
GRANT INSERT ON audit_log TO scca_purge;
GRANT USAGE ON SEQUENCE audit_log_id_seq TO scca_purge;

CREATE FUNCTION purge_deleted_conversations(p_cutoff timestamptz, p_max_rows integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
DECLARE
    doomed uuid[];
    purged integer;
BEGIN
    IF p_cutoff IS NULL OR p_max_rows IS NULL OR p_max_rows < 1 THEN
        RAISE EXCEPTION 'purge_deleted_conversations: cutoff and a positive max_rows required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Oldest first; rows another transaction holds are left for the next call.
    SELECT coalesce(pg_catalog.array_agg(d.id), '{}') INTO doomed
    FROM (
        SELECT c.id
        FROM public.conversations AS c
        WHERE c.deleted_at IS NOT NULL AND c.deleted_at < p_cutoff
        ORDER BY c.deleted_at, c.id
        LIMIT p_max_rows
        FOR UPDATE SKIP LOCKED
    ) AS d;
    -- The key is overwritten in a statement of its own, so the row version that the
    -- DELETE removes carries zeros, not the wrapped key.
    UPDATE public.conversations AS c
    SET wrapped_key = pg_catalog.decode(
        pg_catalog.repeat('00', pg_catalog.octet_length(c.wrapped_key)), 'hex')
    WHERE c.id = ANY (doomed);
    WITH gone AS (
        DELETE FROM public.conversations AS c
        WHERE c.id = ANY (doomed)
        RETURNING c.id, c.user_id
    )
    INSERT INTO public.audit_log (user_id, conversation_id, action)
    SELECT gone.user_id, gone.id, 'purge' FROM gone;
    GET DIAGNOSTICS purged = ROW_COUNT;
    RETURN purged;
END
$fn$;
REVOKE ALL ON FUNCTION purge_deleted_conversations(timestamptz, integer) FROM PUBLIC;
ALTER FUNCTION purge_deleted_conversations(timestamptz, integer) OWNER TO scca_purge;

-- Version 3: sealed titles (above) and the expiry sweep of session keys (see
-- migrations/003_sealed_titles_session_sweep.sql).

DO $role$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'scca_session_sweep') THEN
        CREATE ROLE scca_session_sweep
            NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION
    -- Roles are cluster-wide: another database may be creating it at this moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$role$;

-- It sees expired sessions only, and may only write an empty key into them.
CREATE POLICY sessions_key_sweep ON sessions TO scca_session_sweep
    USING (expires_at <= now())
    WITH CHECK (expires_at <= now() AND wrapped_data_key = ''::bytea);

GRANT USAGE ON SCHEMA public TO scca_session_sweep;
GRANT SELECT (id, expires_at, wrapped_data_key) ON sessions TO scca_session_sweep;
GRANT UPDATE (wrapped_data_key) ON sessions TO scca_session_sweep;

CREATE FUNCTION blank_expired_session_keys(p_max_rows integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
DECLARE
    blanked integer;
BEGIN
    IF p_max_rows IS NULL OR p_max_rows < 1 THEN
        RAISE EXCEPTION 'blank_expired_session_keys: a positive max_rows required'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Oldest first; rows another transaction holds are left for the next call.
    UPDATE public.sessions AS s
    SET wrapped_data_key = ''::bytea
    WHERE s.id IN (
        SELECT e.id
        FROM public.sessions AS e
        WHERE e.expires_at <= pg_catalog.now() AND e.wrapped_data_key <> ''::bytea
        ORDER BY e.expires_at
        LIMIT p_max_rows
        FOR UPDATE SKIP LOCKED
    );
    GET DIAGNOSTICS blanked = ROW_COUNT;
    RETURN blanked;
END
$fn$;
REVOKE ALL ON FUNCTION blank_expired_session_keys(integer) FROM PUBLIC;
ALTER FUNCTION blank_expired_session_keys(integer) OWNER TO scca_session_sweep;

-- @every-apply -----------------------------------------------------------------
-- Grants for the application role, reset to exactly this list on every apply.

DO $grants$
DECLARE
    app text := current_setting('scca.app_role');
BEGIN
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I', app);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I', app);
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM %I', app);

    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), app);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', app);

    EXECUTE format('GRANT SELECT, INSERT, DELETE ON users TO %I', app);
    EXECUTE format('GRANT UPDATE (password_hash, kek_salt, wrapped_data_key, updated_at)'
                   ' ON users TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON sessions TO %I', app);
    EXECUTE format('GRANT UPDATE (wrapped_data_key, last_seen_at, revoked_at)'
                   ' ON sessions TO %I', app);
    EXECUTE format('GRANT SELECT, DELETE ON conversations TO %I', app);
    -- No clear title in a new row: sealed_title only. (UPDATE of title remains, to
    -- blank the clear titles of version 2 once they are sealed.)
    EXECUTE format('GRANT INSERT (id, user_id, model, wrapped_key, key_version, sealed_title)'
                   ' ON conversations TO %I', app);
    EXECUTE format('GRANT UPDATE (title, sealed_title, message_count, merkle_root, wrapped_key,'
                   ' key_version, updated_at, deleted_at) ON conversations TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON messages TO %I', app);
    EXECUTE format('GRANT UPDATE (token, link) ON messages TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON generation_locks TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON audit_log TO %I', app);
    EXECUTE format('GRANT USAGE ON SEQUENCE audit_log_id_seq TO %I', app);

    EXECUTE format('GRANT EXECUTE ON FUNCTION find_user_for_login(text) TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION purge_deleted_conversations(timestamptz, integer)'
                   ' TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION blank_expired_session_keys(integer) TO %I', app);
END
$grants$;
