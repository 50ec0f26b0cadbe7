"""python-socketio and engine.io, tuned: the only code that touches their internals.

- `socket_server.ChatSocketServer`: the AsyncServer (reserved event names refused, a
  handshake timeout, new sessions admitted through a check, sessions closed on a packet
  that does not decode, transports closed on shutdown);
- `fanout`: the engine.io server with uncompressed, directly writable websockets, and
  the room emit that encodes once (`FastEmitManager`, `FastRedisManager`);
- `guarded_engine.GuardedEngineServer`: that engine.io server, with handshakes refused
  before they exist (`handshake_gate`) and frames checked (`frame_guard`);
- `exceptions`: `UndecodableFrame` and its `FrameFault`s;
- `engineio_rules` and `socketio_rules`: the two protocols answered as their
  specifications write them where the libraries answer otherwise (mixins of the two
  servers above);
- `lean_queue.LeanQueue`: the per-socket packet queue; `ping_wheel.PingWheel`: pings on
  time, and unanswered long-polling pings expired on time;
- `wire_packet.WirePacket`: packets encoded with msgspec;
- `pubsub_probe`: is the Redis pub/sub listener alive (for `/api/health`).

The versions of python-socketio and python-engineio are pinned in pyproject.toml;
tests/server/realtime/engine/test_library_contract.py names the hook that an upgrade
breaks. Nothing here imports the rest of the server.
"""
