-- Version 1 -> 2: the purge of soft-deleted conversations.
--
-- Soft-deleted conversations are destroyed for good after a retention period, by a
-- periodic task of the server and by `python -m server.admin purge`. Row-level security
-- confines the application role to one user per transaction, so the purge needs a door
-- to every user's soft-deleted rows. This is that door, as narrow as the login lookup:
--
--   * scca_purge: NOLOGIN, not superuser, no BYPASSRLS. Its policies below let it see,
--     zero and delete conversations that are already soft-deleted, and append `purge`
--     audit entries; nothing else. Live conversations, messages, users and sessions
--     stay out of its reach (messages and generation leases go by ON DELETE CASCADE,
--     which PostgreSQL runs as the referencing table's owner).
--   * purge_deleted_conversations(cutoff, max_rows) runs as scca_purge (SECURITY
--     DEFINER, fixed search_path, qualified names). EXECUTE goes to the application
--     role only, in the @every-apply grants of schema.sql.
--
-- The worst a caller can do with it is destroy, early, conversations their owners
-- have already deleted.

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
