"""Examples longer than max_seq_len are dropped and counted by default, never silently cut; a
training set that cannot give one optimizer step is one clear error before Ray Train starts."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sft_ray.config import RunConfig
from sft_ray.models import load_tokenizer, resolve_model
from sft_ray.preflight import PreflightError
from sft_ray.schema import SFT_SCHEMA
from sft_ray.train.driver import _train_sample_stats, check_training_set
from sft_ray.train.tokenize import DROP_REASONS, TokenizeBatch, tokenize_example

LONG = [{"role": "user", "content": "What is the capital of France? " + "context " * 60}, {"role": "assistant", "content": "Paris."}]
SHORT = [{"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."}]


@pytest.fixture(scope="module")
def tok_path() -> str:
    return resolve_model("tiny-llama")


def test_the_default_drops_a_too_long_example_with_its_reason(tok_path):
    tok = load_tokenizer(tok_path)
    assert RunConfig().train.too_long == "drop"
    r = tokenize_example(tok, LONG, 64, too_long="drop")
    assert r["drop_reason"] == "too_long_for_max_seq_len" and r["input_ids"] == []
    assert tokenize_example(tok, SHORT, 64, too_long="drop")["drop_reason"] == ""
    cut = tokenize_example(tok, LONG, 64, too_long="truncate")
    assert cut["truncated"] and len(cut["input_ids"]) == 64
    out = TokenizeBatch(tok_path, 64, too_long="drop")(pa.table({"id": ["a", "b"], "messages": [LONG, SHORT]}))
    assert [DROP_REASONS[c] for c in out.column("drop_code").to_pylist()] == ["too_long_for_max_seq_len", ""]


def test_a_training_set_too_small_for_one_step_fails_before_training():
    tc = RunConfig.model_validate({"train": {"num_workers": 2, "batch_size": 4, "grad_accum": 2}}).train
    with pytest.raises(PreflightError, match="has 0 examples"):
        check_training_set(0, tc, "out/sft/train")
    with pytest.raises(PreflightError, match=r"has 10 examples, .* 2 x batch_size 4 x grad_accum 2 = 16"):
        check_training_set(10, tc, "out/sft/train")
    check_training_set(16, tc, "out/sft/train")
    check_training_set(None, tc, "out/sft/train")  # no manifest: the training loop checks


def test_a_training_set_that_max_seq_len_empties_is_refused_with_the_reason(tmp_path, tok_path):
    train = tmp_path / "sft" / "train"
    train.mkdir(parents=True)
    rows = [{"id": f"e{i}", "source": "s", "task": "qa", "split": "train", "messages": LONG, "meta": "{}"} for i in range(8)]
    table = pa.Table.from_pylist(rows, schema=pa.schema([f for f in SFT_SCHEMA if f.name in rows[0]]))
    pq.write_table(table, train / "part.parquet")
    cfg = RunConfig.model_validate({"output": str(tmp_path), "train": {"max_seq_len": 16}})
    with pytest.raises(PreflightError, match="too_long_for_max_seq_len.*raise max_seq_len"):
        _train_sample_stats(cfg, str(train), tok_path)
    ok = RunConfig.model_validate({"output": str(tmp_path), "train": {"max_seq_len": 16, "too_long": "truncate"}})
    assert _train_sample_stats(ok, str(train), tok_path)[1] == 16  # mean tokens: every example cut to 16
