"""`RunConfig`: a whole run, one field per stage, and the checks that span stages."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from sft_ray.config.augment import AugmentConfig
from sft_ray.config.base import StrictModel
from sft_ray.config.clean import CleanConfig
from sft_ray.config.dedup import DedupConfig
from sft_ray.config.format import FormatConfig
from sft_ray.config.label import LabelConfig
from sft_ray.config.placement import PlacementConfig
from sft_ray.config.sources import SourceConfig
from sft_ray.config.staging import StagingConfig
from sft_ray.config.teacher import UNPLACEABLE_VLLM, TeacherConfig
from sft_ray.config.train import TrainConfig


class RunConfig(StrictModel):
    """A whole run: where data comes from, what happens to it, where it goes."""

    output: str = Field(default="runs/demo", description="Output prefix: local path or fsspec URL (s3://bucket/prefix).")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec storage options for the output location.")
    overwrite: bool = Field(default=False, description="Rebuild even when the output already has _SUCCESS.")
    sources: list[SourceConfig] = Field(default_factory=list, description="Input corpora.")
    clean: CleanConfig = Field(default_factory=CleanConfig, description="Clean stage.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Dedup stage.")
    label: LabelConfig = Field(default_factory=LabelConfig, description="Auto-label stage.")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="LLM teacher: generated targets (QA, summaries) for records without one.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="Augmented examples (back-translation, paraphrase, follow-up turns) written by the teacher engine.")
    format: FormatConfig = Field(default_factory=FormatConfig, description="SFT formatting and split.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Fine-tuning.")
    placement: PlacementConfig = Field(default_factory=PlacementConfig, description="Node-label selectors pinning curation, model stages and training to node types.")
    ray_address: str | None = Field(default=None, description="Ray address; default: the job's cluster or a local ray.init().")
    read_batch_size: int = Field(default=1024, ge=1, description="Records per block emitted by the readers.")
    resumable: bool = Field(
        default=True,
        description="Stage read+clean output per work unit (staging.unit_bytes) under <output>/_work/ with completion markers, so a rerun of "
        "an interrupted build redoes only unfinished units (false: stream read -> clean -> dedup without staging).",
    )
    staging: StagingConfig = Field(default_factory=StagingConfig, description="Work units of read+clean: their size, and keeping staged work for incremental rebuilds.")

    @model_validator(mode="after")
    def _unique_sources(self) -> RunConfig:
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique, repeated: {dup}")
        return self

    @model_validator(mode="after")
    def _placeable_teacher(self) -> RunConfig:
        t = self.teacher
        if (t.enabled or self.augment.enabled) and t.backend == "vllm" and self.placement.models and t.engine_parallelism > 1:
            # Checked here as well as in synthesize/vllm_backend.py vllm_processor: here it fails before curation runs.
            raise ValueError(UNPLACEABLE_VLLM)
        return self

    @model_validator(mode="after")
    def _augment_has_an_engine(self) -> RunConfig:
        if not self.augment.enabled:
            return self
        if not self.teacher.model.strip():
            raise ValueError("augment.enabled needs a teacher model: set teacher.model (e.g. smollm2-135m-instruct, a local or s3:// "
                             "folder, or a Hugging Face id); augmentation runs on the teacher engine")
        if not self.format.enabled:
            raise ValueError("augment.enabled needs format.enabled: augmentation derives examples from the formatted SFT examples")
        return self
