"""Augmentation: new SFT examples derived from the formatted ones through the teacher engine.

    formatted examples --(live, train, gold/human/model, a kind's tasks; single-turn)--> (example, kind) pairs
      --(per task: the smallest hash of (seed, kind, id), at most augment.max_share x the task's examples)--> sample
      --(teacher engine: backend, cache, actor pool or vLLM; teacher.py's BACKENDS)--> rewrites
      --(validate)--> augmented examples, or rejects `augment_<why>` with the raw output kept
      --(hash shuffle on the user text: originals win)--> `augmented_duplicate` rejects

Kinds (config/augment.py): `back_translation` (a translation example src -> tgt: the teacher translates
the target back into the source language; the new example pairs that synthetic source with the
original target, Sennrich, Haddow & Birch 2016, arXiv:1511.06709), `paraphrase` (the user turn
reworded, the answer unchanged) and `follow_up` (a single-turn example + a teacher-written follow-up
question and answer: a two-turn `dialogue` example).

Every row out has `label_source: augmented`, id `<original id>:aug:<kind>`, the original's `source`,
`source_id` and split, and the tag columns (format.TAGGED_SCHEMA), so the build unions it with the
formatted examples before SFT dedup and sft/rejects/ gets the rejects with stage `augment`
(dedup/sft.py, EARLIER_STAGES). `label_confidence`: the original's for a rewritten prompt (same
target), the teacher's score for a follow-up (its answer is the teacher's).

Sample size. The cap is exact and partition-independent without collecting the candidates: each
block sends, per task, its example count and a 4096-bucket histogram of its pairs' hashes; the driver
finds the bucket holding the k-th smallest hash, and a second pass sends only that bucket's hashes
(about 1/4096 of the pairs), from which the exact threshold follows (docs/ARCHITECTURE.md, principle 4).
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import AugmentConfig, RunConfig, TeacherConfig, TeacherTaskConfig
from sft_ray.dedup.exact import first_of_runs
from sft_ray.format import TAGGED_SCHEMA
from sft_ray.format.templates import TRANSLATION, language_name, pick
from sft_ray.synthesize.cache import cache_url, request_key
from sft_ray.synthesize.parse import first_json_object, normalise
from sft_ray.synthesize.teacher import BACKENDS, generation_params
from sft_ray.dedup.partitions import by_key

STAGE = "augment"
EMPTY, IDENTICAL, TOO_LONG = "augment_empty", "augment_identical", "augment_too_long"
UNPARSEABLE, CONTENT_CHANGED, FAILED = "augment_unparseable", "augment_content_changed", "augment_failed"
DUPLICATE = "augmented_duplicate"
REASONS = (EMPTY, IDENTICAL, TOO_LONG, UNPARSEABLE, CONTENT_CHANGED, FAILED, DUPLICATE)
"""Every reject reason of this stage (dedup/sft.py routes them to stage `augment`)."""

ORIGINAL_SOURCES = (schema.GOLD, schema.HUMAN, schema.MODEL)  # what is augmented: not teacher output, not augmentations
FOLLOW_UP_TASK = "dialogue"
_BITS, _BUCKET_BITS = 63, 12  # 63-bit hashes (int64), 4096 histogram buckets
_SHIFT = _BITS - _BUCKET_BITS
_MAX = (1 << _BITS) - 1
_KEY, _ORIG = "_aug_key", "_aug_original"
FOLLOW_UP_PREFIX = '{"question": "'  # steers small models into the JSON object (as the teacher's qa task)

PROMPTS = {
    "back_translation": "Translate the following {from_lang} text into {to_lang}. Reply with the translation only.\n\n{text}",
    "paraphrase": "Rewrite the following request in different words. Keep its meaning, and copy any passage, text, options "
    "or data it contains unchanged. Reply with the rewritten request only.\n\nRequest:\n{text}",
    "follow_up": "Here is a conversation between a user and an assistant.\n\nUser: {user}\nAssistant: {assistant}\n\n"
    "Write the user's next message, a natural follow-up question, and the assistant's answer to it. Reply with JSON only: "
    "{{\"question\": \"...\", \"answer\": \"...\"}}",
}
"""The teacher's prompts per kind (`{text}`: the text rewritten; follow_up: the turns)."""


