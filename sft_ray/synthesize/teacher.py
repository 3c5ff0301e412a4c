"""The teacher stage: an instruct model writes the target for tasks the data has none for.

    curated records --(live, kinds, text; max_records by hash)--> requests (task prompt, cache key, split)
      --(backend: cache lookup, generation of the misses)--> raw outputs + score
      --(parse + validate, parse.py)--> SFT examples; failures -> `invalid_teacher_output`

Entry point: `teacher_examples(curated, cfg, output, storage_options)`; the build decides whether
to call it (`cfg.teacher.enabled`). Its rows are `schema.TEACHER_SCHEMA`: the columns of
`SFT_SCHEMA` plus `reject_reason` (null, or `invalid_teacher_output`), `duplicate_of` (always null)
and `teacher_score`, ready for SFT dedup and the sft/ writers. Example ids are
`<record id>:teacher_<task>`; the split is the record's `split` column (assigned by the build, see
format/split.py), so a record's teacher examples sit on the same side as its format examples.

Backends (`teacher.backend`) turn requests into outputs and share the cache (cache.py):
`transformers` (transformers_backend.py, an actor pool, CPU or GPU) and `vllm` (vllm_backend.py,
Ray Data's LLM processor on GPU clusters). `teacher_score` (exp(mean token log-prob)) is a tag:
nothing is rejected on it here.

Invalid outputs keep everything: `messages` = [system: "invalid_teacher_output: <detail>",
user: the teacher prompt, assistant: the raw output (with the response prefix)], so the reason's
detail travels with the example to sft/rejects/.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import RunConfig, TeacherConfig, TeacherTaskConfig
from sft_ray.synthesize import transformers_backend, vllm_backend
from sft_ray.synthesize.cache import cache_url, request_key
from sft_ray.synthesize.parse import validate

REASON = "invalid_teacher_output"
BACKENDS = {"transformers": transformers_backend.generate, "vllm": vllm_backend.generate}
_HASH = "_teacher_hash"


def teacher_examples(curated: ray.data.Dataset, cfg: RunConfig, output: str, storage_options: dict) -> ray.data.Dataset:
    """Teacher-written SFT examples (TEACHER_SCHEMA) for the live curated records of the tasks' kinds.

    One row per (record, task) request: valid examples and `invalid_teacher_output` ones alike, so
    requests in = rows out. `curated` carries the `split` column. Pass a materialized `curated` when
    `max_records` is set (it is read twice).
    """
    tcfg = cfg.teacher
    records = curated.map_batches(eligible, batch_format="pyarrow", fn_kwargs={"cfg": tcfg})
    if tcfg.max_records is not None:
        records = select_records(records, tcfg.max_records, tcfg.seed)
    requests = records.map_batches(build_requests, batch_format="pyarrow", fn_kwargs={"cfg": tcfg})
    cache = cache_url(output) if tcfg.cache else None
    generated = BACKENDS[tcfg.backend](requests, tcfg, cache, storage_options, cfg.placement.models)
    return generated.map_batches(finish_batch, batch_format="pyarrow", fn_kwargs={"cfg": tcfg}, udf_modifying_row_count=False)


def eligible(table: pa.Table, cfg: TeacherConfig) -> pa.Table:
    """Live records (no reject tag, when the table has tags) of a task's kinds, with text."""
    schema.require_columns(table, [schema.ID, schema.SOURCE, schema.KIND, schema.TEXT, schema.SPLIT], "teacher")
    kinds = sorted({k for task in cfg.tasks.values() for k in task.kinds})
    mask = pc.and_(pc.is_in(table[schema.KIND], pa.array(kinds, pa.string())), pc.invert(pc.is_null(table[schema.TEXT])))
    mask = pc.and_(mask, pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(table[schema.TEXT], ""))), 0))
    if schema.REJECT_REASON in table.column_names:
        mask = pc.and_(mask, pc.is_null(table[schema.REJECT_REASON]))
    t = table.filter(mask)
    title = t[schema.TITLE] if schema.TITLE in t.column_names else pa.nulls(t.num_rows, pa.string())
    return pa.table({schema.ID: t[schema.ID], schema.SOURCE: t[schema.SOURCE], schema.KIND: t[schema.KIND], schema.TEXT: t[schema.TEXT], schema.TITLE: title, schema.SPLIT: t[schema.SPLIT]})


