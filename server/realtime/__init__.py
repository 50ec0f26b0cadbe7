"""The Socket.IO adapter over the chat service.

- `scca_namespace.ChatNamespace`: seed 000's dialect at SOCKET_PATH (`/api/socket`);
  every event it handles is listed in its handler table (`join-conversation`, ...);
- `broadcaster.SocketIOBroadcaster`: the service's `Broadcaster` as room emits;
- `presence`: sockets per user across instances (MAX_SOCKETS_PER_USER);
- `revocation.SessionRevoker`: logout disconnects at once; the background session sweep;
- `engine/`: python-socketio and engine.io tuned for the hot path (the only place that
  touches their internals).
"""
