"""Task templates: one curated record -> chat-format SFT examples (OpenAI/HF `messages`).

Several phrasings per task rotate deterministically by a hash of the input text, so the model does
not learn one fixed prompt string (FLAN, Wei et al. 2022, §2: many templates per task) while a
rerun produces identical examples, and equal inputs render equal prompts (which lets SFT dedup,
dedup/sft.py, compare prompts). Languages are spelled out ("German", not "de").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator

from sft_ray import schema

LANGUAGE_NAMES = {
    "en": "English", "de": "German", "fr": "French", "cs": "Czech", "es": "Spanish", "it": "Italian",
    "pt": "Portuguese", "nl": "Dutch", "pl": "Polish", "ru": "Russian", "zh": "Chinese", "ja": "Japanese",
    "ko": "Korean", "ar": "Arabic", "tr": "Turkish", "uk": "Ukrainian", "hi": "Hindi", "sv": "Swedish",
}

CLASSIFICATION = [
    "Classify the topic of this news article. Answer with one of: {options}.\n\n{article}",
    "What is this news story about? Choose one of {options}.\n\n{article}",
    "{article}\n\nWhich topic fits this article best: {options}? Reply with the topic only.",
]
HEADLINE = [
    "Write a headline for this news article:\n\n{text}",
    "Suggest a short, informative title for the following news text.\n\n{text}",
    "{text}\n\nGive this article a headline.",
]
TRANSLATION = [
    "Translate the following {src_lang} text into {tgt_lang}:\n\n{text}",
    "Translate from {src_lang} to {tgt_lang}.\n\n{src_lang}: {text}\n{tgt_lang}:",
    "How do you say this in {tgt_lang}?\n\n{text}",
]

QA = [  # extractive QA (SQuAD-style): the answer is a span of the passage
    "Answer the question using the passage. Reply with the shortest span of the passage that answers it.\n\nPassage: {context}\n\nQuestion: {question}",
    "{context}\n\nBased on the text above, {question_lc}",
    "Read the passage and answer the question.\n\nQuestion: {question}\n\nPassage: {context}",
]
SENTIMENT = [
    "What is the sentiment of this review? Answer with one of: {options}.\n\n{text}",
    "{text}\n\nIs the sentiment of this text {options_or}?",
    "Classify the sentiment of the following text as {options_or}.\n\n{text}",
]


def pick(templates: list[str], content: str, task: str, seed: int) -> str:
    h = hashlib.blake2b(f"{seed}\x00{task}\x00{content}".encode(), digest_size=8).digest()
    return templates[int.from_bytes(h, "big") % len(templates)]


def language_name(code: str | None) -> str:
    return LANGUAGE_NAMES.get((code or "").lower(), code or "unknown")


def chat(system: str | None, user: str, assistant: str) -> list[dict]:
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def examples_for(rec: dict, tasks: list[str], options: list[str], both_directions: bool, system: str | None, seed: int,
                 labels: dict[str, str | None] | None = None) -> Iterator[tuple[str, str, list[dict]]]:
    """Yield (example id, task, messages) for every task this record can serve.

    `labels`: the target of each labelled task (classification, sentiment) as chosen by
    format/labels.py (gold > human > model); None: the record's gold `label`. A task the record cannot
    serve (no label, no title) yields nothing: that is not a reject, the record stays in curated/ and
    may serve other tasks.
    """
    rid = rec[schema.ID]
    if labels is None:
        labels = {"classification": rec.get(schema.LABEL), "sentiment": rec.get(schema.LABEL)}
    if "classification" in tasks and labels.get("classification") and rec.get(schema.TEXT) and options:
        article = f"Title: {rec[schema.TITLE]}\n{rec[schema.TEXT]}" if rec.get(schema.TITLE) else rec[schema.TEXT]
        user = pick(CLASSIFICATION, article, "classification", seed).format(options=", ".join(options), article=article)
        yield f"{rid}:classification", "classification", chat(system, user, labels["classification"])
    if "headline" in tasks and rec.get(schema.TITLE) and rec.get(schema.TEXT):
        user = pick(HEADLINE, rec[schema.TEXT], "headline", seed).format(text=rec[schema.TEXT])
        yield f"{rid}:headline", "headline", chat(system, user, rec[schema.TITLE])
    if "translation" in tasks and rec.get(schema.SRC_TEXT) and rec.get(schema.TGT_TEXT):
        directions = [(schema.SRC_TEXT, schema.SRC_LANG, schema.TGT_TEXT, schema.TGT_LANG)]
        if both_directions:
            directions.append((schema.TGT_TEXT, schema.TGT_LANG, schema.SRC_TEXT, schema.SRC_LANG))
        for a, alang, b, blang in directions:
            pair = f"{rec.get(alang)}-{rec.get(blang)}"
            user = pick(TRANSLATION, f"{pair}\x00{rec[a]}", "translation", seed).format(
                src_lang=language_name(rec.get(alang)), tgt_lang=language_name(rec.get(blang)), text=rec[a]
            )
            yield f"{rid}:translation:{pair}", "translation", chat(system, user, rec[b])
    if "qa" in tasks and rec.get(schema.TEXT) and rec.get(schema.QUESTION) and rec.get(schema.ANSWER):
        q = rec[schema.QUESTION].strip()
        user = pick(QA, f"{rec[schema.TEXT]}\x00{q}", "qa", seed).format(context=rec[schema.TEXT], question=q, question_lc=q[:1].lower() + q[1:])
        yield f"{rid}:qa", "qa", chat(system, user, rec[schema.ANSWER].strip())
    if "sentiment" in tasks and labels.get("sentiment") and rec.get(schema.TEXT) and options:
        user = pick(SENTIMENT, rec[schema.TEXT], "sentiment", seed).format(
            options=", ".join(options), options_or=" or ".join(options), text=rec[schema.TEXT])
        yield f"{rid}:sentiment", "sentiment", chat(system, user, labels["sentiment"])
    if "dialogue" in tasks and rec.get(schema.CONVERSATION):
        messages = json.loads(rec[schema.CONVERSATION])  # validated at ingest (ingest/dialogue.py)
        if system and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}] + messages
        yield f"{rid}:dialogue", "dialogue", messages
