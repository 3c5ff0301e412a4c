"""The label stage entry: fit the heads once on the driver, then one actor pool labels, then select.

    seed sets --(driver: embed + fit, seconds)--> LinearHead per labeler
    records --(actor pool: embed once per row, every head)--> + <labeler>/<labeler>_score columns --> select_batch

The labelers are `schema.LABELERS` (topic, sentiment, quality), each configured under `label.<name>`.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import ray

from sft_ray.config import LabelConfig
from sft_ray.label.classifier import LinearHead, fit_head
from sft_ray.label.embed import BaseEmbedder, make_embedder
from sft_ray.label.human import HumanLabels, extend_seed
from sft_ray.label.lang import fill_lang_batch
from sft_ray.label.labelers import HeadSpec, Labeler
from sft_ray.label.seed import load_seed, text_key
from sft_ray.label.select import select_batch
from sft_ray.pools import model_pool

log = logging.getLogger("sft_ray")


def fit_heads(cfg: LabelConfig, embedder: BaseEmbedder | None = None, kinds: set[str] | None = None,
              human: HumanLabels | None = None) -> dict[str, LinearHead]:
    """One fitted head per enabled labeler; `head.info` says on what and how well (for the manifest).

    `kinds`: the source kinds of the run; a labeler for none of them is not fitted (seconds saved).
    `human`: the run's human labels (label/human.py), added to each labeler's seed set.
    """
    todo = {name: lcfg for name, lcfg in cfg.labelers().items()
            if lcfg.enabled and (kinds is None or set(lcfg.kinds) & set(kinds))}
    heads: dict[str, LinearHead] = {}
    if not todo:
        return heads
    # The engine the actors run: a head fitted on int8 embeddings is applied to int8 embeddings.
    embedder = embedder or make_embedder(cfg.model, cfg.max_tokens, engine=cfg.resolved_engine,
                                         device="cuda" if cfg.num_gpus > 0 else None)
    for name, lcfg in todo.items():
        t0 = time.time()
        seed = load_seed(lcfg.seed, where=f"label.{name}.seed")
        if human is not None and human.seed_rows(name):
            seed = extend_seed(seed, human.seed_rows(name), where=f"label.{name}")
        good = lcfg.score_class
        if good is not None and good not in seed.label_names:
            raise ValueError(f"label.{name}.{lcfg.score_class_field}={good!r} is not a label of label.{name}.seed (has {seed.label_names})")
        layers = tuple(lcfg.feature_layers)
        x = embedder.encode(seed.texts, cfg.embed_batch_size, layers=layers)
        head = fit_head(x, seed.labels, seed.label_names, folds=lcfg.seed.calibration_folds,
                        seed=lcfg.seed.sample_seed, layers=layers)
        head = dataclasses.replace(head, seed_keys=frozenset(text_key(t) for t in seed.texts))
        head.info["fit_s"] = round(time.time() - t0, 2)
        if human is not None and human.seed_rows(name):
            head.info["human_rows"] = len(human.seed_rows(name))
        log.info("label: %s head fitted on %d seed rows %s", name, len(seed.texts), head.info)
        heads[name] = head
    return heads


def label_dataset(ds: ray.data.Dataset, cfg: LabelConfig, heads: dict[str, LinearHead] | None = None,
                  selector: dict[str, str] | None = None) -> ray.data.Dataset:
    """Label stage: add label columns with an autoscaling actor pool, then tag rows below a labeler's threshold.

    Rows are never dropped here. `heads` lets a caller reuse heads it already fitted (fit_heads, which
    can skip labelers for kinds the run lacks); `selector` places the actor pool (placement.models).
    """
    if not cfg.enabled:
        return ds
    if cfg.fill_lang:
        ds = ds.map_batches(fill_lang_batch, batch_format="pyarrow", udf_modifying_row_count=False)
    heads = fit_heads(cfg) if heads is None else heads
    specs = head_specs(cfg, heads)
    if not specs:
        return ds
    ds = ds.map_batches(
        Labeler,
        fn_constructor_args=(specs,),
        fn_constructor_kwargs={"model": cfg.model, "max_tokens": cfg.max_tokens, "embed_batch_size": cfg.embed_batch_size,
                               "num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus, "engine": cfg.resolved_engine},
        batch_format="pyarrow",
        batch_size=cfg.batch_size,
        udf_modifying_row_count=False,
        **model_pool("label", cfg.num_cpus, cfg.num_gpus, cfg.concurrency, selector),
    )
    return ds.map_batches(select_batch, batch_format="pyarrow", fn_kwargs={"cfg": cfg}, udf_modifying_row_count=False)


def head_specs(cfg: LabelConfig, heads: dict[str, LinearHead]) -> dict[str, HeadSpec]:
    """What the labeler actors apply: each enabled labeler's head with its kinds and score class."""
    return {name: HeadSpec(heads[name], list(lcfg.kinds), lcfg.score_class)
            for name, lcfg in cfg.labelers().items() if lcfg.enabled and name in heads}
