"""Accounts and sessions: register, log in, authenticate, log out, change password.

Key hierarchy (see README "Security model"): the password hashes to a PHC Argon2id
string for login and, with its own salt, to a KEK that wraps the user's random data
key. At login the data key is re-wrapped for the session under a key derived from the
server secret and the session id; the JWT carries only `sub` and `sid`. A session's copy
of the data key is blanked when the session is revoked and, by `session_key_sweep_loop`,
once it has expired. A password change replaces the data key.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

import crypto
import storage
from server.service import exceptions as errors
from server.service.identity import Identity
from server.service.keyring import rewrap_conversation_keys, session_key_context, user_key_context
from server.service.member_keys import ensure_key_pair
from server.service.password_throttle import PasswordThrottle
from server.service.profiles import check_profile
from server.service.titles import seal_clear_titles

__all__ = [
    "Accounts",
    "LoginResult",
    "check_password",
    "current_user",
    "normalise_email",
    "session_key_sweep_loop",
]

_LOG = logging.getLogger(__name__)
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
_BAD_CREDENTIALS = "Invalid email or password"


def normalise_email(raw: str) -> str:
    """Trim and lowercase an email; raise InvalidInput when it is not one."""
    email = raw.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise errors.InvalidInput("email: expected a valid email address")
    return email


_CSRF_CONTEXT = b"csrf-token:"
_SESSION_KEY_SWEEP_BATCH = 500


async def current_user(con: storage.Connection, identity: Identity) -> storage.UserRecord:
    """The caller's account row, read in the caller's transaction; Unauthorized when it
    is gone (the account was deleted while the session was still alive)."""
    user = await storage.get_user(con, identity.user_id)
    if user is None:
        raise errors.Unauthorized("Authentication failed: user not found")
    return user


async def check_password(
    hasher: crypto.PasswordHasher,
    throttle: PasswordThrottle,
    user: storage.UserRecord,
    password: str,
    *,
    field: str,
    ip: str | None,
) -> None:
    """A password asked for again behind a token (Argon2 in a thread); InvalidInput
    naming the `field` when it is wrong. Throttled like a login (by user and address),
    so a stolen token is no password oracle."""
    attempt = await throttle.check(f"user:{user.id}", ip)
    if not await asyncio.to_thread(hasher.verify, user.password_hash, password):
        raise errors.InvalidInput(f"{field}: incorrect password")
    await throttle.succeeded(attempt)


@dataclass(frozen=True, slots=True)
class LoginResult:
    user_id: uuid.UUID
    email: str
    token: str
    expires_at: datetime
    session_id: uuid.UUID
    csrf_token: str


class Accounts:
    """The account service. Argon2 work runs in a thread so the event loop keeps streaming."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        secret_key: bytes,
        *,
        token_ttl: timedelta,
        throttle: PasswordThrottle,
        hasher: crypto.PasswordHasher | None = None,
        accepted_secrets: tuple[bytes, ...] = (),
    ) -> None:
        self._pool = pool
        self._secret = secret_key
        # During a rolling rotation of SECRET_KEY, sessions opened under a secret still
        # accepted keep working: tokens, CSRF tokens and session keys are checked under
        # each (new sessions always use the current one).
        self._secrets = (secret_key, *(s for s in accepted_secrets if s != secret_key))
        self._ttl = token_ttl
        self._throttle = throttle
        self._hasher = hasher or crypto.PasswordHasher()

    async def register(
        self,
        email: str,
        password: str,
        *,
        ip: str | None,
        user_agent: str | None,
        name: str | None = None,
        image: str | None = None,
    ) -> LoginResult:
        """Create a user with their public profile (`name`, `image`) and key pair, and a
        first session; Conflict when the email is taken."""
        email = normalise_email(email)
        name, image = check_profile(name, image)
        user_id = uuid.uuid4()
        salt = crypto.new_salt()
        password_hash, kek = await asyncio.gather(
            asyncio.to_thread(self._hasher.hash, password),
            asyncio.to_thread(crypto.derive_kek, password, salt),
        )
        data_key = crypto.new_key()
        wrapped = crypto.wrap_key(kek, data_key, context=user_key_context(user_id))
        try:
            async with storage.user_tx(self._pool, user_id) as con:
                await storage.insert_user(
                    con,
                    user_id=user_id,
                    email=email,
                    password_hash=password_hash,
                    kek_salt=salt,
                    wrapped_data_key=wrapped,
                )
                await storage.insert_profile(con, user_id, name=name, image=image)
                await ensure_key_pair(con, user_id, data_key)
                result = await self._open_session(con, user_id, email, data_key, ip, user_agent)
                await storage.append_audit(con, user_id=user_id, action="register", ip=ip)
        except storage.Conflict:
            raise errors.Conflict("An account with this email already exists") from None
        return result

    async def login(
        self, email: str, password: str, *, ip: str | None, user_agent: str | None
    ) -> LoginResult:
        """Check the password and open a session; the same error for any wrong pair.

        Failures are throttled by account and address together (`password_throttle`):
        an attacker's guesses slow down that attacker, never the owner elsewhere."""
        try:
            email = normalise_email(email)
        except errors.InvalidInput:
            await asyncio.to_thread(self._hasher.dummy_verify, password)
            raise errors.Unauthorized(_BAD_CREDENTIALS) from None
        attempt = await self._throttle.check(email, ip)
        async with storage.user_tx(self._pool, None) as con:
            user = await storage.find_user_for_login(con, email)
        if user is None:
            await asyncio.to_thread(self._hasher.dummy_verify, password)
            async with storage.user_tx(self._pool, None) as con:
                await storage.append_audit(
                    con, user_id=None, action="login_failed", details={"reason": "unknown"}, ip=ip
                )
            raise errors.Unauthorized(_BAD_CREDENTIALS)
        ok = await asyncio.to_thread(self._hasher.verify, user.password_hash, password)
        if not ok:
            async with storage.user_tx(self._pool, user.id) as con:
                await storage.append_audit(
                    con,
                    user_id=user.id,
                    action="login_failed",
                    details={"reason": "password"},
                    ip=ip,
                )
            raise errors.Unauthorized(_BAD_CREDENTIALS)
        kek = await asyncio.to_thread(crypto.derive_kek, password, user.kek_salt)
        data_key = crypto.unwrap_key(kek, user.wrapped_data_key, context=user_key_context(user.id))
        rehash = (
            await asyncio.to_thread(self._hasher.hash, password)
            if self._hasher.needs_rehash(user.password_hash)
            else None
        )
        async with storage.user_tx(self._pool, user.id) as con:
            # A password change committed since the lookup retired this data key (and
            # this password): a session must never be opened on it. One that starts
            # now waits for this lock, so it sees (and revokes) the session opened here.
            if not _same_keys(await storage.get_user(con, user.id, for_update=True), user):
                raise errors.Unauthorized(_BAD_CREDENTIALS)
            if rehash is not None:
                await storage.update_password_hash(con, user.id, rehash)
            result = await self._open_session(con, user.id, user.email, data_key, ip, user_agent)
            # The first moment this server holds the data key after an upgrade: clear
            # titles of version 2 are sealed, and a key pair made (version 4).
            await seal_clear_titles(con, self._identity(user.id, result.session_id, data_key))
            await ensure_key_pair(con, user.id, data_key)
            await storage.append_audit(con, user_id=user.id, action="login", ip=ip)
        await self._throttle.succeeded(attempt)
        return result

    def _identity(self, user_id: uuid.UUID, session_id: uuid.UUID, data_key: bytes) -> Identity:
        """The identity of a session this service opens or changes."""
        return Identity(
            user_id=user_id,
            session_id=session_id,
            data_key=data_key,
            session_key=crypto.session_wrapping_key(self._secret, session_id),
        )

    async def _open_session(
        self,
        con: asyncpg.Connection,
        user_id: uuid.UUID,
        email: str,
        data_key: bytes,
        ip: str | None,
        user_agent: str | None,
    ) -> LoginResult:
        session_id = uuid.uuid4()
        now = datetime.now(UTC)
        token, expires_at = crypto.issue_access_token(
            self._secret, user_id=user_id, session_id=session_id, ttl=self._ttl, now=now
        )
        session_key = crypto.session_wrapping_key(self._secret, session_id)
        await storage.create_session(
            con,
            session_id=session_id,
            user_id=user_id,
            wrapped_data_key=crypto.wrap_key(
                session_key, data_key, context=session_key_context(session_id)
            ),
            expires_at=expires_at,
            ip=ip,
            user_agent=(user_agent or "")[:512] or None,
        )
        return LoginResult(
            user_id=user_id,
            email=email,
            token=token,
            expires_at=expires_at,
            session_id=session_id,
            csrf_token=self.csrf_token(session_id),
        )

    def csrf_token(self, session_id: uuid.UUID, *, secret: bytes | None = None) -> str:
        """The session's CSRF token: an HMAC of its id under the server secret, so it is
        bound to the session (a cookie planted by a sibling site cannot match) and needs
        no storage."""
        digest = hmac.new(
            secret or self._secret, _CSRF_CONTEXT + session_id.bytes, hashlib.sha256
        )
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def csrf_valid(self, identity: Identity, token: str | None) -> bool:
        """Whether `token` is the CSRF token of `identity`'s session (under any secret
        still accepted)."""
        if not token:
            return False
        return any(
            hmac.compare_digest(
                token.encode(), self.csrf_token(identity.session_id, secret=secret).encode()
            )
            for secret in self._secrets
        )

    def _verified(self, token: str) -> tuple[crypto.AccessClaims, bytes]:
        """The token's claims and the secret that signed it; the current secret's
        refusal when none did (its reason is the one worth telling)."""
        first: crypto.AccessTokenError | None = None
        for secret in self._secrets:
            try:
                return crypto.verify_access_token(secret, token), secret
            except crypto.AccessTokenError as exc:
                first = first or exc
        assert first is not None  # the current secret is always tried
        raise first

    async def authenticate(self, token: str, *, touch: bool = False) -> Identity:
        """Verify the JWT and that its session is alive; unwrap the data key for it."""
        try:
            claims, secret = self._verified(token)
        except crypto.AccessTokenError as exc:
            raise errors.Unauthorized(f"Authentication failed: {exc}") from None
        async with storage.user_tx(self._pool, claims.user_id) as con:
            session = await storage.get_active_session(con, claims.session_id)
            if session is None or session.user_id != claims.user_id:
                raise errors.Unauthorized("Authentication failed: session expired or revoked")
            if touch:
                await storage.touch_session(con, claims.session_id)
        session_key = crypto.session_wrapping_key(secret, claims.session_id)
        try:
            data_key = crypto.unwrap_key(
                session_key, session.wrapped_data_key, context=session_key_context(session.id)
            )
        except crypto.KeyUnwrapError:
            raise errors.Unauthorized("Authentication failed: session key invalid") from None
        return Identity(
            user_id=claims.user_id,
            session_id=claims.session_id,
            data_key=data_key,
            session_key=session_key,
        )

    async def logout(self, identity: Identity, *, ip: str | None) -> None:
        """Revoke the caller's session at once."""
        async with storage.user_tx(self._pool, identity.user_id) as con:
            await storage.revoke_session(con, identity.session_id)
            await storage.append_audit(con, user_id=identity.user_id, action="logout", ip=ip)

    async def me(
        self, identity: Identity
    ) -> tuple[storage.UserRecord, list[storage.SessionRecord]]:
        """The caller's account and active sessions."""
        async with storage.user_tx(self._pool, identity.user_id) as con:
            user = await current_user(con, identity)
            sessions = await storage.list_active_sessions(con, identity.user_id)
        return user, sessions

    async def change_password(
        self, identity: Identity, current: str, new: str, *, ip: str | None
    ) -> list[uuid.UUID]:
        """A new password and a new random data key; other sessions revoked.

        The old password with an old copy of the account row then opens only a retired
        data key, which opens no current conversation key. In one transaction: the
        caller's session gets the new data key wrapped for it, every other session is
        revoked, the account row is checked unchanged since the password was verified
        (Conflict if another change won), every conversation key is re-wrapped under the
        new data key (no message is touched) and the account stores the new hash, salt
        and wrapped key. Returns the revoked session ids.

        Locks follow the order documented in `keyring` (account, sessions,
        conversations): the account row comes first, so a login that holds it has
        committed its session before the others are revoked (that session is revoked
        too), and two changes queue on it instead of deadlocking on each other's session
        rows (the second finds the keys it read replaced: Conflict).

        The caller's copy is wrapped under `identity.session_key`, the key its token's
        secret derived (`authenticate`), which during a rolling rotation of SECRET_KEY
        may be an older accepted secret than the current one.
        """
        if not identity.session_key:
            raise errors.Unauthorized("Authentication failed: session key invalid")
        async with storage.user_tx(self._pool, identity.user_id) as con:
            user = await current_user(con, identity)
        await check_password(
            self._hasher, self._throttle, user, current, field="currentPassword", ip=ip
        )
        salt = crypto.new_salt()
        # The data key being retired comes from the account row and the password just
        # checked, not from the caller's identity, which may predate another change.
        old_kek, new_kek, new_hash = await asyncio.gather(
            asyncio.to_thread(crypto.derive_kek, current, user.kek_salt),
            asyncio.to_thread(crypto.derive_kek, new, salt),
            asyncio.to_thread(self._hasher.hash, new),
        )
        old_data_key = crypto.unwrap_key(
            old_kek, user.wrapped_data_key, context=user_key_context(user.id)
        )
        data_key = crypto.new_key()
        for_session = crypto.wrap_key(
            identity.session_key, data_key, context=session_key_context(identity.session_id)
        )
        async with storage.user_tx(self._pool, identity.user_id) as con:
            # First, before any other lock (lock order: `keyring`): the account row.
            if not _same_keys(await storage.get_user(con, user.id, for_update=True), user):
                raise errors.Conflict("The password was changed meanwhile; sign in again")
            if not await storage.rewrap_session_key(con, identity.session_id, for_session):
                raise errors.Unauthorized("Authentication failed: session expired or revoked")
            # Sees every session committed before the account row was locked, a racing
            # login's included; no new one can be opened until this commits.
            revoked = await storage.revoke_other_sessions(con, user.id, identity.session_id)
            try:
                rewrapped = await rewrap_conversation_keys(con, user.id, old_data_key, data_key)
            except crypto.KeyUnwrapError:
                # Damage (or a bug): refusing keeps every conversation as readable as it
                # was; going on would leave it under a retired key for good.
                raise errors.Conflict(
                    "A conversation key does not open; the password was not changed"
                ) from None
            await storage.update_password(
                con,
                user.id,
                password_hash=new_hash,
                kek_salt=salt,
                wrapped_data_key=crypto.wrap_key(
                    new_kek, data_key, context=user_key_context(user.id)
                ),
            )
            await storage.append_audit(
                con,
                user_id=user.id,
                action="password_change",
                details={"revokedSessions": len(revoked), "rewrappedKeys": rewrapped},
                ip=ip,
            )
        return revoked

    async def blank_expired_session_keys(
        self, *, batch_size: int = _SESSION_KEY_SWEEP_BATCH
    ) -> int:
        """Blank the wrapped data key of every user's expired sessions; returns how many.

        Goes through the narrow `blank_expired_session_keys` database function (see
        migrations/003_sealed_titles_session_sweep.sql), in transactions of at most
        `batch_size` rows. Safe on several instances at once (locked rows are skipped).
        """
        total = 0
        while True:
            async with storage.anonymous_tx(self._pool) as con:
                blanked = await storage.blank_expired_session_keys(con, batch_size)
            total += blanked
            if blanked < batch_size:
                return total

    async def active_session_ids(
        self, user_id: uuid.UUID, session_ids: list[uuid.UUID]
    ) -> set[uuid.UUID]:
        """Which of these sessions of one user are still active (for socket sweeps)."""
        async with storage.user_tx(self._pool, user_id) as con:
            sessions = await storage.list_active_sessions(con, user_id)
        alive = {s.id for s in sessions}
        return {sid for sid in session_ids if sid in alive}


def _same_keys(locked: storage.UserRecord | None, read: storage.UserRecord) -> bool:
    """Whether the account row locked now still holds the data key read earlier."""
    return locked is not None and (locked.kek_salt, locked.wrapped_data_key) == (
        read.kek_salt,
        read.wrapped_data_key,
    )


async def session_key_sweep_loop(accounts: Accounts, interval_s: float) -> None:
    """Blank expired sessions' keys now and then every `interval_s` seconds; failures are
    logged, the loop goes on. (Reads already ignore expired sessions; this takes their
    key material off the disk's live rows.)"""
    while True:
        try:
            blanked = await accounts.blank_expired_session_keys()
            if blanked:
                _LOG.info("blanked the keys of %d expired sessions", blanked)
        except storage.StorageError as exc:
            _LOG.warning("session key sweep failed: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)
