"""LLM teacher: an instruct model writes the target for tasks the data has none for (issue 5).

    curated records --(live, kinds, text; max_records by hash)--> requests (task prompt, cache key)
      --(actor pool: cache lookup, lazy model load, batched greedy generate)--> raw outputs + score
      --(parse + validate, teacher_parse.py)--> SFT examples; failures -> `invalid_teacher_output`

Entry point: `teacher_examples(curated, cfg, output, storage_options)`; the build decides whether
to call it (`cfg.teacher.enabled`). Its rows have the columns of `schema.SFT_SCHEMA` plus
`reject_reason` (null, or `invalid_teacher_output`), `duplicate_of` (always null) and
`teacher_score` (float64), i.e. `TEACHER_SCHEMA`, ready for SFT dedup and the sft/ writers.
Example ids are `<record id>:teacher_<task>`; the split follows the record (format/split.py).

Generation (backend `transformers`) is a Ray Data callable class (DESIGN.md principle 3): the
cache index is read once per actor; the model loads once, lazily, on the first request the cache
does not hold, so a rerun over cached requests never loads it. Prompts are rendered with the
model's chat template (plus the task's response prefix), grouped by task, length-sorted,
left-padded and generated greedily by default.

Confidence: `teacher_score` = exp(mean log-prob of the generated tokens, end-of-sequence token
included), the geometric-mean token probability. It costs nothing extra under greedy decoding;
self-consistency (Wang et al. 2023, arXiv:2203.11171) would need n sampled generations per
prompt, n times the cost of the most expensive stage on CPU. It is a tag (Dolma's "tag, then
select"): nothing is rejected on it here.

Invalid outputs keep everything: `messages` = [system: "invalid_teacher_output: <detail>",
user: the teacher prompt, assistant: the raw output (with the response prefix)], so the reason's
detail travels with the example to sft/rejects/.

Backend `vllm` runs Ray Data's LLM processor (`ray.data.llm.build_processor` with a
`vLLMEngineProcessorConfig`) for GPU clusters, with the same prompts, cache and validation. It is
NOT TESTED here (no GPU, no vllm installed); shorthand model names (`smollm2-135m-instruct`)
resolve to a folder on the driver's node, so on a multi-node cluster give a hub id or a path
every node has.
"""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema as S
from sft_ray.config import UNPLACEABLE_VLLM, RunConfig, TeacherConfig
from sft_ray.format.split import split_key, split_of
from sft_ray.label.teacher_cache import cache_url, read_index, request_key, write_entries
from sft_ray.label.teacher_parse import validate
from sft_ray.placement import actor_pool_args

log = logging.getLogger("sft_ray")
REASON = "invalid_teacher_output"
TEACHER_SCORE = "teacher_score"
TEACHER_SCHEMA = pa.schema(
    [*S.SFT_SCHEMA, pa.field(S.REJECT_REASON, pa.string()), pa.field(S.DUPLICATE_OF, pa.string()),
     pa.field(TEACHER_SCORE, pa.float64())]
)
# Between the stages: one row per (record, task) request.
REQUEST_SCHEMA = pa.schema(
    [
        pa.field(S.ID, pa.string()), pa.field("task", pa.string()), pa.field(S.SOURCE, pa.string()),
        pa.field("source_id", pa.string()), pa.field("split", pa.string()), pa.field("passage", pa.string()),
        pa.field(S.TITLE, pa.string()), pa.field("prompt", pa.string()), pa.field("key", pa.string()),
    ]
)
GENERATED_FIELDS = [
    pa.field("output", pa.string()), pa.field("score", pa.float64()), pa.field("finished", pa.bool_()),
    pa.field("cached", pa.bool_()), pa.field("error", pa.string()),
]
GENERATED_SCHEMA = pa.schema([*REQUEST_SCHEMA, *GENERATED_FIELDS])
_HASH = "_teacher_hash"


