"""Column names and Arrow schemas at stage boundaries (docs/ARCHITECTURE.md).

Documents and translation pairs travel through the build in one table with the union of their
columns (unused ones are null), so every stage sees one schema and Ray Data never has to unify
block schemas. Three tag columns carry the "tag, then select" decision: a record with a non-null
`reject_reason` is on its way to rejects/ and later stages pass it through untouched.
"""

from __future__ import annotations

import pyarrow as pa

# Document / translation-pair columns.
ID, SOURCE, KIND = "id", "source", "kind"
TEXT, TITLE, URL, LABEL, LANG, META = "text", "title", "url", "label", "lang", "meta"
LANG_SCORE = "lang_score"
PII = "pii"  # JSON object {type: count} of redactions (clean.pii), null when none
SRC_TEXT, TGT_TEXT, SRC_LANG, TGT_LANG = "src_text", "tgt_text", "src_lang", "tgt_lang"
QUESTION, ANSWER = "question", "answer"  # kind qa: `text` is the passage (SQuAD `context`)
CONVERSATION = "conversation"  # kind sft: the validated messages as a JSON list of {role, content}
# Label columns (label/labelers.py); null when the label stage is off or a labeler does not apply.
# LABELERS is the one list of labelers: each is a `LabelConfig` field of that name and adds two
# columns, `<name>` (predicted label) and `<name>_score`.
TOPIC, SENTIMENT, QUALITY = "topic", "sentiment", "quality"
LABELERS = (TOPIC, SENTIMENT, QUALITY)
TOPIC_SCORE, SENTIMENT_SCORE, QUALITY_SCORE = (f"{name}_score" for name in LABELERS)
LABEL_TRUNCATED = "label_truncated"  # the text the labelers saw was cut to the model window
LABEL_FLAGS = "label_flags"  # comma-separated: select-step flags (action=flag), `<labeler>_seed` on seed texts; null when none
# `<name>_margin`: the head's top probability minus its second (label/labelers.py): how close the
# runner-up class came; `sft-ray label export --uncertain` asks people about the smallest (label/studio.py).
TOPIC_MARGIN, SENTIMENT_MARGIN, QUALITY_MARGIN = (f"{name}_margin" for name in LABELERS)


def seed_flag(labeler: str) -> str:
    """The `label_flags` entry of a row whose text is one of `labeler`'s seed texts."""
    return f"{labeler}_seed"


LABEL_FIELDS = [
    pa.field(TOPIC, pa.string()),
    pa.field(TOPIC_SCORE, pa.float64()),  # calibrated probability of `topic`
    pa.field(SENTIMENT, pa.string()),
    pa.field(SENTIMENT_SCORE, pa.float64()),  # calibrated probability of `sentiment`
    pa.field(QUALITY, pa.string()),  # "good" (main content) or "bad" (boilerplate) with the default seed
    pa.field(QUALITY_SCORE, pa.float64()),  # calibrated probability of label.quality.good_label (not of `quality`)
    pa.field(LABEL_TRUNCATED, pa.bool_()),
    pa.field(LABEL_FLAGS, pa.string()),
    # Added after the first eight (never reordered: readers index them): top minus second probability.
    pa.field(TOPIC_MARGIN, pa.float64()),
    pa.field(SENTIMENT_MARGIN, pa.float64()),
    pa.field(QUALITY_MARGIN, pa.float64()),
]
# The train/validation split of a record: set once, after dedup and before decontamination, by
# format/split.py:assign_split (build.py); decontamination, the teacher and format read it. Null on
# rows rejected before it is set (nothing reads it there: rejects/ has no split column).
SPLIT = "split"
TRAIN, VALIDATION = "train", "validation"
# Tags set by stages.
REJECT_STAGE, REJECT_REASON, DUPLICATE_OF = "reject_stage", "reject_reason", "duplicate_of"
DEDUP_KEY = "dedup_key"

RECORD_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field(KIND, pa.string(), nullable=False),
        pa.field(TEXT, pa.string()),
        pa.field(TITLE, pa.string()),
        pa.field(URL, pa.string()),
        pa.field(LABEL, pa.string()),  # gold label name from the source, when it has one
        pa.field(LANG, pa.string()),
        pa.field(LANG_SCORE, pa.float64()),  # language ID confidence (clean.langid), null when not run
        pa.field(SRC_TEXT, pa.string()),
        pa.field(TGT_TEXT, pa.string()),
        pa.field(SRC_LANG, pa.string()),
        pa.field(TGT_LANG, pa.string()),
        pa.field(QUESTION, pa.string()),
        pa.field(ANSWER, pa.string()),
        pa.field(CONVERSATION, pa.string()),
        pa.field(META, pa.string()),  # JSON object: file, line, anything the reader kept
        pa.field(PII, pa.string()),  # JSON object {EMAIL: 2, ...}: placeholders put in by clean.pii
        *LABEL_FIELDS,
        pa.field(SPLIT, pa.string()),  # TRAIN or VALIDATION; curated/ carries it
        pa.field(REJECT_STAGE, pa.string()),
        pa.field(REJECT_REASON, pa.string()),
        pa.field(DUPLICATE_OF, pa.string()),
    ]
)
TAG_COLUMNS = [REJECT_STAGE, REJECT_REASON, DUPLICATE_OF]
CURATED_COLUMNS = [f.name for f in RECORD_SCHEMA if f.name not in TAG_COLUMNS]
CURATED_SCHEMA = pa.schema([f for f in RECORD_SCHEMA if f.name not in TAG_COLUMNS])

