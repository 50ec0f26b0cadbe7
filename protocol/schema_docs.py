"""Machine-readable contracts: AsyncAPI 3.0 for the Socket.IO events, OpenAPI 3.1 for REST.

Every payload schema comes from the Structs (`msgspec.json.schema_components`) and every
example is a Struct encoded as the server encodes it, so a changed Struct changes the
documents. `scripts/export_protocol_docs.py` writes them to `docs/`; a test fails while
the committed copies are stale. Each call builds a fresh document that shares nothing.
"""

from protocol.asyncapi_doc import asyncapi_document
from protocol.docs_common import render_json
from protocol.openapi_doc import openapi_document

__all__ = ["asyncapi_document", "openapi_document", "render_json"]
