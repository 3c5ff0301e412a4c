"""Task metrics from generated answers: does the fine-tuned model answer right, per task?

Why generate: validation loss (evaluate.py) is teacher-forced. Each reference token is scored given
the *reference* prefix, so a lower loss does not show that the model, left to itself, produces the
right label, a usable translation or the span a question asks for. A few greedy generations per task
show that directly. The reference is the last message of an SFT row (the assistant turn). The prompt
is `messages[:-1]` rendered with the tokenizer's chat template and `add_generation_prompt=True`,
the same rendering training uses (tokenize.py).

Metrics per task (`METRICS_BY_TASK`). All are percentages (0-100), as sacrebleu and the SQuAD
script report them:

- `classification`, `sentiment` -> `accuracy`. Prediction and reference are casefolded and
  stripped of surrounding whitespace and punctuation. A prediction is correct if it then equals the
  reference, or starts with the reference followed by a character that is not a letter or digit:
  "Sports", "sports.", "Sports. The article is about ..." and "Sports - football" count for
  "Sports", but "Sportsman", "Business or Sports" and "Not Sports" do not. Nothing more clever is
  done: an answer that names the right label after some other text counts as wrong.
- `translation` -> `chrf`, `bleu`: corpus-level chrF (Popović 2015, "chrF: character n-gram
  F-score for automatic MT evaluation"; sacrebleu defaults: character 6-grams, beta 2, no word
  n-grams) and BLEU (Papineni et al. 2002) computed by sacrebleu with its default settings
  (13a tokenisation, exponential smoothing), as recommended by Post 2018, "A Call for Clarity in
  Reporting BLEU Scores". `sacrebleu_signatures()` returns the strings that identify these
  settings; report them with the numbers. Both are corpus scores (statistics summed over all
  segments, then one score), not means of sentence scores. chrF is the main number: it works
  for any script, while BLEU with 13a tokenisation is close to meaningless for Chinese or Japanese
  output, which has no spaces.
- `qa` -> `exact_match`, `f1`: the official SQuAD v1.1 evaluation script (Rajpurkar et al. 2016,
  "SQuAD: 100,000+ Questions for Machine Comprehension of Text"). Answers are normalised: lower
  case, ASCII punctuation removed, the articles a/an/the removed, whitespace collapsed. F1 is the
  overlap of the bags of whitespace tokens. An empty normalised answer scores 1 only against an
  empty reference, as in the SQuAD v2.0 script (v1.1 gives F1 0 when both are empty). There is
  one reference per example, the row's answer.
- `headline`, `summarization` -> `chrf` and `rougeL`. rougeL is ROUGE-L F1 (Lin 2004, "ROUGE: A
  Package for Automatic Evaluation of Summaries", §3.1) over casefolded `\\w+` tokens: with LCS
  the longest common subsequence, P = LCS / len(pred), R = LCS / len(ref) and F1 = 2PR / (P + R).
  It is averaged over examples. There is no stemming and no stop-word removal, so the numbers are
  close to, but not identical with, `rouge-score` (which also drops non-ASCII letters).
- any other task -> `chrf` only.

`task_metrics` is called in every Ray Train worker with that worker's slice of the validation
rows. Each worker generates its own answers. The (task, prompt, prediction, reference) tuples are
gathered to every rank with `all_gather_object`, so every rank must call it, and then scored.
Every rank returns the same dict.
"""

from __future__ import annotations

import contextlib
import math
import re
import string
import unicodedata
from collections import Counter, defaultdict
from typing import Any

import torch
import torch.distributed as dist

METRICS_BY_TASK: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy",),
    "sentiment": ("accuracy",),
    "translation": ("chrf", "bleu"),
    "qa": ("exact_match", "f1"),
    "headline": ("chrf", "rougeL"),
    "summarization": ("chrf", "rougeL"),
    "dialogue": ("chrf", "rougeL"),
}
DEFAULT_METRICS: tuple[str, ...] = ("chrf",)
PROMPT_SAMPLE_CHARS = 200


def metrics_for(task: str) -> tuple[str, ...]:
    """Metric names `score` computes for `task` (`DEFAULT_METRICS` for an unknown task)."""
    return METRICS_BY_TASK.get(task, DEFAULT_METRICS)


# ------------------------------------------------------------------------------------ scoring
def _strip_punct(s: str) -> str:
    """Remove leading and trailing whitespace and Unicode punctuation (category P*)."""
    i, j = 0, len(s)
    while i < j and (s[i].isspace() or unicodedata.category(s[i]).startswith("P")):
        i += 1
    while j > i and (s[j - 1].isspace() or unicodedata.category(s[j - 1]).startswith("P")):
        j -= 1
    return s[i:j]


def _norm_label(s: str) -> str:
    return _strip_punct(s.casefold())


def label_correct(prediction: str, reference: str) -> bool:
    """The classification/sentiment rule from the module docstring."""
    p, r = _norm_label(prediction), _norm_label(reference)
    if not r:
        return not p
    return p == r or (p.startswith(r) and not p[len(r)].isalnum())


