-- schema-version: 4
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
    -- The private half of the user's X25519 pair, wrapped under their data key (its
    -- public half is in profiles). NULL until their first login after version 4.
    wrapped_private_key bytea,
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
    wrapped_key   bytea,
    key_version   integer     NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    deleted_at    timestamptz,
    sealed_title  bytea,
    -- Version 4: 'ai' is one user and the model (the seed's conversation); 'direct' is
    -- two people, one conversation per pair (direct_pair: their two ids, lower first);
    -- 'group' has a name (sealed_title), a description (sealed_description, sealed like
    -- the title) and a category. user_id is the creator. An 'ai' conversation's key is
    -- wrapped under its owner's data key here (wrapped_key); a shared one's is sealed to
    -- each member's public key in conversation_members, and wrapped_key is NULL.
    kind               text NOT NULL DEFAULT 'ai',
    sealed_description bytea,
    category           text,
    direct_pair        text,
    -- Target of the (conversation_id, user_id) foreign keys below: a row that
    -- hangs off a conversation must carry that conversation's real creator, so
    -- nobody can attach rows to a conversation id they happen to know.
    CONSTRAINT conversations_id_user_id_key UNIQUE (id, user_id),
    CONSTRAINT conversations_one_title CHECK (title IS NULL OR sealed_title IS NULL),
    CONSTRAINT conversations_kind_check CHECK (kind IN ('ai', 'direct', 'group')),
    CONSTRAINT conversations_key_by_kind CHECK ((kind = 'ai') = (wrapped_key IS NOT NULL)),
    CONSTRAINT conversations_direct_pair CHECK ((kind = 'direct') = (direct_pair IS NOT NULL)),
    CONSTRAINT conversations_group_fields CHECK (
        kind = 'group'
        OR (category IS NULL AND sealed_description IS NULL)
    ),
    CONSTRAINT conversations_category_check CHECK (
        category IS NULL
        OR category IN ('GENERAL', 'FOOD_SHARE', 'NEWS', 'RECIPES', 'TIPS', 'LOCAL_EVENTS')
    ),
    CONSTRAINT conversations_title_kind CHECK (title IS NULL OR kind = 'ai'),
    CONSTRAINT conversations_key_version_check CHECK (key_version >= 1),
    CONSTRAINT conversations_direct_pair_creator CHECK (
        direct_pair IS NULL OR strpos(direct_pair, user_id::text) > 0
    )
) WITH (fillfactor = 85);
CREATE INDEX conversations_user_updated_idx
    ON conversations (user_id, updated_at DESC, id) WHERE deleted_at IS NULL;
CREATE INDEX conversations_user_deleted_idx
    ON conversations (user_id, deleted_at) WHERE deleted_at IS NOT NULL;
-- The clear titles left from version 2: each read looks here first, so it must cost
-- nothing once they are all sealed.
CREATE INDEX conversations_legacy_title_idx
    ON conversations (user_id) WHERE title IS NOT NULL;
-- One live direct conversation per pair of people: a second create finds the first.
CREATE UNIQUE INDEX conversations_direct_pair_key
    ON conversations (direct_pair) WHERE kind = 'direct' AND deleted_at IS NULL;

-- Who may see a conversation: every conversation has a row here per member ('ai' ones
-- their owner, as admin). Row-level security of every table that hangs off a
-- conversation follows this table, through member_conversation_ids() below.
-- sealed_key is the conversation key sealed to the member's public key (X25519, bound
-- to the conversation, key version and member), NULL for 'ai' conversations. Receipts
-- are watermarks per member, not rows per message.
CREATE TABLE conversation_members (
    conversation_id    uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id            uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role               text        NOT NULL DEFAULT 'member',
    sealed_key         bytea,
    key_version        integer     NOT NULL DEFAULT 1,
    added_by           uuid,
    joined_at          timestamptz NOT NULL DEFAULT now(),
    last_delivered_seq integer     NOT NULL DEFAULT 0 CHECK (last_delivered_seq >= 0),
    last_read_seq      integer     NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    CONSTRAINT conversation_members_pkey PRIMARY KEY (conversation_id, user_id),
    CONSTRAINT conversation_members_role_check CHECK (role IN ('admin', 'moderator', 'member'))
);
CREATE INDEX conversation_members_user_idx ON conversation_members (user_id, conversation_id);

