"""LLM teacher: parsing/validation on hand-written outputs, the request cache, max_records selection,
and the Ray pipeline with a random tiny Llama (garbage out -> every example invalid, nothing lost)
and, marked slow, with the real SmolLM2-135M-Instruct."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sft_ray import schema
from sft_ray.config import RunConfig, TeacherConfig, TeacherTaskConfig
from sft_ray.format.split import assign_split, split_of
from sft_ray.schema import TEACHER_SCHEMA
from sft_ray.synthesize.cache import cache_stats, cache_url, read_index, request_key, write_entries
from sft_ray.synthesize.parse import first_json_object, normalise, validate
from sft_ray.synthesize.teacher import REASON, build_requests, finish_batch, record_hash, select_records, teacher_examples
from sft_ray.synthesize.transformers_backend import TeacherGenerator
from sft_ray.synthesize.vllm_backend import vllm_processor

QA = TeacherConfig().tasks["qa"]
SUMMARY = TeacherConfig().tasks["summary"]
PASSAGE = "The Panthers beat the Cardinals 49-15 in the NFC Championship Game in Charlotte, North Carolina."
PASSAGES = [
    "The Eiffel Tower in Paris was completed in 1889 for the World's Fair.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Berlin has been the capital of Germany since reunification in 1990.",
    "The Amazon is the largest rainforest on Earth and spans nine countries.",
]


# ---------------------------------------------------------------------------------- parsing
def test_valid_json_is_accepted_and_fills_the_example():
    values, why = validate(QA, PASSAGE, '{"question": "Who did the Panthers beat?", "answer": "the Cardinals"}', True)
    assert why is None and values["question"] == "Who did the Panthers beat?" and values["answer"] == "the Cardinals"


def test_json_inside_prose_or_a_code_fence_is_found():
    out = 'Sure! Here it is:\n```json\n{"question": "Where was the game?", "answer": "Charlotte, North Carolina"}\n```\nHope it helps {'
    values, why = validate(QA, PASSAGE, out, True)
    assert why is None and values["answer"] == "Charlotte, North Carolina"
    assert first_json_object('noise {not json} then {"a": 1}') == ({"a": 1}, None)


@pytest.mark.parametrize(
    "output, detail",
    [
        ('{"question": "Who won?"}', "missing field 'answer'"),
        ('{"question": "Who won?", "answer": "  "}', "field 'answer' is empty"),
        ('{"question": "Who won?", "answer": 49}', "field 'answer' is int, not a string"),
        ('{"question": "Who won?", "answer": "the Seahawks"}', "answer not found in the passage"),
        ("", "empty output"),
        (None, "empty output"),
        ("The Panthers won.", "no JSON object in the output"),
        ('{"question": "Who won?", "answer": "the Pan', "JSON does not parse"),
    ],
)
def test_invalid_outputs_name_their_reason(output, detail):
    values, why = validate(QA, PASSAGE, output, True)
    assert values is None and why.startswith(detail)


def test_truncation_is_named_and_grounding_is_normalised():
    _, why = validate(QA, PASSAGE, '{"question": "Who won?", "answer": "the Pan', False)
    assert "truncated at max_new_tokens" in why
    # case, punctuation and spacing do not matter for the extractive check
    values, why = validate(QA, PASSAGE, '{"question": "Score?", "answer": "49 15"}', True)
    assert why is None and normalise("Charlotte,  NORTH Carolina.") == "charlotte north carolina"


def test_text_outputs():
    ok, why = validate(SUMMARY, PASSAGE, "The Panthers won the NFC title game against the Cardinals.", True)
    assert why is None and ok["output"].startswith("The Panthers")
    assert validate(SUMMARY, PASSAGE, "A long summary that never ends", False)[1].startswith("truncated")
    assert validate(SUMMARY, PASSAGE, "Short.", True)[1] == "output shorter than 20 characters"
    assert validate(SUMMARY, PASSAGE, PASSAGE, True)[1] == "output copies the passage"


# ----------------------------------------------------------------------------------- config
def test_config_defaults_and_validation():
    cfg = RunConfig()
    assert cfg.teacher.enabled is False and cfg.teacher.model == "smollm2-135m-instruct" and cfg.teacher.backend == "transformers"
    assert set(cfg.teacher.tasks) == {"qa", "summary"}
    with pytest.raises(ValidationError, match="placeholder"):
        TeacherTaskConfig(kinds=["web"], prompt="{text} {passage}", fields=["q"], user="{q}", assistant="{q}")
    with pytest.raises(ValidationError, match="grounded"):
        TeacherTaskConfig(kinds=["web"], prompt="{text}", fields=["q"], grounded=["a"], user="{q}", assistant="{q}")
    with pytest.raises(ValidationError, match="num_gpus"):
        TeacherConfig(backend="vllm")
    assert TeacherConfig(backend="vllm", num_gpus=1).backend == "vllm"
    with pytest.raises(ValidationError):
        TeacherConfig(unknown_key=1)


def test_vllm_processor_stages_are_placed_by_placement_models(ray_local):
    """Ray Data's vLLM processor is built (building needs neither vllm nor a GPU; running does, so it
    is not run here): every stage carries placement.models, else the engines would inherit the
    build's curation selector. Parallel engines (placement groups) cannot be placed that way: refused."""
    cfg = TeacherConfig(backend="vllm", num_gpus=1, model="tiny-llama")
    selector = {"sft-ray/pool": "gpu"}
    stages = vllm_processor(cfg, selector).stages
    assert "vLLMEngineStage" in stages
    assert all(s.map_batches_kwargs["label_selector"] == selector for s in stages.values())
    assert stages["vLLMEngineStage"].map_batches_kwargs["num_gpus"] == 1
    assert stages["vLLMEngineStage"].map_batches_kwargs["compute"].max_size == 1  # engines the GPU-less local node holds: none, so 1
    assert all("label_selector" not in s.map_batches_kwargs for s in vllm_processor(cfg, {}).stages.values())
    tp2 = cfg.model_copy(update={"engine_kwargs": {"tensor_parallel_size": 2}})
    with pytest.raises(ValueError, match="placement.models cannot place"):
        vllm_processor(tp2, selector)
    with pytest.raises(ValidationError, match="placement.models cannot place"):  # and at config time, before curation runs
        RunConfig.model_validate({"teacher": {**tp2.model_dump(), "enabled": True}, "placement": {"models": selector}})


