"""A worker node dies during the build: a head (CPU 0) and two data nodes
started with `ray start` on loopback, token auth, the build through `ray job submit`. While the
second build runs, the test SIGKILLs every process of one data node (its raylet, object store and
workers: what a reclaimed spot instance looks like to Ray). Ray retries the lost tasks and rebuilds
lost objects from lineage on the surviving node; the build must succeed with outputs (ids and
content of curated/, rejects/, sft/) equal to those of the first, undisturbed build.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from e2e_support import head_env, pids_mentioning, ray_cluster, state_api
from test_job_submit import client, job_id, submit, wait_job
from tests.reliability.outputs import digest

pytestmark = pytest.mark.slow

DATA_NODES = ("a", "b")


@pytest.fixture(scope="module")
def two_data_nodes():
    with ray_cluster("nf", {name: {"num_cpus": 3, "labels": {"sft-ray/pool": "data"}} for name in DATA_NODES}) as c:
        yield c


def _build(cluster: dict, out: Path) -> str:
    args = ["python", "jobs/build_sft_data.py", "--config", "jobs/configs/tiny.yaml", "--set", f"output={out}",
            "--set", "sources.0.limit=600", "--set", "sources.1.limit=600", "--set", "dedup.num_partitions=4"]
    r = submit(cluster, args, head_env(cluster["token"]))
    assert r.returncode == 0, r.stdout + r.stderr
    return job_id(r.stdout + r.stderr)


def _kill_node(cluster: dict, name: str) -> int:
    """SIGKILL every process of the node (the `ray start` group and anything naming its temp dir)."""
    proc = cluster["procs"][name]
    pids = set(pids_mentioning(cluster["dirs"][name])) | {proc.pid}
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(pids)


def test_build_survives_a_worker_node_killed_mid_run(two_data_nodes, tmp_path):
    cluster = two_data_nodes
    t0 = time.time()
    ref_job = _build(cluster, tmp_path / "ref")
    assert wait_job(cluster, ref_job, timeout=900) == "SUCCEEDED", client(cluster).get_job_logs(ref_job)[-4000:]
    ref_s = time.time() - t0
    reference = digest(tmp_path / "ref")

    t1 = time.time()
    jid = _build(cluster, tmp_path / "out")
    # Kill once the job is past reading and into the dedup shuffles: work and objects live on both nodes.
    deadline = time.time() + 600
    while not re.search(r"near dedup: LSH", client(cluster).get_job_logs(jid)):
        assert time.time() < deadline, "the build never reached near dedup"
        assert not client(cluster).get_job_status(jid).is_terminal(), client(cluster).get_job_logs(jid)[-4000:]
        time.sleep(0.5)
    killed = _kill_node(cluster, "b")
    print(f"\n[node failure] killed node b ({killed} processes) {time.time() - t1:.0f} s into the build", flush=True)
    status = wait_job(cluster, jid, timeout=900)
    logs = client(cluster).get_job_logs(jid)
    assert status == "SUCCEEDED", logs[-6000:]
    alive = [n for n in state_api(cluster["address"], cluster["token"], "nodes") if n["state"] == "ALIVE"]
    print(f"[node failure] build finished {time.time() - t1:.0f} s (undisturbed: {ref_s:.0f} s); {len(alive)} nodes alive", flush=True)
    assert len(alive) == 2  # the head and node a: the build really finished without b
    assert (tmp_path / "out" / "_SUCCESS").exists()
    assert digest(tmp_path / "out") == reference
