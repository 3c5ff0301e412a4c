"""How many actors a model pool (labelers, LLM teacher, semantic-dedup embedders) may grow to.

A fixed ceiling is wrong both ways: 2 labelers leave a 100-node cluster idle, 100 would ask a laptop
for actors it cannot start. So a pool whose `concurrency` is unset is sized from the cluster the job
runs on: its nodes whose labels match the pool's selector (`placement.models`, sft_ray/placement.py)
and how many actors of the pool's shape (CPUs, GPUs per actor) each one holds. The pool still starts
at 1 actor and Ray Data adds actors while work queues and the cluster has room; this is the ceiling.
"""

from __future__ import annotations

import logging

from sft_ray.placement import actor_pool_args
from sft_ray.preflight import autoscaler_running, placeable

log = logging.getLogger("sft_ray")

AUTOSCALE_HEADROOM = 64
"""With an autoscaler and no cap: actors allowed beyond what the nodes up now hold (see pool_size)."""


def pool_size(num_cpus: float, num_gpus: float, selector: dict[str, str] | None, cap: int | None,
              name: str = "model pool") -> int:
    """Most actors for a pool whose actors each take `num_cpus` / `num_gpus` (0: not asked), placed by
    `selector`; logged once per call, so once per pool.

    The rule:
      fits = sum over alive nodes whose labels match `selector` of the actors one node holds
             (floor(node CPUs / num_cpus), and likewise GPUs: an actor sits on one node; total
             resources, not free ones, since other work finishes and the pool grows as it does).
      No autoscaler: max(1, fits), at most `cap`. Ray Data could not start more anyway, and a
             cap never stops the pool from using a machine it can use.
      An autoscaler with node types runs (preflight.autoscaler_running): nodes it has not started
             do not show in the cluster, and its per-type node limits live in its own config,
             which the cluster does not reliably expose to a job. So `cap` when given (set concurrency to max workers x actors
             per node), else fits + AUTOSCALE_HEADROOM: a ceiling, not a request, since Ray Data
             starts an actor only when a node has room, and its own cluster autoscaler asks for
             nodes while the pool is busy.
    At least 1 always: a pool that fits nowhere yet still gets one actor, which waits for a node
    (the build's preflight has already failed a GPU stage no node can hold, when nothing can be
    added).
    """
    import ray

    if not ray.is_initialized():  # a library caller that has not connected yet: the local/default cluster
        from sft_ray.runtime import init_ray

        init_ray()
    nodes = [n for n in ray.nodes() if n.get("Alive") and labels_match(n.get("Labels") or {}, selector or {})]
    fits = placeable(actor_shape(num_cpus, num_gpus), [n["Resources"] for n in nodes])
    autoscaling = autoscaler_running()
    size = bound(fits, cap, autoscaling)
    log.info("%s: up to %d actor(s) of %s; %d fit on the %d alive node(s) matching %s%s%s", name, size,
             actor_shape(num_cpus, num_gpus), fits, len(nodes), selector or "{} (any)",
             f", capped by concurrency={cap}" if cap is not None else "",
             "; an autoscaler may add nodes" if autoscaling else "")
    return size


def model_pool(name: str, num_cpus: float, num_gpus: float, concurrency: int | None,
               selector: dict[str, str] | None) -> dict:
    """The `map_batches` arguments every model actor pool shares (labelers, teacher, semantic-dedup
    embedders): an autoscaling pool from 1 actor up to `pool_size`, each actor's CPUs and GPUs, and
    the `placement.models` selector. Written once so the pools cannot drift apart."""
    import ray.data

    size = pool_size(num_cpus, num_gpus, selector, concurrency, name)
    return {"compute": ray.data.ActorPoolStrategy(min_size=1, max_size=size), "num_cpus": num_cpus,
            "num_gpus": num_gpus or None, **actor_pool_args(selector or {})}


def bound(fits: int, cap: int | None, autoscaling: bool) -> int:
    """The rule of pool_size once `fits` is counted (separate so the autoscaler branch is testable)."""
    if autoscaling:
        return cap if cap is not None else max(1, fits) + AUTOSCALE_HEADROOM
    return max(1, min(fits, cap) if cap is not None else fits)


def actor_shape(num_cpus: float, num_gpus: float) -> dict[str, float]:
    """What one actor asks for, without the resources it does not ask for."""
    return {k: float(v) for k, v in (("CPU", num_cpus), ("GPU", num_gpus)) if v and v > 0}


def labels_match(labels: dict[str, str], selector: dict[str, str]) -> bool:
    """Ray's own selector semantics (`value`, `!value`, `in(a,b)`, `!in(a,b)`), so a node counts
    exactly when the scheduler would place the pool's actors on it."""
    if not selector:
        return True
    from ray._raylet import node_labels_match_selector

    return node_labels_match_selector(labels, selector)
