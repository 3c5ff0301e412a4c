"""One streaming parser per input format, each yielding `Raw` items in file order.

A parser never raises on bad content: a line that is not JSON, not UTF-8, or has the wrong
number of columns becomes a `Raw` with a reject reason and the raw text, so the build accounts
for it (docs/ARCHITECTURE.md, principle 2). Only an unreadable *file* (I/O error, corrupt compression) ends a
parser, and the caller records that too.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any, Iterable, Iterator

import fsspec
from fsspec.compression import compr
from fsspec.utils import infer_compression

from sft_ray.ingest import ranges

log = logging.getLogger("sft_ray")


@dataclass
class Raw:
    position: int  # 1-based line/row number in the file (bitext: line pair number)
    fields: dict[str, Any] | None  # parsed row; keys are field names, or str(column index)
    reason: str | None = None  # reject reason when the row could not be parsed
    raw: str | None = None  # the unparsed row, kept for rejects
    meta: dict[str, Any] | None = None  # extra keys for the record's `meta` (web: url, charset, date, ...)
    stage: str | None = None  # stage of the reject when not `ingest` (web: extraction rejects are `clean`)


# A compressed format's first bytes (its "magic number"): gzip RFC 1952 s2.3.1, bzip2, xz, Zstandard RFC 8878 s3.1.1.
_MAGIC = {"gzip": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00", "lzma": b"\x5d\x00\x00", "zstd": b"\x28\xb5\x2f\xfd"}


@contextmanager
def _open(url: str, storage_options: dict):
    """The file's bytes, decompressed when its name says so *and* its first bytes agree: a plain
    text file named `.gz` is read as the text it is (each line a record), not rejected whole as
    corrupt gzip with its records uncounted."""
    compression = infer_compression(url)
    with fsspec.open(url, "rb", **storage_options) as raw:
        if compression in _MAGIC:
            magic = _MAGIC[compression]
            head = raw.read(len(magic))
            raw.seek(0)
            if head and head != magic:
                log.warning("%s: named %s but its first bytes are not %s: read uncompressed", url, compression, compression)
                compression = None
        if compression is None:
            yield raw
            return
        with compr[compression](raw, mode="rb") as f:
            # zstandard's reader has read() but no line iteration: buffer it like gzip's file objects.
            yield f if isinstance(f, io.IOBase) else io.BufferedReader(_RawReader(f), 1 << 20)


class _RawReader(io.RawIOBase):
    def __init__(self, f):
        self.f = f

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self.f.read(len(b))
        b[: len(data)] = data
        return len(data)


def resolve_encoding(url: str, storage_options: dict, encoding: str) -> str:
    """`encoding`, or for "auto" the file's: UTF-8 when its first 64 KiB decode as UTF-8, else
    resiliparse's detection over them (as for web pages: ingest/charset.py)."""
    if encoding.lower() != "auto":
        return encoding
    with _open(url, storage_options) as f:
        head = f.read(1 << 16)
    try:
        head.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as e:
        if e.start >= len(head) - 3 and e.reason == "unexpected end of data":  # cut mid-character
            return "utf-8"
    from resiliparse.parse.encoding import detect_encoding

    return detect_encoding(head) or "cp1252"


def _decode(line: bytes) -> str | None:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_jsonl(url: str, storage_options: dict, span: tuple[int, int, int | None] | None = None) -> Iterator[Raw]:
    """JSON objects, one a line. `span` (start, end, newlines before start): only the lines
    starting in that byte range of an uncompressed file (ranges.py), numbered as in the whole file."""
    if span is not None:
        yield from _jsonl(ranges.range_lines(url, storage_options, *span))
        return
    with _open(url, storage_options) as f:
        yield from _jsonl(enumerate(f, start=1))