-- What others may know of a person: a name, an image and the public half of their
-- X25519 pair (to seal conversation keys to them). Never the account row.
CREATE TABLE profiles (
    user_id    uuid        PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    name       text,
    image      text,
    public_key bytea,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT profiles_name_check CHECK (name IS NULL OR char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT profiles_image_check CHECK (image IS NULL OR char_length(image) <= 2048),
    CONSTRAINT profiles_public_key_check CHECK (public_key IS NULL OR octet_length(public_key) = 32)
);

-- One row per message. Columns are ordered widest-alignment first so the
-- fixed part of a row packs without padding. user_id is the conversation's
-- creator (the owner of an 'ai' conversation).
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
    -- Version 4: who wrote it (the member for a person's message, NULL for the model's)
    -- and a message's public id beside its sequence (a sequence is reused after a
    -- destructive edit; an id never is). user_id stays the conversation's creator, which
    -- the foreign key below checks.
    sender_id       uuid        REFERENCES users (id) ON DELETE SET NULL,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    CONSTRAINT messages_pkey PRIMARY KEY (conversation_id, seq),
    CONSTRAINT messages_conversation_fkey FOREIGN KEY (conversation_id, user_id)
        REFERENCES conversations (id, user_id) ON UPDATE CASCADE ON DELETE CASCADE
);
CREATE UNIQUE INDEX messages_client_msg_id_key
    ON messages (conversation_id, client_msg_id) WHERE client_msg_id IS NOT NULL;
CREATE UNIQUE INDEX messages_id_key ON messages (id);
-- Erasing an account sets its messages' sender to NULL: found here, not by a scan.
CREATE INDEX messages_sender_idx ON messages (sender_id) WHERE sender_id IS NOT NULL;
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
        REFERENCES conversations (id, user_id) ON UPDATE CASCADE ON DELETE CASCADE
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
ALTER TABLE conversation_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_members FORCE ROW LEVEL SECURITY;
ALTER TABLE profiles          ENABLE ROW LEVEL SECURITY;
ALTER TABLE profiles          FORCE ROW LEVEL SECURITY;

-- Membership (version 4). A policy on conversation_members that read
-- conversation_members would recurse, so every membership question goes through these
-- SECURITY DEFINER functions, owned by scca_membership: a NOLOGIN role whose policies
-- let it read memberships and conversation creators, and hand conversations over
-- (hand_over_conversations), nothing else. Each answers for
-- the transaction's identity only (app.current_user_id), never for a user named by
-- the caller.

DO $role$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'scca_membership') THEN
        CREATE ROLE scca_membership
            NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT;
    END IF;
EXCEPTION
    -- Roles are cluster-wide: another database may be creating it at this moment.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$role$;

GRANT USAGE ON SCHEMA public TO scca_membership;
GRANT SELECT (conversation_id, user_id, role, joined_at) ON conversation_members
    TO scca_membership;
GRANT UPDATE (role), DELETE ON conversation_members TO scca_membership;
GRANT SELECT (id, user_id, kind) ON conversations TO scca_membership;
GRANT UPDATE (user_id) ON conversations TO scca_membership;
CREATE POLICY conversation_members_membership ON conversation_members
    TO scca_membership USING (true) WITH CHECK (true);
CREATE POLICY conversations_membership ON conversations
    TO scca_membership USING (true) WITH CHECK (true);

-- The conversations the identity is a member of. Policies use it as
-- `id IN (SELECT member_conversation_ids())`: one hashed set per statement.
CREATE FUNCTION member_conversation_ids()
RETURNS SETOF uuid
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
    SELECT m.conversation_id
    FROM public.conversation_members AS m
    WHERE m.user_id = NULLIF(pg_catalog.current_setting('app.current_user_id', true), '')::uuid
$fn$;
REVOKE ALL ON FUNCTION member_conversation_ids() FROM PUBLIC;
ALTER FUNCTION member_conversation_ids() OWNER TO scca_membership;