def engine_config(cfg: RunConfig) -> TeacherConfig:
    """The teacher section's engine (model, backend, batching, placement, cache) with one engine task
    per kind: the backends read a request's `task` for its budget and response prefix only."""
    a = cfg.augment
    text = {"output": "text", "user": "{text}", "assistant": "{output}", "max_new_tokens": a.max_new_tokens}
    tasks = {
        "back_translation": TeacherTaskConfig(prompt="{text}", **text),
        "paraphrase": TeacherTaskConfig(prompt="{text}", **text),
        "follow_up": TeacherTaskConfig(prompt="{text}", output="json", fields=["question", "answer"], response_prefix=FOLLOW_UP_PREFIX,
                                       user="{question}", assistant="{answer}", max_new_tokens=a.max_new_tokens),
    }
    return cfg.teacher.model_copy(update={"tasks": {k: tasks[k] for k in a.kinds}, "max_records": None})


def augmented_examples(sft: ray.data.Dataset, cfg: RunConfig, output: str, storage_options: dict,
                       num_partitions: int) -> tuple[ray.data.Dataset, dict]:
    """(augmented examples in format.TAGGED_SCHEMA, selection info for the manifest) from the
    formatted examples `sft` (TAGGED_SCHEMA, materialized: it is read four times)."""
    a = cfg.augment
    thresholds, info = sample_thresholds(sft, a)
    chosen = sft.map_batches(select, batch_format="pyarrow", fn_kwargs={"cfg": a, "thresholds": thresholds})
    engine = engine_config(cfg)
    requests = chosen.map_batches(build_requests, batch_format="pyarrow", fn_kwargs={"engine": engine})
    cache = cache_url(output) if engine.cache else None
    generated = BACKENDS[engine.backend](requests, engine, cache, storage_options, cfg.placement.models)
    made = generated.map_batches(finish_batch, batch_format="pyarrow", fn_kwargs={"cfg": a, "format_seed": cfg.format.seed},
                                 udf_modifying_row_count=False)
    return dedup_against_originals(sft, made, num_partitions), info


