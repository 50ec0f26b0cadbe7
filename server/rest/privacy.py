"""REST adapters of the privacy operations [ext], over `PrivacyService`.

`DELETE /api/conversations/{id}` is served here so that `?hard=true` can erase for
good; without it the request goes to the soft delete of `routes_conversations`
unchanged. These routes must therefore be added before `conversation_routes()`:
aiohttp serves a path and method from the first resource registered for it.
"""

from __future__ import annotations

from aiohttp import web

from protocol.privacy import (
    EXPORT_FORMAT_VERSION,
    AccountExport,
    ConversationExport,
    ConversationExportDocument,
    DeleteAccountRequest,
    ExportedUser,
    HardDeleteResponse,
    RotateKeyResponse,
    VerifyResponse,
)
from protocol.rest import Integrity
from server.appkeys import PRIVACY, REVOKER
from server.rest.conversations import conversation_id_param, message_out
from server.rest.conversations import delete_conversation as soft_delete_conversation
from server.rest.http import authenticate, client_ip, json_response, read_json
from server.service import exceptions as errors
from server.service.privacy import ConversationExport as ExportedConversation
from server.service.timefmt import iso, now_iso

__all__ = ["privacy_routes", "render_markdown"]


_FORMATS = ("json", "markdown")
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")


def _conversation_out(export: ExportedConversation) -> ConversationExport:
    record = export.conversation
    return ConversationExport(
        id=str(record.id),
        title=record.title,
        model=record.model,
        message_count=record.message_count,
        key_version=record.key_version,
        created_at=iso(record.created_at),
        updated_at=iso(record.updated_at),
        merkle_root=record.merkle_root.hex() if record.merkle_root else None,
        integrity=Integrity(
            valid=export.report.valid, last_valid_sequence=export.report.last_valid_sequence
        ),
        messages=[message_out(m) for m in export.messages],
    )


def render_markdown(export: ExportedConversation, exported_at: str) -> str:
    """A conversation as a Markdown document a person can read and keep."""
    record, report = export.conversation, export.report
    if report.valid:
        integrity = "verified: every chain link holds and every message decrypts"
    else:
        problems = []
        if report.first_bad_sequence is not None:
            problems.append(f"the chain breaks at message {report.first_bad_sequence}")
        if not report.root_matches:
            problems.append("the stored head does not match")
        if report.undecryptable:
            problems.append(
                "messages that do not decrypt: " + ", ".join(map(str, report.undecryptable))
            )
        integrity = "**FAILED**: " + "; ".join(problems)
    lines = [
        f"# {record.title or 'Untitled conversation'}",
        "",
        f"- Conversation: `{record.id}`",
        f"- Model: {record.model}",
        f"- Created: {iso(record.created_at)}",
        f"- Exported: {exported_at}",
        f"- Messages: {record.message_count}",
        f"- Integrity: {integrity}",
    ]
    for message in export.messages:
        stopped = " (stopped)" if message.stopped else ""
        lines += ["", "---", ""]
        lines.append(
            f"## {message.sequence}. {message.role.capitalize()}{stopped} · {message.timestamp}"
        )
        lines.append("")
        lines.append(message.content if message.content is not None else "_(unreadable)_")
    return "\n".join(lines) + "\n"


def _attachment(response: web.Response, filename: str) -> web.Response:
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


async def export_conversation(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    conversation_id = conversation_id_param(request)
    fmt = request.query.get("format", "json").strip().lower() or "json"
    if fmt not in _FORMATS:
        raise errors.InvalidInput("format: expected json or markdown")
    export = await request.app[PRIVACY].export_conversation(identity, conversation_id)
    exported_at = now_iso()
    if fmt == "markdown":
        markdown = web.Response(
            text=render_markdown(export, exported_at),
            content_type="text/markdown",
            charset="utf-8",
        )
        return _attachment(markdown, f"conversation-{conversation_id}.md")
    document = ConversationExportDocument(
        format_version=EXPORT_FORMAT_VERSION,
        exported_at=exported_at,
        conversation=_conversation_out(export),
    )
    return _attachment(json_response(document), f"conversation-{conversation_id}.json")


async def export_account(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    export = await request.app[PRIVACY].export_account(identity)
    document = AccountExport(
        format_version=EXPORT_FORMAT_VERSION,
        exported_at=now_iso(),
        user=ExportedUser(
            id=str(export.user.id),
            email=export.user.email,
            created_at=iso(export.user.created_at),
        ),
        conversations=[_conversation_out(c) for c in export.conversations],
    )
    return _attachment(json_response(document), f"account-{identity.user_id}.json")


async def verify_conversation(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    report = await request.app[PRIVACY].verify(identity, conversation_id_param(request))
    return json_response(
        VerifyResponse(
            valid=report.valid,
            message_count=report.message_count,
            first_bad_sequence=report.first_bad_sequence,
            root_matches=report.root_matches,
            undecryptable=list(report.undecryptable),
        )
    )


async def rotate_key(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    result = await request.app[PRIVACY].rotate_key(identity, conversation_id_param(request))
    return json_response(
        RotateKeyResponse(key_version=result.key_version, reencrypted=result.reencrypted)
    )


def _hard(request: web.Request) -> bool:
    raw = request.query.get("hard", "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise errors.InvalidInput("hard: expected true or false")


async def delete_conversation(request: web.Request) -> web.Response:
    """`?hard=true` erases for good; anything else is the ordinary soft delete."""
    if not _hard(request):
        return await soft_delete_conversation(request)
    identity = await authenticate(request)
    deleted_at = await request.app[PRIVACY].hard_delete(identity, conversation_id_param(request))
    return json_response(HardDeleteResponse(success=True, deleted_at=iso(deleted_at), hard=True))


async def delete_account(request: web.Request) -> web.Response:
    identity = await authenticate(request)
    body = await read_json(request, DeleteAccountRequest)
    erased = await request.app[PRIVACY].delete_account(
        identity, body.password, ip=client_ip(request)
    )
    await request.app[REVOKER].disconnect_sessions(erased.session_ids)
    return web.Response(status=204)


def privacy_routes() -> list[web.RouteDef]:
    """The privacy routes; add them before `conversation_routes()` (see the module doc)."""
    return [
        web.get("/api/conversations/{id}/export", export_conversation),
        web.post("/api/conversations/{id}/verify", verify_conversation),
        web.post("/api/conversations/{id}/rotate-key", rotate_key),
        web.get("/api/account/export", export_account),
        web.delete("/api/account", delete_account),
        web.delete("/api/conversations/{id}", delete_conversation),
    ]