-- May the identity add members to this conversation? Its admins may; its creator may
-- while it has no member yet (the statement that creates it with its first members).
CREATE FUNCTION may_add_members(p_conversation_id uuid)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
    WITH me AS (
        SELECT NULLIF(pg_catalog.current_setting('app.current_user_id', true), '')::uuid AS id
    )
    SELECT EXISTS (
        SELECT 1 FROM public.conversation_members AS m, me
        WHERE m.conversation_id = p_conversation_id AND m.user_id = me.id AND m.role = 'admin'
    ) OR (
        EXISTS (
            SELECT 1 FROM public.conversations AS c, me
            WHERE c.id = p_conversation_id AND c.user_id = me.id
        )
        AND NOT EXISTS (
            SELECT 1 FROM public.conversation_members AS m
            WHERE m.conversation_id = p_conversation_id
        )
    )
$fn$;
REVOKE ALL ON FUNCTION may_add_members(uuid) FROM PUBLIC;
ALTER FUNCTION may_add_members(uuid) OWNER TO scca_membership;

-- The identity's role in one conversation (NULL when not a member).
CREATE FUNCTION member_role(p_conversation_id uuid)
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
    SELECT m.role
    FROM public.conversation_members AS m
    WHERE m.conversation_id = p_conversation_id
      AND m.user_id = NULLIF(pg_catalog.current_setting('app.current_user_id', true), '')::uuid
$fn$;
REVOKE ALL ON FUNCTION member_role(uuid) FROM PUBLIC;
ALTER FUNCTION member_role(uuid) OWNER TO scca_membership;

-- The 'ai' conversations the identity belongs to (as their owner): the only ones whose
-- stored messages may be rewritten or deleted (the destructive edit, key rotation).
-- People's messages are only ever appended.
CREATE FUNCTION rewritable_conversation_ids()
RETURNS SETOF uuid
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
    SELECT m.conversation_id
    FROM public.conversation_members AS m
    JOIN public.conversations AS c ON c.id = m.conversation_id
    WHERE m.user_id = NULLIF(pg_catalog.current_setting('app.current_user_id', true), '')::uuid
      AND c.kind = 'ai' AND c.user_id = m.user_id
$fn$;
REVOKE ALL ON FUNCTION rewritable_conversation_ids() FROM PUBLIC;
ALTER FUNCTION rewritable_conversation_ids() OWNER TO scca_membership;