REJECT_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string()),
        pa.field(SOURCE, pa.string()),
        pa.field(KIND, pa.string()),
        pa.field("stage", pa.string()),
        pa.field("reason", pa.string()),
        pa.field(DUPLICATE_OF, pa.string()),
        pa.field(TEXT, pa.string()),  # the text (pairs: "src\ttgt"; unreadable input: the raw line)
        pa.field(META, pa.string()),
    ]
)

# Provenance of an SFT example's target (format/labels.py). `gold`: from the source (its label, title,
# translation, answer, conversation); `human`: a person's label brought back from Label Studio
# (label/studio.py); `model`: a labeler's prediction at or above format.min_label_confidence; `teacher`:
# written by the LLM teacher (synthesize/); `augmented`: derived from another example. Precedence for
# a record's label: gold > human > model.
LABEL_SOURCE, LABEL_CONFIDENCE = "label_source", "label_confidence"
GOLD, HUMAN, MODEL, TEACHER, AUGMENTED = "gold", "human", "model", "teacher", "augmented"
LABEL_SOURCES = (GOLD, HUMAN, MODEL, TEACHER, AUGMENTED)

SFT_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field("task", pa.string(), nullable=False),
        pa.field(
            "messages",
            pa.list_(pa.struct([pa.field("role", pa.string()), pa.field("content", pa.string())])),
            nullable=False,
        ),
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field("source_id", pa.string(), nullable=False),
        pa.field(SPLIT, pa.string(), nullable=False),
        pa.field(LABEL_SOURCE, pa.string()),  # where the target came from: one of LABEL_SOURCES
        pa.field(LABEL_CONFIDENCE, pa.float64()),  # the model's (teacher's) probability of the target; null for gold and human
    ]
)


SFT_OUTPUT_SCHEMA = pa.schema([f for f in SFT_SCHEMA if f.name != SPLIT])  # split is the folder

# The LLM teacher (synthesize/). Between its stages: one row per (record, task) request ...
TEACHER_REQUEST_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string()), pa.field("task", pa.string()), pa.field(SOURCE, pa.string()),
        pa.field("source_id", pa.string()), pa.field(SPLIT, pa.string()), pa.field("passage", pa.string()),
        pa.field(TITLE, pa.string()), pa.field("prompt", pa.string()), pa.field("key", pa.string()),
    ]
)
# ... to which a backend adds what it generated (or found in the cache) ...
TEACHER_GENERATED_FIELDS = [
    pa.field("output", pa.string()),  # generated text, without the response prefix
    pa.field("score", pa.float64()),  # exp(mean token log-prob)
    pa.field("finished", pa.bool_()),  # stopped at end of sequence, not at max_new_tokens
    pa.field("cached", pa.bool_()),  # found in the cache, not generated for this batch
    pa.field("error", pa.string()),  # a failed generate() of the request's micro-batch
]
TEACHER_GENERATED_SCHEMA = pa.schema([*TEACHER_REQUEST_SCHEMA, *TEACHER_GENERATED_FIELDS])
# ... and its output: SFT examples with the tag columns and the teacher's confidence.
TEACHER_SCORE = "teacher_score"
TEACHER_SCHEMA = pa.schema(
    [*SFT_SCHEMA, pa.field(REJECT_REASON, pa.string()), pa.field(DUPLICATE_OF, pa.string()), pa.field(TEACHER_SCORE, pa.float64())]
)
# The request cache, `<output>/_cache/teacher/part-*.parquet` (synthesize/cache.py).
TEACHER_CACHE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string()),
        pa.field("output", pa.string()),  # generated text, without the response prefix
        pa.field("score", pa.float64()),  # exp(mean token log-prob)
        pa.field("finished", pa.bool_()),  # stopped at end of sequence, not at max_new_tokens
        pa.field("model", pa.string()),
        pa.field("created", pa.string()),
    ]
)


def require_columns(table: pa.Table, columns: list[str], where: str) -> None:
    """Fail with the missing column's name instead of a KeyError deep inside a stage."""
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise KeyError(f"{where}: missing column(s) {missing}; have {table.column_names}")


def empty_records() -> pa.Table:
    return RECORD_SCHEMA.empty_table()


def records_from_rows(rows: list[dict]) -> pa.Table:
    """Build a RECORD_SCHEMA table from dicts; absent columns become null."""
    return pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
