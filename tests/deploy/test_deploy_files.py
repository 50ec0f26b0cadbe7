"""The deployment files agree with each other, with the server and with what the tests run."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path

from instances import ROOT
from nginx_proxy import TEMPLATE, render_site

DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs" / "deployment.md"
_PLACEHOLDER = re.compile(r"\$\{(SCCA_[A-Z0-9_]+)\}")


def _directives(text: str) -> list[str]:
    """Configuration lines, without blank lines and whole-line comments."""
    return [
        line.rstrip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def _compose_environment(text: str, service: str) -> dict[str, str]:
    """`KEY: value` pairs of one service's (or anchor's) `environment:` block."""
    match = re.search(rf"^{re.escape(service)}.*\n((?:[ ]+.*\n|\n)*)", text, re.MULTILINE)
    assert match is not None, service
    block = match.group(1)
    env_match = re.search(r"^(\s+)environment:\s*\n((?:\1\s+.*\n)*)", block, re.MULTILINE)
    assert env_match is not None, f"{service} has no environment"
    pairs = re.findall(r"^\s+([A-Z][A-Z0-9_]*):\s*(.*)$", env_match.group(2), re.MULTILINE)
    return dict(pairs)


def test_the_docs_show_the_nginx_configuration_the_tests_run() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```nginx\n(.*?)```", docs, re.DOTALL)
    assert len(blocks) == 1
    assert _directives(blocks[0]) == _directives(TEMPLATE.read_text(encoding="utf-8"))


async def test_the_rendered_template_passes_nginx_t() -> None:
    site = render_site("127.0.0.1:1", ["127.0.0.1:2", "127.0.0.1:3"])
    assert "${" not in site
    work = Path(tempfile.mkdtemp(prefix="scca-nginx-t-"))
    try:
        (work / "site.conf").write_text(site, encoding="utf-8")
        temp = " ".join(f"{k}_temp_path {work / k};" for k in ("client_body", "proxy"))
        (work / "nginx.conf").write_text(
            f"pid {work / 'nginx.pid'}; error_log stderr;\n"
            f"events {{}}\nhttp {{ {temp} include {work / 'site.conf'}; }}\n",
            encoding="utf-8",
        )
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        check = await asyncio.create_subprocess_exec(
            nginx, "-t", "-p", str(work), "-c", str(work / "nginx.conf"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await check.communicate()
        assert check.returncode == 0, output.decode()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_compose_fills_every_placeholder_and_mounts_the_template() -> None:
    compose = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    nginx_env = _compose_environment(compose, "  nginx:")
    placeholders = set(_PLACEHOLDER.findall("\n".join(_directives(TEMPLATE.read_text()))))
    assert placeholders == {"SCCA_LISTEN", "SCCA_APP_1", "SCCA_APP_2"}
    assert placeholders <= set(nginx_env)
    assert nginx_env["SCCA_APP_1"] == "app1:8000" and nginx_env["SCCA_APP_2"] == "app2:8000"
    assert "./nginx.conf:/etc/nginx/templates/default.conf.template:ro" in compose
    assert re.search(r"^  app1:\n    <<: \*app$", compose, re.MULTILINE)
    assert re.search(r"^  app2:\n    <<: \*app$", compose, re.MULTILINE)


def test_compose_configures_the_app_only_with_variables_the_server_reads() -> None:
    compose = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    app_env = _compose_environment(compose, "x-app:")
    read = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', (ROOT / "server" / "config.py").read_text()))
    assert set(app_env) <= read, set(app_env) - read
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "REDIS_CHANNEL", "HOST"} <= set(app_env)
    assert app_env["HOST"] == "0.0.0.0"
    assert app_env["REDIS_URL"].startswith("redis://redis:")


def test_the_stop_timeouts_leave_room_for_a_graceful_shutdown() -> None:
    compose = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    unit = (DEPLOY / "scca.service").read_text(encoding="utf-8")
    grace = float(_compose_environment(compose, "x-app:")["SHUTDOWN_GRACE_S"].strip('"'))
    compose_stop = re.search(r"stop_grace_period: (\d+)s", compose)
    unit_stop = re.search(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE)
    assert compose_stop is not None and unit_stop is not None
    # Replies get SHUTDOWN_GRACE_S, open connections up to twice as long again.
    assert int(compose_stop.group(1)) > 3 * grace
    assert int(unit_stop.group(1)) > 3 * 20.0  # the unit relies on the default
    assert re.search(r"^KillSignal=SIGTERM$", unit, re.MULTILINE)
    assert re.search(r"^ExecStart=\S+/python run\.py$", unit, re.MULTILINE)


def test_the_image_holds_everything_run_py_needs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    include = re.search(r"include = \[(.*?)\]", pyproject)
    assert include is not None
    packages = {p.strip('" *') for p in include.group(1).split(",")}
    copied = set(re.findall(r"^COPY (\S+) \./\1$", dockerfile, re.MULTILINE))
    assert packages <= copied, packages - copied
    assert "COPY run.py schema.sql ./" in dockerfile
    assert "migrations" in copied or not (ROOT / "migrations").exists()
    assert re.search(r'^CMD \["python", "run\.py"\]$', dockerfile, re.MULTILINE)
