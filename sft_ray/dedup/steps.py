"""Exact then near dedup as staged global steps: keys shuffled, removal lists written, records tagged by a map.

    records (with row ids) --exact keys--> _work/dedup/exact/<unit>.parquet + _DONE
            --exact removals applied (map)--> near keys --> _work/dedup/near/<unit>.parquet + _DONE
            --both removal lists applied (map)--> tagged records (row ids dropped by the caller)

Each step writes its marker last, with a fingerprint of the dedup config and the inputs' identity
(the staged units' keys), so a build rerun after its driver died reuses every finished step and a
changed config or input recomputes it (removals.py). Outside a build (a stage called on its own)
the steps go to a local scratch folder that is removed afterwards.
"""

from __future__ import annotations

import hashlib
import json
import logging

import ray

from sft_ray import storage
from sft_ray.config import DedupConfig
from sft_ray.dedup.exact import exact_removals
from sft_ray.dedup.near import near_removals
from sft_ray.dedup.partitions import partitions_for
from sft_ray.dedup.removals import ROW, Step, apply_removals, scratch_root, with_row_ids

log = logging.getLogger("sft_ray")
STAGE = "dedup"


def step_fingerprint(cfg: DedupConfig, inputs: str) -> str:
    """What a finished step's removals depend on: the dedup settings (partition count aside: results
    do not depend on it) and the identity of the records (`inputs`: e.g. the staged units' keys)."""
    settings = cfg.model_dump(exclude={"num_partitions", "partition_bytes", "shuffle_map_bytes", "max_partitions", "semantic", "sft", "decontaminate"})
    return hashlib.sha256(json.dumps({"dedup": settings, "inputs": inputs}, sort_keys=True, default=str).encode()).hexdigest()


def run_steps(ds: ray.data.Dataset, cfg: DedupConfig, root: str, storage_options: dict, fingerprint: str) -> tuple[ray.data.Dataset, dict]:
    """Exact and near dedup of `ds` (records carrying row ids, `cfg.num_partitions` resolved) with
    their steps under `root`; returns the tagged records (row ids kept) and {step: marker info}."""
    parts = cfg.num_partitions or 1
    steps: list[Step] = []
    info: dict = {}
    for name, enabled, removals in (("exact", cfg.exact.enabled, exact_removals), ("near", cfg.near.enabled, near_removals)):
        if not (cfg.enabled and enabled):
            continue
        step = Step(root, name, storage_options, fingerprint)
        done = step.done()
        if done is None:
            done = step.write(removals(apply_removals(ds, steps, STAGE), cfg, parts), parts)
        else:
            log.info("dedup: %s step reused from %s (%d removals)", name, step.dir, done["removed"])
            done = {**done, "reused": True}
        info[name] = {k: v for k, v in done.items() if k != "fingerprint"}
        steps.append(step)
    return apply_removals(ds, steps, STAGE), info


def dedup_records(ds: ray.data.Dataset, cfg: DedupConfig) -> ray.data.Dataset:
    """Exact and/or near dedup of any Dataset of records, outside a build: row ids from the block
    order, steps in a scratch folder, and the result materialised (so the folder can go)."""
    had_rows = ROW in ds.schema().names
    cfg = cfg.model_copy(update={"num_partitions": partitions_for(ds, cfg)})
    ds = with_row_ids(ds)
    root = scratch_root()
    try:
        out, _ = run_steps(ds, cfg, root, {}, fingerprint="scratch")
        if not had_rows:
            out = out.drop_columns([ROW])
        return out.materialize()
    finally:
        storage.remove(root, {})
