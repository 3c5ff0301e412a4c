"""Packing: many tokenized examples per `max_seq_len` row, with no attention across examples.

Why: SFT examples are short and vary in length (AG News classification ~120 tokens, Multi30k
~60), so padding each batch to its longest example wastes most of the compute on pad tokens.
Packing fills rows to `max_seq_len` and `benchmarks/train_throughput.py` measures the share of
real tokens with and without it.

How:
- **Best-fit decreasing** bin packing (Johnson 1973; within 11/9 OPT + 6/9 bins, Dósa 2007) over
  a window of `pack_window` examples at a time: sort by length, put each example into the fullest
  row it still fits in. A window, not the whole dataset, so the stage streams.
- **Position ids restart at 0 for every example**, and the model gets `position_ids` and *no*
  attention mask. Hugging Face's masking utilities (transformers >= 4.53, `masking_utils.
  find_packed_sequence_indices`) then build a block-diagonal causal mask for eager and SDPA
  attention, and FlashAttention-2 runs varlen: an example never attends to its neighbours, and
  rotary embeddings see the same positions as an unpacked example. `tests/train/test_pack.py`
  checks that a packed row gives the same logits as its examples run one by one.
- **The first token of every example is never a target**: in a packed row position t predicts
  t+1, so without this the last token of example A would be trained to predict the first token
  of example B (an unpacked row never has that target, hence identical losses either way).

Rows the tokenizer dropped (`drop_code` != 0) pass through as rows of their own with empty ids,
so the training loop still counts every dropped example by reason.

This module imports neither Ray nor torch at import time: the GPU benchmark runs it on a machine
without Ray.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

IGNORE = -100


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Group item indices into bins of total length <= capacity (items longer than capacity must
    have been truncated before). Returns bins as lists of indices in the order they were placed."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    bins: list[list[int]] = []
    # (remaining capacity, bin index), sorted: the best fit is the first with remaining >= length.
    free: list[tuple[int, int]] = []
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"item {i} has length {n} > capacity {capacity}")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            rem, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (rem - n, b))
        else:
            bins.append([i])
            bisect.insort(free, (capacity - n, len(bins) - 1))
    return bins


def pack_examples(input_ids: list, labels: list, capacity: int) -> list[dict[str, Any]]:
    """Tokenized examples -> packed rows {input_ids, labels, position_ids, n_examples}."""
    lengths = [len(x) for x in input_ids]
    rows = []
    for members in best_fit_decreasing(lengths, capacity):
        ids = np.concatenate([np.asarray(input_ids[i], dtype=np.int32) for i in members])
        labs = []
        for i in members:
            lab = np.asarray(labels[i], dtype=np.int32).copy()
            lab[0] = IGNORE  # never predict an example's first token from the previous example
            labs.append(lab)
        pos = np.concatenate([np.arange(lengths[i], dtype=np.int32) for i in members])
        rows.append({"input_ids": ids, "labels": np.concatenate(labs), "position_ids": pos,
                     "n_examples": len(members)})
    return rows


def pack_batch(batch, max_seq_len: int):
    """Ray Data `map_batches` function (pyarrow in and out): tokenized rows (tokenize.TOKENIZED_SCHEMA)
    -> packed rows (packed_schema()). Use with `batch_size=pack_window`: each batch packs on its own."""
    import pyarrow as pa

    codes = batch.column("drop_code").to_numpy()
    keep = np.flatnonzero(codes == 0)
    ids_col, lab_col = batch.column("input_ids").to_pylist(), batch.column("labels").to_pylist()
    packed = pack_examples([ids_col[i] for i in keep], [lab_col[i] for i in keep], max_seq_len)
    out = {"input_ids": [r["input_ids"] for r in packed], "labels": [r["labels"] for r in packed],
           "position_ids": [r["position_ids"] for r in packed],
           "n_examples": [r["n_examples"] for r in packed], "drop_code": [0] * len(packed)}
    for c in codes[codes != 0]:  # dropped examples: one empty row each, so they are still counted
        for k in ("input_ids", "labels", "position_ids"):
            out[k].append([])
        out["n_examples"].append(0)
        out["drop_code"].append(int(c))
    return pa.Table.from_pydict(out, schema=packed_schema())


def packed_schema():
    import pyarrow as pa

    return pa.schema([
        pa.field("input_ids", pa.list_(pa.int32())),
        pa.field("labels", pa.list_(pa.int32())),
        pa.field("position_ids", pa.list_(pa.int32())),
        pa.field("n_examples", pa.int32()),
        pa.field("drop_code", pa.int8()),
    ])


def _right_padded(batch: dict, pad_id: int, multiple: int):
    """(drop codes, kept row indices, their lengths, ids, labels): kept rows right-padded with
    pad_id / IGNORE to the longest, rounded up to `multiple` (tensor cores)."""
    codes = np.asarray(batch["drop_code"], dtype=np.int64)
    keep = np.flatnonzero(codes == 0)
    seqs = [np.asarray(batch["input_ids"][i], dtype=np.int64) for i in keep]
    lengths = [len(x) for x in seqs]
    width = -(-max(lengths, default=0) // multiple) * multiple
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    labels = np.full((len(seqs), width), IGNORE, dtype=np.int64)
    for r, i in enumerate(keep):
        ids[r, :lengths[r]], labels[r, :lengths[r]] = seqs[r], batch["labels"][i]
    return codes, keep, lengths, ids, labels


def collate_packed(batch: dict, pad_id: int, pad_to_multiple: int = 8) -> dict[str, np.ndarray]:
    """Packed rows -> numpy arrays input_ids / labels / position_ids (no attention mask: the
    position ids define the examples), plus drop_codes of skipped rows and the real-token count.

    The pad tail of a row gets positions 0..k, so it is a block of its own that no example attends to.
    """
    codes, keep, lengths, ids, labels = _right_padded(batch, pad_id, pad_to_multiple)
    width = ids.shape[1]
    pos = np.tile(np.arange(width, dtype=np.int64), (len(keep), 1))
    for r, i in enumerate(keep):
        n = lengths[r]
        pos[r, :n] = batch["position_ids"][i]
        pos[r, n:] = np.arange(width - n)
    n_tokens = int(sum(lengths))
    return {"input_ids": ids, "labels": labels, "position_ids": pos, "drop_codes": codes[codes != 0],
            "num_tokens": np.int64(n_tokens),
            "num_examples": np.int64(sum(int(batch["n_examples"][i]) for i in keep))}


def collate_padded(batch: dict, pad_id: int, pad_to_multiple: int = 8) -> dict[str, np.ndarray]:
    """One example per row, right-padded to the batch's longest (rounded up to a multiple of 8 for
    tensor cores), with a 0/1 attention mask."""
    codes, keep, lengths, ids, labels = _right_padded(batch, pad_id, pad_to_multiple)
    mask = np.zeros(ids.shape, dtype=np.int64)
    for r, n in enumerate(lengths):
        mask[r, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "drop_codes": codes[codes != 0],
            "num_tokens": np.int64(int(mask.sum())), "num_examples": np.int64(len(keep))}
