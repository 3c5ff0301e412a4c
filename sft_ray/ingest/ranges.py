"""Byte ranges of large line-oriented files: where they may be cut, and reading one range.

A file of `format` jsonl, csv, tsv or lines that is not compressed can be read in parallel pieces,
by the rule of Hadoop's TextInputFormat / Spark's text sources: the range [start, end) owns every
line whose first byte lies in it. Its reader seeks to start - 1 and skips through the next b"\\n"
(unless start == 0), which lands on the first line starting at or after start, then reads lines
while their start is before end; the last one may run past end. So the ranges of a file cover
each line exactly once wherever the cuts fall (inside a line, on a CR of a CRLF, just after a
newline), and a final line without a newline is read by the range it starts in.

Records keep the line numbers the whole-file readers give them (`meta.line`, and the ids of
unparseable lines, records.py): a range's first line number is 1 + the newlines before it, which
staging.py counts for all the ranges of a file in parallel before reading them (`count_newlines`),
one sequential read of the file at `bytes.count` speed, small next to parsing and cleaning it.
Compressed files cannot be seeked into; Parquet, WARC, SQuAD JSON and bitext pairs are not lines.
"""

from __future__ import annotations

from collections.abc import Iterator

import fsspec
from fsspec.utils import infer_compression

SPLITTABLE_FORMATS = ("jsonl", "csv", "tsv", "lines")
_CHUNK = 8 << 20


def splittable(fmt: str, url: str) -> bool:
    return fmt in SPLITTABLE_FORMATS and infer_compression(url) is None


def cuts(size: int, unit_bytes: int) -> list[tuple[int, int]]:
    """[start, end) ranges of about unit_bytes covering [0, size): ceil(size/unit_bytes) equal parts."""
    n = max(1, -(-size // unit_bytes))
    step = -(-size // n)
    return [(i * step, min((i + 1) * step, size)) for i in range(n)]


def count_newlines(url: str, storage_options: dict, start: int, end: int) -> int:
    """b"\\n" bytes in [start, end) of the (uncompressed) file."""
    n = 0
    with fsspec.open(url, "rb", **storage_options) as f:
        f.seek(start)
        left = end - start
        while left > 0:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                break
            n += chunk.count(b"\n")
            left -= len(chunk)
    return n


def first_line(url: str, storage_options: dict) -> bytes:
    """The file's first line (a CSV/TSV header that every range needs)."""
    with fsspec.open(url, "rb", **storage_options) as f:
        return f.readline()


def range_lines(url: str, storage_options: dict, start: int, end: int, newlines_before: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line with its terminator) of each line starting in [start, end).

    `newlines_before`: b"\\n" bytes in [0, start), counted by the caller for all ranges at once;
    None counts them here (a full read of the prefix: fine for tests and one-off reads)."""
    if newlines_before is None:
        newlines_before = count_newlines(url, storage_options, 0, start) if start else 0
    with fsspec.open(url, "rb", **storage_options) as f:
        pos, n = start, newlines_before + 1
        if start > 0:
            f.seek(start - 1)
            skipped = f.readline()  # through the newline ending the line that start is in (or at)
            pos = start - 1 + len(skipped)
            if pos > start:  # the skipped bytes after start end with exactly one newline
                n += 1
        if pos >= end:
            return
        for line in f:
            yield n, line
            pos += len(line)
            if pos >= end:
                return
            n += 1