-- Any member appends to a shared conversation (its head: count, last link, time), but
-- only its admins change what it is (name, description, category) or end it; a direct
-- conversation has no admin, so neither of its two people can. Row-level security
-- cannot tell columns apart, so this trigger does, as the role that updates; an 'ai'
-- conversation (its owner's alone) does not fire it.
CREATE FUNCTION conversations_guard_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
BEGIN
    -- Never changed in a shared conversation: its key lives in its members' rows.
    IF (NEW.title, NEW.wrapped_key, NEW.key_version)
        IS DISTINCT FROM (OLD.title, OLD.wrapped_key, OLD.key_version)
    THEN
        RAISE EXCEPTION 'a shared conversation''s key and title columns are fixed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- What it is and whether it lives: its admins' (a direct one has none).
    IF (NEW.sealed_title, NEW.sealed_description, NEW.category, NEW.deleted_at)
        IS DISTINCT FROM (OLD.sealed_title, OLD.sealed_description, OLD.category,
                          OLD.deleted_at)
    THEN
        IF public.member_role(OLD.id) IS DISTINCT FROM 'admin' THEN
            RAISE EXCEPTION 'only a group''s admins change or delete it'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    -- Its head moves one message forward, onto the message just appended, and its
    -- time to now: never back, never elsewhere.
    IF (NEW.message_count, NEW.merkle_root) IS DISTINCT FROM (OLD.message_count, OLD.merkle_root)
    THEN
        IF NEW.message_count <> OLD.message_count + 1 OR NOT EXISTS (
            SELECT 1 FROM public.messages AS m
            WHERE m.conversation_id = OLD.id AND m.seq = NEW.message_count
              AND m.link = NEW.merkle_root
        ) THEN
            RAISE EXCEPTION 'a shared conversation''s head follows its last message'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF NEW.updated_at IS DISTINCT FROM OLD.updated_at AND NEW.updated_at <> pg_catalog.now() THEN
        RAISE EXCEPTION 'updated_at moves to now only' USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION conversations_guard_update() FROM PUBLIC;
CREATE TRIGGER conversations_guard_update BEFORE UPDATE ON conversations
    FOR EACH ROW WHEN (OLD.kind <> 'ai') EXECUTE FUNCTION conversations_guard_update();

-- Who a conversation may have as members, whoever adds them (may_add_members says who
-- may add): an 'ai' conversation its owner alone, as admin; a direct one the two people
-- its pair names, as members; a group its creator as admin and anyone else as member.
-- The adder, the time and the receipts of a new member are not the adder's to choose.
CREATE FUNCTION conversation_members_guard_insert()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
DECLARE
    target record;
    allowed boolean := false;
BEGIN
    SELECT c.kind, c.user_id, c.direct_pair INTO target
    FROM public.conversations AS c WHERE c.id = NEW.conversation_id;
    IF NOT FOUND THEN
        allowed := false;
    ELSIF target.kind = 'ai' THEN
        allowed := NEW.user_id = target.user_id AND NEW.role = 'admin';
    ELSIF target.kind = 'direct' THEN
        allowed := pg_catalog.strpos(target.direct_pair, NEW.user_id::text) > 0
                   AND NEW.role = 'member';
    ELSIF NEW.user_id = target.user_id THEN
        allowed := NEW.role = 'admin';
    ELSE
        allowed := NEW.role = 'member';
    END IF;
    IF NOT allowed THEN
        RAISE EXCEPTION 'not a member this conversation can have'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.added_by := NULLIF(pg_catalog.current_setting('app.current_user_id', true), '')::uuid;
    NEW.joined_at := pg_catalog.now();
    NEW.last_delivered_seq := 0;
    NEW.last_read_seq := 0;
    RETURN NEW;
END
$fn$;
REVOKE ALL ON FUNCTION conversation_members_guard_insert() FROM PUBLIC;
CREATE TRIGGER conversation_members_guard_insert BEFORE INSERT ON conversation_members
    FOR EACH ROW EXECUTE FUNCTION conversation_members_guard_insert();

-- At commit: a new conversation's creator is one of its members (what the policies'
-- `user_id = me` shortcut relies on), and a direct one has exactly its two people.
CREATE FUNCTION conversations_check_members()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.conversations AS c WHERE c.id = NEW.id) THEN
        RETURN NULL;  -- gone again in the same transaction
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM public.conversation_members AS m
        WHERE m.conversation_id = NEW.id AND m.user_id = NEW.user_id
    ) OR (
        NEW.kind = 'direct'
        AND (SELECT pg_catalog.count(*) FROM public.conversation_members AS m
             WHERE m.conversation_id = NEW.id) <> 2
    ) THEN
        RAISE EXCEPTION 'a new conversation needs its creator (and a direct one its two people) as members'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NULL;
END
$fn$;
REVOKE ALL ON FUNCTION conversations_check_members() FROM PUBLIC;
CREATE CONSTRAINT TRIGGER conversations_check_members AFTER INSERT ON conversations
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION conversations_check_members();

-- Account erasure must not take other people's conversations with it: the direct and
-- group conversations the leaving person created pass to another member first (an
-- admin, else the longest-standing member, who becomes admin of a group left without
-- one), and the leaving person is no longer a member of them. Their messages follow
-- through the ON UPDATE CASCADE foreign keys. Conversations nobody else is in are left
-- to be erased with the account. Returns how many passed.
CREATE FUNCTION hand_over_conversations()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
DECLARE
    me uuid := NULLIF(pg_catalog.current_setting('app.current_user_id', true), '')::uuid;
    moved integer;
