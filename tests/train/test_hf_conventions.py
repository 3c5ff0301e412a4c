"""The exported model follows Hugging Face conventions: a chat template with generation markers that
mark exactly the tokens sft_ray trains on, a model card, and TRL's assistant-only loss runs on it."""

from __future__ import annotations

import pytest

from sft_ray.config import RunConfig
from sft_ray.models import load_model, load_tokenizer, resolve_model
from sft_ray.train.chat_template import has_markers, with_generation_markers
from sft_ray.train.export import export_model
from sft_ray.train.tokenize import IGNORE, tokenize_example

CONVERSATIONS = [
    [{"role": "user", "content": "Classify the topic: Stocks rallied on Friday."}, {"role": "assistant", "content": "Business"}],
    [{"role": "system", "content": "Translate to German."}, {"role": "user", "content": "A man rides a bike."},
     {"role": "assistant", "content": "Ein Mann fährt Fahrrad."}, {"role": "user", "content": "And: a dog runs."},
     {"role": "assistant", "content": "Ein Hund rennt."}],
]


@pytest.fixture(scope="module")
def tiny() -> str:
    return resolve_model("tiny-llama")


def test_the_marked_template_renders_as_before_and_marks_the_trained_tokens(tiny):
    tok = load_tokenizer(tiny)
    assert not has_markers(tok.chat_template)
    marked = with_generation_markers(tok)
    assert has_markers(marked)
    for messages in CONVERSATIONS:
        plain = tok.apply_chat_template(messages, tokenize=False)
        assert tok.apply_chat_template(messages, tokenize=False, chat_template=marked) == plain
        out = tok.apply_chat_template(messages, chat_template=marked, return_assistant_tokens_mask=True, return_dict=True)
        ours = tokenize_example(tok, messages, 4096)
        assert out["input_ids"] == ours["input_ids"]
        # transformers' assistant mask = the tokens sft_ray supervises (labels != -100).
        assert out["assistant_masks"] == [int(label != IGNORE) for label in ours["labels"]]


@pytest.mark.slow
def test_trl_assistant_only_loss_trains_the_exported_model(tiny, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cfg = RunConfig.model_validate({"sources": [{"name": "a", "kind": "news", "format": "csv", "path": "x.csv", "license": "cc-by-4.0"}],
                                    "train": {"model": "tiny-llama"}})
    from sft_ray import cards

    card = cards.model_card(cfg, {"base": {"loss": 3.2, "perplexity": 24.5}, "finetuned": {"loss": 2.1, "perplexity": 8.2}}, 10, True)
    folder = tmp_path / "model"
    export_model(load_model(tiny), load_tokenizer(tiny), str(folder), card=card)
    text = (folder / "README.md").read_text()
    assert "| validation loss | 3.2 | 2.1 |" in text and "**a**: cc-by-4.0" in text

    tok = load_tokenizer(str(folder))
    assert has_markers(tok.chat_template)
    data = Dataset.from_list([{"messages": m} for m in CONVERSATIONS * 4])
    args = SFTConfig(output_dir=str(tmp_path / "trl"), assistant_only_loss=True, max_steps=1, per_device_train_batch_size=2,
                     report_to=[], logging_steps=1, save_strategy="no", use_cpu=True, max_length=256)
    trainer = SFTTrainer(model=str(folder), args=args, train_dataset=data, processing_class=tok)
    out = trainer.train()
    assert out.global_step == 1 and out.training_loss > 0