# ------------------------------------------------------------------------------------ the stage
def teacher_examples(curated: ray.data.Dataset, cfg: RunConfig, output: str, storage_options: dict) -> ray.data.Dataset:
    """Teacher-written SFT examples (TEACHER_SCHEMA) for the live curated records of the tasks' kinds.

    One row per (record, task) request: valid examples and `invalid_teacher_output` ones alike, so
    requests in = rows out. Pass a materialized `curated` when `max_records` is set (it is read twice).
    """
    tcfg = cfg.teacher
    records = curated.map_batches(eligible, batch_format="pyarrow", fn_kwargs={"cfg": tcfg})
    if tcfg.max_records is not None:
        records = select_records(records, tcfg.max_records, tcfg.seed)
    requests = records.map_batches(
        build_requests, batch_format="pyarrow",
        fn_kwargs={"cfg": tcfg, "validation_fraction": cfg.format.validation_fraction, "split_seed": cfg.format.seed},
    )
    cache = cache_url(output) if tcfg.cache else None
    if tcfg.backend == "vllm":
        generated = _vllm_generate(requests, tcfg, cache, storage_options, cfg.placement.models)
    else:
        generated = requests.map_batches(
            TeacherGenerator,
            fn_constructor_args=(tcfg, cache, storage_options),
            batch_format="pyarrow",
            batch_size=tcfg.batch_size,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=tcfg.concurrency),
            num_cpus=tcfg.num_cpus,
            num_gpus=tcfg.num_gpus or None,
            udf_modifying_row_count=False,
            **actor_pool_args(cfg.placement.models),
        )
    return generated.map_batches(finish_batch, batch_format="pyarrow", fn_kwargs={"cfg": tcfg}, udf_modifying_row_count=False)


def eligible(table: pa.Table, cfg: TeacherConfig) -> pa.Table:
    """Live records (no reject tag, when the table has tags) of a task's kinds, with text."""
    kinds = sorted({k for task in cfg.tasks.values() for k in task.kinds})
    mask = pc.and_(pc.is_in(table[S.KIND], pa.array(kinds, pa.string())), pc.invert(pc.is_null(table[S.TEXT])))
    mask = pc.and_(mask, pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(table[S.TEXT], ""))), 0))
    if S.REJECT_REASON in table.column_names:
        mask = pc.and_(mask, pc.is_null(table[S.REJECT_REASON]))
    t = table.filter(mask)
    title = t[S.TITLE] if S.TITLE in t.column_names else pa.nulls(t.num_rows, pa.string())
    return pa.table({S.ID: t[S.ID], S.SOURCE: t[S.SOURCE], S.KIND: t[S.KIND], S.TEXT: t[S.TEXT], S.TITLE: title})