# ---------------------------------------------------------------------------------- candidates
def _array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One contiguous array (list kernels' parent indices and offsets are per chunk)."""
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if col.num_chunks else pa.array([], col.type)
    return col


def _turns(messages: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(single-turn mask, user content, assistant content) per row: one user and one assistant message,
    the assistant's last (system messages allowed); contents null where not single-turn."""
    messages = _array(messages)
    n = len(messages)
    flat = pc.list_flatten(messages)
    roles = pc.fill_null(pc.struct_field(flat, "role"), "").to_numpy(zero_copy_only=False)
    contents = pc.struct_field(flat, "content")
    parent = pc.list_parent_indices(messages).to_numpy()
    lengths = pc.fill_null(pc.list_value_length(messages), 0).to_numpy()
    is_user, is_assistant = roles == "user", roles == "assistant"
    ends = np.cumsum(lengths) - 1  # each row's last message in `flat`
    last = np.zeros(n, dtype=bool)
    last[lengths > 0] = is_assistant[ends[lengths > 0]]
    single = (np.bincount(parent[is_user], minlength=n) == 1) & (np.bincount(parent[is_assistant], minlength=n) == 1) & last
    out = []
    for role in (is_user, is_assistant):
        at = np.zeros(n, dtype=np.int64)
        at[parent[role]] = np.nonzero(role)[0]
        out.append(pc.take(contents, pa.array(at, mask=~single)) if n else pa.array([], pa.string()))
    return single, out[0], out[1]


def pair_hash(example_id: str, kind: str, seed: int) -> int:
    h = hashlib.blake2b(f"{seed}\x00augment\x00{kind}\x00{example_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") >> 1  # 63 bits: fits int64


def originals(table: pa.Table) -> pa.Table:
    """Live training examples whose target is not generated (gold, human, model)."""
    schema.require_columns(table, [schema.ID, "task", "messages", schema.SPLIT, schema.LABEL_SOURCE, schema.REJECT_REASON], "augment")
    mask = pc.and_(pc.is_null(table[schema.REJECT_REASON]), pc.equal(table[schema.SPLIT], schema.TRAIN))
    return table.filter(pc.and_(mask, pc.is_in(table[schema.LABEL_SOURCE], pa.array(ORIGINAL_SOURCES))))


def candidates(table: pa.Table, cfg: AugmentConfig) -> pa.Table:
    """(example, kind) pairs the sample draws from, with `kind`, `hash`, `user`, `assistant` added:
    single-turn originals of the kind's tasks whose rewritten text fits max_input_chars; back-translation
    also needs the `<record>:translation:<src>-<tgt>` id that names the languages (format/templates.py)."""
    t = originals(table)
    single, user, assistant = _turns(t["messages"])
    t = t.append_column("user", user).append_column("assistant", assistant).filter(pa.array(single))
    parts = []
    for kind in cfg.kinds:
        mask = pc.is_in(t["task"], pa.array(cfg.tasks[kind], pa.string()))
        rewritten = {"back_translation": t["assistant"], "paraphrase": t["user"]}.get(kind)
        size = pc.utf8_length(rewritten) if rewritten is not None else pc.add(pc.utf8_length(t["user"]), pc.utf8_length(t["assistant"]))
        mask = pc.and_(mask, pc.less_equal(size, cfg.max_input_chars))
        if kind == "back_translation":
            mask = pc.and_(mask, pc.match_substring_regex(t[schema.ID], r":translation:[^:]+-[^:]+$"))
        sub = t.filter(mask)
        hashes = pa.array([pair_hash(i, kind, cfg.seed) for i in sub[schema.ID].to_pylist()], pa.int64())
        parts.append(sub.append_column("kind", pa.array([kind] * sub.num_rows, pa.string())).append_column("hash", hashes))
    if not parts:
        return t.slice(0, 0).append_column("kind", pa.array([], pa.string())).append_column("hash", pa.array([], pa.int64()))
    return pa.concat_tables(parts)


# ---------------------------------------------------------------------------------- the sample
_STATS = pa.schema([pa.field("task", pa.string()), pa.field("n", pa.int64()), pa.field("hist", pa.list_(pa.int64()))])


def block_stats(table: pa.Table, cfg: AugmentConfig) -> pa.Table:
    """Per task: the block's original examples (n) and the 4096-bucket histogram of its pairs' hashes."""
    orig = originals(table)
    counts = orig.group_by("task").aggregate([([], "count_all")]) if orig.num_rows else None
    n = dict(zip(counts["task"].to_pylist(), counts["count_all"].to_pylist())) if counts is not None else {}
    pairs = candidates(table, cfg)
    rows = []
    for task in sorted(set(n) | set(pairs["task"].to_pylist())):
        h = pairs.filter(pc.equal(pairs["task"], task))["hash"].to_numpy()
        rows.append({"task": task, "n": n.get(task, 0), "hist": np.bincount(h >> _SHIFT, minlength=1 << _BUCKET_BITS).tolist()})
    return pa.Table.from_pylist(rows, schema=_STATS)


def bucket_hashes(table: pa.Table, cfg: AugmentConfig, buckets: dict[str, int]) -> pa.Table:
    """The pairs' hashes that fall in each task's boundary bucket."""
    pairs = candidates(table, cfg).select(["task", "hash"])
    want = pa.array([buckets.get(t, -1) for t in pairs["task"].to_pylist()], pa.int64())
    return pairs.filter(pc.equal(pc.shift_right(pairs["hash"], _SHIFT), want))


def sample_thresholds(sft: ray.data.Dataset, cfg: AugmentConfig) -> tuple[dict[str, int], dict]:
    """Per task, the largest pair hash in the sample (-1: none), and {task: {examples, cap, candidates}}."""
    n: dict[str, int] = {}
    hist: dict[str, np.ndarray] = {}
    for r in sft.map_batches(block_stats, batch_format="pyarrow", fn_kwargs={"cfg": cfg}).take_all():
        n[r["task"]] = n.get(r["task"], 0) + r["n"]
        hist[r["task"]] = hist.get(r["task"], 0) + np.asarray(r["hist"], np.int64)
    thresholds, buckets, below, info = {}, {}, {}, {}
    for task in sorted(n):
        cap = math.floor(cfg.max_share * n[task] + 1e-9)
        cum = np.cumsum(hist[task]) if task in hist else np.zeros(1, np.int64)
        info[task] = {"examples": n[task], "cap": cap, "candidates": int(cum[-1])}
        if cap == 0 or cum[-1] == 0:
            thresholds[task] = -1
        elif cap >= cum[-1]:
            thresholds[task] = _MAX
        else:
            b = int(np.searchsorted(cum, cap))  # first bucket whose cumulative count reaches the cap
            buckets[task], below[task] = b, int(cum[b - 1]) if b else 0
    if buckets:
        inside: dict[str, list[int]] = {}
        for r in sft.map_batches(bucket_hashes, batch_format="pyarrow", fn_kwargs={"cfg": cfg, "buckets": buckets}).take_all():
            inside.setdefault(r["task"], []).append(r["hash"])
        for task, b in buckets.items():
            thresholds[task] = sorted(inside[task])[info[task]["cap"] - below[task] - 1]
    return thresholds, info


def select(table: pa.Table, cfg: AugmentConfig, thresholds: dict[str, int]) -> pa.Table:
    """The block's pairs in the sample (hash at most its task's threshold)."""
    pairs = candidates(table, cfg)
    limit = pa.array([thresholds.get(t, -1) for t in pairs["task"].to_pylist()], pa.int64())
    return pairs.filter(pc.less_equal(pairs["hash"], limit))


# ---------------------------------------------------------------------------------- requests
def _languages(example_id: str) -> tuple[str, str]:
    src, tgt = example_id.rsplit(":", 1)[1].split("-", 1)
    return src, tgt


def build_requests(table: pa.Table, engine: TeacherConfig) -> pa.Table:
    """Sampled pairs -> TEACHER_REQUEST_SCHEMA rows. `passage` carries the original example (JSON) and
    the text rewritten, which the backends pass through untouched to finish_batch."""
    rows = []
    cols = (schema.ID, "task", "kind", "messages", schema.SOURCE, "source_id", schema.SPLIT, schema.LABEL_CONFIDENCE, "user", "assistant")
    for eid, task, kind, messages, source, source_id, split, conf, user, assistant in zip(*(table[c].to_pylist() for c in cols)):
        if kind == "back_translation":
            src, tgt = _languages(eid)
            rewritten = assistant
            prompt = PROMPTS[kind].format(from_lang=language_name(tgt), to_lang=language_name(src), text=assistant)
        elif kind == "paraphrase":
            rewritten, prompt = user, PROMPTS[kind].format(text=user)
        else:
            rewritten, prompt = f"{user}\n{assistant}", PROMPTS[kind].format(user=user, assistant=assistant)
        passage = json.dumps({"id": eid, "task": task, "messages": messages, "label_confidence": conf, "text": rewritten}, ensure_ascii=False)
        rows.append({schema.ID: f"{eid}:aug:{kind}", "task": kind, schema.SOURCE: source, "source_id": source_id, schema.SPLIT: split,
                     "passage": passage, schema.TITLE: None, "prompt": prompt,
                     "key": request_key(engine.model, generation_params(engine, engine.tasks[kind]), prompt)})
    return pa.Table.from_pylist(rows, schema=schema.TEACHER_REQUEST_SCHEMA)


# ---------------------------------------------------------------------------------- validate
def _kept(text: str, rewrite: str, keep_chars: int) -> bool:
    """Every paragraph of `text` at least keep_chars long reappears in `rewrite` (normalised)."""
    target = normalise(rewrite)
    return all(normalise(p) in target for p in text.split("\n\n") if len(p.strip()) >= keep_chars)


def check(kind: str, orig: dict, output: str | None, finished: bool, cfg: AugmentConfig) -> tuple[dict | None, str | None, str]:
    """(fields, None, "") for a usable generation, else (None, reason, detail)."""
    if output is None or not output.strip():
        return None, EMPTY, "empty output"
    if not finished:
        return None, TOO_LONG, f"no end of sequence within augment.max_new_tokens={cfg.max_new_tokens}"
    source = orig["text"]
    if kind == "follow_up":
        obj, why = first_json_object(output)
        if obj is None:
            return None, UNPARSEABLE, why
        values = {}
        for name in ("question", "answer"):
            v = obj.get(name)
            if not isinstance(v, str):
                return None, UNPARSEABLE, f"field {name!r} missing or not a string"
            if not v.strip():
                return None, EMPTY, f"field {name!r} is empty"
            values[name] = v.strip()
        if normalise(values["question"]) == normalise(_user(orig["messages"])):
            return None, IDENTICAL, "the follow-up repeats the question"
        return values, None, ""
    text = output.strip()
    if len(text) > cfg.max_length_ratio * len(source) + 20:
        return None, TOO_LONG, f"{len(text)} characters for {len(source)} rewritten (augment.max_length_ratio={cfg.max_length_ratio})"
    if normalise(text) == normalise(source):
        return None, IDENTICAL, "the rewrite equals the original"
    if kind == "back_translation" and normalise(source) and normalise(source) in normalise(text):
        # SmolLM2-135M often quotes the text instead of translating it (README.md, "Measured": the augmentation run)
        return None, IDENTICAL, "the back-translation copies the text it translates"
    if kind == "paraphrase" and not _kept(source, text, cfg.keep_chars):
        return None, CONTENT_CHANGED, f"a paragraph of at least {cfg.keep_chars} characters was not kept"
    return {"text": text}, None, ""


def new_messages(kind: str, orig: dict, values: dict, format_seed: int) -> list[dict]:
    messages = [dict(m) for m in orig["messages"]]
    if kind == "follow_up":
        return messages + [{"role": "user", "content": values["question"]}, {"role": "assistant", "content": values["answer"]}]
    at = next(i for i, m in enumerate(messages) if m["role"] == "user")
    if kind == "paraphrase":
        messages[at]["content"] = values["text"]
    else:  # back-translation: the synthetic source in a translation template, the original target as the answer
        src, tgt = _languages(orig["id"])
        text = values["text"]
        template = pick(TRANSLATION, f"{src}-{tgt}\x00{text}", "translation", format_seed)
        messages[at]["content"] = template.format(src_lang=language_name(src), tgt_lang=language_name(tgt), text=text)
    return messages


def _user(messages: list[dict]) -> str:
    return next(m["content"] for m in messages if m["role"] == "user")


def finish_batch(table: pa.Table, cfg: AugmentConfig, format_seed: int) -> pa.Table:
    """Requests + generations -> TAGGED_SCHEMA rows: an augmented example, or a reject that keeps the
    prompt and the raw output (messages = [system: "<reason>: <detail>", user: prompt, assistant: output])."""
    cols = (schema.ID, "task", "passage", "prompt", "output", "score", "finished", "error", schema.SOURCE, "source_id", schema.SPLIT)
    rows = []
    for eid, kind, passage, prompt, output, score, finished, error, source, source_id, split in zip(*(table[c].to_pylist() for c in cols)):
        orig = json.loads(passage)
        full = None if output is None else (FOLLOW_UP_PREFIX if kind == "follow_up" else "") + output
        if error:
            values, reason, detail = None, FAILED, error
        elif output is None or not output.strip():  # nothing generated after the response prefix
            values, reason, detail = None, EMPTY, "empty output"
        else:
            values, reason, detail = check(kind, orig, full, bool(finished), cfg)
        score = None if score is None or not math.isfinite(score) else float(score)
        if values is None:
            messages = [{"role": "system", "content": f"{reason}: {detail}"}, {"role": "user", "content": prompt},
                        {"role": "assistant", "content": full or ""}]
        else:
            messages = new_messages(kind, orig, values, format_seed)
            if kind != "follow_up" and normalise(_user(messages)) == normalise(_user(orig["messages"])):  # e.g. back to the original source
                values, reason = None, IDENTICAL
                messages = [{"role": "system", "content": f"{reason}: the new user turn equals the original's"},
                            {"role": "user", "content": prompt}, {"role": "assistant", "content": full or ""}]
        rows.append({schema.ID: eid, "task": FOLLOW_UP_TASK if kind == "follow_up" else orig["task"], "messages": messages,
                     schema.SOURCE: source, "source_id": source_id, schema.SPLIT: split, schema.LABEL_SOURCE: schema.AUGMENTED,
                     schema.LABEL_CONFIDENCE: score if kind == "follow_up" else orig["label_confidence"],
                     schema.REJECT_REASON: reason, schema.DUPLICATE_OF: None})
    return pa.Table.from_pylist(rows, schema=TAGGED_SCHEMA)


# ---------------------------------------------------------------------------------- dedup
_DEDUP_SCHEMA = pa.schema([*(f.with_nullable(True) for f in TAGGED_SCHEMA), pa.field(_KEY, pa.string()), pa.field(_ORIG, pa.bool_())])


def user_keys(messages: pa.Array) -> list[str]:
    """Per conversation: blake2b of its user turns joined, NFKC, casefolded, punctuation and symbols
    removed, whitespace collapsed (the normalisation of synthesize/parse.py, vectorised)."""
    messages = _array(messages)
    n = len(messages)
    flat = pc.list_flatten(messages)
    is_user = pc.equal(pc.struct_field(flat, "role"), "user")
    parent = pc.list_parent_indices(messages).filter(is_user).to_numpy()
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parent, minlength=n))]).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), pc.fill_null(pc.struct_field(flat, "content").filter(is_user), "")), "\n")
    text = pc.utf8_lower(pc.utf8_normalize(joined, "NFKC"))
    text = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.replace_substring_regex(text, r"[\pP\pS]+", " "), r"\s+", " "))
    return [hashlib.blake2b(t.encode("utf-8"), digest_size=16).hexdigest() for t in text.to_pylist()]


