"""`augment`: new SFT examples derived from existing ones through the teacher engine (sft_ray/synthesize/augment.py).

The engine (model, backend, batch sizes, placement, cache) is the `teacher` section's; this block says
what to derive, from which tasks, and how much.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, model_validator

from sft_ray.config.base import StrictModel

AugmentKind = Literal["back_translation", "paraphrase", "follow_up"]
AUGMENT_KINDS: tuple[str, ...] = get_args(AugmentKind)


class AugmentConfig(StrictModel):
    """Augmentation and dialogue synthesis (docs/ARCHITECTURE.md, "Augmentation"). Off by default.

    back_translation  a translation example src -> tgt: the teacher translates the target back into the
                      source language; the new example is (back-translated source -> original target),
                      the recipe of Sennrich, Haddow & Birch 2016 ("Improving Neural Machine Translation
                      Models with Monolingual Data", ACL, arXiv:1511.06709): the target side stays human-written.
    paraphrase        the teacher rewrites the user turn's wording; the answer is unchanged.
    follow_up         from a single-turn example, the teacher writes a follow-up question and its answer:
                      a two-turn conversation (task `dialogue`).

    Only live training examples of the format stage are augmented (validation stays real data). The
    sample is deterministic: per task, the (example, kind) pairs with the smallest hash of
    (seed, kind, example id), at most `max_share` x that task's examples. Every result has
    `label_source: augmented`; invalid generations and duplicates of an original go to sft/rejects/.
    """

    enabled: bool = Field(default=False, description="Derive augmented examples with the teacher engine (teacher.model / teacher.backend).")
    kinds: list[AugmentKind] = Field(
        default_factory=lambda: list(AUGMENT_KINDS),
        description="Which augmentations run: back_translation, paraphrase, follow_up.",
    )
    tasks: dict[AugmentKind, list[str]] = Field(
        default_factory=lambda: {
            "back_translation": ["translation"],
            # Not translation: its user turn is mostly the source text, which a paraphrase must not change.
            "paraphrase": ["qa", "classification", "sentiment", "headline"],
            "follow_up": ["qa", "headline"],
        },
        description="Kind -> the SFT tasks (format.tasks values) whose examples it applies to. back_translation: translation only.",
    )
    max_share: float = Field(
        # 0.2: synthetic data stays a minority of each task; Sennrich et al. 2016 mix back-translated
        # and real pairs about 1:1, so a fifth is on the cautious side for paraphrases and dialogue.
        default=0.2, gt=0, le=1,
        description="Per task: augmented examples (all kinds together) at most this share of the task's training examples.",
    )
    seed: int = Field(default=0, description="Salts the hash that picks which examples are augmented.")
    max_new_tokens: int = Field(default=128, ge=1, description="Generation budget; an output that does not end within it is `augment_too_long`.")
    max_length_ratio: float = Field(
        default=3.0, gt=0,
        description="A rewrite (back-translation, paraphrase) longer than this x the text it rewrites (+ 20 characters) is `augment_too_long`.",
    )
    keep_chars: int = Field(
        default=80, ge=1,
        description="paraphrase: every paragraph of the user turn at least this long (the passage or text worked on) must "
        "reappear in the paraphrase (normalised), else `augment_content_changed`.",
    )
    max_input_chars: int = Field(default=4000, ge=1, description="Examples whose rewritten text is longer are not augmented (the prompt must fit the context window).")

    @model_validator(mode="after")
    def _check_tasks(self) -> AugmentConfig:
        for kind in self.kinds:
            if not self.tasks.get(kind):
                raise ValueError(f"augment.tasks.{kind}: no tasks for an enabled kind (list the tasks, or remove {kind} from augment.kinds)")
        bt = self.tasks.get("back_translation", [])
        if any(t != "translation" for t in bt):
            raise ValueError(f"augment.tasks.back_translation = {bt}: back-translation applies to the translation task only")
        return self