def _jsonl(lines: Iterable[tuple[int, bytes]]) -> Iterator[Raw]:
    for n, line in lines:
        text = _decode(line)
        if text is None:
            yield Raw(n, None, "invalid_utf8", line.decode("utf-8", errors="replace"))
            continue
        if not text.strip():
            continue  # blank lines are not records
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; nesting past the recursion limit
            yield Raw(n, None, "malformed_json", text.rstrip("\n"))
            continue
        if not isinstance(obj, dict):
            yield Raw(n, None, "malformed_json", text.rstrip("\n"))
            continue
        yield Raw(n, obj)


def read_parquet(url: str, storage_options: dict, batch_size: int = 4096) -> Iterator[Raw]:
    import pyarrow.parquet as pq

    with fsspec.open(url, "rb", **storage_options) as f:
        n = 0
        for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size):
            for row in batch.to_pylist():
                n += 1
                yield Raw(n, row)


def read_delimited(url: str, storage_options: dict, delimiter: str, header: bool, span: tuple[int, int, int | None] | None = None,
                   encoding: str = "utf-8") -> Iterator[Raw]:
    """CSV/TSV rows, by header name (header=True) or by column index as a string key ('0', '1', ...).

    `span` (start, end, newlines before start): only the rows starting in that byte range of an
    uncompressed file (ranges.py); a range after the first reads the header from the file's first
    line. A range can only be cut at line ends, so a row spanning lines (a quoted line break) makes
    the range fail with a clear error, which read_items records as an `unreadable_file` reject:
    such a file must be read whole (`staging.unit_bytes` above its size). Lines are decoded one by
    one in `encoding` (an ASCII-compatible one: lines are split at the byte 0x0A), so a row with
    undecodable bytes is one `invalid_utf8` / `invalid_encoding` reject and the next row is read."""
    bad: set[int] = set()
    if span is None:
        with _open(url, storage_options) as fb:
            lines = _decoded(enumerate(fb, start=1), encoding, bad)
            yield from _delimited(csv.reader(lines, delimiter=delimiter), delimiter, header, 0, None, None, bad, encoding)
        return
    start, end, newlines_before = span
    numbered = ranges.range_lines(url, storage_options, start, end, newlines_before)
    first = next(numbered, None)
    if first is None:
        return
    names = None
    if header and start > 0:
        names = next(csv.reader([ranges.first_line(url, storage_options).decode(encoding, errors="replace")], delimiter=delimiter), None)
    lines = _decoded(enumerate((line for _, line in itertools.chain([first], numbered)), start=1), encoding, bad)
    yield from _delimited(csv.reader(lines, delimiter=delimiter), delimiter, header, first[0] - 1, names, url, bad, encoding)


def _decoded(lines: Iterable[tuple[int, bytes]], encoding: str, bad: set[int]) -> Iterator[str]:
    """Each line decoded; the ordinal (1-based, as csv.reader's line_num) of a line that does not
    decode goes into `bad` and the line is passed on with replacement characters."""
    for n, line in lines:
        try:
            yield line.decode(encoding)
        except UnicodeDecodeError:
            bad.add(n)
            yield line.decode(encoding, errors="replace")


def _delimited(reader, delimiter: str, header: bool, n: int, names: list[str] | None, ranged_url: str | None,
               bad: set[int] = frozenset(), encoding: str = "utf-8") -> Iterator[Raw]:
    """Rows of `reader`, numbered from n + 1. A byte range (`ranged_url` set) checks that every row
    is one line, since its cuts assume so. A row built from a line in `bad` is an encoding reject."""
    n0, last_line = n, 0
    undecodable = "invalid_utf8" if _is_utf8(encoding) else "invalid_encoding"
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            n += 1
            last_line = reader.line_num
            yield Raw(n, None, "malformed_csv", str(e))
            continue
        n += 1
        lines_of_row, last_line = range(last_line + 1, reader.line_num + 1), reader.line_num
        if ranged_url is not None and reader.line_num != n - n0:
            raise ValueError(f"{ranged_url}: row {n} spans lines (a quoted line break); a file with such rows cannot be read "
                             "by byte range: raise staging.unit_bytes above its size so that it is read whole")
        if bad and any(i in bad for i in lines_of_row):
            yield Raw(n, None, undecodable, delimiter.join(row))
            continue
        if header and names is None:
            names = row
            continue
        if not row:
            continue
        if names is not None:
            if len(row) != len(names):
                yield Raw(n, None, "wrong_column_count", delimiter.join(row))
                continue
            yield Raw(n, dict(zip(names, row)))
        else:
            yield Raw(n, {str(i): v for i, v in enumerate(row)})