# ------------------------------------------------------------------------------------ cache
def test_cache_keys_and_files(tmp_path):
    k = request_key("m", {"max_new_tokens": 8}, "p")
    assert k == request_key("m", {"max_new_tokens": 8}, "p")
    assert len({k, request_key("m2", {"max_new_tokens": 8}, "p"), request_key("m", {"max_new_tokens": 9}, "p"),
                request_key("m", {"max_new_tokens": 8}, "p2")}) == 4
    url = cache_url(str(tmp_path))
    write_entries(url, [{"key": "a", "output": "x", "score": 0.5, "finished": True}, {"key": "b", "output": "y", "score": None, "finished": False}], "m")
    write_entries(url, [{"key": "c", "output": "z", "score": 0.1, "finished": True}], "m")
    assert read_index(url) == {"a": ("x", 0.5, True), "b": ("y", None, False), "c": ("z", 0.1, True)}
    assert cache_stats(str(tmp_path)) == {"files": 2, "entries": 3}
    (tmp_path / "_cache" / "teacher" / "part-broken.parquet").write_bytes(b"not parquet")
    assert len(read_index(url)) == 3  # a broken file costs regeneration, not the run


class Garbage(TeacherGenerator):
    """A teacher whose model returns garbage (or fails) without loading anything."""

    def load(self):
        self.model = "fake"

    def generate(self, prompts, max_new_tokens, prefix):
        if any("FAIL" in p for p in prompts):
            raise RuntimeError("CUDA out of memory")
        self.generated += len(prompts)
        return [("%%%% }{ garbage", 0.01, False) for _ in prompts]


