"""Generation-based task metrics: hand-computed scores, left-padded batched generation, gathering."""

from __future__ import annotations

import pytest
import sacrebleu
import torch

from sft_ray.models import load_model, load_tokenizer, resolve_model
from sft_ray.train import task_eval as te
from sft_ray.train.task_eval import METRICS_BY_TASK, generate, score, task_metrics

WORDS = "one two three four five six seven eight nine ten eleven twelve".split()


def _row(i: int, task: str, user: str, answer: str) -> dict:
    return {"id": f"r{i}", "task": task, "source": "t", "source_id": str(i),
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


# ------------------------------------------------------------------------------------- score()
def test_accuracy_normalisation_and_prefix_rule():
    refs = ["Sports"] * 9
    preds = ["Sports", " sports.", "SPORTS", '"Sports"', "Sports. The article is about football.",
             "Sports - football", "Sportsman", "Business", "Business or Sports"]
    # 6 correct (exact, case, punctuation, quoted, prefix + explanation, prefix + dash), 3 wrong.
    assert score("classification", preds, refs) == {"accuracy": pytest.approx(100 * 6 / 9)}
    assert score("sentiment", ["positive!", "Negative"], ["Positive", "positive"]) == {"accuracy": 50.0}
    # Labels with inner punctuation; a digit after the label is not a boundary.
    assert te.label_correct("Sci/Tech: it covers a new chip", "Sci/Tech")
    assert not te.label_correct("Label10", "Label1")
    assert not te.label_correct("", "World")


def test_squad_exact_match_and_f1():
    # SQuAD v1.1 normalisation: articles, punctuation and case do not matter.
    assert score("qa", ["the Eiffel Tower"], ["Eiffel Tower"]) == {"exact_match": 100.0, "f1": 100.0}
    assert score("qa", ["Denver Broncos."], ["Denver Broncos"]) == {"exact_match": 100.0, "f1": 100.0}
    # Partial overlap: pred "in eiffel tower in paris" (5 tokens), ref "eiffel tower" (2): 2 shared,
    # P = 2/5, R = 1, F1 = 2 * 0.4 / 1.4 = 4/7.
    partial = score("qa", ["in the Eiffel Tower in Paris"], ["Eiffel Tower"])
    assert partial["exact_match"] == 0.0 and partial["f1"] == pytest.approx(100 * 4 / 7)
    # Repeated tokens count by multiplicity: pred "Paris Paris" vs ref "Paris": P = 1/2, R = 1.
    assert te.squad_f1("Paris Paris", "Paris") == pytest.approx(2 / 3)
    # Corpus numbers are means over examples.
    both = score("qa", ["the Eiffel Tower", "in the Eiffel Tower in Paris", "Louvre"],
                 ["Eiffel Tower", "Eiffel Tower", "Notre-Dame"])
    assert both["exact_match"] == pytest.approx(100 / 3)
    assert both["f1"] == pytest.approx(100 * (1 + 4 / 7 + 0) / 3)
    assert te.squad_f1("The", "a") == 1.0 and te.squad_f1("the", "Paris") == 0.0  # empty after normalisation


def test_chrf_bleu_match_sacrebleu():
    same = ["Der Hund bellt laut.", "Ich habe heute keine Zeit."]
    assert score("translation", same, same) == {"chrf": pytest.approx(100.0), "bleu": pytest.approx(100.0)}
    hyps = ["The dog barks loudly.", "I have no time today", "He went to the market yesterday morning."]
    refs = ["The dog is barking loudly.", "I do not have time today.", "Yesterday morning he went to the market."]
    s = score("translation", hyps, refs)
    assert s["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert s["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert 0 < s["bleu"] < s["chrf"] < 100
    sig = te.sacrebleu_signatures()
    assert "tok:13a" in sig["bleu"] and "nc:6" in sig["chrf"]


def test_rouge_l_hand_computed():
    # Lin 2004, §3.1: against "police killed the gunman", "police kill the gunman" has LCS 3
    # ("police the gunman") -> P = R = F1 = 3/4; "the gunman kill police" has LCS 2 -> 1/2.
    ref = "police killed the gunman"
    assert te.rouge_l_f1("police kill the gunman", ref) == pytest.approx(3 / 4)
    assert te.rouge_l_f1("the gunman kill police", ref) == pytest.approx(1 / 2)
    # Unequal lengths: LCS 2, P = 2/2, R = 2/4 -> F1 = 2/3. Case and punctuation are ignored.
    assert te.rouge_l_f1("The gunman!", ref) == pytest.approx(2 / 3)
    s = score("headline", ["police kill the gunman", "The gunman!"], [ref, ref])
    assert set(s) == {"chrf", "rougeL"}
    assert s["rougeL"] == pytest.approx(100 * (3 / 4 + 2 / 3) / 2)
    expected = sacrebleu.corpus_chrf(["police kill the gunman", "The gunman!"], [[ref, ref]]).score
    assert s["chrf"] == pytest.approx(expected)


def test_metric_table_unknown_task_and_edge_cases():
    assert METRICS_BY_TASK["summarization"] == ("chrf", "rougeL") and METRICS_BY_TASK["qa"] == ("exact_match", "f1")
    assert set(score("dialogue", ["hello there"], ["hello there"])) == {"chrf", "rougeL"}
    assert set(score("free_form", ["hello there"], ["hello there"])) == {"chrf"}  # an unknown task: chrF only
    assert score("classification", [], []) == {}
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        score("qa", ["a", "b"], ["a"])


# ------------------------------------------------------------------------------ tiny-llama
@pytest.fixture(scope="module")
def tok():
    return load_tokenizer(resolve_model("tiny-llama"))


@pytest.fixture(scope="module")
def model():
    """tiny-llama with large random, untied weights.

    The stock tiny-llama (tied embeddings, std 0.02) repeats the last prompt token whatever came
    before it, so any padding bug would go unnoticed. With these weights the answer depends on the
    whole prompt. A batch with no attention mask, for example, gives different answers.
    """
    m = load_model(resolve_model("tiny-llama"))
    torch.manual_seed(0)
    m.lm_head.weight = torch.nn.Parameter(torch.empty_like(m.lm_head.weight))
    with torch.no_grad():
        for name, w in m.named_parameters():
            if w.dim() == 2:
                w.normal_(0, 1.0 if "embed" in name else 0.3)
    return m


def _varied_rows(n: int = 5) -> list[dict]:
    rows = [_row(i, "classification", " ".join(WORDS[:2 * i + 1]) + " What topic?", "Sports") for i in range(n)]
    rows[1]["messages"].insert(0, {"role": "system", "content": "Answer with one word."})
    return rows


def test_batched_generation_equals_one_by_one(model, tok):
    rows = _varied_rows(5)  # prompts of 5 different lengths; batch 3 mixes lengths in both batches
    model.train()
    model.model.layers[0].eval()  # a submodule in its own mode: restored as it was
    batched = generate(model, tok, rows, device="cpu", max_new_tokens=4, batch_size=3)
    single = generate(model, tok, rows, device="cpu", max_new_tokens=4, batch_size=1)
    assert len(batched) == 5 and all(isinstance(s, str) and s for s in batched)
    assert batched == single
    assert len(set(batched)) > 1  # the answers depend on the prompt, so the comparison means something
    assert model.training and not model.model.layers[0].training and model.model.layers[1].training
    assert tok.padding_side == "right"  # the tokenizer is not changed
    model.eval()


def test_task_metrics_shape(model, tok):
    rows = _varied_rows(3) + [_row(10, "translation", "Translate to German:\n\n" + "long text " * 40, "Langer Text"),
                              _row(11, "translation", "Translate to German: the dog", "der Hund")]
    was = model.training
    out = task_metrics(model, tok, rows, device="cpu", max_new_tokens=4, batch_size=4, keep_samples=2)
    assert model.training == was
    assert set(out) == {"classification", "translation", "samples"}
    assert set(out["classification"]) == {"n", "accuracy"} and out["classification"]["n"] == 3
    assert set(out["translation"]) == {"n", "chrf", "bleu"} and out["translation"]["n"] == 2
    for task in ("classification", "translation"):
        assert all(0 <= v <= 100 for k, v in out[task].items() if k != "n")
    assert [len(out["samples"][t]) for t in ("classification", "translation")] == [2, 2]
    s = out["samples"]["translation"][0]
    assert set(s) == {"prompt", "prediction", "reference"}
    assert len(s["prompt"]) == 200 and s["prompt"].startswith("Translate to German:")
    assert s["reference"] == "Langer Text"
    assert out["samples"]["classification"][0]["prompt"] == "one What topic?"
    # Predictions in the samples are the generated answers for those rows.
    assert [x["prediction"] for x in out["samples"]["classification"]] == generate(
        model, tok, rows[:2], device="cpu", max_new_tokens=4)


# ---------------------------------------------------------------------- a scripted fake model
class ScriptedLM(torch.nn.Module):
    """Appends the same tokens to every prompt: `answer`, `<|im_end|>`, then junk after the stop."""

    def __init__(self, tok, answer: str):
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        im_end = tok.convert_tokens_to_ids("<|im_end|>")
        ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
        self.tail = ids(answer) + [im_end] + ids("junk")
        self.calls: list[dict] = []

    def generate(self, input_ids, attention_mask, **kw):
        self.calls.append({**kw, "training": self.training, "mask": attention_mask.tolist(), "ids": input_ids.tolist()})
        tail = torch.tensor(self.tail).expand(input_ids.size(0), -1)
        return torch.cat([input_ids, tail], dim=1)


class DDPLike(torch.nn.Module):
    def __init__(self, module):
        super().__init__()
        self.module = module


def test_generate_stops_unwraps_and_left_pads(tok):
    inner = ScriptedLM(tok, " Sports. ")
    wrapped = DDPLike(inner)
    wrapped.train()
    rows = [_row(0, "classification", "short", "Sports"),
            _row(1, "classification", "a much longer prompt here", "Sports")]
    assert generate(wrapped, tok, rows, device="cpu", batch_size=2) == ["Sports.", "Sports."]
    (call,) = inner.calls
    assert call["use_cache"] is True and call["do_sample"] is False and call["max_new_tokens"] == 32
    assert tok.convert_tokens_to_ids("<|im_end|>") in call["eos_token_id"]
    assert call["training"] is False and wrapped.training and inner.training
    short, long_ = call["mask"]
    n_pad = long_.count(1) - short.count(1)
    assert n_pad > 0 and short == [0] * n_pad + [1] * (len(short) - n_pad)  # padding on the left
    assert call["ids"][0][:n_pad] == [tok.pad_token_id] * n_pad


def test_task_metrics_gathers_ranks_and_caps(tok, monkeypatch):
    other_rank = {"items": [("classification", "p", "Sports", "World"), ("classification", "p", "Sports", "Sports"),
                            ("qa", "q", "Paris", "Paris")], "skipped": {"qa": 1}}
    calls = []

    def fake_gather(out, obj):
        calls.append(obj)
        out[0], out[1] = obj, other_rank

    monkeypatch.setattr(te.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(te.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(te.dist, "all_gather_object", fake_gather)
    lm = ScriptedLM(tok, "Sports")
    rows = [_row(i, "classification", f"text {i}", "Sports") for i in range(4)] + [_row(9, "qa", "x " * 300, "y")]
    out = task_metrics(lm, tok, rows, device="cpu", max_per_task=3, keep_samples=5, max_prompt_len=100)
    # World 2, max 3 per task: this rank generates ceil(3/2) = 2 classification rows; the long qa
    # prompt is skipped. Gathered: 2 local (right) + 2 from rank 1 (one right), cut to 3 in rank order.
    assert len(calls) == 1 and len(calls[0]["items"]) == 2 and calls[0]["skipped"] == {"qa": 1}
    assert out["classification"] == {"n": 3, "accuracy": pytest.approx(100 * 2 / 3)}
    assert out["qa"] == {"n": 1, "exact_match": 100.0, "f1": 100.0, "skipped": 2}
    assert [s["reference"] for s in out["samples"]["classification"]] == ["Sports", "Sports", "World"]
    assert out["samples"]["classification"][0] == {"prompt": "text 0", "prediction": "Sports", "reference": "Sports"}


def test_task_metrics_empty_rank_still_gathers(tok, monkeypatch):
    calls = []
    monkeypatch.setattr(te.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(te.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(te.dist, "all_gather_object",
                        lambda out, obj: (calls.append(obj), out.__setitem__(slice(None), [obj, obj])))
    lm = ScriptedLM(tok, "x")
    assert task_metrics(lm, tok, [], device="cpu") == {"samples": {}}
    assert calls == [{"items": [], "skipped": {}}] and lm.calls == []
    with pytest.raises(ValueError, match="assistant answer"):
        bad = {"id": "bad", "task": "qa", "messages": [{"role": "user", "content": "?"}]}
        task_metrics(lm, tok, [bad], device="cpu")