BEGIN
    IF me IS NULL THEN
        RETURN 0;
    END IF;
    -- In id order, as every other locker of several conversations takes them.
    PERFORM 1 FROM public.conversations AS c
    WHERE c.user_id = me AND c.kind <> 'ai' ORDER BY c.id FOR UPDATE;
    WITH heirs AS (
        SELECT DISTINCT ON (c.id) c.id, c.kind, m.user_id AS heir
        FROM public.conversations AS c
        JOIN public.conversation_members AS m
            ON m.conversation_id = c.id AND m.user_id <> me
        WHERE c.user_id = me AND c.kind <> 'ai'
        ORDER BY c.id, (m.role = 'admin') DESC, m.joined_at, m.user_id
    ), passed AS (
        UPDATE public.conversations AS c SET user_id = h.heir
        FROM heirs AS h WHERE c.id = h.id
        RETURNING c.id
    ), promoted AS (
        UPDATE public.conversation_members AS m SET role = 'admin'
        FROM heirs AS h
        WHERE m.conversation_id = h.id AND m.user_id = h.heir AND h.kind = 'group'
          AND NOT EXISTS (
              SELECT 1 FROM public.conversation_members AS a
              WHERE a.conversation_id = h.id AND a.role = 'admin' AND a.user_id <> me
          )
        RETURNING m.user_id
    ), gone AS (
        DELETE FROM public.conversation_members AS m
        USING heirs AS h
        WHERE m.conversation_id = h.id AND m.user_id = me
        RETURNING m.conversation_id
    )
    SELECT pg_catalog.count(*) INTO moved FROM passed;
    RETURN moved;
END
$fn$;
REVOKE ALL ON FUNCTION hand_over_conversations() FROM PUBLIC;
ALTER FUNCTION hand_over_conversations() OWNER TO scca_membership;

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

-- Members see and update their conversations; a new one is inserted by its creator
-- (it has no member yet: its first members follow in the same transaction), and only
-- its creator deletes it for good (a shared one once its admins ended it). The creator (user_id) is always a member: one who
-- goes hands the conversation over first (hand_over_conversations). So `user_id = me`
-- grants nothing membership does not; it is tested first because it is a plain
-- comparison on the row, and for an 'ai' conversation (creator = owner = its only
-- member) the membership set is then never computed.
CREATE POLICY conversations_member_read ON conversations FOR SELECT
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
           OR id IN (SELECT member_conversation_ids()));
CREATE POLICY conversations_member_update ON conversations FOR UPDATE
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
           OR id IN (SELECT member_conversation_ids()))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
                OR id IN (SELECT member_conversation_ids()));
CREATE POLICY conversations_create ON conversations FOR INSERT
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));
CREATE POLICY conversations_creator_delete ON conversations FOR DELETE
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
           AND (kind = 'ai' OR deleted_at IS NOT NULL));

-- Members read, and append messages as themselves; only an 'ai' conversation's owner
-- writes the model's messages, rewrites or deletes.
-- (user_id is the conversation's creator, a member: see conversations_member_read.)
CREATE POLICY messages_member_read ON messages FOR SELECT
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
           OR conversation_id IN (SELECT member_conversation_ids()));
CREATE POLICY messages_member_append ON messages FOR INSERT
    WITH CHECK (
        -- a person's own message, in a conversation they are a member of
        (sender_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid) AND role = 0
         AND (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
              OR conversation_id IN (SELECT member_conversation_ids())))
        -- the model's (and the seed's authorless) messages, in one's own 'ai' conversation
        OR (sender_id IS NULL AND conversation_id IN (SELECT rewritable_conversation_ids()))
    );
CREATE POLICY messages_owner_rewrite ON messages FOR UPDATE
    USING (conversation_id IN (SELECT rewritable_conversation_ids()))
    WITH CHECK (conversation_id IN (SELECT rewritable_conversation_ids()));
CREATE POLICY messages_owner_delete ON messages FOR DELETE
    USING (conversation_id IN (SELECT rewritable_conversation_ids()));

CREATE POLICY generation_locks_member ON generation_locks
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
           OR conversation_id IN (SELECT member_conversation_ids()))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid)
                OR conversation_id IN (SELECT member_conversation_ids()));

