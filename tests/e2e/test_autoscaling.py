"""Autoscaling from zero with Ray's fake multi-node provider.

What `ray.cluster_utils.AutoscalingCluster` does, done by hand: its `start()` and `shutdown()` run
`ray stop --force`, which would kill every Ray on the machine (this pytest's own included), and the
`example.yaml` it builds on is not shipped in the ray wheel (see ensure_provider_defaults). So the head is started here, on its own
ports and temp dir, with `--autoscaling-config` naming a `fake_multinode` provider whose worker node
types are those of cluster/aws.yaml: their labels and custom resources as written there, plus a CPU
count (a cloud node type gets it from the instance type; the fake provider needs it stated). The
autoscaler is v2, the one the launcher configs switch on, because only v2 scales for label selectors.

A build with `placement.curation` selecting the CPU worker type's label runs against a head with
`CPU: 0` and no workers: it can only finish if the autoscaler starts cpu_worker nodes. The test
asserts that cpu_worker nodes came up (and no gpu_worker: nothing asked for one), that the build is
complete, and that the workers are removed again after the idle timeout.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

from e2e_support import REPO, VENV_BIN, free_port, head_env, kill_mentioning, start_ray_node, state_api, stop_ray_node, wait_http

pytestmark = pytest.mark.slow

FAKE_HEAD_ID = "fffffffffffffffffffffffffffffffffffffffffffffffffff00000"  # fake_multi_node.node_provider.FAKE_HEAD_NODE_ID
WORKER_CPUS = {"cpu_worker": 2, "gpu_worker": 2}
IDLE_MINUTES = 0.25


def autoscaling_config(gcs: str) -> dict:
    """The fake provider's cluster config, node types from cluster/aws.yaml."""
    aws = yaml.safe_load((REPO / "cluster" / "aws.yaml").read_text())
    types = {}
    for name, t in aws["available_node_types"].items():
        if name == aws["head_node_type"]:
            continue
        resources = {k: v for k, v in t.get("resources", {}).items() if k not in ("CPU", "GPU", "memory")}
        types[name] = {"resources": {"CPU": WORKER_CPUS[name], **resources}, "labels": t.get("labels", {}),
                       "node_config": {}, "min_workers": t["min_workers"], "max_workers": 2}
    types["ray.head.default"] = {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0}
    return {
        "cluster_name": "sft-ray-fake", "max_workers": 4, "upscaling_speed": 1.0, "idle_timeout_minutes": IDLE_MINUTES,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": gcs, "launch_multiple": True, "head_node_id": FAKE_HEAD_ID},
        "available_node_types": types, "head_node_type": "ray.head.default",
        "auth": {}, "docker": {}, "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [], "file_mounts": {},
        "cluster_synced_files": [], "file_mounts_sync_continuously": False, "rsync_exclude": [], "rsync_filter": [],
    }


def ensure_provider_defaults(cfg: dict) -> None:
    """The autoscaler's monitor merges a provider's defaults file under the config (`fillout_defaults`);
    the ray 2.60 wheel lacks the fake provider's (`fake_multi_node/example.yaml`, present in Ray's
    source tree), so the monitor dies with FileNotFoundError. Write one if it is missing: the config
    itself, which overrides every key of it anyway."""
    from ray.autoscaler._private.providers import _load_fake_multinode_defaults_config

    path = Path(_load_fake_multinode_defaults_config())
    if not path.exists():
        path.write_text(yaml.safe_dump(cfg))


@pytest.fixture(scope="module")
def autoscaling_head():
    token = secrets.token_hex(32)
    temp_dir = tempfile.mkdtemp(prefix="sftray-as-", dir="/tmp")
    gcs_port, dash = free_port(), free_port()
    cfg_path = Path(temp_dir) / "autoscaling.json"
    cfg = autoscaling_config(f"127.0.0.1:{gcs_port}")
    ensure_provider_defaults(cfg)
    cfg_path.write_text(json.dumps(cfg))
    env = {"AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_FAKE_CLUSTER": "1", "RAY_enable_autoscaler_v2": "1",
           "RAY_CLOUD_INSTANCE_ID": FAKE_HEAD_ID, "RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_ID}
    proc, _ = start_ray_node(temp_dir, token, Path(temp_dir) / "head.log", num_cpus=0, dashboard_port=dash,
                             gcs_port=gcs_port, extra_args=[f"--autoscaling-config={cfg_path}"], env_extra=env)
    address = f"http://127.0.0.1:{dash}"
    session = None
    try:
        wait_http(address + "/api/version", 180, headers={"Authorization": f"Bearer {token}"}, proc=proc)
        session = Path(os.path.realpath(Path(temp_dir) / "session_latest")).name
        yield {"address": address, "token": token, "gcs": f"127.0.0.1:{gcs_port}", "temp_dir": temp_dir}
    except BaseException:
        print((Path(temp_dir) / "head.log").read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        stop_ray_node(proc)
        # The fake provider starts worker nodes from the head's monitor; their processes name the session.
        for needle in filter(None, (temp_dir, session)):
            kill_mentioning(needle)
        shutil.rmtree(temp_dir, ignore_errors=True)


def workers(head: dict) -> dict[str, int]:
    """Alive worker nodes per sft-ray/pool label."""
    out: dict[str, int] = {}
    for n in state_api(head["address"], head["token"], "nodes"):
        if n["state"] == "ALIVE" and not n["is_head_node"]:
            pool = n["labels"].get("sft-ray/pool", "?")
            out[pool] = out.get(pool, 0) + 1
    return out


def test_build_scales_cpu_workers_up_from_zero_and_back_down(autoscaling_head, tmp_path):
    head = autoscaling_head
    assert workers(head) == {}, "the cluster must start with no worker nodes"
    out = tmp_path / "out"
    env = head_env(head["token"])
    env["RAY_ADDRESS"] = head["gcs"]
    cmd = [str(VENV_BIN / "python"), "jobs/build_sft_data.py", "--config", "jobs/configs/tiny.yaml", "--set", f"output={out}",
           "--set", "placement={curation: {sft-ray/pool: data}}"]

    seen: list[dict[str, int]] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            try:
                seen.append(workers(head))
            except OSError:
                pass
            time.sleep(2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.time()
    try:
        r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    finally:
        done.set()
        watcher.join(10)
    build_s = time.time() - t0
    (tmp_path / "build.log").write_text(r.stdout + "\n--- stderr\n" + r.stderr)
    assert r.returncode == 0, f"stdout:\n{r.stdout[-2500:]}\nstderr:\n{r.stderr[-2500:]}"
    peak = {pool: max(s.get(pool, 0) for s in seen) for pool in ("data", "gpu")}
    print(f"\n[autoscaling] build {build_s:.0f} s; peak worker nodes {peak}", flush=True)
    assert peak["data"] >= 1, seen
    assert peak["gpu"] == 0, f"a GPU node was started for a CPU-only build: {seen}"

    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "_SUCCESS").exists()
    for name, c in manifest["counts"]["by_source"].items():
        assert c["input"] == c["kept"] + c["rejected"] and c["input"] > 0, (name, c)

    # Idle nodes go away: idle_timeout_minutes plus the autoscaler's update interval.
    t1 = time.time()
    deadline = t1 + 60 * IDLE_MINUTES + 180
    while workers(head) and time.time() < deadline:
        time.sleep(2)
    left = workers(head)
    print(f"[autoscaling] scaled back down to {left or 0} workers {time.time() - t1:.0f} s after the build", flush=True)
    assert left == {}, left