def squad_normalize(s: str) -> str:
    """`normalize_answer` of the SQuAD v1.1 evaluation script."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _SQUAD_PUNCT)
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


_SQUAD_PUNCT = frozenset(string.punctuation)


def squad_f1(prediction: str, reference: str) -> float:
    """Token-level F1 of the SQuAD script, in [0, 1]; empty vs empty is 1 (as in SQuAD v2.0)."""
    p, r = squad_normalize(prediction).split(), squad_normalize(reference).split()
    if not p or not r:
        return float(p == r)
    same = sum((Counter(p) & Counter(r)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(r)
    return 2 * precision * recall / (precision + recall)


def _rouge_tokens(s: str) -> list[str]:
    return re.findall(r"\w+", s.casefold())


def _lcs_len(a: list[str], b: list[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (beta = 1) of one pair, in [0, 1]: LCS of casefolded `\\w+` tokens."""
    p, r = _rouge_tokens(prediction), _rouge_tokens(reference)
    if not p or not r:
        return float(p == r)
    lcs = _lcs_len(p, r)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(p), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def _sacrebleu_metrics():
    from sacrebleu.metrics import BLEU, CHRF

    return {"chrf": CHRF(), "bleu": BLEU()}


def sacrebleu_signatures() -> dict[str, str]:
    """sacrebleu's reproducibility signatures for the `chrf` and `bleu` numbers (Post 2018)."""
    out = {}
    for name, m in _sacrebleu_metrics().items():
        m.corpus_score(["x"], [["x"]])  # the signature records the number of references, known after a call
        out[name] = str(m.get_signature())
    return out


def score(task: str, predictions: list[str], references: list[str]) -> dict[str, float]:
    """`{metric: value}` for the metrics of `task` (see `METRICS_BY_TASK`), all in 0-100.

    Pure Python (sacrebleu for chrF/BLEU), no torch. One reference per prediction. Empty input
    gives `{}`, because no score is defined for zero examples.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        return {}
    n = len(predictions)
    out: dict[str, float] = {}
    corpus = None
    for name in metrics_for(task):
        if name == "accuracy":
            out[name] = 100.0 * sum(label_correct(p, r) for p, r in zip(predictions, references)) / n
        elif name == "exact_match":
            same = sum(squad_normalize(p) == squad_normalize(r) for p, r in zip(predictions, references))
            out[name] = 100.0 * same / n
        elif name == "f1":
            out[name] = 100.0 * sum(squad_f1(p, r) for p, r in zip(predictions, references)) / n
        elif name == "rougeL":
            out[name] = 100.0 * sum(rouge_l_f1(p, r) for p, r in zip(predictions, references)) / n
        elif name in ("chrf", "bleu"):
            corpus = corpus or _sacrebleu_metrics()
            out[name] = float(corpus[name].corpus_score(list(predictions), [list(references)]).score)
        else:  # pragma: no cover - METRICS_BY_TASK names only the metrics above
            raise ValueError(f"unknown metric {name!r}")
    return out


# --------------------------------------------------------------------------------- generation
def _prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of `messages` rendered as in training, ending in the assistant header."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _stop_ids(tokenizer, model) -> list[int]:
    """eos of the tokenizer, `<|im_end|>` if the vocabulary has it, and the model's eos ids."""
    ids: list[Any] = [tokenizer.eos_token_id]
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        ids.append(vocab["<|im_end|>"])
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.extend(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
    out: list[int] = []
    for i in ids:
        if isinstance(i, int) and i not in out:
            out.append(i)
    if not out:
        raise ValueError("tokenizer has no eos token and no <|im_end|>: generation would never stop")
    return out


@contextlib.contextmanager
def _eval_mode(model):
    """model.eval(), then every submodule's own training flag put back as it was."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


@torch.no_grad()
def _generate_ids(model, tokenizer, prompts: list[list[int]], *, device, max_new_tokens: int, batch_size: int,
                  autocast) -> list[str]:
    """Greedy continuations of token-id prompts, in input order.

    Batches are left-padded by hand (pad id, attention mask 0), so every prompt ends at the last
    column and generation continues from its own last token. Generate derives position ids from
    the attention mask, which makes a padded prompt's result the same as the prompt alone. The
    tokenizer is not touched (no `padding_side` to set and restore). Prompts are sorted by length
    so a batch wastes little padding; the results are put back in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    inner = getattr(model, "module", model)
    stops = _stop_ids(tokenizer, inner)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    autocast = autocast or contextlib.nullcontext()
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[str] = [""] * len(prompts)
    with _eval_mode(model):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                n = len(prompts[i])
                ids[row, width - n:] = torch.tensor(prompts[i], dtype=torch.long)
                mask[row, width - n:] = 1
            with autocast:
                out = inner.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                    do_sample=False, num_beams=1, eos_token_id=stops, pad_token_id=pad, use_cache=True,
                )
            for row, i in enumerate(idx):
                new = out[row, width:].tolist()
                cut = next((k for k, t in enumerate(new) if t in stops), len(new))
                results[i] = tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
    return results


