-- Version 3 -> 4: people, direct messages and groups.
--
-- Conversations get a kind ('ai': every conversation before this version; 'direct';
-- 'group') and members (conversation_members); row-level security of conversations,
-- messages and generation locks follows membership instead of a single owner column,
-- through SECURITY DEFINER functions owned by the new NOLOGIN role scca_membership.
-- Every existing conversation becomes an 'ai' conversation with its owner as its one
-- member (role admin): its key stays where it was (wrapped under the owner's data key),
-- so every message reads and verifies as before. People get a public profile (name,
-- image, the public half of an X25519 pair); the pair itself needs the user's data key,
-- which SQL does not have: the server creates it at each user's next login. Messages
-- get an id (uuid) beside their sequence and a sender (the owner, for the user
-- messages written before this version).

ALTER TABLE users ADD COLUMN wrapped_private_key bytea;

ALTER TABLE conversations
    ALTER COLUMN wrapped_key DROP NOT NULL,
    ADD COLUMN kind text NOT NULL DEFAULT 'ai',
    ADD COLUMN sealed_description bytea,
    ADD COLUMN category text,
    ADD COLUMN direct_pair text,
    ADD CONSTRAINT conversations_kind_check CHECK (kind IN ('ai', 'direct', 'group')),
    ADD CONSTRAINT conversations_key_by_kind CHECK ((kind = 'ai') = (wrapped_key IS NOT NULL)),
    ADD CONSTRAINT conversations_direct_pair CHECK ((kind = 'direct') = (direct_pair IS NOT NULL)),
    ADD CONSTRAINT conversations_group_fields CHECK (
        kind = 'group'
        OR (category IS NULL AND sealed_description IS NULL)
    ),
    ADD CONSTRAINT conversations_category_check CHECK (
        category IS NULL
        OR category IN ('GENERAL', 'FOOD_SHARE', 'NEWS', 'RECIPES', 'TIPS', 'LOCAL_EVENTS')
    ),
    ADD CONSTRAINT conversations_title_kind CHECK (title IS NULL OR kind = 'ai'),
    ADD CONSTRAINT conversations_key_version_check CHECK (key_version >= 1),
    ADD CONSTRAINT conversations_direct_pair_creator CHECK (
        direct_pair IS NULL OR strpos(direct_pair, user_id::text) > 0
    );
CREATE UNIQUE INDEX conversations_direct_pair_key
    ON conversations (direct_pair) WHERE kind = 'direct' AND deleted_at IS NULL;

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

INSERT INTO conversation_members (conversation_id, user_id, role, joined_at)
SELECT c.id, c.user_id, 'admin', c.created_at FROM conversations AS c;
INSERT INTO profiles (user_id) SELECT u.id FROM users AS u;

-- Messages get an id and a sender in one rewrite of the table (a volatile default
-- rewrites it; the type change of the column just added rides along and fills it: the
-- user messages were all written by the conversation's owner). The foreign keys are
-- then checked once each; a shared conversation may pass to another member
-- (hand_over_conversations below), and the rows that name its creator follow it.
ALTER TABLE messages ADD COLUMN sender_id uuid;
ALTER TABLE messages
    ADD COLUMN id uuid NOT NULL DEFAULT gen_random_uuid(),
    ALTER COLUMN sender_id TYPE uuid USING (CASE WHEN role = 0 THEN user_id END);
ALTER TABLE messages
    ADD CONSTRAINT messages_sender_id_fkey FOREIGN KEY (sender_id)
        REFERENCES users (id) ON DELETE SET NULL,
    DROP CONSTRAINT messages_conversation_fkey,
    ADD CONSTRAINT messages_conversation_fkey FOREIGN KEY (conversation_id, user_id)
        REFERENCES conversations (id, user_id) ON UPDATE CASCADE ON DELETE CASCADE;
CREATE UNIQUE INDEX messages_id_key ON messages (id);
CREATE INDEX messages_sender_idx ON messages (sender_id) WHERE sender_id IS NOT NULL;
ALTER TABLE generation_locks
    DROP CONSTRAINT generation_locks_conversation_fkey,
    ADD CONSTRAINT generation_locks_conversation_fkey FOREIGN KEY (conversation_id, user_id)
        REFERENCES conversations (id, user_id) ON UPDATE CASCADE ON DELETE CASCADE;

ALTER TABLE conversation_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_members FORCE ROW LEVEL SECURITY;
ALTER TABLE profiles          ENABLE ROW LEVEL SECURITY;
ALTER TABLE profiles          FORCE ROW LEVEL SECURITY;

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

DROP POLICY conversations_owner ON conversations;
DROP POLICY messages_owner ON messages;
DROP POLICY generation_locks_owner ON generation_locks;

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

-- The membership policies apply to every role that reads conversations and messages,
-- so the purge's role evaluates them too (they show it nothing: it has no identity).
GRANT EXECUTE ON FUNCTION member_conversation_ids() TO scca_purge;
