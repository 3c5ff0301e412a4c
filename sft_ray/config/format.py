"""`format`: how curated records become chat-format SFT examples, and the train/validation split (sft_ray/format/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from sft_ray.config.base import StrictModel


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
    validation_fraction: float = Field(default=0.05, ge=0.0, le=1.0, description="Share of source records (by id hash) whose examples go to validation.")
    seed: int = Field(default=0, description="Salts the split hash and the template rotation.")

    @field_validator("task_weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        for task, w in v.items():
            if not 0 < w <= 1:
                raise ValueError(f"task_weights.{task} = {w}: a share of examples kept, in (0, 1]")
        return v
