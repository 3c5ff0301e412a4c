"""Augmentation through the teacher engine (sft_ray/synthesize/augment.py): the sample (cap, determinism,
partition independence), validation of generations into named rejects, dedup against the originals
(originals win), and the engine with a random tiny Llama on CPU (gibberish out: every augmentation a
reject with its reason, nothing lost) inside a build."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from sft_ray import schema
from sft_ray.build import build_sft_data
from sft_ray.config import AugmentConfig, RunConfig
from sft_ray.dedup.sft import EARLIER_STAGES
from sft_ray.format import TAGGED_SCHEMA, format_batch
from sft_ray.format.split import assign_split
from sft_ray.synthesize import augment as A
from sft_ray.synthesize.cache import cache_stats, cache_url
from sft_ray.synthesize.transformers_backend import TeacherGenerator
from tests.conftest import DEMO_DATA

PASSAGE = ("The Eiffel Tower in Paris was completed in 1889 for the World's Fair and was the tallest man-made structure "
           "in the world for forty-one years.")


def _records(n_pairs=10, n_qa=10, validation_fraction=0.1):
    rows = [{schema.ID: f"t{i}", schema.SOURCE: "wmt", schema.KIND: "translation", schema.SRC_TEXT: f"Hello number {i}",
             schema.TGT_TEXT: f"Hallo Nummer {i}", schema.SRC_LANG: "en", schema.TGT_LANG: "de"} for i in range(n_pairs)]
    rows += [{schema.ID: f"q{i}", schema.SOURCE: "squad", schema.KIND: "qa", schema.TEXT: f"{PASSAGE} Item {i}.",
              schema.QUESTION: f"When was item {i} completed?", schema.ANSWER: "1889"} for i in range(n_qa)]
    return assign_split(schema.records_from_rows(rows), validation_fraction, 0)


def _examples(**kw) -> pa.Table:
    return format_batch(_records(**kw), RunConfig().format, {})


# ---------------------------------------------------------------------------------- config
def test_config_is_off_by_default_and_validated():
    cfg = RunConfig()
    assert cfg.augment.enabled is False and cfg.augment.max_share == 0.2
    assert set(cfg.augment.kinds) == {"back_translation", "paraphrase", "follow_up"}
    with pytest.raises(ValidationError, match="needs a teacher model"):
        RunConfig.model_validate({"augment": {"enabled": True}, "teacher": {"model": " "}})
    with pytest.raises(ValidationError, match="needs format.enabled"):
        RunConfig.model_validate({"augment": {"enabled": True}, "format": {"enabled": False}})
    with pytest.raises(ValidationError, match="translation task only"):
        AugmentConfig(tasks={"back_translation": ["qa"], "paraphrase": ["qa"], "follow_up": ["qa"]})
    with pytest.raises(ValidationError, match="no tasks for an enabled kind"):
        AugmentConfig(kinds=["paraphrase"], tasks={"paraphrase": []})
    with pytest.raises(ValidationError):
        AugmentConfig(max_share=0)
    with pytest.raises(ValidationError):
        AugmentConfig(kinds=["summarise"])
    assert RunConfig.model_validate({"augment": {"enabled": True}}).augment.enabled  # teacher.model has a default
    assert set(A.REASONS) <= {r for r, stage in EARLIER_STAGES.items() if stage == A.STAGE}  # routed to stage `augment`


# ---------------------------------------------------------------------------------- candidates
def test_candidates_are_live_single_turn_training_originals():
    ex = _examples()
    cfg = AugmentConfig()
    pairs = A.candidates(ex, cfg)
    train = [r for r in ex.to_pylist() if r[schema.SPLIT] == schema.TRAIN]
    by = {(r["task"], r["kind"]) for r in pairs.to_pylist()}
    assert by == {("translation", "back_translation"), ("qa", "paraphrase"), ("qa", "follow_up")}
    assert pairs.num_rows == sum(1 if r["task"] == "translation" else 2 for r in train)
    assert set(pairs[schema.SPLIT].to_pylist()) == {schema.TRAIN}
    row = next(r for r in pairs.to_pylist() if r["task"] == "qa")
    assert row["user"] == row["messages"][0]["content"] and row["assistant"] == "1889"
    # rejected, generated (teacher / augmented) and multi-turn examples are not augmented
    first = ex.to_pylist()[0]
    others = [{**first, schema.ID: "x1", schema.REJECT_REASON: "task_mix"}, {**first, schema.ID: "x2", schema.LABEL_SOURCE: schema.TEACHER},
              {**first, schema.ID: "x3", schema.LABEL_SOURCE: schema.AUGMENTED},
              {**first, schema.ID: "x4", "task": "qa", "messages": first["messages"] * 2}]
    assert A.candidates(pa.Table.from_pylist(others, schema=TAGGED_SCHEMA), cfg).num_rows == 0
    small = A.candidates(ex, AugmentConfig(max_input_chars=20))
    assert set(small["task"].to_pylist()) == {"translation"}  # qa user turns are longer than 20 characters


# ---------------------------------------------------------------------------------- validation
class Scripted(TeacherGenerator):
    """A teacher engine that answers from a script ((substrings all in the prompt), (output, score, finished));
    an empty output where nothing matches."""

    script: list[tuple[tuple[str, ...], tuple]] = []

    def load(self):
        self.model = "scripted"

    def generate(self, prompts, max_new_tokens, prefix):
        out = []
        for p in prompts:
            if "FAIL" in p:
                raise RuntimeError("CUDA out of memory")
            out.append(next((r for subs, r in self.script if all(x in p for x in subs)), ("", None, True)))
        return out


def _run_scripted(tmp_path, pairs: pa.Table, script, cfg: RunConfig | None = None) -> dict[str, dict]:
    cfg = cfg or RunConfig()
    engine = A.engine_config(cfg).model_copy(update={"generate_batch_size": 1})
    gen = Scripted(engine, cache_url(str(tmp_path)))
    gen.script = script
    req = A.build_requests(pairs, engine)
    out = A.finish_batch(gen(req), cfg.augment, cfg.format.seed)
    assert out.schema == TAGGED_SCHEMA and out.num_rows == req.num_rows
    return {r[schema.ID]: r for r in out.to_pylist()}


def _pair(pairs: pa.Table, example_id: str, kind: str) -> pa.Table:
    return pa.Table.from_pylist([r for r in pairs.to_pylist() if r[schema.ID] == example_id and r["kind"] == kind], schema=pairs.schema)


def test_generations_become_examples_or_named_rejects(tmp_path):
    pairs = A.candidates(_examples(validation_fraction=0.0), AugmentConfig())
    pick = [("t1:translation:en-de", "back_translation"), ("t2:translation:de-en", "back_translation"), ("t3:translation:en-de", "back_translation"),
            ("t4:translation:en-de", "back_translation"), ("t5:translation:en-de", "back_translation"), ("q1:qa", "paraphrase"), ("q2:qa", "paraphrase"), ("q3:qa", "paraphrase"),
            ("q1:qa", "follow_up"), ("q2:qa", "follow_up"), ("q3:qa", "follow_up"), ("q4:qa", "follow_up"), ("q5:qa", "paraphrase")]
    chosen = pa.concat_tables([_pair(pairs, i, k) for i, k in pick])
    q1 = next(r["user"] for r in chosen.to_pylist() if r[schema.ID] == "q1:qa")
    reworded = q1.replace("When was item 1 completed?", "At what date was item 1 finished?").replace(
        "when was item 1 completed?", "at what date was item 1 finished?")
    assert reworded != q1
    bt, para, fu = "Reply with the translation only.", "Rewrite the following request", "Here is a conversation"
    script = [
        ((bt, "Hallo Nummer 1"), ("Hi, number one", 0.5, True)),         # valid back-translation
        ((bt, "Hello number 2"), ("Hallo Nummer 2", 0.5, True)),         # back to the original source: the same example
        ((bt, "Hallo Nummer 3"), ("Hi " * 40, 0.5, True)),               # too long
        ((bt, "Hallo Nummer 4"), ("Hello number", 0.5, False)),          # no end of sequence
        ((bt, "Hallo Nummer 5"), ('The German text is: "Hallo Nummer 5".', 0.5, True)),  # quotes instead of translating
        ((para, "item 1 completed"), (reworded, 0.4, True)),
        ((para, "item 2 completed"), ("When was item 2 done?", 0.4, True)),  # the passage is gone
        ((para, "item 3 completed"), ("", None, True)),                  # empty
        ((fu, "item 1 completed"), ('Who built it?", "answer": "Gustave Eiffel\'s company."}', 0.3, True)),
    ]
    rows = _run_scripted(tmp_path, chosen, script)
    assert all(r[schema.LABEL_SOURCE] == schema.AUGMENTED for r in rows.values())
    ok = rows["t1:translation:en-de:aug:back_translation"]
    assert ok[schema.REJECT_REASON] is None and ok["task"] == "translation" and ok["source_id"] == "t1"
    assert ok["messages"][-1]["content"] == "Hallo Nummer 1" and "Hi, number one" in ok["messages"][0]["content"]
    assert "German" in ok["messages"][0]["content"] and ok[schema.LABEL_CONFIDENCE] is None  # gold target: no confidence
    assert rows["t2:translation:de-en:aug:back_translation"][schema.REJECT_REASON] == A.IDENTICAL
    assert rows["t3:translation:en-de:aug:back_translation"][schema.REJECT_REASON] == A.TOO_LONG
    assert rows["t4:translation:en-de:aug:back_translation"][schema.REJECT_REASON] == A.TOO_LONG
    assert rows["t5:translation:en-de:aug:back_translation"][schema.REJECT_REASON] == A.IDENTICAL
    para = rows["q1:qa:aug:paraphrase"]
    assert para[schema.REJECT_REASON] is None and para["messages"][0]["content"] == reworded
    assert para["messages"][1]["content"] == "1889" and para["task"] == "qa"
    assert rows["q2:qa:aug:paraphrase"][schema.REJECT_REASON] == A.CONTENT_CHANGED
    assert rows["q3:qa:aug:paraphrase"][schema.REJECT_REASON] == A.EMPTY
    fu = rows["q1:qa:aug:follow_up"]
    assert fu[schema.REJECT_REASON] is None and fu["task"] == "dialogue" and fu[schema.LABEL_CONFIDENCE] == 0.3
    assert [m["role"] for m in fu["messages"]] == ["user", "assistant", "user", "assistant"]
    assert fu["messages"][2:] == [{"role": "user", "content": "Who built it?"}, {"role": "assistant", "content": "Gustave Eiffel's company."}]
    bad = rows["q2:qa:aug:follow_up"]  # the script's default: an empty output
    assert bad[schema.REJECT_REASON] == A.EMPTY and bad["messages"][0]["content"].startswith(A.EMPTY + ": ")
    assert bad["messages"][2]["content"] == A.FOLLOW_UP_PREFIX  # the raw output (with the response prefix) is kept
    assert all(r["messages"][1]["role"] == "user" for r in rows.values() if r[schema.REJECT_REASON])  # the prompt is kept


@pytest.mark.parametrize("output, reason", [
    ('Who built it?", "answer": "The company of Eiffel."}', None),
    ("no json here", A.UNPARSEABLE),
    ('x", "answer": 3}', A.UNPARSEABLE),
    ('x", "answer": "  "}', A.EMPTY),
    ('When was item 0 completed?", "answer": "1889"}', A.IDENTICAL),
])
def test_follow_up_checks(output, reason):
    orig = {"id": "q0:qa", "messages": [{"role": "user", "content": "When was item 0 completed?"}, {"role": "assistant", "content": "1889"}],
            "text": "When was item 0 completed?\n1889"}
    assert A.check("follow_up", orig, A.FOLLOW_UP_PREFIX + output, True, AugmentConfig())[1] == reason


def test_a_failed_generation_is_a_reject_not_an_exception(tmp_path):
    ex = _examples(validation_fraction=0.0)
    msgs = ex["messages"].to_pylist()
    qa = next(i for i, t in enumerate(ex["task"].to_pylist()) if t == "qa")
    msgs[qa][0]["content"] = "FAIL " + msgs[qa][0]["content"]
    ex = ex.set_column(ex.schema.get_field_index("messages"), "messages", pa.array(msgs, TAGGED_SCHEMA.field("messages").type))
    pairs = A.candidates(ex.slice(qa, 1), AugmentConfig(kinds=["paraphrase"]))
    rows = _run_scripted(tmp_path, pairs, [])
    assert [r[schema.REJECT_REASON] for r in rows.values()] == [A.FAILED]
    assert "CUDA out of memory" in next(iter(rows.values()))["messages"][0]["content"]


# ---------------------------------------------------------------------------------- dedup
def _aug(example_id, user, reason=None):
    return {schema.ID: example_id, "task": "qa", "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": "a"}],
            schema.SOURCE: "s", "source_id": example_id.split(":")[0], schema.SPLIT: schema.TRAIN, schema.LABEL_SOURCE: schema.AUGMENTED,
            schema.LABEL_CONFIDENCE: None, schema.REJECT_REASON: reason, schema.DUPLICATE_OF: None}


def test_user_keys_normalise_case_punctuation_and_space():
    msgs = pa.array([[{"role": "user", "content": "Hello,   World!"}, {"role": "assistant", "content": "x"}],
                     [{"role": "system", "content": "s"}, {"role": "user", "content": "hello world"}, {"role": "assistant", "content": "y"}],
                     [{"role": "user", "content": "hello world"}, {"role": "assistant", "content": "y"}, {"role": "user", "content": "more"}],
                     []], TAGGED_SCHEMA.field("messages").type)
    k = A.user_keys(msgs)
    assert k[0] == k[1] and k[2] != k[0] and len(set(k)) == 3


def test_duplicates_of_originals_lose_and_originals_always_win(ray_local):
    originals = pa.Table.from_pylist([{**_aug("z9:qa", "What is the capital?"), schema.LABEL_SOURCE: schema.GOLD},
                                      {**_aug("z8:qa", "Dropped original", reason="task_mix"), schema.LABEL_SOURCE: schema.GOLD}],
                                     schema=TAGGED_SCHEMA)
    augmented = pa.Table.from_pylist([
        _aug("a1:qa:aug:paraphrase", "what is the CAPITAL"),      # = an original (smaller id than the original: still loses)
        _aug("b2:qa:aug:paraphrase", "Name the capital city."),
        _aug("b1:qa:aug:paraphrase", "name the capital city"),   # two augmented: the smaller id survives
        _aug("c1:qa:aug:paraphrase", "Dropped original"),         # a rejected original does not count
        _aug("d1:qa:aug:paraphrase", "What is the capital?", reason=A.EMPTY),  # already rejected: passes through
    ], schema=TAGGED_SCHEMA)
    ds = A.dedup_against_originals(ray_local.data.from_arrow([originals]), ray_local.data.from_arrow([augmented.slice(0, 2), augmented.slice(2)]), 3)
    rows = {r[schema.ID]: r for r in ds.take_all()}
    assert set(rows) == set(augmented[schema.ID].to_pylist())  # only augmented rows come back, none lost
    assert (rows["a1:qa:aug:paraphrase"][schema.REJECT_REASON], rows["a1:qa:aug:paraphrase"][schema.DUPLICATE_OF]) == (A.DUPLICATE, "z9:qa")
    assert rows["b1:qa:aug:paraphrase"][schema.REJECT_REASON] is None
    assert (rows["b2:qa:aug:paraphrase"][schema.REJECT_REASON], rows["b2:qa:aug:paraphrase"][schema.DUPLICATE_OF]) == (A.DUPLICATE, "b1:qa:aug:paraphrase")
    assert rows["c1:qa:aug:paraphrase"][schema.REJECT_REASON] is None
    assert rows["d1:qa:aug:paraphrase"][schema.REJECT_REASON] == A.EMPTY and rows["d1:qa:aug:paraphrase"][schema.DUPLICATE_OF] is None


# ---------------------------------------------------------------------------------- the sample
def test_sample_is_capped_exact_and_partition_independent(ray_local):
    ex = _examples(n_pairs=150, n_qa=100, validation_fraction=0.2)
    cfg = AugmentConfig(max_share=0.15, seed=3)
    chosen = []
    for blocks in (1, 7):
        cuts = [0, *sorted({(i * i * 7) % ex.num_rows for i in range(1, blocks)}), ex.num_rows]
        ds = ray_local.data.from_arrow([ex.slice(a, b - a) for a, b in zip(cuts, cuts[1:])])
        thresholds, info = A.sample_thresholds(ds, cfg)
        rows = ds.map_batches(A.select, batch_format="pyarrow", fn_kwargs={"cfg": cfg, "thresholds": thresholds}).take_all()
        chosen.append(sorted((r[schema.ID], r["kind"]) for r in rows))
    assert chosen[0] == chosen[1]
    train = A.originals(ex)
    pairs = A.candidates(ex, cfg).to_pylist()
    for task in ("translation", "qa"):
        n = sum(1 for t in train["task"].to_pylist() if t == task)
        cap = math.floor(0.15 * n)
        assert info[task] == {"examples": n, "cap": cap, "candidates": sum(1 for p in pairs if p["task"] == task)}
        expect = sorted((p[schema.ID], p["kind"]) for p in sorted((p for p in pairs if p["task"] == task), key=lambda p: p["hash"])[:cap])
        assert [c for c in chosen[0] if c[0].split(":")[1] == task] == expect
    assert {k for _, k in chosen[0]} == {"back_translation", "paraphrase", "follow_up"}
    everything, _ = A.sample_thresholds(ray_local.data.from_arrow(ex), AugmentConfig(max_share=1.0))
    assert everything["translation"] == A._MAX  # one kind: every pair fits a cap of 100%; qa has two kinds per example


# ---------------------------------------------------------------------------------- with the tiny model
def _tiny(tmp_path, **augment) -> RunConfig:
    return RunConfig.model_validate({
        "output": str(tmp_path), "teacher": {"model": "tiny-llama", "batch_size": 8, "concurrency": 1},
        "augment": {"enabled": True, "max_new_tokens": 6, "max_share": 0.3, **augment},
    })


@pytest.mark.slow
def test_tiny_llama_augmentation_accounts_for_every_generation(ray_local, tmp_path):
    """Random weights: gibberish that never ends within 6 tokens (or blanks), so every sampled pair is an
    `augment_too_long` (or `augment_empty`) reject with its prompt and output kept; the rerun is identical and all cache hits."""
    ex = _examples(n_pairs=8, n_qa=6, validation_fraction=0.2)
    cfg = _tiny(tmp_path)
    ds = ray_local.data.from_arrow([ex.slice(0, 9), ex.slice(9)]).materialize()
    made, info = A.augmented_examples(ds, cfg, str(tmp_path), {}, 2)
    rows = sorted(made.take_all(), key=lambda r: r[schema.ID])
    assert len(rows) == sum(v["cap"] for v in info.values()) > 0
    for task, v in info.items():
        assert v["cap"] == math.floor(0.3 * v["examples"])
    assert all(r[schema.LABEL_SOURCE] == schema.AUGMENTED for r in rows)
    assert all(r[schema.ID].startswith(r["source_id"] + ":") and r[schema.ID].rsplit(":aug:", 1)[1] in cfg.augment.kinds for r in rows)
    assert {r[schema.REJECT_REASON] for r in rows} <= {A.TOO_LONG, A.EMPTY}  # gibberish: no end within 6 tokens, or blanks
    assert all(r["messages"][0]["content"].startswith(r[schema.REJECT_REASON] + ": ") and r["messages"][1]["role"] == "user" for r in rows)
    assert all(r[schema.SPLIT] == schema.TRAIN for r in rows)
    entries = cache_stats(str(tmp_path))["entries"]
    assert entries == len(rows)
    again = sorted(A.augmented_examples(ds, cfg, str(tmp_path), {}, 3)[0].take_all(), key=lambda r: r[schema.ID])
    assert again == rows and cache_stats(str(tmp_path))["entries"] == entries


@pytest.mark.slow
def test_build_with_augmentation_reports_it_and_loses_nothing(ray_local, tmp_path):
    cfg = RunConfig.model_validate({
        "output": str(tmp_path / "out"),
        "sources": [{"name": "m30k", "kind": "translation", "format": "bitext", "langs": {"src": "en", "tgt": "de"}, "limit": 20,
                     "path": {"src": str(DEMO_DATA / "multi30k_train_3k.en.gz"), "tgt": str(DEMO_DATA / "multi30k_train_3k.de.gz")}}],
        "dedup": {"num_partitions": 2}, "label": {"enabled": False}, "format": {"count_tokens": False},
        "teacher": {"model": "tiny-llama", "batch_size": 8, "concurrency": 1},
        "augment": {"enabled": True, "max_new_tokens": 6},
    })
    m = build_sft_data(cfg).manifest
    aug = m["augment"]
    n = aug["sample"]["translation"]["examples"]
    assert aug["sample"]["translation"]["cap"] == math.floor(0.2 * n) > 0
    assert aug["kept"] == 0 and set(aug["rejected"]) <= {A.TOO_LONG, A.EMPTY}  # gibberish
    assert sum(aug["rejected"].values()) == aug["sample"]["translation"]["cap"] and aug["by_kind"] == {}
    rej = pq.read_table(tmp_path / "out" / "sft" / "rejects").to_pylist()
    mine = [r for r in rej if r["stage"] == A.STAGE]
    assert len(mine) == aug["sample"]["translation"]["cap"] and all(":aug:back_translation" in r[schema.ID] for r in mine)
    assert all(json.loads(r["meta"])["split"] == schema.TRAIN for r in mine)
    assert sum(m["sft"]["removed"].get(r, 0) for r in A.REASONS) == len(mine)
    assert m["sft"]["generated"] == m["sft"]["train"] + m["sft"]["validation"] + sum(m["sft"]["removed"].values())


def test_example_config_validates_and_ships_its_data():
    from pathlib import Path

    from sft_ray.config import load_config

    path = Path(__file__).resolve().parents[2] / "jobs" / "configs" / "augment.yaml"
    assert "sft-ray build --config jobs/configs/augment.yaml" in "".join(path.read_text().splitlines(keepends=True)[:3])
    cfg = load_config(str(path), [])
    assert cfg.augment.enabled and not cfg.teacher.enabled and cfg.augment.max_share == 0.2
    for src in cfg.sources:
        assert all(Path(p).is_file() for p in (src.path.values() if isinstance(src.path, dict) else [src.path]))


def test_rebuild_fingerprint_names_augment_and_keeps_old_builds_valid():
    from sft_ray import rebuild
    from sft_ray.config import config_dict

    off, on = RunConfig(), RunConfig.model_validate({"augment": {"enabled": True}})
    d = config_dict(off)
    assert rebuild.fingerprint(off, [])["config"] == rebuild.digest({k: d[k] for k in rebuild.BUILD_SECTIONS})  # as before the section
    built_on = {"fingerprint": rebuild.fingerprint(on, []), "config": config_dict(on), "inputs": []}
    assert rebuild.changes(built_on, on, []) == []
    assert rebuild.changes(built_on, off, [])[0].startswith("config changed: augment (")
    built_off = {"fingerprint": rebuild.fingerprint(off, []), "config": d, "inputs": []}
    assert rebuild.changes(built_off, on, [])[0].startswith("config changed: augment (null -> ")
