"""Validation loss and perplexity, base model vs fine-tuned, inside the Ray Train workers.

Why in the workers: they already hold the model (on GPU where there is one) and the tokenizer;
each evaluates its slice (rank::world) of the first `eval_max_examples` validation examples, which
the driver reads once (a small, bounded sample) and passes in the loop config. Sums of token losses
and token counts are all-reduced, so the number is the token-weighted mean one process would get.
The loop runs it once before the first step (base) and once after the last (fine-tuned) and
writes `<output>/train/eval.json`:
`{"base": {"loss", "perplexity"}, "finetuned": {...}, "examples": n, "tokens": t, "dropped": {...}}`.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from typing import Iterable

import torch
import torch.distributed as dist

from sft_ray.train.loss import token_loss_sum
from sft_ray.train.tokenize import DROP_REASONS, tokenize_example


def validation_batches(tokenizer, rows: list[dict], max_seq_len: int, batch_size: int, collate, device,
                       loss_on: str = "all_assistant", too_long: str = "truncate") -> list[dict]:
    """Tokenize this rank's validation rows (same code as training) into padded batches on `device`
    (one example per row: validation loss is per example, packing would not change it)."""
    batches = []
    for i in range(0, len(rows), batch_size):
        toks = [tokenize_example(tokenizer, r["messages"], max_seq_len, loss_on, too_long) for r in rows[i:i + batch_size]]
        b = collate({
            "input_ids": [t["input_ids"] for t in toks],
            "labels": [t["labels"] for t in toks],
            "drop_code": [DROP_REASONS.index(t["drop_reason"]) for t in toks],
        })
        batches.append({k: v.to(device) for k, v in b.items()})
    return batches


def all_reduce_sum(values: list[float], device) -> list[float]:
    """Sum a few numbers over all Ray Train workers (no-op with one worker)."""
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


@torch.no_grad()
def evaluate(model, batches: Iterable[dict], *, device, autocast=None) -> dict:
    """Token-weighted validation loss over this worker's batches (from PadCollate), all-reduced
    across workers.

    `model` must be the unwrapped module (no DDP): ranks may hold different numbers of batches,
    and a DDP forward would wait for the others. Every rank must call this (the all-reduce).
    """
    autocast = autocast or contextlib.nullcontext()
    was_training = model.training
    model.eval()
    loss_sum, n_tok, n_ex = 0.0, 0, 0
    dropped: Counter = Counter()
    for batch in batches:
        dropped.update(int(c) for c in batch["drop_codes"].tolist())
        if batch["input_ids"].numel() == 0:
            continue
        loss, n = token_loss_sum(model, batch, autocast)
        loss_sum, n_tok, n_ex = loss_sum + loss.item(), n_tok + int(n), n_ex + batch["input_ids"].size(0)
    codes = list(range(1, len(DROP_REASONS)))
    totals = all_reduce_sum([loss_sum, n_tok, n_ex] + [dropped[c] for c in codes], device)
    model.train(was_training)
    loss_sum, n_tok, n_ex = totals[0], int(totals[1]), int(totals[2])
    loss = loss_sum / n_tok if n_tok else float("nan")
    return {
        "loss": loss,
        "perplexity": math.exp(loss) if n_tok else float("nan"),
        "examples": n_ex,
        "tokens": n_tok,
        "dropped": {DROP_REASONS[c]: int(v) for c, v in zip(codes, totals[3:]) if v},
    }
