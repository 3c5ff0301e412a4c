"""The training objective: summed next-token cross-entropy over supervised tokens.

Shared by the training loop, validation and the throughput benchmarks (torch only, no Ray, so the
GPU benchmark runs it on a machine without Ray). Packed batches carry `position_ids` and no
attention mask (see pack.py); padded batches carry an attention mask.
"""

from __future__ import annotations

import torch

IGNORE = -100

MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids")


def token_loss_sum(model, batch: dict, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token cross-entropy over supervised tokens, number of supervised tokens).

    Labels are aligned with inputs; position t predicts token t+1, hence the shift. Only the
    supervised positions' logits are upcast to fp32 for the loss (bf16 log-softmax over a 49k
    vocabulary loses precision; upcasting every position would copy the whole B x L x V tensor).
    `use_cache=False`: with a KV cache object HF skips packed-sequence detection.
    """
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    with autocast:
        logits = model(**inputs, use_cache=False).logits
    targets = batch["labels"][:, 1:]
    sup = targets != IGNORE
    loss = torch.nn.functional.cross_entropy(logits[:, :-1][sup].float(), targets[sup], reduction="sum")
    return loss, sup.sum()
