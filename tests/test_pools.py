"""Model pool sizes (sft_ray/pools.py): counted on the session's local Ray (its real node, resources
and labels), on node lists shaped like cluster/'s node types (labelled data and GPU workers, a CPU-0
head), and under an autoscaler, whose branch is the rule alone."""

from __future__ import annotations

import logging

import pytest

from sft_ray import pools
from sft_ray.config import LabelConfig, SemanticDedupConfig, TeacherConfig
from sft_ray.pools import AUTOSCALE_HEADROOM, actor_shape, bound, labels_match, pool_size

GPU = {"sft-ray/pool": "gpu"}


def test_local_cluster_counts_its_cpus_and_gpus(ray_local, caplog):
    cpus = int(ray_local.cluster_resources()["CPU"])  # init_ray: at least 4
    caplog.set_level(logging.INFO, logger="sft_ray")
    assert pool_size(1, 0, None, None, "label") == cpus
    assert f"label: up to {cpus} actor(s)" in caplog.text
    assert pool_size(2, 0, {}, None) == cpus // 2
    assert pool_size(1.5, 0, None, None) == int(cpus // 1.5)
    assert pool_size(1, 1, None, None) == 1  # no GPU: none fit, still one actor (it waits for a node)


def test_a_cap_bounds_the_size_and_never_raises_it(ray_local):
    cpus = int(ray_local.cluster_resources()["CPU"])
    assert pool_size(1, 0, None, 2) == 2
    assert pool_size(1, 0, None, 1) == 1
    assert pool_size(1, 0, None, cpus + 10) == cpus


def test_only_nodes_whose_labels_match_the_selector_count(ray_local):
    cpus = int(ray_local.cluster_resources()["CPU"])
    (node,) = [n for n in ray_local.nodes() if n["Alive"]]
    assert "ray.io/node-id" in node["Labels"]  # the labels are read from the real node
    assert pool_size(1, 0, {"ray.io/node-id": node["NodeID"]}, None) == cpus
    assert pool_size(1, 0, GPU, None) == 1  # no node is labelled gpu: at least one actor
    assert pool_size(1, 0, {"sft-ray/pool": "!gpu"}, None) == cpus  # Ray's operators, as the scheduler reads them


def _node(cpus: float, gpus: float = 0, labels: dict | None = None, alive: bool = True) -> dict:
    res = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}
    return {"Alive": alive, "Resources": res, "Labels": {"ray.io/node-id": "x", **(labels or {})}}


CLUSTER = [  # cluster/aws.yaml's shape: a CPU-0 head, data nodes, 8-GPU nodes, and a dead GPU node
    _node(0),
    *[_node(16, labels={"sft-ray/pool": "data"}) for _ in range(3)],
    *[_node(32, 8, labels=GPU) for _ in range(2)],
    _node(32, 8, labels=GPU, alive=False),
]


def test_sum_over_matching_alive_nodes(monkeypatch):
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    monkeypatch.setattr(ray, "nodes", lambda: CLUSTER)
    monkeypatch.setattr(pools, "autoscaler_running", lambda: False)
    assert pool_size(1, 0, None, None) == 3 * 16 + 2 * 32
    assert pool_size(1, 0, {"sft-ray/pool": "data"}, None) == 48
    assert pool_size(4, 1, GPU, None) == 2 * 8  # GPUs bind: 8 per node, not 32 / 4
    assert pool_size(8, 1, GPU, None) == 2 * 4  # CPUs bind
    assert pool_size(1, 3, GPU, None) == 2 * 2  # an actor sits on one node: floor(8 / 3) per node
    assert pool_size(0, 2, GPU, 3) == 3  # vLLM engines of 2 GPUs, capped
    assert pool_size(1, 1, {"sft-ray/pool": "data"}, None) == 1


def test_with_an_autoscaler_the_cap_or_headroom_beyond_the_nodes_up_now():
    assert bound(0, None, autoscaling=True) == 1 + AUTOSCALE_HEADROOM  # scaling from zero
    assert bound(16, None, autoscaling=True) == 16 + AUTOSCALE_HEADROOM
    assert bound(16, 200, autoscaling=True) == 200  # nodes to come: the cap, not min(cap, what is up now)
    assert bound(0, None, autoscaling=False) == 1 and bound(16, 4, autoscaling=False) == 4


def test_shapes_and_selectors():
    assert actor_shape(1, 0) == {"CPU": 1.0} and actor_shape(0, 2) == {"GPU": 2.0} and actor_shape(2, 0.5) == {"CPU": 2.0, "GPU": 0.5}
    assert labels_match({}, {}) and labels_match({"sft-ray/pool": "gpu"}, GPU)
    assert not labels_match({"sft-ray/pool": "data"}, GPU) and not labels_match({}, GPU)
    assert labels_match({"sft-ray/pool": "data"}, {"sft-ray/pool": "in(data,gpu)"})


@pytest.mark.parametrize("cls", [LabelConfig, TeacherConfig, SemanticDedupConfig])
def test_concurrency_is_unset_by_default_and_an_integer_caps(cls):
    assert cls().concurrency is None
    assert cls(concurrency=3).concurrency == 3
    with pytest.raises(ValueError):
        cls(concurrency=0)


def test_vllm_engines_span_tensor_and_pipeline_parallel_gpus():
    cfg = TeacherConfig(backend="vllm", num_gpus=1, engine_kwargs={"tensor_parallel_size": 2, "pipeline_parallel_size": 2})
    assert cfg.engine_parallelism == 4 and TeacherConfig().engine_parallelism == 1