-- A member sees the other members of their conversations; an admin adds members (see
-- may_add_members); a member updates only their own row (receipts, their sealed key).
CREATE POLICY conversation_members_read ON conversation_members FOR SELECT
    USING (conversation_id IN (SELECT member_conversation_ids()));
CREATE POLICY conversation_members_add ON conversation_members FOR INSERT
    WITH CHECK (may_add_members(conversation_id));
CREATE POLICY conversation_members_self ON conversation_members FOR UPDATE
    USING (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid))
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));

-- Any identified user may read profiles (ids are random; the service shows them only to
-- people who share a conversation or looked each other up); each writes only their own.
CREATE POLICY profiles_read ON profiles FOR SELECT
    USING ((SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid) IS NOT NULL);
CREATE POLICY profiles_own_insert ON profiles FOR INSERT
    WITH CHECK (user_id = (SELECT NULLIF(current_setting('app.current_user_id', true), '')::uuid));
CREATE POLICY profiles_own_update ON profiles FOR UPDATE
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

-- Version 4: finding someone to talk to by their exact email. Only an identified user
-- may ask, and only the id comes back (NULL when there is no such account); the
-- service rate-limits it and answers "not found" and "not allowed" alike.
CREATE FUNCTION find_user_id_by_email(p_email text)
RETURNS uuid
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
    SELECT u.id
    FROM public.users AS u
    WHERE u.email = pg_catalog.lower(p_email)
      AND NULLIF(pg_catalog.current_setting('app.current_user_id', true), '') IS NOT NULL
$fn$;
REVOKE ALL ON FUNCTION find_user_id_by_email(text) FROM PUBLIC;
ALTER FUNCTION find_user_id_by_email(text) OWNER TO scca_login_lookup;

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

-- Version 4: the membership policies apply to every role that reads conversations and
-- messages, so the purge's role evaluates them too (they show it nothing: it has no
-- identity); the sweep reads sessions only.
GRANT EXECUTE ON FUNCTION member_conversation_ids() TO scca_purge;

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
    EXECUTE format('GRANT UPDATE (password_hash, kek_salt, wrapped_data_key, updated_at,'
                   ' wrapped_private_key) ON users TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON profiles TO %I', app);
    EXECUTE format('GRANT UPDATE (name, image, public_key, updated_at) ON profiles TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON conversation_members TO %I', app);
    EXECUTE format('GRANT UPDATE (sealed_key, key_version, last_delivered_seq, last_read_seq)'
                   ' ON conversation_members TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON sessions TO %I', app);
    EXECUTE format('GRANT UPDATE (wrapped_data_key, last_seen_at, revoked_at)'
                   ' ON sessions TO %I', app);
    EXECUTE format('GRANT SELECT, DELETE ON conversations TO %I', app);
    -- No clear title in a new row: sealed_title only. (UPDATE of title remains, to
    -- blank the clear titles of version 2 once they are sealed.)
    EXECUTE format('GRANT INSERT (id, user_id, model, wrapped_key, key_version, sealed_title,'
                   ' kind, sealed_description, category, direct_pair) ON conversations TO %I',
                   app);
    EXECUTE format('GRANT UPDATE (title, sealed_title, message_count, merkle_root, wrapped_key,'
                   ' key_version, updated_at, deleted_at, sealed_description, category)'
                   ' ON conversations TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, DELETE ON messages TO %I', app);
    EXECUTE format('GRANT UPDATE (token, link) ON messages TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON generation_locks TO %I', app);
    EXECUTE format('GRANT SELECT, INSERT ON audit_log TO %I', app);
    EXECUTE format('GRANT USAGE ON SEQUENCE audit_log_id_seq TO %I', app);

    EXECUTE format('GRANT EXECUTE ON FUNCTION find_user_for_login(text) TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION find_user_id_by_email(text) TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION member_conversation_ids() TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION may_add_members(uuid) TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION member_role(uuid) TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION rewritable_conversation_ids() TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION hand_over_conversations() TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION purge_deleted_conversations(timestamptz, integer)'
                   ' TO %I', app);
    EXECUTE format('GRANT EXECUTE ON FUNCTION blank_expired_session_keys(integer) TO %I', app);
END
$grants$;