def _records(texts, kinds=None, reject=None, validation_fraction=0.05):
    """Records as the build hands them to the teacher: with their split (format.validation_fraction)."""
    kinds = kinds or ["text"] * len(texts)
    reject = reject or [None] * len(texts)
    return assign_split(schema.records_from_rows([{schema.ID: f"r{i}", schema.SOURCE: "src", schema.KIND: k, schema.TEXT: t, schema.REJECT_REASON: rj}
                                             for i, (t, k, rj) in enumerate(zip(texts, kinds, reject))]), validation_fraction, 0)


REQUEST_INPUT = [schema.ID, schema.SOURCE, schema.KIND, schema.TEXT, schema.TITLE, schema.SPLIT]


def test_garbage_teacher_gives_reasons_and_loses_nothing(tmp_path):
    cfg = TeacherConfig(model="garbage", generate_batch_size=1)
    req = build_requests(_records(PASSAGES + ["FAIL here"], validation_fraction=0.5).select(REQUEST_INPUT), cfg)
    gen = Garbage(cfg, cache_url(str(tmp_path)))
    out = finish_batch(gen(req), cfg)
    assert out.schema == TEACHER_SCHEMA and out.num_rows == req.num_rows == 5
    assert set(out[schema.REJECT_REASON].to_pylist()) == {REASON}
    rows = out.to_pylist()
    failed = [r for r in rows if "FAIL" in r["messages"][1]["content"]][0]
    assert failed["messages"][0]["content"] == f"{REASON}: generation failed: RuntimeError: CUDA out of memory"
    assert failed["teacher_score"] is None
    ok = [r for r in rows if r is not failed][0]
    assert ok["messages"][0]["content"].startswith(f"{REASON}: JSON does not parse")
    assert ok["messages"][2] == {"role": "assistant", "content": '{"question": "%%%% }{ garbage'}  # raw output kept
    assert [r["split"] for r in rows] == [split_of(r["source_id"], 0.5, 0) for r in rows]
    # failures are not cached; generated outputs are, and a new actor finds them without a model
    assert cache_stats(str(tmp_path))["entries"] == 4
    again = Garbage(cfg, cache_url(str(tmp_path)))
    again.load = lambda: pytest.fail("the model must not load when every request is cached")
    cached = again(req.slice(0, 4))
    assert cached["cached"].to_pylist() == [True] * 4 and again.generated == 0
    assert finish_batch(cached, cfg).equals(out.slice(0, 4))


# --------------------------------------------------------------------------------- with Ray
def test_max_records_is_partition_independent(ray_local):
    recs = _records([f"passage number {i}" for i in range(300)])
    chosen = []
    for blocks in (1, 7):  # the same records as 1 block or 7 uneven ones
        cuts = [0, *sorted({(i * i * 7) % 300 for i in range(1, blocks)}), 300]
        ds = ray_local.data.from_arrow([recs.slice(a, b - a) for a, b in zip(cuts, cuts[1:])])
        chosen.append(sorted(r[schema.ID] for r in select_records(ds, 25, seed=3).take_all()))
    assert chosen[0] == chosen[1] and len(chosen[0]) == 25
    expect = sorted(sorted(recs[schema.ID].to_pylist(), key=lambda i: record_hash(i, 3))[:25])
    assert chosen[0] == expect
    assert select_records(ray_local.data.from_arrow(recs.slice(0, 10)), 25, 3).count() == 10


def _tiny_cfg(tmp_path, **teacher):
    tasks = {name: t.model_copy(update={"max_new_tokens": 6, "kinds": ["text", "web"]}) for name, t in TeacherConfig().tasks.items()}
    return RunConfig(output=str(tmp_path), teacher=TeacherConfig(enabled=True, model="tiny-llama", tasks=tasks, batch_size=4, **teacher))


