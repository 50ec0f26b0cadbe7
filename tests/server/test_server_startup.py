"""Start-up as a new user runs it: configuration errors, the embedded database, restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import psutil
import pytest
from polling import eventually

from server.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "eighty"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY"),
        ({"APP_ENV": "production"}, "SECRET_KEY"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
        ({"SOCKET_PATH": "api socket"}, "SOCKET_PATH"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"MODEL_PROVIDERS": "llama"}, "MODEL_PROVIDERS"),
        ({"EXTRA_SECRET_KEYS": "x" * 40 + ",short"}, "EXTRA_SECRET_KEYS"),
        ({"LOGIN_FREE_FAILURES": "0"}, "LOGIN_FREE_FAILURES"),
        ({"RATE_CREATES_PER_MIN": "0"}, "RATE_CREATES_PER_MIN"),
        (
            {
                "APP_ENV": "production",
                "SECRET_KEY": "k" * 40,
                "DATABASE_URL": "postgresql://postgres@db:5432/scca",
            },
            "DB_APP_PASSWORD",
        ),
        ({"RATE_LIMIT_ALLOWLIST": "10.0.0.1/8"}, "RATE_LIMIT_ALLOWLIST"),
        ({"RATE_LIMIT_ALLOWLIST": "127.0.0.1, lb.internal"}, "RATE_LIMIT_ALLOWLIST"),
        ({"RATE_REGISTERS_PER_HOUR_PER_IP": "0"}, "RATE_REGISTERS_PER_HOUR_PER_IP"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN"),
        ({"ALLOW_QUERY_TOKENS": "maybe"}, "ALLOW_QUERY_TOKENS"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], variable: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings({"DATA_DIR": str(tmp_path), **env})


def test_extra_secrets_are_a_comma_separated_list(tmp_path: Path) -> None:
    one, two = "a" * 32, "b" * 40
    settings = load_settings({"DATA_DIR": str(tmp_path), "EXTRA_SECRET_KEYS": f" {one}, ,{two} "})
    assert settings.extra_secret_keys == (one.encode(), two.encode())
    assert load_settings({"DATA_DIR": str(tmp_path)}).extra_secret_keys == ()


def test_a_generated_secret_is_kept_in_the_data_folder(tmp_path: Path) -> None:
    first = load_settings({"DATA_DIR": str(tmp_path)})
    second = load_settings({"DATA_DIR": str(tmp_path)})
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_defaults() -> None:
    settings = load_settings({"SECRET_KEY": "k" * 40})
    assert (settings.host, settings.port, settings.socket_path) == (
        "127.0.0.1",
        8000,
        "/api/socket",
    )
    assert "k" * 40 not in repr(settings)
    # abuse limits: query tokens on for the seed's clients, /metrics open in development
    assert settings.allow_query_tokens is True and settings.metrics_token is None
    assert not settings.rate_limit_allowlist
    assert (settings.limits.connects_per_ip, settings.limits.registers_per_ip) == (600, 20)


def test_abuse_limit_settings() -> None:
    settings = load_settings(
        {
            "SECRET_KEY": "k" * 40,
            "ALLOW_QUERY_TOKENS": "false",
            "METRICS_TOKEN": "m" * 16,
            "RATE_LIMIT_ALLOWLIST": "10.0.0.0/8, ::1",
            "RATE_REGISTERS_PER_HOUR_PER_IP": "5",
        }
    )
    assert settings.allow_query_tokens is False
    assert settings.metrics_token == "m" * 16 and "m" * 16 not in repr(settings)
    assert "10.2.3.4" in settings.rate_limit_allowlist and "::1" in settings.rate_limit_allowlist
    assert "11.0.0.1" not in settings.rate_limit_allowlist
    assert settings.limits.registers_per_ip == 5


def test_run_py_prints_one_line_for_a_bad_value(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "run.py"],
        cwd=ROOT,
        env={**os.environ, "PORT": "eighty", "DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: PORT must be an integer, got 'eighty'"
    ]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start(data_dir: Path, port: int) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DATA_DIR": str(data_dir), "PORT": str(port), "LOG_LEVEL": "WARNING"})
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "run.py",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _wait_healthy(port: int, proc: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(600):
            if proc.returncode is not None:
                raise AssertionError("the server exited during start-up")
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("no healthy server within 60 s")


def _postgres_of(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "postgres" in (proc.info.get("name") or "") and str(data_dir) in cmdline:
            found.append(proc)
    return found


async def test_embedded_database_start_stop_and_restart(tmp_path: Path) -> None:
    """No DATABASE_URL: an embedded PostgreSQL in the data folder, gone after Ctrl-C, and
    the same data after a restart."""
    data_dir = tmp_path / "data"
    port = _free_port()
    proc = await _start(data_dir, port)
    try:
        await _wait_healthy(port, proc)
        async with aiohttp.ClientSession() as http:
            body = {"email": "persist@example.com", "password": "long enough password"}
            async with http.post(f"http://127.0.0.1:{port}/api/auth/register", json=body) as r:
                assert r.status == 201
                token = (await r.json())["token"]
            async with http.post(
                f"http://127.0.0.1:{port}/api/conversations",
                json={"title": "kept"},
                headers={"Authorization": f"Bearer {token}"},
            ) as r:
                assert r.status == 201
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await eventually(
            lambda: _postgres_of(data_dir) == [],
            what="the embedded PostgreSQL to stop with the server",
            interval=0.1,
        )

        proc = await _start(data_dir, port)
        await _wait_healthy(port, proc)
        async with aiohttp.ClientSession() as http, http.get(
            f"http://127.0.0.1:{port}/api/conversations",
            headers={"Authorization": f"Bearer {token}"},
        ) as r:
            assert r.status == 200, "the token (and its secret) survived the restart"
            titles = [c["title"] for c in (await r.json())["conversations"]]
        assert titles == ["kept"]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for leftover in _postgres_of(data_dir):
            leftover.kill()
