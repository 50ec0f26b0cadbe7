"""The Socket.IO adapter: decode each event, call the chat service, encode the answer.

Every handler returns its ack payload (python-socketio sends a handler's return value
as the ack when the client asked for one), so every ack is called exactly once, on
success and on every failure. Authentication happens once, in `connect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

import msgspec
import socketio
from msgspec import UNSET
from socketio.exceptions import ConnectionRefusedError as SocketRefused

from protocol import decode
from protocol.names import (
    SESSION_COOKIE,
    ClientEvent,
    ErrorCode,
    ServerEvent,
    conversation_room,
    token_room,
    user_room,
)
from protocol.socket_events import (
    EditAck,
    ErrorAck,
    ErrorEvent,
    JoinAck,
    OkAck,
    PingAck,
    Pong,
    SendAck,
    StatePayload,
    StopAck,
    UserJoined,
    UserLeft,
)
from server.realtime.conversation_state import replay_messages, state_fields
from server.realtime.presence import Presence
from server.realtime.socket_admission import SocketAdmission
from server.service import exceptions as errors
from server.service.accounts import Accounts
from server.service.chat import ChatService
from server.service.connected_sockets import ConnectedSockets
from server.service.error_mapping import to_service_error
from server.service.event_limits import EventLimiter
from server.service.identity import Identity
from server.service.metrics import Metrics
from server.service.timefmt import now_iso

__all__ = ["ChatNamespace", "SocketState"]

_LOG = logging.getLogger(__name__)
_STATE_KEY = "state"
_NO_CONVERSATION = "Not in a conversation"

Handler = Callable[[str, tuple[Any, ...]], Awaitable[msgspec.Struct]]


@dataclass(slots=True)
class SocketState:
    """Per-socket data, kept in `sio.session(sid)` (a namespace object is a singleton)."""

    identity: Identity
    with_partial: bool = True
    conversation_id: uuid.UUID | None = None


_QUERY_TOKENS_OFF = (
    "Authentication failed: tokens in the query string are not accepted; "
    "send the token as auth.token"
)


def _token_from(environ: dict[str, Any], auth: Any, *, allow_query: bool) -> str | None:
    """The handshake's token: `auth.token`, `?token=` (when allowed), or the session
    cookie. SocketRefused when a token is in the query string and those are refused:
    an application's URLs end up in proxy logs and browser history."""
    query = parse_qs(environ.get("QUERY_STRING", ""))
    values = query.get("token")
    if values and not allow_query:
        raise SocketRefused(_QUERY_TOKENS_OFF)
    if isinstance(auth, dict):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token
    if values and values[0]:
        return str(values[0])
    # A browser's session cookie (engine.io has already refused origins outside
    # CORS_ORIGINS, so another site's page cannot ride on it).
    cookies = SimpleCookie()
    try:
        cookies.load(str(environ.get("HTTP_COOKIE", "")))
    except CookieError:
        return None
    morsel = cookies.get(SESSION_COOKIE)
    return str(morsel.value) if morsel is not None and morsel.value else None


def _wants_partial(auth: Any) -> bool:
    """[ext] `auth: {partial: false}` asks for `ai-token` deltas without `partial`."""
    return not (isinstance(auth, dict) and auth.get("partial") is False)


def _wire(payload: msgspec.Struct) -> Any:
    return msgspec.to_builtins(payload)


class ChatNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """The `/` namespace of the seed's protocol."""

    def __init__(
        self,
        accounts: Accounts,
        chat: ChatService,
        connected: ConnectedSockets,
        limiter: EventLimiter,
        metrics: Metrics,
        presence: Presence,
        admission: SocketAdmission,
        *,
        max_sockets_per_user: int,
        allow_query_tokens: bool,
    ) -> None:
        super().__init__("/")
        self._accounts = accounts
        self._chat = chat
        self._connected = connected
        self._limiter = limiter
        self._metrics = metrics
        self._presence = presence
        self._admission = admission
        self._max_sockets = max_sockets_per_user
        self._allow_query_tokens = allow_query_tokens
        self._handlers: dict[str, tuple[Handler, str]] = {
            ClientEvent.JOIN_CONVERSATION: (self._join, ErrorCode.JOIN_FAILED),
            ClientEvent.LEAVE_CONVERSATION: (self._leave, ErrorCode.JOIN_FAILED),
            ClientEvent.SEND_MESSAGE: (self._send, ErrorCode.SEND_FAILED),
            ClientEvent.EDIT_MESSAGE: (self._edit, ErrorCode.EDIT_FAILED),
            ClientEvent.STOP_GENERATION: (self._stop, ErrorCode.SEND_FAILED),
            ClientEvent.PING: (self._ping, ErrorCode.INTERNAL),
        }

    # ── dispatch ────────────────────────────────────────────────────────────

    async def trigger_event(self, event: str, *args: Any) -> Any:
        """Route events by their hyphenated names; answer unknown ones with a clear error."""
        if event == "connect":
            return await self._connect(*args)
        if event == "disconnect":
            return await self._disconnect(*args)
        sid: str = args[0]
        self._metrics.event_in(event)
        handler, failure_code = self._handlers.get(event, (None, ErrorCode.UNKNOWN_EVENT))
        try:
            identity = self._connected.identity(sid)
            if identity is None:
                raise errors.Unauthorized()
            await self._limiter.check_event(identity.user_id, event)
            if handler is None:
                raise _UnknownEvent(f"Unknown event {event[:64]!r}")
            return _wire(await handler(sid, tuple(args[1:])))
        except Exception as exc:  # every failure gets an ack and an error event
            error = to_service_error(exc)
            await self._log_refusal(sid, event, error)
            if isinstance(error, errors.RateLimited) and await self._limiter.is_flooding(sid):
                _LOG.warning("disconnecting a flooding socket sid=%s", sid)
                await self.disconnect(sid)
            return await self._refuse(sid, error, failure_code)

    async def _log_refusal(self, sid: str, event: str, error: errors.ServiceError) -> None:
        """One line per refused event: ids and the code, never content."""
        level = logging.WARNING if error.status >= 500 else logging.INFO
        if not _LOG.isEnabledFor(level):
            return
        conversation_id = None
        with contextlib.suppress(Exception):
            conversation_id = (await self._state(sid)).conversation_id
        _LOG.log(
            level,
            "refused event=%s sid=%s conversation=%s code=%s",
            event[:64] if isinstance(event, str) else "?",
            sid,
            conversation_id,
            error.code,
        )

    async def _refuse(self, sid: str, error: errors.ServiceError, failure_code: str) -> Any:
        code = _socket_code(error, failure_code)
        # The seed's `error` event says SEND_FAILED for a failed reply; the ack and the
        # room's `ai-error` carry the precise AI_* code.
        event_code = failure_code if isinstance(error, errors.GenerationFailed) else code
        self._metrics.error(code, "socket")
        try:
            await self.emit(
                str(ServerEvent.ERROR),
                _wire(ErrorEvent(code=event_code, message=error.message)),
                to=sid,
            )
        except Exception:
            _LOG.warning("could not deliver error event sid=%s", sid)
        retry = error.retry_after if error.retry_after is not None else UNSET
        return _wire(ErrorAck(success=False, code=code, error=error.message, retry_after=retry))

    async def _state(self, sid: str) -> SocketState:
        session = await self.get_session(sid)
        state = session.get(_STATE_KEY)
        if not isinstance(state, SocketState):
            raise errors.Unauthorized()
        return state

    # ── connection ──────────────────────────────────────────────────────────

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        """Refuse (SocketRefused, its message the client's `connect_error`) or admit. Any
        other failure is refused too: python-socketio would log it as a traceback and
        leave the client waiting without an answer."""
        try:
            await self._admit(sid, environ, auth)
        except SocketRefused:
            raise
        except Exception as exc:
            self._connected.remove(sid)
            _LOG.warning("socket connect could not complete: %s", type(exc).__name__)
            raise SocketRefused("Authentication failed: service unavailable") from None

    async def _admit(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        await self._admission.connect(environ)
        token = _token_from(environ, auth, allow_query=self._allow_query_tokens)
        if token is None:
            raise SocketRefused("Authentication token required")
        try:
            identity = await self._accounts.authenticate(token, touch=True)
        except errors.Unauthorized as exc:
            raise SocketRefused(exc.message) from None
        if await self._presence.count(identity.user_id) >= self._max_sockets:
            raise SocketRefused(f"Too many connections: at most {self._max_sockets} per user")
        identity = self._connected.add(sid, identity)
        await self.save_session(
            sid, {_STATE_KEY: SocketState(identity=identity, with_partial=_wants_partial(auth))}
        )
        # What a user must hear about any of their conversations (a new one, a message
        # in one they are not viewing) reaches every socket of theirs through this room.
        await self.enter_room(sid, user_room(identity.user_id))
        await self._presence.joined(identity.user_id, sid)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        identity = self._connected.remove(sid)
        if identity is None:
            return
        await self._presence.left(identity.user_id, sid)
        try:
            state = await self._state(sid)
        except Exception:
            return
        if state.conversation_id is not None:
            payload = UserLeft(
                user_id=str(identity.user_id),
                timestamp=now_iso(),
                reason=str(reason) if reason else "transport close",
            )
            await self.emit(
                str(ServerEvent.USER_LEFT),
                _wire(payload),
                room=conversation_room(state.conversation_id),
                skip_sid=sid,
            )

    # ── rooms ───────────────────────────────────────────────────────────────

    async def _leave_rooms(self, sid: str, conversation_id: uuid.UUID) -> None:
        await self.leave_room(sid, conversation_room(conversation_id))
        await self.leave_room(sid, token_room(conversation_id, with_partial=True))
        await self.leave_room(sid, token_room(conversation_id, with_partial=False))

    async def _join(self, sid: str, args: tuple[Any, ...]) -> msgspec.Struct:
        state = await self._state(sid)
        request = decode.decode_join(args[0] if args else None)
        conversation_id = request.conversation_id
        record, root_ok = await self._chat.open_for_join(state.identity, conversation_id)
        if state.conversation_id is not None and state.conversation_id != conversation_id:
            await self._leave_rooms(sid, state.conversation_id)
        await self.enter_room(sid, conversation_room(conversation_id))
        await self.enter_room(sid, token_room(conversation_id, with_partial=state.with_partial))
        state.conversation_id = conversation_id
        await self.emit(
            str(ServerEvent.USER_JOINED),
            _wire(UserJoined(user_id=str(state.identity.user_id), timestamp=now_iso())),
            room=conversation_room(conversation_id),
            skip_sid=sid,
        )
        fields = await state_fields(self._chat, record, root_ok)
        await self.emit(str(ServerEvent.STATE), _wire(StatePayload(**fields)), to=sid)
        if request.last_seq is not None:
            await replay_messages(
                self.emit, self._chat, sid, state.identity, conversation_id, request.last_seq
            )
        return JoinAck(success=True, **fields)

    # ── missed events ───────────────────────────────────────────────────────

    async def joined_conversations(self) -> dict[uuid.UUID, tuple[Identity, list[str]]]:
        """The conversations this instance's sockets are in: one identity that may read
        each (any member's) and the sockets."""
        joined: dict[uuid.UUID, tuple[Identity, list[str]]] = {}
        for sid in self._connected.sids():
            try:
                state = await self._state(sid)
            except (errors.Unauthorized, KeyError):
                continue  # disconnecting
            if state.conversation_id is None:
                continue
            _, sids = joined.setdefault(state.conversation_id, (state.identity, []))
            sids.append(sid)
        return joined

    async def _leave(self, sid: str, args: tuple[Any, ...]) -> msgspec.Struct:
        state = await self._state(sid)
        request = decode.decode_join(args[0] if args else None)
        conversation_id = request.conversation_id
        await self._leave_rooms(sid, conversation_id)
        if state.conversation_id == conversation_id:
            state.conversation_id = None
            await self.emit(
                str(ServerEvent.USER_LEFT),
                _wire(UserLeft(user_id=str(state.identity.user_id), timestamp=now_iso())),
                room=conversation_room(conversation_id),
                skip_sid=sid,
            )
        return OkAck(success=True)

    # ── messages ────────────────────────────────────────────────────────────

    async def _joined(self, sid: str) -> tuple[SocketState, uuid.UUID]:
        state = await self._state(sid)
        if state.conversation_id is None:
            raise _NoConversation()
        return state, state.conversation_id

    async def _send(self, sid: str, args: tuple[Any, ...]) -> msgspec.Struct:
        state, conversation_id = await self._joined(sid)
        request = decode.decode_send(args[0] if args else None)
        start = await self._chat.begin_send(
            state.identity,
            conversation_id,
            request.content,
            client_msg_id=request.client_msg_id,
            origin_sid=sid,
        )
        if start.generation is None or start.generation.task is None:
            # A repeat whose reply has ended, or a person's message (no reply).
            return SendAck(
                success=True,
                message_count=start.message_count,
                sequence=start.sequence,
                duplicate=True if start.duplicate else UNSET,
            )
        outcome = await asyncio.shield(start.generation.task)
        if (failure := outcome.failure()) is not None:
            raise failure
        return SendAck(
            success=True,
            message_count=outcome.message_count,
            sequence=outcome.sequence,
            stopped=True if outcome.stopped else UNSET,
            duplicate=True if start.duplicate else UNSET,
        )

    async def _edit(self, sid: str, args: tuple[Any, ...]) -> msgspec.Struct:
        state, conversation_id = await self._joined(sid)
        request = decode.decode_edit(args[0] if args else None)
        result = await self._chat.edit(
            state.identity, conversation_id, request.sequence, request.new_content
        )
        return EditAck(
            success=True,
            deleted_count=result.deleted_count,
            new_message_count=result.new_message_count,
        )

    async def _stop(self, sid: str, args: tuple[Any, ...]) -> msgspec.Struct:
        state, conversation_id = await self._joined(sid)
        request = decode.decode_stop(args[0] if args else None)
        if request.conversation_id is not None and request.conversation_id != conversation_id:
            raise errors.NotFound()
        stopped = await self._chat.stop(state.identity, conversation_id)
        return StopAck(success=True, stopped=stopped)

    async def _ping(self, sid: str, args: tuple[Any, ...]) -> msgspec.Struct:
        now = int(time.time() * 1000)
        await self.emit(str(ServerEvent.PONG), _wire(Pong(timestamp=now)), to=sid)
        return PingAck(success=True, timestamp=now)


class _UnknownEvent(errors.ServiceError):
    code = ErrorCode.UNKNOWN_EVENT
    status = 400


class _NoConversation(errors.ServiceError):
    code = ErrorCode.NO_CONVERSATION
    status = 409
    default_message = _NO_CONVERSATION


_KEEP_CODE = {
    ErrorCode.NOT_FOUND,
    ErrorCode.NO_CONVERSATION,
    ErrorCode.INVALID_PAYLOAD,
    ErrorCode.UNKNOWN_EVENT,
    ErrorCode.RATE_LIMITED,
    ErrorCode.BUSY,
    ErrorCode.UNAUTHORIZED,
    ErrorCode.CANCELLED,
    ErrorCode.LIMIT_EXCEEDED,
    ErrorCode.EDIT_FAILED,
    ErrorCode.AI_RATE_LIMITED,
    ErrorCode.AI_UNAVAILABLE,
    ErrorCode.AI_TIMEOUT,
    ErrorCode.AI_ERROR,
    ErrorCode.UNAVAILABLE,
}


def _socket_code(error: errors.ServiceError, failure_code: str) -> str:
    """The code a socket client sees: precise codes pass, others become the event's code."""
    return error.code if error.code in _KEEP_CODE else failure_code
