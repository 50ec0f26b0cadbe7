"""Pure cryptographic functions of the chat server: no I/O, no global state.

Message tokens (:mod:`crypto.tokens`), key material and wrapping (:mod:`crypto.keys`),
the per-conversation integrity chain (:mod:`crypto.chain`), login password hashing
(:mod:`crypto.passwords`), access tokens (:mod:`crypto.access_tokens`) and the seal
of what leaves for Redis (:mod:`crypto.channel_seal`) and the members' X25519 key pairs
that seal a conversation key to each member of a shared conversation
(:mod:`crypto.member_keys`).
"""

from crypto.access_tokens import (
    ACCESS_TOKEN_TYPE,
    AccessClaims,
    issue_access_token,
    verify_access_token,
)
from crypto.chain import GENESIS, LINK_SIZE, next_link, root_hex, verify_chain
from crypto.channel_seal import ChannelSeal
from crypto.exceptions import (
    AccessTokenError,
    CryptoError,
    InvalidToken,
    KeyUnwrapError,
    SealError,
    WeakSecretError,
)
from crypto.keys import (
    KEK_MEMORY_COST,
    KEK_PARALLELISM,
    KEK_TIME_COST,
    KEY_SIZE,
    SALT_SIZE,
    ConversationKeys,
    derive_conversation_keys,
    derive_kek,
    new_key,
    new_salt,
    open_field,
    seal_field,
    seed_v1_keys,
    session_wrapping_key,
    unwrap_key,
    wrap_key,
)
from crypto.member_keys import (
    MemberKeyPair,
    new_member_key_pair,
    open_from_member,
    public_key_of,
    seal_to_member,
    unwrap_private_key,
    wrap_private_key,
)
from crypto.passwords import PasswordHasher
from crypto.tokens import (
    MAX_CONTENT_CHARS,
    Message,
    Role,
    TokenHeader,
    b64url_decode,
    b64url_encode,
    pack,
    peek_header,
    reencrypt,
    unpack,
)

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "GENESIS",
    "KEK_MEMORY_COST",
    "KEK_PARALLELISM",
    "KEK_TIME_COST",
    "KEY_SIZE",
    "LINK_SIZE",
    "MAX_CONTENT_CHARS",
    "SALT_SIZE",
    "AccessClaims",
    "AccessTokenError",
    "ChannelSeal",
    "ConversationKeys",
    "CryptoError",
    "InvalidToken",
    "KeyUnwrapError",
    "MemberKeyPair",
    "Message",
    "PasswordHasher",
    "Role",
    "SealError",
    "TokenHeader",
    "WeakSecretError",
    "b64url_decode",
    "b64url_encode",
    "derive_conversation_keys",
    "derive_kek",
    "issue_access_token",
    "new_key",
    "new_member_key_pair",
    "new_salt",
    "next_link",
    "open_field",
    "open_from_member",
    "pack",
    "peek_header",
    "public_key_of",
    "reencrypt",
    "root_hex",
    "seal_field",
    "seal_to_member",
    "seed_v1_keys",
    "session_wrapping_key",
    "unpack",
    "unwrap_key",
    "unwrap_private_key",
    "verify_access_token",
    "verify_chain",
    "wrap_key",
    "wrap_private_key",
]
