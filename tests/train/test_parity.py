"""Data-parallel parity: 2 Ray Train workers x batch b == 1 worker x batch 2b, step for step.

The train set has exactly 2b examples of very different lengths (4 to 61 supervised tokens), so
every optimizer step of either setup sees the whole set: one micro-batch of 2b on one worker, or
one of b on each of two workers, however Ray Data splits the rows. The global batch is then the
same set of tokens, the gradient must be the same, and so must the loss curve (same seed, same
initial weights: tiny-llama is initialised from `train.seed`). Because the two workers hold shards
with different supervised-token counts, any loss scaling that is not the token-weighted global
mean (a mean of per-rank means, a missing x world for DDP's gradient averaging, ...) moves the
2-worker curve away from the 1-worker one after the first step.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sft_ray.config import RunConfig, TrainConfig
from sft_ray.schema import SFT_SCHEMA
from sft_ray.train import run_finetune

pytestmark = pytest.mark.slow

B = 4  # per-worker batch with 2 workers; the single worker takes 2 * B
STEPS = 6
MAX_SEQ_LEN = 160  # no example is truncated (longest: 98 tokens); packed: 4 rows of 158, 157, 151, 40 tokens
# Assistant answers of these word counts: 4 .. 61 supervised tokens with the SmolLM2 tokenizer.
ANSWER_WORDS = [2, 5, 9, 14, 20, 28, 38, 50]
_WORDS = ("river mountain copper lantern violet harbor meadow falcon granite orchard thunder velvet "
          "compass ember glacier saffron tundra beacon quartz willow canyon marble cobalt zephyr").split()


def _write_varied_sft(output: Path) -> Path:
    """<output>/sft/train: 2*B examples of increasing length (no validation split: not needed)."""
    assert len(ANSWER_WORDS) == 2 * B
    rows = []
    for i, n in enumerate(ANSWER_WORDS):
        answer = " ".join(_WORDS[(i * 7 + j * 5) % len(_WORDS)] for j in range(n)) + "."
        rows.append({"id": f"train-{i}", "task": "qa", "source": "words", "source_id": f"words-{i}", "split": "train",
                     "messages": [{"role": "user", "content": f"Say {n} words."},
                                  {"role": "assistant", "content": answer}]})
    d = output / "sft" / "train"
    d.mkdir(parents=True)
    # Two files, long and short examples mixed in each.
    pq.write_table(pa.Table.from_pylist(rows[0::2], schema=SFT_SCHEMA), d / "part-00000.parquet")
    pq.write_table(pa.Table.from_pylist(rows[1::2], schema=SFT_SCHEMA), d / "part-00001.parquet")
    (output / "manifest.json").write_text(json.dumps({"sft": {"train": len(rows), "validation": 0}}))
    return output


@pytest.fixture
def tokenize_once(monkeypatch):
    """Tokenize the train set once per test instead of once per epoch and run.

    With 2b examples every optimizer step is a whole epoch, and each epoch re-executes the Ray
    Data pipeline, tokenizer actor start included (~35 s an epoch on a loaded 2-core machine). The
    wrapper runs the real `tokenize_dataset` and materializes its output, so the training loop
    streams the same tokenized (and packed) rows from the object store every epoch. The two runs
    of a test read byte-identical data with the same tokenize arguments, so the second reuses the
    first one's rows (keyed on those arguments).
    """
    import sft_ray.train as train_pkg
    import sft_ray.train.tokenize as tokenize_mod

    real = tokenize_mod.tokenize_dataset
    cache = {}

    def materialized(ds, *args, **kwargs):
        key = repr((args, sorted(kwargs.items())))
        if key not in cache:
            cache[key] = real(ds, *args, **kwargs).materialize()
        return cache[key]

    monkeypatch.setattr(tokenize_mod, "tokenize_dataset", materialized)
    if hasattr(train_pkg, "tokenize_dataset"):  # in case run_finetune imports it at module level
        monkeypatch.setattr(train_pkg, "tokenize_dataset", materialized)


def _cfg(out: Path, num_workers: int, batch_size: int, packing: bool) -> RunConfig:
    train = {"model": "tiny-llama", "num_workers": num_workers, "batch_size": batch_size, "lr": 3e-3,
             "warmup_ratio": 0.0, "max_steps": STEPS, "log_every": 1, "checkpoint_every": 1000,
             "eval_max_examples": 2, "seed": 7, "max_seq_len": MAX_SEQ_LEN}
    fields = TrainConfig.model_fields
    if "packing" in fields:
        train["packing"] = packing
    if "shuffle_buffer" in fields:
        train["shuffle_buffer"] = 0
    return RunConfig.model_validate({"output": str(out), "train": train})


def _curve(out: Path) -> list[tuple[int, float, float]]:
    """(step, loss, grad_norm) of every logged step (rows with an "event" key are markers)."""
    rows = [json.loads(line) for line in (out / "train" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [(r["step"], r["loss"], r["grad_norm"]) for r in rows if "event" not in r and "loss" in r]


def _check_packed_rows_split_evenly(data: Path) -> None:
    """Packed, the workers split packed rows, not examples: the test is only sharp (and fair) if the
    rows split evenly (streaming_split(equal=True) drops a remainder row) and each worker's share
    fits in one batch of B. Checked with the real tokenizer and packer, so a change to either that
    breaks the premise fails here, not as a mysterious loss mismatch."""
    import pyarrow.parquet as pq_

    from sft_ray.models import load_tokenizer, resolve_model
    from sft_ray.train.pack import best_fit_decreasing
    from sft_ray.train.tokenize import tokenize_example

    tok = load_tokenizer(resolve_model("tiny-llama", seed=7))
    rows = pq_.read_table(data / "sft" / "train").to_pylist()
    lengths = [len(tokenize_example(tok, r["messages"], MAX_SEQ_LEN)["input_ids"]) for r in rows]
    bins = best_fit_decreasing(lengths, MAX_SEQ_LEN)
    assert len(bins) % 2 == 0 and len(bins) // 2 <= B, (lengths, bins)
    per_row = sorted(sum(lengths[i] for i in b) for b in bins)
    assert per_row[-1] > 2 * per_row[0], per_row  # rows of clearly different token counts


@pytest.mark.parametrize("packing", [False, True], ids=["unpacked", "packed"])
def test_two_workers_match_one_worker_with_the_same_global_batch(tmp_path, ray_local, tokenize_once, packing):
    if packing and "packing" not in TrainConfig.model_fields:
        pytest.skip("train.packing is not in TrainConfig yet")
    if packing:
        _check_packed_rows_split_evenly(_write_varied_sft(tmp_path / "probe"))
    curves = {}
    for workers in (1, 2):
        out = _write_varied_sft(tmp_path / f"w{workers}")
        s = run_finetune(_cfg(out, num_workers=workers, batch_size=2 * B // workers, packing=packing))
        assert s["steps"] == STEPS
        curves[workers] = _curve(out)
        # Every example was trained on (none lost to an uneven split of rows between workers).
        assert json.loads((out / "train" / "train_state.json").read_text())["train_examples_read"] == 2 * B
    print(f"\n[parity packing={packing}] 1 worker: {curves[1]}\n[parity packing={packing}] 2 workers: {curves[2]}")

    one, two = curves[1], curves[2]
    assert [c[0] for c in one] == list(range(1, STEPS + 1)) == [c[0] for c in two]
    # Not two flat lines: lr 3e-3 on the same 8 examples every step must bring the loss down
    # (by ~1 nat in 6 steps, against a tolerance of ~1e-3 nats).
    assert one[0][1] - one[-1][1] > 0.5, one
    # fp32 on CPU: the curves agree to ~1e-7. Averaging per-rank means instead of the global token
    # mean moves the loss by ~1e-3 (relative) within 6 steps on this data, and the pre-clip grad
    # norm by ~3% from step 1. A constant gradient scale error (e.g. a missing x world against DDP's
    # averaging) is invisible in an Adam loss curve but doubles or halves the grad norm.
    for (step, l1, g1), (_, l2, g2) in zip(one, two):
        assert l2 == pytest.approx(l1, rel=1e-4), f"step {step}: loss 1 worker {l1!r} vs 2 workers {l2!r}"
        assert g2 == pytest.approx(g1, rel=1e-3), f"step {step}: grad_norm 1 worker {g1!r} vs 2 workers {g2!r}"
