"""Packing: best-fit decreasing, labels at example boundaries, and no attention across examples."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from sft_ray.train.loss import token_loss_sum
from sft_ray.train.pack import (
    IGNORE,
    best_fit_decreasing,
    collate_packed,
    collate_padded,
    pack_batch,
    pack_examples,
)
from sft_ray.train.tokenize import TOKENIZED_SCHEMA


def test_best_fit_decreasing_fills_bins_and_keeps_every_item():
    lengths = [7, 5, 5, 4, 3, 3, 2, 1]  # 30 in all: 3 bins of 10 is optimal
    bins = best_fit_decreasing(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins)
    assert len(bins) == 3
    with pytest.raises(ValueError, match="capacity"):
        best_fit_decreasing([11], 10)


def test_best_fit_decreasing_on_sft_like_lengths_wastes_little():
    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(20, 250, size=2000)]
    bins = best_fit_decreasing(lengths, 512)
    fill = sum(lengths) / (len(bins) * 512)
    assert fill > 0.98, fill


def test_pack_examples_restart_positions_and_mask_first_labels():
    ids = [[1, 2, 3], [4, 5], [6, 7, 8, 9]]
    labels = [[IGNORE, 2, 3], [4, 5], [IGNORE, IGNORE, 8, 9]]  # example 2 was left-truncated into its answer
    rows = pack_examples(ids, labels, capacity=5)
    assert sum(r["n_examples"] for r in rows) == 3
    for r in rows:
        starts = np.flatnonzero(r["position_ids"] == 0)
        assert (r["labels"][starts] == IGNORE).all()  # never predict an example's first token
        assert len(r["input_ids"]) == len(r["labels"]) == len(r["position_ids"]) <= 5
    # Every supervised token except the example-initial one survives.
    sup = sorted(int(t) for r in rows for t in r["labels"] if t != IGNORE)
    assert sup == [2, 3, 5, 8, 9]


def test_pack_batch_keeps_dropped_rows_for_counting():
    t = pa.Table.from_pydict({"id": ["a", "b", "c"], "input_ids": [[1, 2], [], [3, 4, 5]],
                              "labels": [[IGNORE, 2], [], [IGNORE, 4, 5]], "drop_code": [0, 1, 0],
                              "truncated": [False, False, False]}, schema=TOKENIZED_SCHEMA)
    out = pack_batch(t, max_seq_len=8).to_pydict()
    assert out["drop_code"] == [0, 1]
    assert out["n_examples"] == [2, 0] and out["input_ids"][1] == []


def _model(seed=0):
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, use_cache=False, attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).eval()


def _examples(rng, n):
    ids, labels = [], []
    for _ in range(n):
        k = int(rng.integers(4, 20))
        x = [int(v) for v in rng.integers(1, 97, size=k)]
        lab = [IGNORE] * (k // 2) + x[k // 2:]
        ids.append(x)
        labels.append(lab)
    return ids, labels


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_rows_give_the_same_loss_as_unpacked_examples(attn):
    """Block-diagonal attention: packing must not change any example's logits or its loss."""
    model = _model()
    model.config._attn_implementation = attn
    rng = np.random.default_rng(1)
    ids, labels = _examples(rng, 9)
    rows = pack_examples(ids, labels, capacity=40)
    assert len(rows) < len(ids)  # something was actually packed
    packed = collate_packed({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows],
                             "position_ids": [r["position_ids"] for r in rows],
                             "n_examples": [r["n_examples"] for r in rows], "drop_code": [0] * len(rows)}, pad_id=0)
    padded = collate_padded({"input_ids": ids, "labels": labels, "drop_code": [0] * len(ids)}, pad_id=0)
    tp = {k: torch.as_tensor(v) for k, v in packed.items()}
    tu = {k: torch.as_tensor(v) for k, v in padded.items()}
    assert int(tp["num_tokens"]) == int(tu["num_tokens"]) == sum(len(x) for x in ids)
    assert int(tp["num_examples"]) == 9
    with torch.no_grad():
        lp, np_ = token_loss_sum(model, tp, torch.autocast("cpu", enabled=False))
        lu, nu = token_loss_sum(model, tu, torch.autocast("cpu", enabled=False))
    assert int(np_) == int(nu)
    assert torch.allclose(lp, lu, rtol=1e-5), (lp, lu)


def test_packing_with_a_kv_cache_object_would_leak_so_the_loss_disables_it():
    """HF skips packed-sequence detection when a cache exists; token_loss_sum passes use_cache=False.
    Guard: with use_cache=True in the config the packed loss is still the unpacked one."""
    model = _model()
    model.config.use_cache = True
    ids, labels = _examples(np.random.default_rng(2), 6)
    rows = pack_examples(ids, labels, capacity=64)
    b = collate_packed({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows],
                        "position_ids": [r["position_ids"] for r in rows],
                        "n_examples": [r["n_examples"] for r in rows], "drop_code": [0] * len(rows)}, pad_id=0)
    u = collate_padded({"input_ids": ids, "labels": labels, "drop_code": [0] * len(ids)}, pad_id=0)
    ctx = torch.autocast("cpu", enabled=False)
    with torch.no_grad():
        lp, _ = token_loss_sum(model, {k: torch.as_tensor(v) for k, v in b.items()}, ctx)
        lu, _ = token_loss_sum(model, {k: torch.as_tensor(v) for k, v in u.items()}, ctx)
    assert torch.allclose(lp, lu, rtol=1e-5)
