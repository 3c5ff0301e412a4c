"""Teacher backend `vllm`: Ray Data's LLM processor (`ray.data.llm`, vLLM engines) for GPU clusters.

The same requests, cache and validation as the `transformers` backend: the cache is looked up on
the driver's index and only misses reach the engines. Generation is NOT TESTED here (no GPU, no
vllm installed); building the processor is (it needs neither). Shorthand model names
(`smollm2-135m-instruct`) resolve to a folder on the driver's node, so on a multi-node cluster give
a hub id or a path every node has.
"""

from __future__ import annotations

import math

import pyarrow as pa
import ray

from sft_ray import schema
from sft_ray.config import UNPLACEABLE_VLLM, TeacherConfig
from sft_ray.placement import actor_pool_args
from sft_ray.pools import pool_size
from sft_ray.synthesize.cache import read_index, with_outputs, write_entries


def generate(requests: ray.data.Dataset, cfg: TeacherConfig, cache: str | None, storage_options: dict,
             selector: dict[str, str]) -> ray.data.Dataset:
    """Requests (TEACHER_REQUEST_SCHEMA) -> TEACHER_GENERATED_SCHEMA rows: cache hits as they are,
    misses through the vLLM processor (its stages placed by `selector`), then cached."""
    index = read_index(cache, storage_options) if cache else {}
    looked = requests.map_batches(with_outputs, batch_format="pyarrow", fn_kwargs={"index": index})
    hits = looked.filter(lambda r: r["cached"])
    misses = looked.filter(lambda r: not r["cached"]).map_batches(
        _ChatRenderer, fn_constructor_args=(cfg,), batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=1))
    generated = vllm_processor(cfg, selector)(misses).map_batches(
        _store, batch_format="pyarrow", fn_kwargs={"cache": cache, "model": cfg.model, "storage_options": storage_options})
    return hits.map_batches(_as_generated, batch_format="pyarrow").union(generated)


class _ChatRenderer:
    """Renders chat-templated prompt text (+ response prefix) once per actor-loaded tokenizer."""

    def __init__(self, cfg: TeacherConfig):
        from sft_ray.models import load_tokenizer, resolve_model

        self.cfg, self.tok = cfg, load_tokenizer(resolve_model(cfg.model), cfg.trust_remote_code)

    def __call__(self, table: pa.Table) -> pa.Table:
        texts, budgets = [], []
        for p, t in zip(table["prompt"].to_pylist(), table["task"].to_pylist()):
            task = self.cfg.tasks[t]
            texts.append(self.tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
                         + task.response_prefix)
            budgets.append(task.max_new_tokens)
        return table.append_column("prompt_text", pa.array(texts, pa.string())).append_column("max_new_tokens", pa.array(budgets, pa.int64()))


def _row_score(row: dict) -> float | None:
    lps = []
    for tok, entry in zip(row.get("generated_tokens") or [], row.get("logprobs") or []):
        info = (entry or {}).get(tok) or (entry or {}).get(str(tok))
        if info and info.get("logprob") is not None and math.isfinite(info["logprob"]):
            lps.append(info["logprob"])
    return float(math.exp(sum(lps) / len(lps))) if lps else None


def _post(row: dict) -> dict:
    keep = {**{f.name: row.get(f.name) for f in schema.TEACHER_REQUEST_SCHEMA}, "prompt": row["teacher_prompt"]}
    return {**keep, "output": row.get("generated_text") or "", "score": _row_score(row),
            "finished": int(row.get("num_generated_tokens") or 0) < int(row["max_new_tokens"]), "cached": False, "error": None}


def _as_generated(table: pa.Table) -> pa.Table:
    arrow_schema = schema.TEACHER_GENERATED_SCHEMA
    return pa.table({f.name: table[f.name].cast(f.type) for f in arrow_schema}, schema=arrow_schema)


def _store(table: pa.Table, cache: str | None, model: str, storage_options: dict) -> pa.Table:
    table = _as_generated(table)
    if cache and table.num_rows:
        rows = [{"key": k, "output": o, "score": s, "finished": f}
                for k, o, s, f in zip(*(table[c].to_pylist() for c in ("key", "output", "score", "finished")))]
        write_entries(cache, rows, model, storage_options)
    return table


def vllm_processor(cfg: TeacherConfig, selector: dict[str, str]):
    """Ray Data's vLLM processor for the teacher, its stages placed by `placement.models`.

    `vLLMEngineProcessorConfig` (Ray 2.60) has no label selector, and its stages would otherwise
    inherit the build's Dataset-wide `curation` selector, i.e. ask for GPUs on CPU nodes. So the
    selector goes into each stage's `map_batches` arguments, as for our own model pools. An engine
    with tensor/pipeline parallelism > 1 schedules its workers in a placement group instead, which
    the selector cannot reach: that is refused rather than left to hang. Built (not run) in tests:
    building needs neither vllm nor a GPU."""
    import ray.data.llm as rdl

    from sft_ray.models import SMOLLM2, TINY_LLAMA, resolve_model

    build = getattr(rdl, "build_processor", None) or rdl.build_llm_processor
    model = resolve_model(cfg.model) if cfg.model in (SMOLLM2, TINY_LLAMA) else cfg.model
    sampling = {"temperature": 0.0} if cfg.greedy else {"temperature": cfg.temperature, "top_p": cfg.top_p, "seed": cfg.seed}
    # Engines, not actors of num_gpus: one engine spans num_gpus x tensor x pipeline parallel GPUs.
    engines = pool_size(0, cfg.num_gpus * cfg.engine_parallelism, selector, cfg.concurrency, "teacher (vLLM engines)")
    processor = build(
        rdl.vLLMEngineProcessorConfig(
            model_source=model, engine_kwargs=dict(cfg.engine_kwargs), concurrency=engines, batch_size=cfg.batch_size,
            chat_template_stage=False, tokenize_stage=True, detokenize_stage=True,
        ),
        preprocess=lambda row: {**row, "teacher_prompt": row["prompt"], "prompt": row["prompt_text"],
                                "sampling_params": {**sampling, "max_tokens": int(row["max_new_tokens"]), "logprobs": 1}},
        postprocess=_post,
    )
    if selector:
        for name, stage in processor.stages.items():
            if "ray_remote_args_fn" in stage.map_batches_kwargs:
                raise ValueError(f"{name}: {UNPLACEABLE_VLLM}")
            stage.map_batches_kwargs = {**stage.map_batches_kwargs, **actor_pool_args(selector)}
    return processor
