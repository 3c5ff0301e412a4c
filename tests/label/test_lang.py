"""Language labeler (sft_ray/label/lang.py): fills lang/lang_score only where the clean stage left
them empty, on live documents; never touches pairs, rejects or languages already set."""

from __future__ import annotations

from sft_ray import schema
from sft_ray.label.lang import fill_lang_batch


def _row(i, text, kind="text", **kw):
    return {schema.ID: f"r{i}", schema.SOURCE: "s", schema.KIND: kind, schema.TEXT: text, **kw}


def test_fills_only_live_documents_without_a_language():
    table = schema.records_from_rows([
        _row(1, "The committee approved the budget after a long debate on Tuesday evening."),
        _row(2, "Der Ausschuss hat den Haushalt nach einer langen Debatte am Dienstagabend genehmigt."),
        _row(3, "Le comité a approuvé le budget après un long débat mardi soir.", lang="es", lang_score=0.9),
        _row(4, "Rejected text stays as it was when it was rejected.", reject_stage="clean", reject_reason="too_short"),
        {schema.ID: "p1", schema.SOURCE: "m", schema.KIND: "translation", schema.SRC_TEXT: "A dog runs.", schema.TGT_TEXT: "Ein Hund rennt.",
         schema.SRC_LANG: "en", schema.TGT_LANG: "de"},
    ])
    out = fill_lang_batch(table)
    assert out.num_rows == table.num_rows and out.schema == table.schema
    langs, scores = out[schema.LANG].to_pylist(), out[schema.LANG_SCORE].to_pylist()
    assert langs[:2] == ["en", "de"] and all(s > 0.5 for s in scores[:2])
    assert (langs[2], scores[2]) == ("es", 0.9)  # already set by the clean stage: kept
    assert langs[3] is None and langs[4] is None  # rejected row; translation pair
    assert out[schema.REJECT_REASON].to_pylist() == table[schema.REJECT_REASON].to_pylist()  # labels, never rejects
