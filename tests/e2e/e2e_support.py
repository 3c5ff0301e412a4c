"""Helpers shared by the end-to-end fixtures (conftest.py) and tests: paths, ports, processes, env."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_DATA = REPO / "sft_ray" / "demo" / "data"
VENV_BIN = Path(sys.executable).parent  # tests run from the venv: its ray, python, moto_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, headers: dict | None = None, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    last: Exception | None = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process for {url} exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as r:
                if r.status < 500:
                    return
        except urllib.error.HTTPError as e:  # any HTTP answer below 500 means the server is up
            if e.code < 500:
                return
            last = e
        except OSError as e:
            last = e
        time.sleep(0.5)
    raise TimeoutError(f"{url} not ready after {timeout} s: {last}")


def pids_mentioning(needle: str) -> list[int]:
    """Pids of live processes whose command line contains `needle` (our head's unique temp dir)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            pids.append(int(d.name))
    return pids


def head_env(token: str | None, home: Path | None = None, auth_mode: str | None = "token") -> dict:
    """Environment for the head and for `ray job submit` clients: the venv first on PATH, no
    inherited RAY_ADDRESS, RAY_AUTH_MODE=`auth_mode` (None: unset) and the given token (or none)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")) and k != "RAY_ADDRESS"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    if auth_mode is not None:
        env["RAY_AUTH_MODE"] = auth_mode
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    if token is not None:
        env["RAY_AUTH_TOKEN"] = token
    if home is not None:
        # No ~/.ray/auth_token reachable. Keep the model cache where it is (it is not Ray's).
        env.setdefault("SFT_RAY_CACHE", str(Path.home() / ".cache" / "sft_ray"))
        env["HOME"] = str(home)
    return env




@contextmanager
def moto_server(log_dir: Path) -> Iterator[str]:
    """A real moto S3 server (subprocess, HTTP on 127.0.0.1); yields its endpoint URL, stops it after."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = open(log_dir / "moto_server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(endpoint + "/moto-api/", 60, proc=proc)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
