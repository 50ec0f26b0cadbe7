"""The server: one chat service under every transport.

    server/
      main.py      `python run.py`: settings, embedded PostgreSQL, schema, serve
      admin.py     `python -m server.admin`: apply-schema, purge, verify, storage-report
      app.py       `create_app(settings)`: wires everything below; importing it starts nothing
      appkeys.py   every typed key of what the app holds (pool, chat service, ...)
      config.py    `Settings`, read once from the environment
      embedded_db.py, logs.py   start-up support for main.py
      service/     the chat service: accounts, chat, replies, generations, privacy, keys,
                   limits, errors. Imports no transport (no aiohttp, no socketio).
      realtime/    the Socket.IO adapter: one namespace per dialect, the broadcaster,
                   socket presence, session revocation
        engine/    the only code touching python-socketio / engine.io internals: fast
                   fan-out, lean queue, ping wheel, wire encoder, pub/sub probe
      rest/        the REST adapter: routes, HTTP plumbing, health, metrics, docs

Arrows point down: rest/ and realtime/ never import each other, service/ imports neither;
`lint-imports` (contracts in pyproject.toml) checks it in the test command.
"""
