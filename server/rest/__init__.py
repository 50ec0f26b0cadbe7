"""The REST adapter over the chat service (aiohttp routes).

- `auth`: `/api/auth/{register,login,logout,me,password}`;
- `conversations`: `/api/conversations[/{id}[/messages|/edit]]` (SSE when streaming);
  its route list registers `people`'s first;
- `people` [ext]: `/api/profile`, `/api/users/{userId}`, `/api/users/lookup`,
  `/api/conversations/{direct,group}`, `/api/conversations/{id}/participants`,
  `/api/messages[/{conversationId}]`;
- `privacy`: export, verify, rotate-key, hard delete, `/api/account[/export]`;
- `health`: `/api/health`; `metrics`: `/metrics`; `docs`: `/api/{openapi,asyncapi}.json`;
- `http`: JSON in and out, the error middleware, bearer authentication.
"""
