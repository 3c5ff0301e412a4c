"""FSDP and LoRA through the real Ray Train loop: same math as DDP, small checkpoints, plain exports.

- FSDP (FSDP2 `fully_shard`, gloo on CPU) must give the DDP loss curve: it shards parameters,
  gradients and optimizer state but computes the same global-batch gradient. Same data trick as
  test_parity.py: 2b examples, so every step sees the whole set however rows are split.
- LoRA trains adapters only: the checkpoint holds only adapter weights (and their Adam state), the
  base stays frozen, and the exported model is merged (loads with plain transformers, no PEFT,
  and differs from the base model); the adapter is also exported alone (loads with PEFT).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_parity import B, _curve, _write_varied_sft, tokenize_once  # noqa: F401  (fixture)

from sft_ray.config import RunConfig, TrainConfig
from sft_ray.train import run_finetune

pytestmark = pytest.mark.slow
STEPS = 4


def _cfg(out: Path, **train) -> RunConfig:
    base = {"model": "tiny-llama", "num_workers": 2, "batch_size": B, "lr": 3e-3, "warmup_ratio": 0.0,
            "max_steps": STEPS, "log_every": 1, "checkpoint_every": 2, "eval_max_examples": 2, "seed": 7,
            "max_seq_len": 160, "packing": False, "shuffle_buffer": 0, "task_eval_max_examples": 0}
    return RunConfig.model_validate({"output": str(out), "train": {**base, **train}})


def _load_exported(model_dir: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir)


def test_fsdp_matches_ddp_and_exports_a_whole_model(tmp_path, ray_local, tokenize_once):  # noqa: F811
    curves, summaries = {}, {}
    for strategy in ("ddp", "fsdp"):
        out = _write_varied_sft(tmp_path / strategy)
        summaries[strategy] = run_finetune(_cfg(out, strategy=strategy))
        curves[strategy] = _curve(out)
    assert [c[0] for c in curves["fsdp"]] == list(range(1, STEPS + 1))
    for (step, l1, g1), (_, l2, g2) in zip(curves["ddp"], curves["fsdp"]):
        assert l2 == pytest.approx(l1, rel=1e-4), f"step {step}: ddp {l1} vs fsdp {l2}"
        assert g2 == pytest.approx(g1, rel=1e-3)
    # The FSDP export is gathered from the shards into one plain HF model with the trained weights.
    ddp, fsdp = _load_exported(summaries["ddp"]["model_dir"]), _load_exported(summaries["fsdp"]["model_dir"])
    for (name, a), (_, b) in zip(ddp.state_dict().items(), fsdp.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-4), name


def test_lora_checkpoints_adapters_only_and_exports_merged(tmp_path, ray_local, tokenize_once):  # noqa: F811
    from sft_ray.models import load_model, resolve_model

    out = _write_varied_sft(tmp_path / "lora")
    s = run_finetune(_cfg(out, lora={"enabled": True, "r": 4, "alpha": 8}, gradient_checkpointing=True))
    assert s["steps"] == STEPS and s["loss_end"] < s["loss_start"]
    ckpt = out / "train" / "checkpoints" / f"step_{STEPS:06d}"
    sd = torch.load(ckpt / "model.pt", weights_only=True)
    assert sd and all("lora_" in k for k in sd), list(sd)[:5]
    # Export: merged weights, no adapter files, loads without PEFT, and is not the base model.
    model_dir = Path(s["model_dir"])
    assert not (model_dir / "adapter_config.json").exists()
    tuned = _load_exported(str(model_dir)).state_dict()
    base = load_model(resolve_model("tiny-llama", tiny=TrainConfig().tiny, seed=7)).state_dict()
    assert set(tuned) <= set(base)
    changed = [k for k in tuned if not torch.equal(tuned[k], base[k])]
    assert changed and all(("q_proj" in k or "k_proj" in k or "v_proj" in k or "o_proj" in k or "_proj" in k)
                           for k in changed), changed
    assert torch.equal(tuned["model.embed_tokens.weight"], base["model.embed_tokens.weight"])  # frozen
    # The adapter alone as well (<train>/adapter): on the base model it answers like the merged export.
    from peft import PeftModel

    assert s["adapter_dir"] == str(out / "train" / "adapter")
    ids = torch.tensor([[1, 5, 9, 42, 7]])
    base_model = load_model(resolve_model("tiny-llama", tiny=TrainConfig().tiny, seed=7))
    with torch.no_grad():
        via_adapter = PeftModel.from_pretrained(base_model, s["adapter_dir"])(ids).logits
        merged = _load_exported(str(model_dir))(ids).logits
    assert (via_adapter - merged).abs().max() < 1e-4

    # Rerun with more steps resumes from the adapter checkpoint.
    s2 = run_finetune(_cfg(out, max_steps=STEPS + 2, lora={"enabled": True, "r": 4, "alpha": 8},
                           gradient_checkpointing=True))
    assert s2["steps"] == STEPS + 2
    rows = [json.loads(x) for x in (out / "train" / "metrics.jsonl").read_text().splitlines()]
    assert {"event": "resume", "step": STEPS, "checkpoint": f"step_{STEPS:06d}"} in rows
