"""Stage placement plumbing (sft_ray/placement.py). Where the work really lands on a multi-node
cluster is proven in tests/e2e/test_multinode.py; here: the selectors reach the Datasets, our remote
helpers and the model pools, and are undone afterwards."""

from __future__ import annotations

import pytest
import ray

from sft_ray.config import ConfigError, load_config
from sft_ray.placement import actor_pool_args, data_selector, task_options

POOL = {"sft-ray/pool": "data"}


def test_datasets_made_in_the_block_keep_the_selector_after_it():
    ctx = ray.data.DataContext.get_current()
    assert ctx.execution_options.label_selector is None
    with data_selector(POOL):
        ds = ray.data.range(3)
        assert task_options() == {"label_selector": POOL}
    assert ds.context.execution_options.label_selector == POOL  # copied at creation
    assert ds.context.use_datasource_v2 is False and ds.context.shuffle_strategy.value == "hash_shuffle"
    assert ctx.execution_options.label_selector is None
    assert ray.data.range(3).context.execution_options.label_selector is None
    assert ctx.use_datasource_v2 is not False or ctx.shuffle_strategy.value != "hash_shuffle"  # restored
    assert task_options() == {}


def test_strict_shuffle_off_keeps_ray_datas_default_shuffle():
    default = ray.data.DataContext.get_current().shuffle_strategy
    with data_selector(POOL, strict_shuffle=False):
        ds = ray.data.range(3)
    assert ds.context.execution_options.label_selector == POOL and ds.context.shuffle_strategy == default
    assert load_config(None, ["placement.strict_shuffle=false"]).placement.strict_shuffle is False


def test_empty_selector_means_anywhere():
    with data_selector({}):
        assert ray.data.range(1).context.execution_options.label_selector is None
        assert task_options() == {}
    assert actor_pool_args({}) == {}
    assert actor_pool_args({"sft-ray/pool": "gpu"}) == {"label_selector": {"sft-ray/pool": "gpu"}}


def test_one_flag_sets_every_selector_and_unknown_keys_fail():
    cfg = load_config(None, ["placement={curation: {sft-ray/pool: data}, models: {sft-ray/pool: gpu}, train: {sft-ray/pool: gpu}}"])
    assert cfg.placement.curation == POOL and cfg.placement.train == {"sft-ray/pool": "gpu"}
    assert load_config(None, []).placement.model_dump() == {"curation": {}, "models": {}, "train": {}, "strict_shuffle": True}
    with pytest.raises(ConfigError, match="placement"):
        load_config(None, ["placement.curaton={a: b}"])


def _shuffle_map_outputs(ds: ray.data.Dataset) -> int:
    """Blocks the shuffle's map operator produced: one per map task (Ray 2.60's stats line)."""
    stats = ds.repartition(2, keys=["id"]).materialize().stats()
    line = next(ln for ln in stats.splitlines() if "HashShuffleMap" in ln and "blocks produced" in ln)
    return int(line.split("blocks produced")[0].split()[-1])


def test_shuffle_map_bytes_bounds_what_one_shuffle_map_task_takes(ray_local):
    """Ray Data gathers up to 1 GiB of shuffle input per map task; dedup.shuffle_map_bytes sets it."""
    with data_selector({}, shuffle_map_bytes=1):  # every block is its own map task
        small = ray.data.range(8_000, override_num_blocks=8)
    default = ray.data.range(8_000, override_num_blocks=8)  # 8 x 8 KB: one task
    assert small.context.shuffle_input_batch_bytes == 1
    assert _shuffle_map_outputs(small) == 8 and _shuffle_map_outputs(default) == 1
    assert load_config(None, []).dedup.shuffle_map_bytes == 256 * 2**20
