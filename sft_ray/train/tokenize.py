"""Chat messages -> token ids + assistant-only labels, as a Ray Data callable class.

Why by hand: the SmolLM2 (ChatML) template has no `{% generation %}` markers, so transformers'
`return_assistant_tokens_mask` is empty. We render the whole conversation once with the model's
own chat template, tokenize that string once (so training sees exactly the ids inference sees),
and mark a token as supervised when its character offset falls inside an assistant span. A span
is found by rendering prefixes: it starts after `render(messages[:i], add_generation_prompt=True)`
(so the `<|im_start|>assistant\\n` header is *not* supervised) and ends at the end of
`render(messages[:i+1])` less trailing whitespace (so the content and its closing `<|im_end|>` are
supervised, the newline after it is not). System and user turns and padding get label -100.

An example longer than TrainConfig.max_seq_len is dropped (`too_long_for_max_seq_len`, the default
`train.too_long: drop`: a cut example teaches an answer to a question it no longer shows) or, with
`too_long: truncate`, cut from the left, keeping the *end* of the sequence, because the answer is there. An example that is left without a supervised token (no assistant
turn, or a long trailing non-assistant turn pushed every answer out) cannot teach anything; it is
not silently lost: the row is kept with a `drop_reason` and the training loop skips and counts it
(reported in metrics, eval.json and the run summary).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from ray.data.collate_fn import NumpyBatchCollateFn

IGNORE = -100  # label of unsupervised tokens (torch cross_entropy's default ignore_index)

# Drop reasons, snake_case, in a fixed order: their index is the `drop_code` column (0 = kept), so
# the torch collate function can carry them as a tensor.
DROP_REASONS = ("", "no_assistant_turn", "no_supervised_tokens_after_truncation", "template_prefix_mismatch",
                "empty_messages", "too_long_for_max_seq_len")

TOKENIZED_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("input_ids", pa.list_(pa.int32())),
        pa.field("labels", pa.list_(pa.int32())),
        pa.field("drop_code", pa.int8()),
        pa.field("truncated", pa.bool_()),
    ]
)


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]] | None:
    """(rendered text, [(char_start, char_end) of each supervised assistant span]).

    None when a rendered prefix is not a prefix of the full rendering (a template that rewrites
    earlier turns depending on later ones); such conversations are dropped, not mislabelled.
    """
    text = _render(tokenizer, messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        head = _render(tokenizer, messages[:i], add_generation_prompt=True)
        upto = _render(tokenizer, messages[: i + 1])
        if not (upto.startswith(head) and text.startswith(upto)):
            return None
        end = len(upto.rstrip())
        if end > len(head):
            spans.append((len(head), end))
    return text, spans


def tokenize_example(tokenizer, messages: list[dict], max_seq_len: int,
                     loss_on: str = "all_assistant", too_long: str = "truncate") -> dict[str, Any]:
    """One conversation -> {input_ids, labels, drop_reason, truncated} (labels aligned with ids;
    the model shifts them). `drop_reason` is "" for a usable example.

    loss_on: "all_assistant" supervises every assistant turn; "last_assistant" only the final one
    (earlier answers then act as context, as in multi-turn chat data whose early turns are weak)."""
    out = {"input_ids": [], "labels": [], "drop_reason": "", "truncated": False}
    messages = [{"role": m["role"], "content": m["content"]} for m in (messages if messages is not None else [])]
    if not messages:
        out["drop_reason"] = "empty_messages"
        return out
    if not any(m["role"] == "assistant" for m in messages):
        out["drop_reason"] = "no_assistant_turn"
        return out
    rendered = assistant_spans(tokenizer, messages)
    if rendered is None:
        out["drop_reason"] = "template_prefix_mismatch"
        return out
    text, spans = rendered
    if loss_on == "last_assistant":
        spans = spans[-1:]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    labels = [IGNORE] * len(ids)
    s = 0  # spans and offsets are both sorted: one merge pass
    for t, (start, _) in enumerate(enc["offset_mapping"]):
        while s < len(spans) and start >= spans[s][1]:
            s += 1
        if s < len(spans) and spans[s][0] <= start < spans[s][1]:
            labels[t] = ids[t]
    if len(ids) > max_seq_len and too_long == "drop":
        out["drop_reason"] = "too_long_for_max_seq_len"
        return out
    if len(ids) > max_seq_len:
        ids, labels = ids[-max_seq_len:], labels[-max_seq_len:]
        out["truncated"] = True
    # labels[0] is never a target (position t predicts t+1), so it does not count as supervised.
    if all(x == IGNORE for x in labels[1:]):
        out["drop_reason"] = "no_supervised_tokens_after_truncation"
        return out
    out["input_ids"], out["labels"] = ids, labels
    return out


class TokenizeBatch:
    """Ray Data `map_batches` callable class: the tokenizer is loaded once per actor, not per batch.

    Input: Arrow batches of SFT examples (id, messages, ...). Output: TOKENIZED_SCHEMA, one row per
    input row (dropped rows carry a non-zero `drop_code` and empty ids).
    """

    def __init__(self, model_path: str, max_seq_len: int, trust_remote_code: bool = False,
                 loss_on: str = "all_assistant", too_long: str = "truncate"):
        from sft_ray.models import load_tokenizer

        self.tokenizer = load_tokenizer(model_path, trust_remote_code=trust_remote_code)
        self.max_seq_len, self.loss_on, self.too_long = max_seq_len, loss_on, too_long

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = {"id": [], "input_ids": [], "labels": [], "drop_code": [], "truncated": []}
        for ex_id, messages in zip(batch.column("id").to_pylist(), batch.column("messages").to_pylist()):
            r = tokenize_example(self.tokenizer, messages, self.max_seq_len, self.loss_on, self.too_long)
            rows["id"].append(ex_id)
            rows["input_ids"].append(r["input_ids"])
            rows["labels"].append(r["labels"])
            rows["drop_code"].append(DROP_REASONS.index(r["drop_reason"]))
            rows["truncated"].append(r["truncated"])
        return pa.Table.from_pydict(rows, schema=TOKENIZED_SCHEMA)


def tokenize_dataset(ds, model_path: str, max_seq_len: int, *, trust_remote_code: bool = False,
                     loss_on: str = "all_assistant", too_long: str = "truncate", packing: bool = False, pack_window: int = 2048,
                     max_actors: int = 1, num_cpus: float = 1.0, batch_size: int = 256):
    """SFT examples -> tokenized rows (TokenizeBatch in an actor pool autoscaling 1..max_actors,
    each loading the tokenizer once) -> with `packing`, packed rows (pack.pack_batch as tasks over
    windows of `pack_window` examples)."""
    from ray.data import ActorPoolStrategy

    from sft_ray.train.pack import pack_batch

    ds = ds.select_columns(["id", "messages"]).map_batches(
        TokenizeBatch,
        fn_constructor_kwargs={"model_path": model_path, "max_seq_len": max_seq_len,
                               "trust_remote_code": trust_remote_code, "loss_on": loss_on, "too_long": too_long},
        batch_format="pyarrow",
        batch_size=batch_size,
        compute=ActorPoolStrategy(min_size=1, max_size=max(1, max_actors)),
        num_cpus=num_cpus,
    )
    if packing:
        ds = ds.map_batches(pack_batch, fn_kwargs={"max_seq_len": max_seq_len}, batch_format="pyarrow",
                            batch_size=pack_window, num_cpus=min(num_cpus, 0.5))
    return ds


class TorchCollate(NumpyBatchCollateFn):
    """Collate for `iter_torch_batches`: packed rows (pack.collate_packed: position ids, no mask)
    or one example per row (pack.collate_padded: right padding + attention mask), as tensors.

    Besides the model inputs it returns `drop_codes` (codes of rows skipped in this batch, so the
    loop can count them; the batch may be empty), `num_tokens` (real, non-pad tokens) and
    `num_examples`.
    """

    def __init__(self, pad_id: int, packed: bool = False, pad_to_multiple: int = 8):
        self.pad_id, self.packed, self.pad_to_multiple = pad_id, packed, pad_to_multiple

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        from sft_ray.train.pack import collate_packed, collate_padded

        out = (collate_packed if self.packed else collate_padded)(batch, self.pad_id, self.pad_to_multiple)
        return {k: torch.from_numpy(np.asarray(v)) for k, v in out.items()}


class PadCollate(TorchCollate):
    """One example per row, right-padded (TorchCollate with packed=False)."""

    def __init__(self, pad_id: int, pad_to_multiple: int = 8):
        super().__init__(pad_id, packed=False, pad_to_multiple=pad_to_multiple)