def _is_utf8(encoding: str) -> bool:
    return encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig")


def read_bitext(src_url: str, tgt_url: str, storage_options: dict) -> Iterator[Raw]:
    """Line-aligned pair files, read in lockstep. Extra lines on either side are `misaligned_bitext`."""
    with _open(src_url, storage_options) as fs, _open(tgt_url, storage_options) as ft:
        for n, (s, t) in enumerate(zip_longest(fs, ft), start=1):
            if s is None or t is None:
                side = "tgt" if s is None else "src"
                yield Raw(n, None, "misaligned_bitext", f"only the {side} file has line {n}: " + ((s or t) or b"").decode("utf-8", "replace").rstrip("\n"))
                continue
            st, tt = _decode(s), _decode(t)
            if st is None or tt is None:
                yield Raw(n, None, "invalid_utf8", s.decode("utf-8", "replace").rstrip("\n") + "\t" + t.decode("utf-8", "replace").rstrip("\n"))
                continue
            yield Raw(n, {"src_text": st.rstrip("\r\n"), "tgt_text": tt.rstrip("\r\n")})


def read_lines(url: str, storage_options: dict, encoding: str = "utf-8", label: str | None = None,
               span: tuple[int, int, int | None] | None = None) -> Iterator[Raw]:
    """One text per non-blank line (e.g. rt-polarity); `label` comes from the file's key in `path`.
    `span`: only the lines starting in that byte range, as in read_jsonl."""
    if span is not None:
        yield from _lines(ranges.range_lines(url, storage_options, *span), encoding, label)
        return
    with _open(url, storage_options) as f:
        yield from _lines(enumerate(f, start=1), encoding, label)


def _lines(lines: Iterable[tuple[int, bytes]], encoding: str, label: str | None) -> Iterator[Raw]:
    for n, line in lines:
        try:
            text = line.decode(encoding).rstrip("\r\n")
        except UnicodeDecodeError:
            yield Raw(n, None, "invalid_utf8" if _is_utf8(encoding) else "invalid_encoding",
                      line.decode(encoding, errors="replace").rstrip("\r\n"))
            continue
        if text.strip():
            yield Raw(n, {"text": text, **({"label": label} if label is not None else {})})


def read_squad(url: str, storage_options: dict) -> Iterator[Raw]:
    """SQuAD / XQuAD JSON ({data: [{title, paragraphs: [{context, qas: [{id, question, answers}]}]}]}):
    one row per question, with its passage as `text` and the first gold answer as `answer`.
    Position = the question's ordinal in the file. The file is one JSON document, so it is parsed
    whole (SQuAD 2.0 train, the largest common one, is 40 MB)."""
    with _open(url, storage_options) as f:
        raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8"))["data"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        yield Raw(1, None, "malformed_json", f"not SQuAD JSON ({type(e).__name__}: {e}): " + raw[:2000].decode("utf-8", "replace"))
        return
    n = 0
    for article in data:
        for para in article.get("paragraphs", []) if isinstance(article, dict) else []:
            for qa in para.get("qas", []):
                n += 1
                answers = qa.get("answers") or []
                first = answers[0].get("text") if answers and isinstance(answers[0], dict) else None
                yield Raw(n, {"id": qa.get("id"), "title": article.get("title"), "text": para.get("context"),
                              "question": qa.get("question"), "answer": first})
