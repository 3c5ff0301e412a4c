"""Turn parsed rows into records of the common schema, with stable ids.

Ids are content-derived (`<source>-<blake2b of the mapped fields>`) or taken from the source's own
id field (`<source>-<id>`), never from file names or line numbers: the same records split into 1
or 16 files get the same ids, so dedup survivors and train/validation assignment do not depend on
how the input was sharded (docs/ARCHITECTURE.md, principle 4). File and line go to `meta` for tracing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator

import pyarrow as pa

from sft_ray import schema
from sft_ray.config import ExtractConfig, SourceConfig
from sft_ray.ingest import dialogue, formats, web
from sft_ray.ingest.formats import Raw
from sft_ray.storage import StoreError, is_store_failure

DOC_COLUMNS = [schema.ID, schema.TEXT, schema.TITLE, schema.URL, schema.LABEL]
PAIR_COLUMNS = [schema.ID, schema.SRC_TEXT, schema.TGT_TEXT]
QA_COLUMNS = [schema.ID, schema.TEXT, schema.TITLE, schema.QUESTION, schema.ANSWER]
STAGE = "ingest"


def field_mapping(src: SourceConfig) -> dict[str, str]:
    """Record column -> input key. Explicit `fields` win; otherwise columns map to same-named keys
    (and headerless TSV bitext maps src_text/tgt_text to columns 0/1)."""
    if src.fields:
        return {col: str(key) for col, key in src.fields.items()}
    if src.kind == "translation":
        if src.format in ("csv", "tsv") and not src.header:
            return {schema.SRC_TEXT: "0", schema.TGT_TEXT: "1"}
        return {c: c for c in PAIR_COLUMNS}
    if src.kind == "qa":
        return {c: c for c in QA_COLUMNS}
    if src.kind == "sft":
        return {schema.ID: schema.ID}  # the conversation is read by dialogue.conversation_of, not mapped
    return {c: c for c in DOC_COLUMNS}


def required_columns(src: SourceConfig) -> list[str]:
    return {"translation": [schema.SRC_TEXT, schema.TGT_TEXT], "qa": [schema.TEXT, schema.QUESTION, schema.ANSWER], "sft": [schema.CONVERSATION]}.get(src.kind, [schema.TEXT])


def stable_hash(*parts: Any, n_hex: int = 20) -> str:
    """80-bit blake2b over a canonical JSON encoding: collision odds ~4e-7 at 10^9 records."""
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=n_hex // 2).hexdigest()


def _as_text(v: Any) -> tuple[str | None, str | None]:
    """(value, error). Scalars become strings; containers are a type error."""
    if v is None:
        return None, None
    if isinstance(v, str):
        return v, None
    if isinstance(v, (int, float, bool)):
        return str(v), None
    return None, "wrong_type"


def _hidden(record_id: str, share: float) -> bool:
    """Whether a record's gold label is withheld (SourceConfig.hide_labels): a hash of its id, so
    the same records whatever the partitioning (format/split.py hashed_share)."""
    from sft_ray.format.split import RESOLUTION, hashed_share

    return hashed_share(record_id, "hide_labels", 0) < share * RESOLUTION


def to_record(src: SourceConfig, mapping: dict[str, str], raw: Raw, file_rel: str) -> dict:
    meta = {"file": file_rel, "line": raw.position, **(raw.meta or {})}
    base = {schema.SOURCE: src.name, schema.KIND: src.kind}
    if raw.fields is None:  # unparseable row: reject with the raw text
        return {
            **base,
            schema.ID: f"{src.name}-x{stable_hash(file_rel, raw.position, raw.raw)}",
            schema.TEXT: raw.raw,
            schema.META: json.dumps(meta, ensure_ascii=False),
            schema.REJECT_STAGE: raw.stage or STAGE,
            schema.REJECT_REASON: raw.reason,
        }
    rec: dict[str, Any] = dict(base)
    problem: str | None = None
    for col, key in mapping.items():
        if src.format in ("csv", "tsv") and key not in raw.fields:
            # A header-less row too short for the mapped column index: the row is malformed.
            problem = problem or "wrong_column_count"
        value, err = _as_text(raw.fields.get(key))
        if err:
            problem = problem or f"{err}"
            meta["bad_field"] = key
        rec[col] = value
    if src.kind == "sft":
        conv, err = dialogue.conversation_of(raw.fields)
        if err:
            problem = problem or err
            meta["dialogue_error"] = conv
        else:
            rec[schema.CONVERSATION], rec[schema.TEXT] = conv, dialogue.render(conv)
    for col in required_columns(src):
        if problem is None and not rec.get(col):
            problem = "missing_field"
            meta["missing"] = mapping.get(col, col)
    if src.kind == "translation":
        rec[schema.SRC_LANG], rec[schema.TGT_LANG] = src.langs["src"], src.langs["tgt"]
    elif "text" in src.langs:
        rec[schema.LANG] = src.langs["text"]
    if rec.get(schema.LABEL) is not None and src.label_names:
        rec[schema.LABEL] = src.label_names.get(rec[schema.LABEL], rec[schema.LABEL])
    given_id = rec.pop(schema.ID, None)
    if given_id:
        rec[schema.ID] = f"{src.name}-{given_id}"
    else:
        content = [rec.get(c) for c in mapping if c != schema.ID] if src.kind != "sft" else [json.dumps(raw.fields, sort_keys=True, default=str)]
        rec[schema.ID] = f"{src.name}-{stable_hash(*content)}"
    if src.hide_labels and rec.get(schema.LABEL) is not None and _hidden(rec[schema.ID], src.hide_labels):
        meta["hidden_label"] = rec.pop(schema.LABEL)  # the gold label, kept for measuring the model's (SourceConfig.hide_labels)
    if problem:
        rec[schema.REJECT_STAGE], rec[schema.REJECT_REASON] = STAGE, problem
        if rec.get(schema.TEXT) is None:
            rec[schema.TEXT] = json.dumps(raw.fields, ensure_ascii=False, default=str)[:100_000]
    rec[schema.META] = json.dumps(meta, ensure_ascii=False)
    return rec


def parse_file(src: SourceConfig, item: dict, extract_cfg: ExtractConfig | None = None) -> Iterator[Raw]:
    """One work item's raw rows: a whole file (or bitext pair), or, with `start`/`end`, the lines
    starting in that byte range of an uncompressed line-oriented file (ranges.py); `newlines_before`
    (set by staging.py) numbers them as in the whole file."""
    storage_options = src.storage_options
    span = (int(item["start"]), int(item["end"]), item.get("newlines_before")) if item.get("end") is not None else None
    if src.format in ("warc", "wet"):
        return web.read_warc(item["url"], storage_options, src.format, extract_cfg or ExtractConfig())
    if src.format == "html":
        return web.read_html(item["url"], storage_options, int(item.get("size") or 0), extract_cfg or ExtractConfig())
    if src.format == "jsonl":
        return formats.read_jsonl(item["url"], storage_options, span)
    if src.format == "parquet":
        return formats.read_parquet(item["url"], storage_options)
    if src.format in ("csv", "tsv"):
        return formats.read_delimited(item["url"], storage_options, "," if src.format == "csv" else "\t", src.header, span,
                                      formats.resolve_encoding(item["url"], storage_options, src.encoding))
    if src.format == "bitext":
        return formats.read_bitext(item["url"], item["tgt_url"], storage_options)
    if src.format == "lines":
        return formats.read_lines(item["url"], storage_options, formats.resolve_encoding(item["url"], storage_options, src.encoding),
                                  item.get("label"), span)
    if src.format == "squad":
        return formats.read_squad(item["url"], storage_options)
    raise ValueError(f"unknown format {src.format}")


def read_items(
    src: SourceConfig, items: list[dict], block_rows: int, extract_cfg: ExtractConfig | None = None
) -> Iterator[pa.Table]:
    """Read work items in order, yielding Arrow blocks of at most `block_rows` records.

    `extract_cfg` (clean.extract) drives HTML main-content extraction for web formats, which
    happens here in the read task; None means its defaults.

    An I/O error or corrupt compression mid-file keeps the records already read and adds one
    `unreadable_file` reject naming the file and the error (so the manifest can list it).
    `limit` counts every input record, rejects included.
    """
    mapping = field_mapping(src)
    rows: list[dict] = []
    remaining = src.limit if src.limit is not None else -1
    for item in items:
        if remaining == 0:
            break
        rel = item["rel"] if not item.get("tgt_rel") else f"{item['rel']}|{item['tgt_rel']}"
        try:
            for raw in parse_file(src, item, extract_cfg):
                rows.append(to_record(src, mapping, raw, rel))
                remaining -= 1
                if len(rows) >= block_rows:
                    yield schema.records_from_rows(rows)
                    rows = []
                if remaining == 0:
                    break
        except Exception as e:  # noqa: BLE001 - a bad file is recorded, not raised; a failing store is raised
            if is_store_failure(e):
                raise StoreError(f"source {src.name}: reading {item['url']} failed after retries: {type(e).__name__}: {e}") from e
            err = f"{type(e).__name__}: {e}"[:2000]
            # A byte range of a file fails on its own: its reject is one per range, and says which.
            span = {"bytes": [int(item["start"]), int(item["end"])]} if item.get("end") is not None else {}
            rows.append(
                {
                    schema.ID: f"{src.name}-file-{stable_hash(rel, *span.get('bytes', []))}",
                    schema.SOURCE: src.name,
                    schema.KIND: src.kind,
                    schema.TEXT: err,
                    schema.META: json.dumps({"file": rel, "url": item["url"], **span, "error": err}, ensure_ascii=False),
                    schema.REJECT_STAGE: STAGE,
                    schema.REJECT_REASON: "unreadable_file",
                }
            )
    if rows:
        yield schema.records_from_rows(rows)
