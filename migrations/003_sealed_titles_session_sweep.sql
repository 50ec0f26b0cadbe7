-- Version 2 -> 3: titles sealed under their conversation's key; session keys blanked at
-- expiry.
--
-- Titles. The new column sealed_title holds a title encrypted under the conversation's
-- key; title, the clear text, is no longer written (the application loses INSERT on it
-- in the grants of schema.sql). SQL has no keys, so it cannot encrypt the clear titles
-- already stored: the chat service does, per user, the first time it holds that user's
-- data key (their next login or read of their conversations), and sets title to NULL.
-- conversations_legacy_title_idx keeps that first look cheap for everyone else. Here
-- only the titles of soft-deleted conversations are blanked: deleting one has always
-- dropped its title, and nobody reads them again.
--
-- Session keys. A session row keeps the data key wrapped for it until the session is
-- revoked; now also until it expires, when the server's periodic sweep blanks it.
-- Row-level security confines the application role to one user per transaction, so the
-- sweep needs a door as narrow as the purge's (migrations/002_purge.sql):
--
--   * scca_session_sweep: NOLOGIN, not superuser, no BYPASSRLS. Its policy shows it the
--     expired sessions only, and lets it write nothing but an empty key into them.
--   * blank_expired_session_keys(max_rows) runs as scca_session_sweep (SECURITY
--     DEFINER, fixed search_path, qualified names). EXECUTE goes to the application
--     role only, in the @every-apply grants of schema.sql.
--
-- The worst a caller can do with it is blank, early, keys that are already useless.
-- The sessions that expired or were revoked before this version are blanked here.

ALTER TABLE conversations ADD COLUMN sealed_title bytea;
UPDATE conversations SET title = NULL WHERE deleted_at IS NOT NULL AND title IS NOT NULL;
ALTER TABLE conversations
    ADD CONSTRAINT conversations_one_title CHECK (title IS NULL OR sealed_title IS NULL);
CREATE INDEX conversations_legacy_title_idx
    ON conversations (user_id) WHERE title IS NOT NULL;

UPDATE sessions SET wrapped_data_key = ''::bytea
WHERE (expires_at <= now() OR revoked_at IS NOT NULL) AND wrapped_data_key <> ''::bytea;
CREATE INDEX sessions_key_expiry_idx
    ON sessions (expires_at) WHERE wrapped_data_key <> ''::bytea;

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
