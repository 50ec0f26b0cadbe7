"""`run.py` with the `ai-token` emit probe installed (`BENCH_EMIT_LOG` names its file).

Run from the project root: ``.venv/bin/python bench/probed_run.py`` (environment as for
``run.py``). Used by ``bench/run.py`` for the paced-latency figure; nothing else differs.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    sys.path.insert(0, str(_ROOT))
    from bench.emit_probe import install

    log = os.environ.get("BENCH_EMIT_LOG")
    if log and not install(Path(log)):
        print("emit probe not installed: server.broadcast changed", file=sys.stderr)
    runpy.run_path(str(_ROOT / "run.py"), run_name="__main__")
