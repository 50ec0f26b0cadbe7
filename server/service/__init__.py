"""The chat service: everything the server does, with no transport in it.

Every adapter (the Socket.IO dialects in `server.realtime`, the REST routes in
`server.rest`) decodes a payload, calls one of these, and encodes the answer:

- `chat.ChatService`: conversations, join/replay, send, edit, stop (`replies.ReplyRunner`
  streams and commits one AI reply; `generations` and `generation_tracker` know which
  replies run, here and on other instances, and stop them);
- `shared_chat.SharedChat`: direct and group conversations (create, add members, send
  a person's message, read pages) and every conversation as a list; `profiles`: people
  as others see them, and finding someone by email;
- `accounts.Accounts`: register, log in, authenticate, log out, change password;
- `privacy.PrivacyService`: export, verify, rotate a key, erase, purge;
- `keyring`, `member_keys`, `stored_messages`: conversation keys (wrapped under the
  owner's data key, or sealed to each member's X25519 key) and decrypted messages;
  `conversation_fields` and `titles`: short fields people write (titles), sealed under
  their conversation's key; `sealed_channel`, `sealed_mirror`: what goes to Redis, sealed;
  `password_throttle`: guesses at passwords, slowed per account and address;
- `ratelimit`, `event_limits`: limits per user, event kind and address (Redis-shared);
- `broadcaster.Broadcaster`: the interface the service emits through;
- `exceptions` (the errors a client may see) and `error_mapping` (the one place lower
  layers' errors become them); `metrics`, `identity`, `client_address`, `timefmt`.
"""