# ------------------------------------------------------------------------------- max_records
def record_hash(record_id: str, seed: int) -> int:
    h = hashlib.blake2b(f"{seed}\x00teacher\x00{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1  # 63 bits: fits int64 for Arrow


def _add_hash(table: pa.Table, seed: int) -> pa.Table:
    return table.append_column(_HASH, pa.array([record_hash(i, seed) for i in table[S.ID].to_pylist()], pa.int64()))


def _smallest(table: pa.Table, k: int) -> pa.Table:
    h = table[_HASH].to_numpy()
    return pa.table({_HASH: np.sort(h)[:k]})


def _at_most(table: pa.Table, threshold: int) -> pa.Table:
    return table.filter(pc.less_equal(table[_HASH], threshold)).drop_columns([_HASH])


def select_records(records: ray.data.Dataset, k: int, seed: int) -> ray.data.Dataset:
    """The k records with the smallest hash of (seed, id): the same k however the data is split.

    Each block sends its k smallest hashes to the driver (k x blocks integers, never the rows);
    the k-th smallest overall is the threshold.
    """
    hashed = records.map_batches(_add_hash, batch_format="pyarrow", fn_kwargs={"seed": seed})
    if k == 0:
        return hashed.map_batches(_at_most, batch_format="pyarrow", fn_kwargs={"threshold": -1})
    cands = sorted(r[_HASH] for r in hashed.map_batches(_smallest, batch_format="pyarrow", batch_size=None, fn_kwargs={"k": k}).take_all())
    threshold = cands[k - 1] if len(cands) >= k else (cands[-1] if cands else -1)
    return hashed.map_batches(_at_most, batch_format="pyarrow", fn_kwargs={"threshold": threshold})


# ---------------------------------------------------------------------------------- requests
def generation_params(cfg: TeacherConfig, task: TeacherConfig.Task) -> dict:
    """Everything besides model and prompt that changes the output: part of the cache key."""
    params = {"backend": cfg.backend, "max_new_tokens": task.max_new_tokens, "response_prefix": task.response_prefix,
              "greedy": cfg.greedy}
    if not cfg.greedy:
        params.update(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed)
    return params


def render_prompt(task: TeacherConfig.Task, text: str, title: str | None, max_chars: int) -> tuple[str, str]:
    """(passage as the teacher sees it, user prompt)."""
    passage = text.strip()[:max_chars]
    return passage, task.prompt.format(text=passage, title=title or "")


def build_requests(table: pa.Table, cfg: TeacherConfig, validation_fraction: float, split_seed: int) -> pa.Table:
    rows = []
    for rid, source, kind, text, title in zip(*(table[c].to_pylist() for c in (S.ID, S.SOURCE, S.KIND, S.TEXT, S.TITLE))):
        split = split_of(split_key(kind, rid, text), validation_fraction, split_seed)  # as format/ splits the record
        for name, task in cfg.tasks.items():
            if kind not in task.kinds:
                continue
            passage, prompt = render_prompt(task, text, title, cfg.max_input_chars)
            rows.append({S.ID: f"{rid}:teacher_{name}", "task": name, S.SOURCE: source, "source_id": rid, "split": split,
                         "passage": passage, S.TITLE: title, "prompt": prompt,
                         "key": request_key(cfg.model, generation_params(cfg, task), prompt)})
    return pa.Table.from_pylist(rows, schema=REQUEST_SCHEMA)


# -------------------------------------------------------------------------------- generation
class TeacherGenerator:
    """Ray Data callable class: cached outputs where it has them, generation for the rest.

    Adds `output` (without the response prefix), `score`, `finished`, `cached` and `error` (a
    generate() failure of one micro-batch: its rows become invalid examples; errors are not cached).
    `generated` counts prompts this instance sent to the model (tests use it in-process).
    """

    def __init__(self, cfg: TeacherConfig, cache: str | None, storage_options: dict | None = None):
        self.cfg, self.cache, self.storage_options = cfg, cache, storage_options or {}
        self.index = read_index(cache, self.storage_options) if cache else {}
        self.model = self.tok = None
        self.generated = 0

    def load(self) -> None:
        """Model and tokenizer, once, on the first cache miss."""
        if self.model is not None:
            return
        import torch

        from sft_ray.models import load_model, load_tokenizer, resolve_model

        torch.set_num_threads(max(1, int(self.cfg.num_cpus)))
        path = resolve_model(self.cfg.model)
        self.device = "cuda" if self.cfg.num_gpus > 0 else "cpu"
        self.tok = load_tokenizer(path, self.cfg.trust_remote_code)
        self.tok.padding_side = "left"  # decoder-only: new tokens follow the prompt directly
        self.model = load_model(path, torch.bfloat16 if self.device == "cuda" else None, self.cfg.trust_remote_code)
        self.model.to(self.device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tok.eos_token_id}
        self.eos_ids.discard(None)
        log.info("teacher: loaded %s on %s", self.cfg.model, self.device)

    def __call__(self, table: pa.Table) -> pa.Table:
        keys, prompts, tasks = (table[c].to_pylist() for c in ("key", "prompt", "task"))
        todo: dict[str, list[tuple[str, str]]] = {}  # task -> [(key, prompt)], each key once
        seen = set()
        for k, p, t in zip(keys, prompts, tasks):
            if k not in self.index and k not in seen:
                seen.add(k)
                todo.setdefault(t, []).append((k, p))
        fresh: dict[str, tuple] = {}
        errors: dict[str, str] = {}
        for name, items in todo.items():
            self.load()
            task = self.cfg.tasks[name]
            items.sort(key=lambda kp: len(kp[1]))
            for at in range(0, len(items), self.cfg.generate_batch_size):
                chunk = items[at:at + self.cfg.generate_batch_size]
                try:
                    results = self.generate([p for _, p in chunk], task.max_new_tokens, task.response_prefix)
                except Exception as e:  # noqa: BLE001 - one bad micro-batch must not end the run
                    log.warning("teacher: generate failed for %d prompts: %s: %s", len(chunk), type(e).__name__, e)
                    errors.update({k: f"generation failed: {type(e).__name__}: {e}"[:500] for k, _ in chunk})
                    continue
                fresh.update({k: r for (k, _), r in zip(chunk, results)})
        if fresh and self.cache:
            try:
                write_entries(self.cache, [{"key": k, "output": o, "score": s, "finished": f} for k, (o, s, f) in fresh.items()],
                              self.cfg.model, self.storage_options)
            except Exception as e:  # noqa: BLE001 - a cache that cannot be written costs a rerun's time, not this run
                log.warning("teacher: could not write %d entries to the cache %s: %s: %s", len(fresh), self.cache, type(e).__name__, e)
        self.index.update(fresh)
        cols: dict[str, list] = {f.name: [] for f in GENERATED_FIELDS}
        for k in keys:
            hit = k not in seen and k in self.index
            out, score, fin = self.index.get(k, (None, None, False))
            for name, v in zip(("output", "score", "finished", "cached", "error"), (out, score, fin, hit, errors.get(k))):
                cols[name].append(v)
        for f in GENERATED_FIELDS:
            table = table.append_column(f, pa.array(cols[f.name], f.type))
        return table

    def generate(self, prompts: list[str], max_new_tokens: int, prefix: str) -> list[tuple[str, float | None, bool]]:
        """[(text, exp(mean token log-prob), finished)] for one left-padded batch."""
        import torch

        texts = [self.tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True) + prefix
                 for p in prompts]
        enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if not self.cfg.greedy:
            torch.manual_seed(self.cfg.seed)
            sampling = {"do_sample": True, "temperature": self.cfg.temperature, "top_p": self.cfg.top_p, "top_k": None}
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=max_new_tokens, return_dict_in_generate=True, output_scores=True,
                                      pad_token_id=self.tok.pad_token_id, eos_token_id=sorted(self.eos_ids), **sampling)
            logp = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True).float().cpu().numpy()
        new = out.sequences[:, enc["input_ids"].shape[1]:].cpu().numpy()
        self.generated += len(prompts)
        results = []
        for tokens, lp in zip(new, logp):
            ends = [i for i, t in enumerate(tokens) if int(t) in self.eos_ids]
            n = ends[0] if ends else len(tokens)
            scored = lp[: n + 1] if ends else lp[:n]  # the end-of-sequence decision counts too
            scored = scored[np.isfinite(scored)]
            score = float(math.exp(scored.mean())) if len(scored) else None
            results.append((self.tok.decode(tokens[:n], skip_special_tokens=True), score, bool(ends)))
        return results