@pytest.mark.slow
def test_tiny_llama_pipeline_all_invalid_nothing_lost_and_rerun_hits_cache(ray_local, tmp_path):
    """Random weights -> garbage: every example is invalid_teacher_output, one per request; the rerun
    generates nothing (no new cache entries) and returns identical rows."""
    texts = PASSAGES + ["rejected earlier", "   ", "a translation record"]
    recs = _records(texts, kinds=["text", "web", "text", "web", "text", "text", "translation"],
                    reject=[None] * 4 + ["too_short", None, None])
    cfg = _tiny_cfg(tmp_path)
    ds = ray_local.data.from_arrow([recs.slice(0, 3), recs.slice(3)])
    first = sorted(teacher_examples(ds, cfg, str(tmp_path), {}).take_all(), key=lambda r: r[schema.ID])
    assert len(first) == 4 * 2  # 4 live records with text of the tasks' kinds x 2 tasks
    assert {r[schema.ID] for r in first} == {f"r{i}:teacher_{t}" for i in range(4) for t in ("qa", "summary")}
    assert all(r[schema.REJECT_REASON] == REASON and r[schema.DUPLICATE_OF] is None for r in first)
    assert all(r["messages"][0]["content"].startswith(REASON + ": ") and r["messages"][1]["role"] == "user" for r in first)
    assert set(first[0]) == set(TEACHER_SCHEMA.names)
    assert all(isinstance(r["teacher_score"], float) and 0 < r["teacher_score"] <= 1 for r in first)
    stats = cache_stats(str(tmp_path))
    assert stats["entries"] == 8

    second = sorted(teacher_examples(ray_local.data.from_arrow(recs), cfg, str(tmp_path), {}).take_all(),
                    key=lambda r: r[schema.ID])
    assert second == first
    assert cache_stats(str(tmp_path)) == stats  # nothing generated, nothing written: 100% cache hits

    capped = teacher_examples(ray_local.data.from_arrow(recs).materialize(), _tiny_cfg(tmp_path, max_records=2), str(tmp_path), {})
    assert len({r["source_id"] for r in capped.take_all()}) == 2


@pytest.mark.slow
def test_smollm2_end_to_end_rows_are_well_formed(ray_local, tmp_path):
    """The real teacher on 4 short passages: well-formed rows, valid ones in chat format (quality not asserted)."""
    tasks = {"qa": TeacherConfig().tasks["qa"].model_copy(update={"max_new_tokens": 48})}
    cfg = RunConfig(output=str(tmp_path), teacher=TeacherConfig(enabled=True, tasks=tasks, batch_size=4, generate_batch_size=4))
    rows = teacher_examples(ray_local.data.from_arrow(_records(PASSAGES)), cfg, str(tmp_path), {}).take_all()
    assert len(rows) == 4 and all(set(r) == set(TEACHER_SCHEMA.names) for r in rows)
    for r in rows:
        assert r["task"] == "qa" and r[schema.ID] == f"{r['source_id']}:teacher_qa" and r[schema.REJECT_REASON] in (None, REASON)
        assert 0 < r["teacher_score"] <= 1
        roles = [m["role"] for m in r["messages"]]
        assert roles == (["user", "assistant"] if r[schema.REJECT_REASON] is None else ["system", "user", "assistant"])
        assert r["messages"][-1]["content"] if r[schema.REJECT_REASON] is None else True
    assert cache_stats(str(tmp_path))["entries"] == 4


def test_an_unwritable_cache_does_not_fail_the_batch(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    cfg = TeacherConfig(model="garbage")
    req = build_requests(_records(PASSAGES[:2]).select(REQUEST_INPUT), cfg)
    out = Garbage(cfg, str(blocker / "teacher"))(req)
    assert out.num_rows == 2 and out["output"].to_pylist() == ["%%%% }{ garbage"] * 2
