"""Clean: NFC, whitespace and length bounds, with named reasons."""

from __future__ import annotations

from sft_ray import schema as S
from sft_ray.clean.normalize import normalize_batch, normalize_text
from sft_ray.config import CleanConfig


def test_nfc_makes_composed_and_decomposed_equal():
    assert normalize_text("Cafe\u0301 au lait") == normalize_text("Caf\u00e9 au lait") == "Caf\u00e9 au lait"


def test_whitespace_collapses_but_lines_survive():
    assert normalize_text("  a \t b\u00a0c  \r\n\n\n\n second   line ") == "a b c\n\nsecond line"


def test_length_bounds_and_existing_rejects_untouched():
    rows = [
        {"id": "1", "source": "s", "kind": "text", "text": "short"},
        {"id": "2", "source": "s", "kind": "text", "text": "long enough   text here, fine."},
        {"id": "3", "source": "s", "kind": "text", "text": "x" * 50},
        {"id": "4", "source": "s", "kind": "translation", "src_text": "Hi", "tgt_text": "H"},
        {"id": "5", "source": "s", "kind": "text", "text": "bad", "reject_stage": "ingest", "reject_reason": "malformed_json"},
    ]
    out = normalize_batch(S.records_from_rows(rows), CleanConfig(min_chars=10, max_chars=40, pair_min_chars=2)).to_pylist()
    assert [r["reject_reason"] for r in out] == ["too_short", None, "too_long", "too_short", "malformed_json"]
    assert [r["reject_stage"] for r in out] == ["clean", None, "clean", "clean", "ingest"]
    assert out[1]["text"] == "long enough text here, fine."
