"""run_finetune end to end on a tiny hand-written SFT set: tiny-llama, 2 Ray Train workers."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sft_data import write_sft  # tests/train is on sys.path (pytest's rootdir-less import)

from sft_ray.config import ConfigError, RunConfig
from sft_ray.schema import SFT_SCHEMA
from sft_ray.train import plan_steps, run_finetune


def _cfg(out, **train) -> RunConfig:
    base = {"model": "tiny-llama", "num_workers": 2, "batch_size": 4, "lr": 3e-3, "log_every": 2,
            "checkpoint_every": 2, "eval_max_examples": 8}
    return RunConfig.model_validate({"output": str(out), "train": {**base, **train}})


def _metrics(out) -> list[dict]:
    return [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines()]


def _checkpoints(out) -> list[str]:
    return sorted(d for d in os.listdir(out / "train" / "checkpoints") if d.startswith("step_"))


def test_plan_steps_from_manifest_count(tmp_path):
    # 48 examples over 2 workers = 24 each = 6 batches of 4 = 3 steps of 2 micro-batches; 2 epochs.
    plan = plan_steps(_cfg(tmp_path, grad_accum=2, epochs=2), 48)
    assert plan == {"steps_per_epoch": 3, "total_steps": 6, "warmup_steps": 1}
    assert plan_steps(_cfg(tmp_path, max_steps=5), 48)["total_steps"] == 5
    assert plan_steps(_cfg(tmp_path, max_steps=5), None)["total_steps"] == 5
    with pytest.raises(ConfigError, match="train.max_steps"):
        plan_steps(_cfg(tmp_path), None)
    with pytest.raises(ConfigError, match="fewer rows than"):
        plan_steps(_cfg(tmp_path), 1)


@pytest.mark.slow
def test_finetune_checkpoints_exports_and_resumes(tmp_path, ray_local):
    out = write_sft(tmp_path / "run", n_train=39, n_val=8)  # + 1 bad row = 40 = 2 equal shards
    # A row without an assistant turn: dropped by tokenization and counted, not trained on.
    bad = {"id": "bad-0", "task": "qa", "messages": [{"role": "user", "content": "no answer"}],
           "source": "capitals", "source_id": "x", "split": "train"}
    pq.write_table(pa.Table.from_pylist([bad], schema=SFT_SCHEMA), out / "sft" / "train" / "part-zz.parquet")

    s1 = run_finetune(_cfg(out, max_steps=4, packing=False))
    assert s1["steps"] == 4
    assert set(s1) >= {"loss_start", "loss_end", "val_loss_before", "val_loss_after", "steps", "train_examples",
                       "model_dir", "checkpoint_dir", "wall_s"}
    assert s1["train_examples"] == 39
    assert s1["loss_end"] < s1["loss_start"] and s1["val_loss_after"] < s1["val_loss_before"]
    rows = _metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 4]
    for r in rows:
        assert set(r) >= {"step", "loss", "lr", "tokens_per_s", "grad_norm", "step_time"}
        assert r["loss"] > 0 and r["tokens_per_s"] > 0 and r["step_time"] > 0
    ev = json.loads((out / "train" / "eval.json").read_text())
    assert set(ev) >= {"base", "finetuned", "examples"} and ev["examples"] == 8
    assert set(ev["base"]) == {"loss", "perplexity", "tasks"} == set(ev["finetuned"])
    assert ev["finetuned"]["tasks"]["qa"]["n"] == 8 and set(ev["finetuned"]["tasks"]["qa"]) >= {"exact_match", "f1"}
    assert len(ev["samples"]["finetuned"]["qa"]) == 3
    assert _checkpoints(out) == ["step_000002", "step_000004"]
    state = json.loads((out / "train" / "checkpoints" / "step_000004" / "state.json").read_text())
    assert state["step"] == 4 and state["config"]["train"]["model"] == "tiny-llama"
    assert {"model.pt", "optimizer.pt", "scheduler.pt", "rng.pt"} <= set(os.listdir(out / "train" / "checkpoints" / "step_000004"))

    # The exported model is a plain HF folder that generates.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(s1["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(s1["model_dir"])
    enc = tok.apply_chat_template([{"role": "user", "content": "What is the capital of Italy?"}],
                                  add_generation_prompt=True, return_tensors="pt", return_dict=True)
    gen = model.generate(**enc, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] > enc["input_ids"].shape[1]

    # Rerun with more steps: resumes from the step-4 checkpoint: steps 1-4 are not retrained (their
    # metric rows and the base evaluation are kept), the step counter continues to 6.
    s2 = run_finetune(_cfg(out, max_steps=6, packing=False))
    assert s2["steps"] == 6
    assert [r["step"] for r in _metrics(out) if "loss" in r] == [1, 2, 4, 6]
    assert _metrics(out)[:3] == rows
    assert _metrics(out)[3] == {"event": "resume", "step": 4, "checkpoint": "step_000004"}
    assert s2["val_loss_before"] == s1["val_loss_before"]
    assert _checkpoints(out) == ["step_000004", "step_000006"]  # num_to_keep=2

    train_state = json.loads((out / "train" / "train_state.json").read_text())
    assert train_state["train_dropped"] == {"no_assistant_turn": 1}


@pytest.mark.slow
def test_exported_model_has_the_fine_tuned_behaviour(tmp_path, ray_local):
    """A model trained to answer one question gives that answer after export (plain transformers,
    greedy), and eval.json's task metric shows it: exact match 0 before, 100 after."""
    out = tmp_path / "run"
    qa = [{"role": "user", "content": "What is the secret word?"}, {"role": "assistant", "content": "Pineapple."}]
    for split, n in (("train", 16), ("validation", 2)):
        d = out / "sft" / split
        d.mkdir(parents=True)
        rows = [{"id": f"{split}-{i}", "task": "qa", "messages": qa, "source": "s", "source_id": f"s-{i}",
                 "split": split} for i in range(n)]
        pq.write_table(pa.Table.from_pylist(rows, schema=SFT_SCHEMA), d / "part-00000.parquet")
    (out / "manifest.json").write_text(json.dumps({"sft": {"train": 16, "validation": 2}}))
    s = run_finetune(_cfg(out, num_workers=1, batch_size=8, max_steps=40, lr=1e-2, packing=False,
                          checkpoint_every=1000, log_every=10, max_new_tokens=8))
    assert s["tasks_before"]["qa"]["exact_match"] == 0.0
    assert s["tasks_after"]["qa"]["exact_match"] == 100.0

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(s["model_dir"])
    model = AutoModelForCausalLM.from_pretrained(s["model_dir"])
    enc = tok.apply_chat_template(qa[:1], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    gen = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert tok.decode(gen[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip() == "Pineapple."
