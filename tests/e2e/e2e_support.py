"""Helpers shared by the end-to-end fixtures (conftest.py) and tests: paths, ports, processes, env."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_DATA = REPO / "sft_ray" / "demo" / "data"
VENV_BIN = Path(sys.executable).parent  # tests run from the venv: its ray, python, moto_server


_GIVEN_PORTS: set[int] = set()


def free_port() -> int:
    """A loopback port free now and never handed out before by this process. The kernel may give
    back a port it just released, so without the set two components of one `ray start` could get
    the same port (CI once saw the dashboard and the runtime-env agent both on 54915)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN_PORTS:
            _GIVEN_PORTS.add(port)
            return port


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



NODE_PORT_FLAGS = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                   "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port")


def start_ray_node(temp_dir: str, token: str, log_path: Path, *, gcs: str | None = None, num_cpus: int = 4,
                   resources: dict | None = None, labels: dict | None = None, env_extra: dict | None = None,
                   dashboard_port: int | None = None, gcs_port: int | None = None,
                   extra_args: list[str] | None = None) -> tuple[subprocess.Popen, int | None]:
    """`ray start --block` on loopback with token auth and its own ports (several nodes share one
    machine here): a head when `gcs` is None (returns its GCS port), else a worker joining `gcs`.
    The process is a session leader so the caller can stop it with stop_ray_node."""
    ports = {p: free_port() for p in NODE_PORT_FLAGS}
    cmd = [str(VENV_BIN / "ray"), "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(num_cpus),
           "--num-gpus", "0", "--disable-usage-stats", "--min-worker-port", "0", "--max-worker-port", "0"]
    if gcs is None:
        gcs_port = gcs_port or free_port()
        cmd += ["--head", "--port", str(gcs_port), "--temp-dir", temp_dir, "--ray-client-server-port", str(free_port()),
                "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port or free_port())]
    else:  # its own temp dir, as its own disk on a real cluster: nodes sharing one would share (and
        # garbage-collect) each other's unpacked runtime envs, the job's working dir included
        cmd += ["--address", gcs, "--temp-dir", temp_dir]
    if resources:
        cmd += ["--resources", json.dumps(resources)]
    if labels:
        cmd += ["--labels", ",".join(f"{k}={v}" for k, v in labels.items())]
    for flag, p in ports.items():
        cmd += [flag, str(p)]
    cmd += extra_args or []
    env = head_env(token)
    env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"  # SIGTERM: shut down now, no 30 s drain wait
    # Ray gives its dashboard (the job server) 60 s to start; on a loaded 2-core CI machine it took
    # 77 s once and `ray start` gave up. Our own waits are 180 s: let Ray wait as long.
    env["RAY_DASHBOARD_STARTUP_TIMEOUT_S"] = "180"
    env.update(env_extra or {})
    log = open(log_path, "w")  # noqa: SIM115 - the child holds it; closed with the process
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=temp_dir, start_new_session=True)
    log.close()
    return proc, gcs_port


NODE_NAME = "sft-ray-test/node"  # label naming each worker node after its key in start_workers' specs


def start_workers(address: str, token: str, gcs: str, specs: dict[str, dict], log_dir: Path,
                  timeout: float = 240) -> tuple[dict[str, subprocess.Popen], dict[str, str]]:
    """Start worker nodes (name -> start_ray_node kwargs), each with its own temp dir, and wait until
    all are alive. A `ray start` that exits before its node registers (on a loaded 2-core machine the
    raylet's first GCS call can pass its deadline) is started again, twice at most.
    Returns ({name: process}, {name: temp dir}); the caller stops them."""
    procs, dirs, tries = {}, {}, {}

    def launch(name: str) -> None:
        dirs.setdefault(name, tempfile.mkdtemp(prefix=f"sftray-{name}-", dir="/tmp"))
        tries[name] = tries.get(name, 0) + 1
        spec = {**specs[name], "labels": {**specs[name].get("labels", {}), NODE_NAME: name}}
        procs[name], _ = start_ray_node(dirs[name], token, log_dir / f"{name}.log", gcs=gcs, **spec)

    try:
        for name in specs:
            launch(name)
        deadline = time.time() + timeout
        while True:
            alive = [n for n in state_api(address, token, "nodes") if n["state"] == "ALIVE" and not n["is_head_node"]]
            if len(alive) >= len(specs):
                return procs, dirs
            for name, proc in list(procs.items()):
                if proc.poll() is not None:
                    if tries[name] >= 3:
                        raise RuntimeError(f"worker node {name} failed to start 3 times; see {log_dir / f'{name}.log'}")
                    launch(name)
            if time.time() > deadline:
                raise TimeoutError(f"{len(alive)} of {len(specs)} worker nodes alive after {timeout} s")
            time.sleep(1)
    except BaseException:
        for proc in procs.values():
            stop_ray_node(proc)
        for d in dirs.values():
            kill_mentioning(d)
        raise


