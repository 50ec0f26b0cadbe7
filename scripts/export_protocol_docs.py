"""Write the protocol's machine-readable documents to docs/.

    .venv/bin/python scripts/export_protocol_docs.py

`docs/asyncapi.json` (Socket.IO events) and `docs/openapi.json` (REST) are generated
from the payload Structs; commit them with any change to `protocol/`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protocol.schema_docs import asyncapi_document, openapi_document, render_json  # noqa: E402


def main() -> None:
    """Render both documents and write them, reporting which files changed."""
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    for name, document in (
        ("asyncapi.json", asyncapi_document()),
        ("openapi.json", openapi_document()),
    ):
        target = docs / name
        data = render_json(document)
        changed = not target.exists() or target.read_bytes() != data
        if changed:
            target.write_bytes(data)
        print(f"{target.relative_to(ROOT)}: {'written' if changed else 'unchanged'}")


if __name__ == "__main__":
    main()
