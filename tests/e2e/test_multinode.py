"""A real multi-node Ray cluster on one machine: a head and two worker nodes
started with `ray start` on loopback, with token authentication; one worker labelled and resourced
for data (`sft-ray/pool=data`, `data_node`), one for training (`sft-ray/pool=train`, `train_node`),
as the node types in cluster/ are. `jobs/pipeline.py` goes in through `ray job submit` with
`placement` pointing curation at the data node and training at the training node.

Where work ran is read from the job's own records in Ray (the State API's task and actor rows of
this job, each with its node id), not from anything sft_ray reports about itself.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from e2e_support import head_env, ray_cluster, state_api
from test_job_submit import client, job_id, submit, wait_job

pytestmark = pytest.mark.slow

POOL = "sft-ray/pool"
# Ray Data operator names of the build's stages (read, stage, clean, exact/near/SFT dedup, decontaminate,
# label select, format, write, report aggregates) and our own remote helpers in dedup.
CURATION = re.compile(r"clean_batch|_stage_units|_row_ids|key_rows|add_key|mark_partition|band|bucket_edges|_score_stars|_involved_texts|"
                      r"_write_units|apply_block|_write_examples_block|_star_removals|_join_rows|_number_block|"
                      r"concat_edges|_count_bad|_components|large_star|small_star|decontaminate|_select|format_batch|"
                      r"with_tags|survivors|removed|Write|profile_block|record_groups|_write_block|_members|_curated_tags|_reject_tags|sft_groups|members_block|summary_block")
NODES = {  # name -> (CPUs, custom resources, labels); the head runs drivers only (CPU 0), as in cluster/
    "data": (3, {"data_node": 1}, {POOL: "data"}),
    "train": (3, {"train_node": 1}, {POOL: "train"}),
}


@pytest.fixture(scope="module")
def cluster():
    """Head + the NODES workers; yields ray_cluster's {address, token, nodes: {name: node id}, ...}."""
    specs = {name: {"num_cpus": cpus, "resources": resources, "labels": labels} for name, (cpus, resources, labels) in NODES.items()}
    with ray_cluster("mn", specs) as c:
        yield c


def _where(rows: list[dict], names: dict[str, str]) -> dict[str, dict[str, int]]:
    """{node name: {task or actor name: count}}."""
    by_id = {v: k for k, v in names.items()}
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        node = by_id.get(r.get("node_id") or "", "unplaced")
        label = r.get("name") or r.get("class_name") or r.get("func_or_class_name")
        out.setdefault(node, {}).setdefault(label, 0)
        out[node][label] += 1
    return out


def test_pipeline_places_curation_on_the_data_node_and_training_on_the_train_node(cluster, tmp_path):
    out = tmp_path / "out"
    args = ["python", "jobs/pipeline.py", "--config", "jobs/configs/tiny.yaml", "--set", f"output={out}",
            "--set", "placement.curation={%s: data}" % POOL, "--set", "placement.train={%s: train}" % POOL,
            "--set", "train.resources_per_worker={train_node: 0.01}"]
    env = head_env(cluster["token"])
    t0 = time.time()
    r = submit(cluster, args, env)
    assert r.returncode == 0, r.stdout + r.stderr
    sid = job_id(r.stdout + r.stderr)
    status = wait_job(cluster, sid, timeout=900)
    logs = client(cluster).get_job_logs(sid)
    assert status == "SUCCEEDED", logs[-5000:]
    print(f"\n[multinode] pipeline job finished in {time.time() - t0:.1f} s", flush=True)

    jid = client(cluster).get_job_info(sid).job_id
    tasks = state_api(cluster["address"], cluster["token"], "tasks", job_id=jid)
    actors = state_api(cluster["address"], cluster["token"], "actors", job_id=jid)
    where = {"tasks": _where(tasks, cluster["nodes"]), "actors": _where(actors, cluster["nodes"])}
    (tmp_path / "where.json").write_text(json.dumps(where, indent=1))
    print(f"[multinode] tasks per node: { {n: sum(c.values()) for n, c in where['tasks'].items()} }; "
          f"actors per node: { {n: sorted(c) for n, c in where['actors'].items()} }", flush=True)

    # Curation: every task of a build stage ran on the data node, and there were plenty of them.
    curation = [t for t in tasks if t["type"] in ("NORMAL_TASK", "ACTOR_TASK") and CURATION.search(t["name"])]
    assert len(curation) >= 20, where
    off = {t["name"] for t in curation if t["node_id"] != cluster["nodes"]["data"]}
    assert not off, f"curation tasks off the data node: {off}\n{json.dumps(where, indent=1)}"
    aggregators = [a for a in actors if a["class_name"] == "HashShuffleAggregator" and a["node_id"]]
    assert aggregators and {a["node_id"] for a in aggregators} == {cluster["nodes"]["data"]}, where
    # Training: every Ray Train worker and the training data's tokenizer actors on the training node.
    placed = {a["class_name"]: set() for a in actors}
    for a in actors:
        if a["state"] != "DEPENDENCIES_UNREADY":
            placed[a["class_name"]].add(a["node_id"])
    train_workers = [a for a in actors if a["class_name"] == "RayTrainWorker"]
    assert len(train_workers) == 2, where
    assert placed["RayTrainWorker"] == {cluster["nodes"]["train"]}, where
    tokenizers = [k for k in placed if "TokenizeBatch" in k]
    assert tokenizers and all(placed[k] == {cluster["nodes"]["train"]} for k in tokenizers), where

    # The outputs are complete: every record accounted for, the model exported.
    manifest = json.loads((out / "manifest.json").read_text())
    assert (out / "_SUCCESS").exists()
    for name, c in manifest["counts"]["by_source"].items():
        assert c["input"] == c["kept"] + c["rejected"] and c["input"] > 0, (name, c)
    assert manifest["config"]["placement"]["curation"] == {POOL: "data"}
    assert (out / "train" / "model" / "config.json").exists()
    assert json.loads((out / "train" / "eval.json").read_text())["finetuned"]["loss"] > 0