@contextmanager
def ray_cluster(prefix: str, specs: dict[str, dict]) -> Iterator[dict]:
    """A head (CPU 0: drivers and Ray's coordinators only, as in cluster/) and the `specs` workers
    (start_workers), token auth, each node with its own temp dir. Yields {address, token, procs,
    dirs, nodes: {worker name or "head": node id}}; stops every node and cleans up after."""
    token = secrets.token_hex(32)
    temp_dir = tempfile.mkdtemp(prefix=f"sftray-{prefix}-", dir="/tmp")
    dash = free_port()
    head, gcs_port = start_ray_node(temp_dir, token, Path(temp_dir) / "head.log", num_cpus=0, dashboard_port=dash)
    address = f"http://127.0.0.1:{dash}"
    procs, dirs = {"head": head}, {"head": temp_dir}
    try:
        t0 = time.time()
        wait_http(address + "/api/version", 180, headers={"Authorization": f"Bearer {token}"}, proc=head)
        workers, worker_dirs = start_workers(address, token, f"127.0.0.1:{gcs_port}", specs, Path(temp_dir))
        procs.update(workers)
        dirs.update(worker_dirs)
        wait_http(address + "/api/jobs/", 60, headers={"Authorization": f"Bearer {token}"}, proc=head)
        alive = [n for n in state_api(address, token, "nodes") if n["state"] == "ALIVE"]
        nodes = {n["labels"].get(NODE_NAME, "head"): n["node_id"] for n in alive}
        print(f"\n[cluster] {len(alive)} nodes up in {time.time() - t0:.1f} s: {nodes}", flush=True)
        yield {"address": address, "token": token, "procs": procs, "dirs": dirs, "nodes": nodes}
    except BaseException:
        for name in procs:
            log = Path(temp_dir) / f"{name}.log"
            if log.exists():
                print(f"--- {name}\n{log.read_text()[-2000:]}", file=sys.stderr)
        raise
    finally:
        for proc in reversed(list(procs.values())):
            stop_ray_node(proc)
        for d in dirs.values():
            kill_mentioning(d)
            shutil.rmtree(d, ignore_errors=True)


def stop_ray_node(proc: subprocess.Popen, timeout: float = 60) -> None:
    """SIGTERM the blocking `ray start` (it shuts its node down), SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def kill_mentioning(needle: str, grace: float = 20) -> None:
    """Wait up to `grace` s for processes naming `needle` (a node's temp dir) to exit, then SIGKILL them.
    Never `ray stop`, which would kill every Ray on the machine, this pytest's own included."""
    deadline = time.time() + grace
    while pids_mentioning(needle) and time.time() < deadline:
        time.sleep(1)
    for pid in pids_mentioning(needle):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def state_api(address: str, token: str, resource: str, **filters: str) -> list[dict]:
    """Rows of Ray's State API (`/api/v0/<resource>`: nodes, tasks, actors) over HTTP with our token."""
    q = [("limit", "10000"), ("detail", "1")]
    for k, v in filters.items():
        q += [("filter_keys", k), ("filter_predicates", "="), ("filter_values", v)]
    url = f"{address}/api/v0/{resource}?" + urllib.parse.urlencode(q)
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"}), timeout=60) as r:
        body = json.loads(r.read())
    return body["data"]["result"]["result"]




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