# ---------------------------------------------------------------------------------- validate
def finish_batch(table: pa.Table, cfg: TeacherConfig) -> pa.Table:
    """Requests + generations -> TEACHER_SCHEMA rows: an SFT example, or an invalid one with its detail."""
    cols = {c: table[c].to_pylist() for c in ("task", "passage", S.TITLE, "prompt", "output", "score", "finished", "error")}
    messages, reasons, scores = [], [], []
    for task_name, passage, title, prompt, output, score, finished, error in zip(*cols.values()):
        task = cfg.tasks[task_name]
        full = None if output is None else task.response_prefix + output
        values, detail = (None, error) if error else validate(task, passage, full, bool(finished))
        if values is None:
            messages.append([{"role": "system", "content": f"{REASON}: {detail}"}, {"role": "user", "content": prompt},
                             {"role": "assistant", "content": full or ""}])
            reasons.append(REASON)
        else:
            fill = {"text": passage, "title": title or "", **values}
            messages.append([{"role": "user", "content": task.user.format_map(fill)},
                             {"role": "assistant", "content": task.assistant.format_map(fill)}])
            reasons.append(None)
        scores.append(None if score is None or not math.isfinite(score) else float(score))
    n = table.num_rows
    return pa.table(
        {
            S.ID: table[S.ID], "task": table["task"], "messages": pa.array(messages, TEACHER_SCHEMA.field("messages").type),
            S.SOURCE: table[S.SOURCE], "source_id": table["source_id"], "split": table["split"],
            S.REJECT_REASON: pa.array(reasons, pa.string()), S.DUPLICATE_OF: pa.nulls(n, pa.string()),
            TEACHER_SCORE: pa.array(scores, pa.float64()),
        },
        schema=TEACHER_SCHEMA,
    )


