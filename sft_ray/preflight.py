"""Preflight for GPU (and any Ray Train) work: before tokenizing or starting workers, check that the
cluster can place `train.num_workers` workers of the requested shape, and fail with one message
that says what was asked, what the cluster has, and what to change (issue: "preflight").

A worker must fit on one node, so capacity is counted per node: floor(node resource / per-worker
need), the smallest over the resources asked, summed over alive nodes. Total resources are compared,
not free ones: other jobs' usage changes by the second, and Ray Train waits for busy resources.
When an autoscaler with node types runs (cluster launcher, KubeRay, AutoscalingCluster), nodes
not up yet may be added, so a shortfall is only logged.
Inputs, outputs and models are checked before Ray starts (`check_before_ray`): a path that matches
nothing, an output that cannot be written or a model that does not exist fails in seconds, not
after Ray's start-up, and leaves no output folder behind.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger("sft_ray")


class PreflightError(RuntimeError):
    """The run cannot start as configured; the message says why and what to change."""


def worker_shape(tc) -> dict[str, float]:
    """What one Ray Train worker asks for (as in train/__init__.py's ScalingConfig)."""
    return {"CPU": tc.cpus_per_worker, **({"GPU": 1.0} if tc.use_gpu else {}), **tc.resources_per_worker}


def placeable(shape: dict[str, float], nodes: list[dict[str, float]]) -> int:
    """Workers of `shape` that fit on these nodes' total resources, each on a single node."""
    asks = {k: v for k, v in shape.items() if v > 0}
    return sum(min(math.floor(res.get(k, 0.0) / v + 1e-9) for k, v in asks.items()) if asks else 0 for res in nodes)


def autoscaler_running() -> bool:
    """True when an autoscaler with node types runs. Every head runs the monitor, which writes this
    status; without an autoscaling config (a local `ray.init`, a manual `ray start` cluster) it runs
    read-only and names each node's type `node_<node id>`, so only other type names mean nodes can
    be added."""
    import json

    from ray._private.ray_constants import DEBUG_AUTOSCALING_STATUS
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_initialized

    raw = _internal_kv_initialized() and _internal_kv_get(DEBUG_AUTOSCALING_STATUS)
    if not raw:
        return False
    mapping = (json.loads(raw).get("autoscaler_report") or {}).get("node_type_mapping") or {}
    return any(t != f"node_{node}" for node, t in mapping.items())


def check_training_resources(tc) -> None:
    """Raise PreflightError when the cluster (without an autoscaler) cannot hold the training workers."""
    check_fits("train", worker_shape(tc), tc.num_workers,
               "Lower train.num_workers or train.cpus_per_worker, set train.use_gpu / train.resources_per_worker to what "
               "the nodes offer, or add nodes.")


def gpu_stages(cfg) -> list[tuple[str, str, dict]]:
    """The build's model stages that ask for GPUs: (stage, its config section, one actor's resources)."""
    stages = [("label", "label", cfg.label), ("teacher", "teacher", cfg.teacher), ("dedup.semantic", "dedup.semantic", cfg.dedup.semantic)]
    out = [(name, name, {"CPU": sc.num_cpus, "GPU": sc.num_gpus}) for name, _, sc in stages if sc.enabled and sc.num_gpus > 0]
    t = cfg.teacher
    if cfg.augment.enabled and not t.enabled and t.num_gpus > 0:  # augmentation runs on the teacher's engine
        out.append(("augment (teacher engine)", "teacher", {"CPU": t.num_cpus, "GPU": t.num_gpus}))
    return out


def check_build_stages(cfg) -> None:
    """Model stages of a build that ask for GPUs (label, teacher, semantic dedup) need one node that
    can hold one of their actors; checked before any record is read."""
    for name, section, shape in gpu_stages(cfg):
        check_fits(name, shape, 1, f"Set {section}.num_gpus: 0 to run it on CPUs, or add a GPU node.")


def check_fits(stage: str, shape: dict[str, float], count: int, advice: str) -> None:
    import ray

    if not ray.is_initialized():  # a library caller that has not connected yet: the local/default cluster
        from sft_ray.runtime import init_ray

        init_ray()
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    fits = placeable(shape, nodes)
    if fits >= count:
        return
    have = {k: sum(res.get(k, 0.0) for res in nodes) for k in shape}
    msg = (f"preflight: {stage} needs {count} worker(s) x {shape}, but the cluster's {len(nodes)} alive node(s) "
           f"can hold {fits} (totals {have}; a worker must fit on one node). {advice}")
    if autoscaler_running():
        log.warning("%s An autoscaler is running, so the missing nodes may still be added.", msg)
        return
    raise PreflightError(msg)


def check_build_config(cfg) -> None:
    """Config errors a build can see before Ray starts. Here, not in build.py: importing the build's
    modules (Ray Data and every stage) took 1.3 s of the 1.4 s this check took from there."""
    from sft_ray.config import ConfigError

    if not cfg.sources:
        raise ConfigError("the config has no sources: nothing to build (add a `sources:` list; see jobs/configs/)")


def check_before_ray(cfg, verb: str) -> dict[str, list[dict]] | None:
    """What can be checked without Ray, in seconds: the build's config and input listing (returned,
    so the build lists once), the output's writability, and the models the run will load."""
    from sft_ray import storage

    inputs = None
    if verb in ("build", "run"):
        from sft_ray.ingest import list_inputs

        check_build_config(cfg)
        inputs = list_inputs(cfg)  # InputNotFound names the path
        if cfg.label.enabled:
            check_model(cfg.label.model, "label.model", cfg.storage_options)
        if cfg.teacher.enabled or cfg.augment.enabled:
            check_model(cfg.teacher.model, "teacher.model", cfg.storage_options)
    if verb in ("finetune", "run"):
        check_model(cfg.train.model, "train.model", cfg.storage_options)
    storage.check_writable(storage.abs_output(cfg.output), cfg.storage_options, create=False)
    return inputs


def check_model(name: str, key: str, storage_options: dict) -> None:
    """`name` is one of the shipped models, a local folder with config.json, a URL folder holding
    one, or a Hugging Face id in the local cache or known to the hub (asked with a 10 s timeout)."""
    import os

    from sft_ray import models, storage

    if name in (models.SMOLLM2, models.TINY_LLAMA) or name == "all-minilm-l6-v2":
        return
    local = os.path.expanduser(name.removeprefix("file://"))
    if "://" not in name or name.startswith("file://"):
        if os.path.isdir(local):
            if not os.path.isfile(os.path.join(local, "config.json")):
                raise PreflightError(f"{key}: {name} has no config.json (not a Hugging Face model folder)")
            return
        if local.startswith((".", "/", "~")) or local.count("/") != 1:
            raise PreflightError(f"{key}: {name!r} is not a folder, a URL or a Hugging Face id 'org/name'")
        try:
            from huggingface_hub import model_info, try_to_load_from_cache

            if isinstance(try_to_load_from_cache(name, "config.json"), str):
                return
            model_info(name, timeout=10)
        except Exception as e:  # noqa: BLE001 - any failure means the run could not load it
            raise PreflightError(f"{key}: {name!r} is neither a local folder nor in the Hugging Face cache, and the hub "
                                 f"could not confirm it ({type(e).__name__}); download it or point {key} at a folder") from None
        return
    if not storage.exists(storage.join(name, "config.json"), storage_options):
        raise PreflightError(f"{key}: {name} holds no config.json")