def _check_row(row: dict) -> list[dict]:
    msgs = row.get("messages") or []
    if len(msgs) < 2 or msgs[-1].get("role") != "assistant":
        raise ValueError(f"row {row.get('id')!r}: the last message must be the assistant answer, after a prompt")
    return msgs


def generate(model, tokenizer, rows: list[dict], *, device, max_new_tokens: int = 32, batch_size: int = 8,
             autocast=None) -> list[str]:
    """Greedy answers for `rows`, one stripped string per row in order.

    Each row's prompt is `messages[:-1]` rendered with the chat template and the generation prompt.
    Decoding stops at eos or `<|im_end|>`. `model` may be DDP-wrapped, in which case its `.module`
    generates. The model is put in eval mode under no_grad, and every submodule's training flag is
    restored afterwards. The KV cache is used even if `model.config.use_cache` is False (training
    configs often turn it off). `autocast` is an optional context manager (e.g.
    `torch.autocast("cuda", torch.bfloat16)`) entered around each `generate` call. A row whose last
    message is not the assistant's raises ValueError.
    """
    prompts = [_prompt_ids(tokenizer, _check_row(r)[:-1]) for r in rows]
    return _generate_ids(model, tokenizer, prompts, device=device, max_new_tokens=max_new_tokens,
                         batch_size=batch_size, autocast=autocast)


def _last_user(messages: list[dict]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return m.get("content") or ""
    return ""


def task_metrics(model, tokenizer, rows: list[dict], *, device, max_new_tokens: int = 32, batch_size: int = 8,
                 autocast=None, max_per_task: int | None = None, keep_samples: int = 3,
                 max_prompt_len: int | None = None) -> dict:
    """Generate answers for this rank's `rows`, gather them from all ranks and score each task.

    Every rank must call this when torch.distributed is initialised with more than one process
    (`all_gather_object`), even with no rows. Every rank gets the same result:

        {"<task>": {"n": 12, "accuracy": 58.3},                  # or chrf/bleu, exact_match/f1, ...
         ...,
         "samples": {"<task>": [{"prompt": ..., "prediction": ..., "reference": ...}, ...]}}

    - `n` is the number of examples scored for the task, over all ranks. Metrics are 0-100.
    - `max_per_task` caps `n`. Each of the W ranks generates for at most ceil(max_per_task / W)
      of its rows per task (its first ones), and the gathered lists are cut to `max_per_task`.
    - `max_prompt_len`: rows whose prompt has more tokens are not generated. They appear in their
      task's `"skipped"` count, which is present only when something was skipped. A task all of
      whose rows were skipped has `n` 0 and no metrics.
    - `samples` holds the first `keep_samples` examples per task: the last user message cut to 200
      characters, the prediction and the reference.
    - Rows without a final assistant message raise ValueError, as in `generate`.
    """
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    per_rank = None if max_per_task is None else max(0, math.ceil(max_per_task / world))
    taken: Counter = Counter()
    skipped: Counter = Counter()
    keep: list[tuple[str, str, str]] = []  # (task, prompt sample, reference)
    prompts: list[list[int]] = []
    for r in rows:
        task = r.get("task") or ""
        if per_rank is not None and taken[task] >= per_rank:
            continue
        msgs = _check_row(r)
        ids = _prompt_ids(tokenizer, msgs[:-1])
        if max_prompt_len is not None and len(ids) > max_prompt_len:
            skipped[task] += 1
            continue
        taken[task] += 1
        prompts.append(ids)
        keep.append((task, _last_user(msgs[:-1])[:PROMPT_SAMPLE_CHARS], msgs[-1].get("content") or ""))
    preds = _generate_ids(model, tokenizer, prompts, device=device, max_new_tokens=max_new_tokens,
                          batch_size=batch_size, autocast=autocast)
    local = {"items": [(t, p, pred, ref) for (t, p, ref), pred in zip(keep, preds)], "skipped": dict(skipped)}
    if world > 1:
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, local)
    else:
        gathered = [local]

    by_task: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    all_skipped: Counter = Counter()
    for part in gathered:  # rank order: deterministic whatever the timing
        for task, prompt, pred, ref in part["items"]:
            by_task[task].append((prompt, pred, ref))
        all_skipped.update(part["skipped"])
    for task in all_skipped:
        by_task.setdefault(task, [])

    result: dict[str, Any] = {}
    samples: dict[str, list[dict]] = {}
    for task in sorted(by_task):
        items = by_task[task] if max_per_task is None else by_task[task][:max_per_task]
        entry: dict[str, Any] = {"n": len(items)}
        entry.update(score(task, [p for _, p, _ in items], [r for _, _, r in items]))
        if all_skipped[task]:
            entry["skipped"] = all_skipped[task]
        result[task] = entry
        samples[task] = [{"prompt": pr, "prediction": p, "reference": r} for pr, p, r in items[:max(0, keep_samples)]]
    result["samples"] = samples
    return result
