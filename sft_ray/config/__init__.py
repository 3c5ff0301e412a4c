"""Typed run configuration: YAML + dotted overrides, validated, unknown keys rejected.

One `RunConfig` drives every job (build, finetune, pipeline). Every field has a description, so
`sft-ray validate-config` and the README can be generated from the models, and a typo in a key
fails with the key's dotted path and the file it came from. One module per part of the YAML:

    augment.py        augment: augmented examples through the teacher engine (AugmentConfig)
    base.py           StrictModel (extra keys forbidden), ConfigError, SourceKind
    sources.py        sources[]: SourceConfig
    clean.py          clean: the filters' switches and thresholds (FilterConfig, CleanConfig, ...)
    dedup.py          dedup: exact, near, semantic, SFT-example dedup, decontamination
    label.py          label: the labelers, their seed sets and select rules
    teacher.py        teacher: the LLM teacher (TeacherConfig)
    teacher_tasks.py  teacher.tasks: TeacherTaskConfig and the default prompt templates
    format.py         format: SFT examples and the split
    train.py          train: fine-tuning, LoRA
    placement.py      placement: node-label selectors
    staging.py        staging: work units of read+clean (unit_bytes), keep_work
    run.py            RunConfig: the whole run, and checks spanning stages
    load.py           load_config: YAML, --set overrides, error messages, relative paths, redaction

This package imports no stage of sft_ray (only sft_ray.schema for names), so every stage can import it.
"""

from sft_ray.config.augment import AUGMENT_KINDS, AugmentConfig, AugmentKind
from sft_ray.config.base import ALL_KINDS, ConfigError, SourceKind, StrictModel
from sft_ray.config.clean import (
    WEB_KINDS,
    BitextConfig,
    C4Config,
    CleanConfig,
    ExtractConfig,
    FilterConfig,
    FineWebQualityConfig,
    GopherQualityConfig,
    GopherRepetitionConfig,
    LangIdConfig,
    LanguageConfig,
    PiiConfig,
    PiiType,
)
from sft_ray.config.dedup import (
    BenchmarkSetConfig,
    DecontaminateConfig,
    DedupConfig,
    ExactDedupConfig,
    NearDedupConfig,
    SemanticDedupConfig,
    SftDedupConfig,
)
from sft_ray.config.format import FormatConfig
from sft_ray.config.label import (
    LabelConfig,
    LabelerConfig,
    QualityLabelerConfig,
    SeedConfig,
    SentimentLabelerConfig,
    TopicLabelerConfig,
)
from sft_ray.config.load import (
    apply_override,
    config_dict,
    config_yaml,
    explain,
    load_config,
    read_yaml_mapping,
    redact,
    require_output,
    validated,
)
from sft_ray.config.placement import PlacementConfig
from sft_ray.config.run import RunConfig
from sft_ray.config.sources import SourceConfig, SourceFormat
from sft_ray.config.staging import StagingConfig
from sft_ray.config.teacher import UNPLACEABLE_VLLM, TeacherConfig
from sft_ray.config.teacher_tasks import DEFAULT_TEACHER_TASKS, TeacherTaskConfig
from sft_ray.config.train import LoraConfig, TrainConfig

__all__ = [
    "ALL_KINDS", "AUGMENT_KINDS", "AugmentConfig", "AugmentKind", "DEFAULT_TEACHER_TASKS", "UNPLACEABLE_VLLM", "WEB_KINDS",
    "BenchmarkSetConfig", "BitextConfig", "C4Config", "CleanConfig", "ConfigError", "DecontaminateConfig",
    "DedupConfig", "ExactDedupConfig", "ExtractConfig", "FilterConfig", "FineWebQualityConfig", "FormatConfig",
    "GopherQualityConfig", "GopherRepetitionConfig", "LabelConfig", "LabelerConfig", "LangIdConfig", "LanguageConfig", "LoraConfig",
    "NearDedupConfig", "PiiConfig", "PiiType", "PlacementConfig", "QualityLabelerConfig", "RunConfig", "SeedConfig",
    "SemanticDedupConfig", "SentimentLabelerConfig", "SftDedupConfig", "SourceConfig", "SourceFormat", "SourceKind",
    "StagingConfig", "StrictModel", "TeacherConfig", "TeacherTaskConfig", "TopicLabelerConfig", "TrainConfig",
    "apply_override", "config_dict", "config_yaml", "explain", "load_config", "read_yaml_mapping", "redact", "require_output", "validated",
]
