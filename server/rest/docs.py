"""`/api/openapi.json` and `/api/asyncapi.json`, generated from protocol/ once per app."""

from __future__ import annotations

from aiohttp import web

from protocol.schema_docs import asyncapi_document, openapi_document, render_json

__all__ = ["docs_routes"]


def docs_routes() -> list[web.RouteDef]:
    openapi = render_json(openapi_document())
    asyncapi = render_json(asyncapi_document())

    async def serve_openapi(_: web.Request) -> web.Response:
        return web.Response(body=openapi, content_type="application/json")

    async def serve_asyncapi(_: web.Request) -> web.Response:
        return web.Response(body=asyncapi, content_type="application/json")

    return [
        web.get("/api/openapi.json", serve_openapi),
        web.get("/api/asyncapi.json", serve_asyncapi),
    ]
