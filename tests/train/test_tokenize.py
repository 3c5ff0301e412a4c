"""Assistant-only labels and truncation on hand-built conversations (SmolLM2 ChatML template)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sft_ray.models import load_tokenizer, resolve_model
from sft_ray.schema import SFT_SCHEMA
from sft_ray.train.tokenize import DROP_REASONS, IGNORE, PadCollate, TokenizeBatch, tokenize_example

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def tok_path() -> str:
    return resolve_model("tiny-llama")


@pytest.fixture(scope="module")
def tok(tok_path):
    return load_tokenizer(tok_path)


def supervised_text(tok, r) -> list[str]:
    """The supervised tokens, decoded run by run (a run = consecutive supervised positions)."""
    runs, cur = [], []
    for i, lab in zip(r["input_ids"], r["labels"]):
        if lab == IGNORE:
            if cur:
                runs.append(tok.decode(cur))
            cur = []
        else:
            assert lab == i
            cur.append(i)
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_single_turn_with_system_prompt(tok):
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."}]
    r = tokenize_example(tok, msgs, 256)
    assert r["drop_reason"] == "" and not r["truncated"]
    # Same ids as the template renders for inference.
    assert r["input_ids"] == list(tok.apply_chat_template(msgs, tokenize=True, return_dict=True)["input_ids"])
    assert supervised_text(tok, r) == ["Paris.<|im_end|>"]
    # Exactly: everything up to and including "<|im_start|>assistant\n" is masked; the trailing
    # newline after <|im_end|> is masked too.
    prompt = tok.apply_chat_template(msgs[:2], tokenize=True, add_generation_prompt=True, return_dict=True)["input_ids"]
    n = len(prompt)
    assert r["input_ids"][:n] == list(prompt)
    assert all(x == IGNORE for x in r["labels"][:n])
    answer = tok("Paris.<|im_end|>", add_special_tokens=False)["input_ids"]
    assert r["labels"][n:n + len(answer)] == answer
    assert r["labels"][n + len(answer):] == [IGNORE] * (len(r["labels"]) - n - len(answer))
    assert tok.decode(r["input_ids"][n + len(answer):]) == "\n"
    assert DEFAULT_SYSTEM not in tok.decode(r["input_ids"])


def test_no_system_prompt_gets_default_system_masked(tok):
    msgs = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "Hi!"}]
    r = tokenize_example(tok, msgs, 256)
    text = tok.decode(r["input_ids"])
    assert text.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n<|im_start|>user\nSay hi")
    assert supervised_text(tok, r) == ["Hi!<|im_end|>"]
    # The assistant header is not supervised.
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    first = next(i for i, lab in enumerate(r["labels"]) if lab != IGNORE)
    assert r["input_ids"][first - len(header):first] == header


def test_multi_turn_supervises_every_assistant_turn(tok):
    msgs = [{"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Hello!\nHow can I help?"},
            {"role": "user", "content": "Sum 2+2"},
            {"role": "assistant", "content": "4"}]
    r = tokenize_example(tok, msgs, 256)
    assert supervised_text(tok, r) == ["Hello!\nHow can I help?<|im_end|>", "4<|im_end|>"]
    n_sup = sum(lab != IGNORE for lab in r["labels"])
    assert n_sup == len(tok("Hello!\nHow can I help?<|im_end|>4<|im_end|>", add_special_tokens=False)["input_ids"])


def test_truncation_keeps_the_end(tok):
    msgs = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "Short answer."}]
    full = tokenize_example(tok, msgs, 10_000)
    r = tokenize_example(tok, msgs, 32)
    assert r["truncated"] and r["drop_reason"] == ""
    assert len(r["input_ids"]) == 32
    assert r["input_ids"] == full["input_ids"][-32:] and r["labels"] == full["labels"][-32:]
    assert supervised_text(tok, r) == ["Short answer.<|im_end|>"]


def test_truncation_removing_all_supervised_tokens_drops(tok):
    # A long trailing user turn pushes the only answer out of the kept window.
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "tell me more " * 100}]
    assert tokenize_example(tok, msgs, 4096)["drop_reason"] == ""
    r = tokenize_example(tok, msgs, 64)
    assert r["drop_reason"] == "no_supervised_tokens_after_truncation"
    assert r["input_ids"] == [] and r["labels"] == []


def test_no_assistant_turn_and_empty_are_dropped_with_reason(tok):
    assert tokenize_example(tok, [{"role": "user", "content": "hi"}], 64)["drop_reason"] == "no_assistant_turn"
    assert tokenize_example(tok, [], 64)["drop_reason"] == "empty_messages"


def test_empty_assistant_content_still_supervises_end_token(tok):
    r = tokenize_example(tok, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}], 64)
    assert supervised_text(tok, r) == ["<|im_end|>"]


def test_tokenize_batch_and_collate(tok_path, tok):
    rows = [
        {"id": "a", "task": "qa", "source": "s", "source_id": "1", "split": "train",
         "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]},
        {"id": "b", "task": "qa", "source": "s", "source_id": "2", "split": "train",
         "messages": [{"role": "user", "content": "only a question"}]},
        {"id": "c", "task": "qa", "source": "s", "source_id": "3", "split": "train",
         "messages": [{"role": "system", "content": "x"}, {"role": "user", "content": "Q"},
                      {"role": "assistant", "content": "A much longer answer than the first one."}]},
    ]
    out = TokenizeBatch(tok_path, 128)(pa.Table.from_pylist(rows, schema=SFT_SCHEMA))
    assert out.num_rows == 3  # dropped rows are kept, flagged, so the loop can count them
    codes = out.column("drop_code").to_pylist()
    assert [DROP_REASONS[c] for c in codes] == ["", "no_assistant_turn", ""]
    batch = {c: out.column(c).to_numpy(zero_copy_only=False) for c in out.column_names}
    t = PadCollate(tok.pad_token_id)(batch)
    assert t["input_ids"].shape[0] == 2 and t["input_ids"].shape[1] % 8 == 0
    assert t["drop_codes"].tolist() == [DROP_REASONS.index("no_assistant_turn")]
    lens = [len(x) for x in batch["input_ids"] if len(x)]
    assert t["attention_mask"].sum(1).tolist() == lens
    # Padding positions: pad id, label -100, mask 0.
    short = int(np.argmin(lens))
    assert (t["labels"][short, lens[short]:] == IGNORE).all()
    assert (t["input_ids"][short, lens[short]:] == tok.pad_token_id).all()
