"""The label stage entry: fit the heads once on the driver, then one actor pool labels, then select.

    seed sets --(driver: embed + fit, seconds)--> LinearHead per labeler
    records --(actor pool: embed once per row, every head)--> + topic/sentiment columns --> select_batch
"""

from __future__ import annotations

import logging
import time

import ray

from sft_ray.config import LabelConfig, RunConfig
from sft_ray.label.classifier import LinearHead, fit_head
from sft_ray.label.embed import Embedder
from sft_ray.label.labelers import Labeler
from sft_ray.label.seed import load_seed
from sft_ray.label.select import select_batch
from sft_ray.placement import actor_pool_args

log = logging.getLogger("sft_ray")
LABELERS = ("topic", "sentiment")


def fit_heads(cfg: LabelConfig, embedder: Embedder | None = None) -> dict[str, LinearHead]:
    """One fitted head per enabled labeler; `head.info` says on what and how well (for the manifest)."""
    todo = [name for name in LABELERS if getattr(cfg, name).enabled]
    heads: dict[str, LinearHead] = {}
    if not todo:
        return heads
    embedder = embedder or Embedder(cfg.model, cfg.max_tokens, device="cuda" if cfg.num_gpus > 0 else None)
    for name in todo:
        t0 = time.time()
        seed = load_seed(getattr(cfg, name).seed, where=f"label.{name}.seed")
        layers = tuple(getattr(cfg, name).feature_layers)
        x = embedder.encode(seed.texts, cfg.embed_batch_size, layers=layers)
        head = fit_head(x, seed.labels, seed.label_names, folds=getattr(cfg, name).seed.calibration_folds,
                        seed=getattr(cfg, name).seed.sample_seed, layers=layers)
        head.info["fit_s"] = round(time.time() - t0, 2)
        log.info("label: %s head fitted on %d seed rows %s", name, len(seed.texts), head.info)
        heads[name] = head
    return heads


def label_dataset(ds: ray.data.Dataset, cfg: RunConfig | LabelConfig,
                  heads: dict[str, LinearHead] | None = None) -> ray.data.Dataset:
    """Label stage: add label columns with an autoscaling actor pool, then tag low-confidence rows.

    Rows are never dropped here; `heads` lets a caller reuse heads it already fitted (fit_heads).
    """
    selector = cfg.placement.models if isinstance(cfg, RunConfig) else {}
    cfg = cfg.label if isinstance(cfg, RunConfig) else cfg
    if not cfg.enabled:
        return ds
    heads = fit_heads(cfg) if heads is None else heads
    heads = {name: heads[name] for name in LABELERS if getattr(cfg, name).enabled and name in heads}
    if not heads:
        return ds
    ds = ds.map_batches(
        Labeler,
        fn_constructor_args=({name: (head, getattr(cfg, name).kinds) for name, head in heads.items()},),
        fn_constructor_kwargs={"model": cfg.model, "max_tokens": cfg.max_tokens, "embed_batch_size": cfg.embed_batch_size,
                               "num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus},
        batch_format="pyarrow",
        batch_size=cfg.batch_size,
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=cfg.concurrency),
        num_cpus=cfg.num_cpus,
        num_gpus=cfg.num_gpus or None,
        udf_modifying_row_count=False,
        **actor_pool_args(selector),
    )
    return ds.map_batches(select_batch, batch_format="pyarrow", fn_kwargs={"cfg": cfg}, udf_modifying_row_count=False)