# ------------------------------------------------------------------------------- max_records
def record_hash(record_id: str, seed: int) -> int:
    h = hashlib.blake2b(f"{seed}\x00teacher\x00{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1  # 63 bits: fits int64 for Arrow


def _add_hash(table: pa.Table, seed: int) -> pa.Table:
    return table.append_column(_HASH, pa.array([record_hash(i, seed) for i in table[schema.ID].to_pylist()], pa.int64()))


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
def generation_params(cfg: TeacherConfig, task: TeacherTaskConfig) -> dict:
    """Everything besides model and prompt that changes the output: part of the cache key."""
    params = {"backend": cfg.backend, "max_new_tokens": task.max_new_tokens, "response_prefix": task.response_prefix,
              "greedy": cfg.greedy}
    if not cfg.greedy:
        params.update(temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed)
    return params


def render_prompt(task: TeacherTaskConfig, text: str, title: str | None, max_chars: int) -> tuple[str, str]:
    """(passage as the teacher sees it, user prompt)."""
    passage = text.strip()[:max_chars]
    return passage, task.prompt.format(text=passage, title=title or "")


def build_requests(table: pa.Table, cfg: TeacherConfig) -> pa.Table:
    """Eligible records (id, source, kind, text, title, split) -> TEACHER_REQUEST_SCHEMA rows, one per (record, task)."""
    rows = []
    for rid, source, kind, text, title, split in zip(*(table[c].to_pylist() for c in (schema.ID, schema.SOURCE, schema.KIND, schema.TEXT, schema.TITLE, schema.SPLIT))):
        if split is None:
            raise ValueError(f"teacher: record {rid} has no split (the build assigns it after dedup: format/split.py assign_split)")
        for name, task in cfg.tasks.items():
            if kind not in task.kinds:
                continue
            passage, prompt = render_prompt(task, text, title, cfg.max_input_chars)
            rows.append({schema.ID: f"{rid}:teacher_{name}", "task": name, schema.SOURCE: source, "source_id": rid, schema.SPLIT: split,
                         "passage": passage, schema.TITLE: title, "prompt": prompt,
                         "key": request_key(cfg.model, generation_params(cfg, task), prompt)})
    return pa.Table.from_pylist(rows, schema=schema.TEACHER_REQUEST_SCHEMA)


# ---------------------------------------------------------------------------------- validate
def finish_batch(table: pa.Table, cfg: TeacherConfig) -> pa.Table:
    """Requests + generations -> TEACHER_SCHEMA rows: an SFT example, or an invalid one with its detail."""
    cols = {c: table[c].to_pylist() for c in ("task", "passage", schema.TITLE, "prompt", "output", "score", "finished", "error")}
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
            schema.ID: table[schema.ID], "task": table["task"], "messages": pa.array(messages, schema.TEACHER_SCHEMA.field("messages").type),
            schema.SOURCE: table[schema.SOURCE], "source_id": table["source_id"], schema.SPLIT: table[schema.SPLIT],
            schema.LABEL_SOURCE: pa.array([schema.TEACHER] * n, pa.string()), schema.LABEL_CONFIDENCE: pa.array(scores, pa.float64()),
            schema.REJECT_REASON: pa.array(reasons, pa.string()), schema.DUPLICATE_OF: pa.nulls(n, pa.string()),
            schema.TEACHER_SCORE: pa.array(scores, pa.float64()),
        },
        schema=schema.TEACHER_SCHEMA,
    )