# ------------------------------------------------------------------------ vllm (not tested here)
def _lookup(table: pa.Table, index: dict) -> pa.Table:
    cols: dict[str, list] = {f.name: [] for f in GENERATED_FIELDS}
    for k in table["key"].to_pylist():
        out, score, fin = index.get(k, (None, None, False))
        for name, v in zip(("output", "score", "finished", "cached", "error"), (out, score, fin, k in index, None)):
            cols[name].append(v)
    for f in GENERATED_FIELDS:
        table = table.append_column(f, pa.array(cols[f.name], f.type))
    return table


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


def _vllm_row_score(row: dict) -> float | None:
    lps = []
    for tok, entry in zip(row.get("generated_tokens") or [], row.get("logprobs") or []):
        info = (entry or {}).get(tok) or (entry or {}).get(str(tok))
        if info and info.get("logprob") is not None and math.isfinite(info["logprob"]):
            lps.append(info["logprob"])
    return float(math.exp(sum(lps) / len(lps))) if lps else None


def _vllm_post(row: dict) -> dict:
    keep = {**{f.name: row.get(f.name) for f in REQUEST_SCHEMA}, "prompt": row["teacher_prompt"]}
    return {**keep, "output": row.get("generated_text") or "", "score": _vllm_row_score(row),
            "finished": int(row.get("num_generated_tokens") or 0) < int(row["max_new_tokens"]), "cached": False, "error": None}


def _as_generated(table: pa.Table) -> pa.Table:
    return pa.table({f.name: table[f.name].cast(f.type) for f in GENERATED_SCHEMA}, schema=GENERATED_SCHEMA)


def _store(table: pa.Table, cache: str | None, model: str, storage_options: dict) -> pa.Table:
    table = _as_generated(table)
    if cache and table.num_rows:
        rows = [{"key": k, "output": o, "score": s, "finished": f}
                for k, o, s, f in zip(*(table[c].to_pylist() for c in ("key", "output", "score", "finished")))]
        write_entries(cache, rows, model, storage_options)
    return table


def _vllm_generate(requests: ray.data.Dataset, cfg: TeacherConfig, cache: str | None, storage_options: dict,
                   selector: dict[str, str]) -> ray.data.Dataset:
    """The same requests through `ray.data.llm` (vLLM engines on GPUs); the cache is looked up on
    the driver's index and only misses reach the engines. Generation untested here: no GPU, no vllm."""
    index = read_index(cache, storage_options) if cache else {}
    looked = requests.map_batches(_lookup, batch_format="pyarrow", fn_kwargs={"index": index})
    hits = looked.filter(lambda r: r["cached"])
    misses = looked.filter(lambda r: not r["cached"]).map_batches(
        _ChatRenderer, fn_constructor_args=(cfg,), batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=1))
    generated = vllm_processor(cfg, selector)(misses).map_batches(
        _store, batch_format="pyarrow", fn_kwargs={"cache": cache, "model": cfg.model, "storage_options": storage_options})
    return hits.map_batches(_as_generated, batch_format="pyarrow").union(generated)


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
    processor = build(
        rdl.vLLMEngineProcessorConfig(
            model_source=model, engine_kwargs=dict(cfg.engine_kwargs), concurrency=cfg.concurrency, batch_size=cfg.batch_size,
            chat_template_stage=False, tokenize_stage=True, detokenize_stage=True,
        ),
        preprocess=lambda row: {**row, "teacher_prompt": row["prompt"], "prompt": row["prompt_text"],
                                "sampling_params": {**sampling, "max_tokens": int(row["max_new_tokens"]), "logprobs": 1}},
        postprocess=_vllm_post,
    )
    if selector:
        for name, stage in processor.stages.items():
            if "ray_remote_args_fn" in stage.map_batches_kwargs:
                raise ValueError(f"{name}: {UNPLACEABLE_VLLM}")
            stage.map_batches_kwargs = {**stage.map_batches_kwargs, **actor_pool_args(selector)}
    return processor
