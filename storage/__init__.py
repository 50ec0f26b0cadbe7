"""PostgreSQL storage: the pool, the RLS-scoped transaction, one module per table group.

Every function takes a connection obtained from :func:`user_tx` (or
:func:`anonymous_tx`) and raises only :class:`StorageError` subclasses.
"""

from storage.audit import append_audit, list_audit
from storage.connection import Connection, Row
from storage.conversations import (
    count_conversations,
    create_conversation,
    get_conversation,
    hard_delete_conversation,
    list_conversations,
    list_deleted_before,
    rename_conversation,
    set_head,
    set_wrapped_key,
    soft_delete_conversation,
)
from storage.exceptions import (
    Conflict,
    ErrorBoundary,
    Forbidden,
    MigrationError,
    NotFound,
    StorageError,
    Unavailable,
    convert_errors,
)
from storage.generations import (
    acquire_generation,
    cancel_generation,
    extend_generation,
    get_generation,
    holds_generation,
    release_generation,
)
from storage.messages import (
    count_messages,
    delete_after,
    find_by_client_msg_id,
    get_message,
    insert_message,
    list_messages,
    replace_message,
    update_token,
)
from storage.migrate import app_dsn, apply_schema
from storage.pool import anonymous_tx, create_pool, user_tx
from storage.records import (
    AuditRecord,
    ConversationRecord,
    GenerationRecord,
    MessageRecord,
    SessionRecord,
    UserRecord,
)
from storage.sessions import (
    create_session,
    get_active_session,
    list_active_sessions,
    revoke_other_sessions,
    revoke_session,
    touch_session,
)
from storage.users import (
    delete_user,
    find_user_for_login,
    get_user,
    insert_user,
    update_password,
    update_password_hash,
)

__all__ = [
    "AuditRecord",
    "Conflict",
    "Connection",
    "ConversationRecord",
    "ErrorBoundary",
    "Forbidden",
    "GenerationRecord",
    "MessageRecord",
    "MigrationError",
    "NotFound",
    "Row",
    "SessionRecord",
    "StorageError",
    "Unavailable",
    "UserRecord",
    "acquire_generation",
    "anonymous_tx",
    "app_dsn",
    "append_audit",
    "apply_schema",
    "cancel_generation",
    "convert_errors",
    "count_conversations",
    "count_messages",
    "create_conversation",
    "create_pool",
    "create_session",
    "delete_after",
    "delete_user",
    "extend_generation",
    "find_by_client_msg_id",
    "find_user_for_login",
    "get_active_session",
    "get_conversation",
    "get_generation",
    "get_message",
    "get_user",
    "hard_delete_conversation",
    "holds_generation",
    "insert_message",
    "insert_user",
    "list_active_sessions",
    "list_audit",
    "list_conversations",
    "list_deleted_before",
    "list_messages",
    "release_generation",
    "rename_conversation",
    "replace_message",
    "revoke_other_sessions",
    "revoke_session",
    "set_head",
    "set_wrapped_key",
    "soft_delete_conversation",
    "touch_session",
    "update_password",
    "update_password_hash",
    "update_token",
    "user_tx",
]
