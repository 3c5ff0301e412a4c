"""`sources`: the input corpora, where they are and how their files map to record columns."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from sft_ray.config.base import SourceKind, StrictModel

SourceFormat = Literal["jsonl", "parquet", "csv", "tsv", "bitext", "warc", "wet", "html", "squad", "lines"]


class SourceConfig(StrictModel):
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
    hide_labels: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="Share of records (chosen by a hash of the id) whose gold label is withheld: moved to "
        "meta.hidden_label, so the label stage's model labels become their targets (format.min_label_confidence). "
        "Shows and measures auto-labelling on a labelled corpus (the demo hides 25% of AG News labels).",
    )
    header: bool = Field(default=False, description="csv/tsv: the first row is a header.")
    encoding: str = Field(default="utf-8", description="csv, tsv and lines: text encoding (e.g. latin-1 for the original rt-polarity, "
                          "cp1252 for a spreadsheet's CSV export), or `auto` to detect it per file; other formats are UTF-8. A row "
                          "that does not decode is one reject; the reader goes on with the next.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict,
        description="fsspec storage options (e.g. {endpoint_url: ..., anon: false}); credentials are best "
        "left to the environment (AWS_ACCESS_KEY_ID, ...). Secrets are redacted in saved configs.",
    )
    limit: int | None = Field(default=None, ge=0, description="Read at most this many records from the source.")
    license: str | None = Field(default=None, description="The source's licence (an SPDX id such as cc-by-4.0, or words such as "
                                "'non-commercial research'); it travels into the dataset card (README.md) and the model card.")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        # Source names become parts of ids and file names: keep them path-safe.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError(f"source name {v!r} must match [A-Za-z0-9][A-Za-z0-9_.-]*")
        return v

    @field_validator("encoding")
    @classmethod
    def _codec(cls, v: str) -> str:
        import codecs

        if v.lower() == "auto":
            return v
        try:
            info = codecs.lookup(v)
        except LookupError:
            raise ValueError(f"unknown encoding {v!r} (a Python codec name such as utf-8, cp1252, latin-1, gbk, or auto)") from None
        if "\n".encode(info.name) != b"\n":  # lines are split at the byte 0x0A before decoding
            raise ValueError(f"encoding {v!r} is not ASCII-compatible (UTF-16/32): convert the file to UTF-8 first")
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
    def _check_shape(self) -> SourceConfig:
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