def _keyed(table: pa.Table, original: bool) -> pa.Table:
    """Originals: live examples, only id and key travel; augmented: every row, rejected ones under a unique key."""
    if original:
        table = table.filter(pc.is_null(table[schema.REJECT_REASON]))
        keys = user_keys(table["messages"])
        cols = {f.name: pa.nulls(table.num_rows, f.type) for f in TAGGED_SCHEMA}
        cols[schema.ID] = table[schema.ID]
    else:
        live = pc.is_null(table[schema.REJECT_REASON]).to_pylist()
        keys = [k if ok else f"rejected\x00{i}" for k, ok, i in zip(user_keys(table["messages"]), live, table[schema.ID].to_pylist())]
        cols = {f.name: table[f.name] for f in TAGGED_SCHEMA}
    cols[_KEY], cols[_ORIG] = pa.array(keys, pa.string()), pa.array([original] * table.num_rows, pa.bool_())
    return pa.table(cols, schema=_DEDUP_SCHEMA)


def mark_duplicates(part: pa.Table) -> pa.Table:
    """One hash partition: per user-text key, an original first (then the smallest id); every
    augmented example after the first is `augmented_duplicate` of it. Returns the augmented rows."""
    part = part.sort_by([(_KEY, "ascending"), (_ORIG, "descending"), (schema.ID, "ascending")])
    first, dup_of = first_of_runs(part[_KEY].to_numpy(zero_copy_only=False), part[schema.ID].to_numpy(zero_copy_only=False))
    dup = pa.array(~first)
    part = part.set_column(part.schema.get_field_index(schema.REJECT_REASON), schema.REJECT_REASON,
                           pc.if_else(dup, pa.scalar(DUPLICATE), part[schema.REJECT_REASON]))
    part = part.set_column(part.schema.get_field_index(schema.DUPLICATE_OF), schema.DUPLICATE_OF,
                           pc.if_else(dup, pa.array(dup_of.tolist(), pa.string()), part[schema.DUPLICATE_OF]))
    return part.filter(pc.invert(part[_ORIG])).select(TAGGED_SCHEMA.names).cast(TAGGED_SCHEMA)


