"""How many hash partitions a dedup shuffle gets: from the data's size, not a fixed count.

Ray Data's hash shuffle makes each partition one block, reduced by one task, so a partition's
bytes, not the corpus's, bound a reduce task's memory. A fixed count is wrong at both ends: 8
partitions of 1 TB are 125 GB tasks, 8 partitions of 1 MB are 8 tasks of scheduling overhead. So
the count is ceil(bytes / `dedup.partition_bytes`), at least 1 and at most `dedup.max_partitions`;
an explicit `dedup.num_partitions` wins.

The build measures the records once, as they enter dedup, where the size costs no pass over the
data (build.py), fixes the count in its DedupConfig with `resolve`, and every shuffle of the run
(exact, near, semantic, SFT-example dedup, the report's clusters) uses it. A stage called with an
unresolved config measures its own input with `partitions_for`. Dedup is partition-independent
(smallest id survives: docs/ARCHITECTURE.md, principle 4), so the count changes memory and task
sizes, never results.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from sft_ray.config import DedupConfig

if TYPE_CHECKING:
    import ray

log = logging.getLogger("sft_ray")
MiB = 2**20


def partitions_for(data: ray.data.Dataset | int, cfg: DedupConfig) -> int:
    """Shuffle partitions for `data` (a Dataset, or its in-memory size in bytes): `cfg.num_partitions`
    when set, else ceil(bytes / partition_bytes) between 1 and max_partitions. A Dataset's
    `size_bytes()` is free only when it is materialized: Ray 2.60 executes any lazy Dataset to
    measure it, even a plain `read_parquet` (measured: 3 s for 4 staged files), so callers with
    a lazy Dataset pass its bytes (the build: staging.Workspace.staged_bytes)."""
    if cfg.num_partitions is not None:
        return cfg.num_partitions
    size = data if isinstance(data, int) else data.size_bytes()
    return max(1, min(cfg.max_partitions, math.ceil((size or 0) / cfg.partition_bytes)))


def resolve(cfg: DedupConfig, size_bytes: int | None, measured_on: str) -> tuple[DedupConfig, dict]:
    """`cfg` with `num_partitions` fixed for the whole run, and the manifest's record of the choice
    (`manifest["dedup"]`): the count, whether it came from bytes or from num_partitions, the bytes
    and what they were measured on (so a run's task sizes can be explained afterwards)."""
    size_bytes = int(size_bytes or 0)
    n = partitions_for(size_bytes, cfg)
    origin = "num_partitions" if cfg.num_partitions is not None else "bytes"
    log.info("dedup: %d shuffle partitions for %.4g MiB (from %s; measured on %s; partition_bytes=%.4g MiB)",
             n, size_bytes / MiB, origin, measured_on, cfg.partition_bytes / MiB)
    info = {"partitions": n, "from": origin, "bytes": size_bytes, "measured_on": measured_on, "partition_bytes": cfg.partition_bytes}
    return cfg.model_copy(update={"num_partitions": n}), info


def by_key(ds: ray.data.Dataset, num_partitions: int, keys: list[str]) -> ray.data.Dataset:
    """`ds` as `num_partitions` blocks, each holding every row of its `keys` (the shuffles' contract:
    a reduce map with batch_size=None sees whole groups).

    One partition needs no hashing: `repartition(1)` joins the blocks with plain tasks, where Ray
    Data's hash shuffle first starts a worker pool of its own runtime env: 4.3 s cold for 280k
    rows vs 0.2 s here, the fixed cost of every small build's first shuffle. A placed build
    (a label selector set by placement.data_selector) keeps the hash shuffle, which passes the
    selector to its tasks."""
    import ray

    if num_partitions == 1 and not ray.data.DataContext.get_current().execution_options.label_selector:
        return ds.repartition(1)
    return ds.repartition(num_partitions, keys=keys)
