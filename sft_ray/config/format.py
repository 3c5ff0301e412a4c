"""`format`: how curated records become chat-format SFT examples, and the train/validation split (sft_ray/format/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sft_ray.config.base import StrictModel


class LabelConfidenceConfig(StrictModel):
    """Per task: the least calibrated probability a labeler's prediction needs to become a training
    target for a record without a gold or human label (sft_ray/format/labels.py). None: never use model
    labels for that task. The defaults are the labelers' own thresholds (sft_ray/config/label.py), where
    benchmarks/label_quality.py measured the accuracy of what passes."""

    classification: float | None = Field(
        # Four AG News topics: at 0.5, ~95% of held-out rows pass with ~0.88 accuracy (benchmarks/label_quality.py).
        default=0.5, ge=0, le=1, description="Least `topic_score` for a classification example from the topic labeler.",
    )
    sentiment: float | None = Field(
        # rt-polarity: at 0.7, ~63% of held-out rows pass, ~0.85 of them right (benchmarks/label_quality.py).
        default=0.7, ge=0, le=1, description="Least `sentiment_score` for a sentiment example from the sentiment labeler.",
    )


class FormatConfig(StrictModel):
    """Turns curated records into chat-format SFT examples, one or more tasks per record kind."""

    enabled: bool = Field(default=True, description="Write sft/ examples.")
    tasks: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "news": ["classification", "headline"],
            "translation": ["translation"],
            "qa": ["qa"],
            "sentiment": ["sentiment"],
            "sft": ["dialogue"],
        },
        description="Source kind -> tasks to synthesise. Tasks: classification, headline, translation, qa (extractive, "
        "from passage + question + answer), sentiment (label among the source's labels), dialogue (conversations passed through).",
    )
    translation_directions: Literal["forward", "both"] = Field(
        default="both", description="Translation examples src->tgt only, or both directions."
    )
    system_prompt: str | None = Field(default=None, description="Optional system message prepended to every example.")
    task_weights: dict[str, float] = Field(
        default_factory=dict,
        description="Task mix: the share (0-1] of each task's examples kept, chosen by a hash of the example id (so "
        "deterministic and partition-independent); the others go to sft/rejects as `task_mix`. Unlisted tasks: 1.",
    )
    count_tokens: bool = Field(
        default=True,
        description="Count each task's tokens (chat template applied) with train.model's tokenizer for the manifest; "
        "falls back to whitespace words, and says so, when the tokenizer cannot be loaded offline.",
    )
    min_label_confidence: LabelConfidenceConfig = Field(
        default_factory=LabelConfidenceConfig,
        description="Model labels as targets: a record with no gold label (and no human one, <output>/labels/human.jsonl) "
        "gets a classification / sentiment example from the label stage's prediction when its score is at least this. "
        "Every example says where its target came from (`label_source`) and how sure the model was (`label_confidence`).",
    )
    validation_fraction: float = Field(default=0.05, ge=0.0, le=1.0, description="Share of source records (by id hash) whose examples go to validation.")
    seed: int = Field(default=0, description="Salts the split hash and the template rotation.")

    @field_validator("task_weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for task, w in v.items():
            if not 0 < w <= 1:
                raise ValueError(f"task_weights.{task} = {w}: a share of examples kept, in (0, 1]")
        return v