def dedup_against_originals(sft: ray.data.Dataset, augmented: ray.data.Dataset, num_partitions: int) -> ray.data.Dataset:
    """Augmented examples (TAGGED_SCHEMA) with `augmented_duplicate` where their user text equals an
    original's or an earlier augmented one's: a hash shuffle on the key, so the survivor does not
    depend on partitioning (docs/ARCHITECTURE.md, principle 4). Nothing is dropped here."""
    keyed = sft.map_batches(_keyed, batch_format="pyarrow", fn_kwargs={"original": True}).union(
        augmented.map_batches(_keyed, batch_format="pyarrow", fn_kwargs={"original": False}))
    return by_key(keyed, num_partitions, [_KEY]).map_batches(mark_duplicates, batch_format="pyarrow", batch_size=None)


# ---------------------------------------------------------------------------------- manifest
def kind_of(example_id: str) -> str:
    return example_id.rsplit(":aug:", 1)[-1]


def augment_counts_batch(table: pa.Table) -> pa.Table:
    """Ray Data UDF: (task, kind, reason, n) of a batch's augmented examples (reason null: kept)."""
    t = table.filter(pc.equal(table[schema.LABEL_SOURCE], schema.AUGMENTED))
    kinds = pa.array([kind_of(i) for i in t[schema.ID].to_pylist()], pa.string())
    t = pa.table({"task": t["task"], "kind": kinds, "reason": t[schema.REJECT_REASON]})
    g = t.group_by(["task", "kind", "reason"], use_threads=False).aggregate([([], "count_all")])
    return pa.table({"task": g["task"], "kind": g["kind"], "reason": g["reason"], "n": g["count_all"].cast(pa.int64())})


def augment_summary(sft: ray.data.Dataset, info: dict) -> dict:
    """The manifest's `augment`: kept examples per kind and per task, rejects per reason (invalid
    generations, `augmented_duplicate`, and later SFT dedup), and the sample per original task."""
    out = {"kept": 0, "by_kind": {}, "by_task": {}, "rejected": {}, "sample": info}
    for r in sft.map_batches(augment_counts_batch, batch_format="pyarrow").take_all():
        if r["reason"] is None:
            out["kept"] += r["n"]
            for key, name in (("by_kind", r["kind"]), ("by_task", r["task"])):
                out[key][name] = out[key].get(name, 0) + r["n"]
        else:
            out["rejected"][r["reason"]] = out["rejected"].get(r["reason"], 0) + r["n"]
    for key in ("by_kind", "by_task", "rejected"):
        out[key] = dict(sorted(out[key].items()))
    return out
