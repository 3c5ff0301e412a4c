"""Stage placement: which nodes each kind of work may run on, by Ray node labels.

A cluster's node types carry labels (`ray start --labels sft-ray/pool=data`; `labels:` in the
launcher's node types; `rayStartParams.labels` in KubeRay), and config `placement` names a label
selector per kind of work:

    curation   every Ray Data task and actor of the build (read, clean, dedup shuffles, format,
               write, report aggregates), through `ExecutionOptions.label_selector`, which Ray Data
               2.60 applies to all of a Dataset's operators, shuffle actors included; plus our own
               `ray.remote` helpers launched inside a stage (`task_options`).
    models     the build's model actor pools (labelers, LLM teacher, semantic-dedup embedders);
               operator-level selectors win over the Dataset's on the same key, so use the same
               key as `curation` (e.g. sft-ray/pool: gpu vs data).
    train      Ray Train workers (`ScalingConfig.label_selector`) and the training data's tokenizer
               actors, which then feed the workers from the same nodes.

Selectors, not counts: the autoscaler (v2) starts a node of a type whose labels satisfy a pending
request, so nothing here names how many nodes there are. Empty selectors run anywhere: a laptop or a
cluster with one node type needs no setting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def data_selector(selector: dict[str, str], strict_shuffle: bool = True, shuffle_map_bytes: int | None = None) -> Iterator[None]:
    """Within the block, Datasets created on this driver carry `selector` and the settings below
    (each Dataset copies the current DataContext when it is created, so it keeps them after the
    block ends). The build and the training data are made inside one. `strict_shuffle`
    (config `placement.strict_shuffle`): see below. `shuffle_map_bytes` (config
    `dedup.shuffle_map_bytes`, None: Ray's default) bounds the input of one shuffle map task."""
    import ray
    from ray.data.context import ShuffleStrategy

    ctx = ray.data.DataContext.get_current()
    before = ctx.execution_options.label_selector, ctx.shuffle_strategy, ctx.use_datasource_v2, ctx.shuffle_input_batch_bytes
    if shuffle_map_bytes is not None:
        ctx.shuffle_input_batch_bytes = shuffle_map_bytes
    ctx.execution_options.label_selector = dict(selector) or None
    if selector and strict_shuffle and ctx.shuffle_strategy == ShuffleStrategy.SHUFFLE_V2:
        # Ray Data 2.60's default shuffle (SHUFFLE_V2: ShuffleMapOp/ShuffleReduceOp) ignores the
        # selector: its reduce tasks go SPREAD over every node (seen on the 3-node test cluster: a
        # dedup reduce ran on the training node). HASH_SHUFFLE passes the selector to its shuffle
        # tasks and aggregator actors, so placed builds use it. It costs time: the one-node demo
        # build takes 42.5 s instead of 16.9 s, and 47.0 s with HASH_SHUFFLE and no selector at
        # all (benchmarks/placed_build.py), hence the switch to keep the default shuffle.
        ctx.shuffle_strategy = ShuffleStrategy.HASH_SHUFFLE
    # Ray Data 2.60's Parquet reader v2 lists files through FooterReader actors started with SPREAD
    # and no selector: they land on any node (an autoscaler even starts a GPU node for them in a CPU
    # build, tests/e2e/test_autoscaling.py), and one lost with its node fails the whole read
    # (ActorDiedError, tests/e2e/test_node_failure.py). The v1 reader runs plain read tasks that
    # carry the selector and are retried, so every Dataset sft_ray makes uses it.
    ctx.use_datasource_v2 = False
    try:
        yield
    finally:
        ctx.execution_options.label_selector, ctx.shuffle_strategy, ctx.use_datasource_v2, ctx.shuffle_input_batch_bytes = before


def task_options() -> dict:
    """`.options(...)` for a ray.remote task launched from a stage: the current Data selector, so the
    helper task runs where the stage's Ray Data work runs."""
    import ray

    return actor_pool_args(ray.data.DataContext.get_current().execution_options.label_selector or {})


def actor_pool_args(selector: dict[str, str]) -> dict:
    """Extra `map_batches` kwargs for a model actor pool placed by `placement.models`."""
    return {"label_selector": dict(selector)} if selector else {}
