"""Language labeler (sft_ray/label/lang.py): fills lang/lang_score only where the clean stage left
them empty, on live documents; never touches pairs, rejects or languages already set."""

from __future__ import annotations

from sft_ray import schema as S
from sft_ray.label.lang import fill_lang_batch


def _row(i, text, kind="text", **kw):
    return {S.ID: f"r{i}", S.SOURCE: "s", S.KIND: kind, S.TEXT: text, **kw}


def test_fills_only_live_documents_without_a_language():
    table = S.records_from_rows([
        _row(1, "The committee approved the budget after a long debate on Tuesday evening."),
        _row(2, "Der Ausschuss hat den Haushalt nach einer langen Debatte am Dienstagabend genehmigt."),
        _row(3, "Le comité a approuvé le budget après un long débat mardi soir.", lang="es", lang_score=0.9),
        _row(4, "Rejected text stays as it was when it was rejected.", reject_stage="clean", reject_reason="too_short"),
        {S.ID: "p1", S.SOURCE: "m", S.KIND: "translation", S.SRC_TEXT: "A dog runs.", S.TGT_TEXT: "Ein Hund rennt.",
         S.SRC_LANG: "en", S.TGT_LANG: "de"},
    ])
    out = fill_lang_batch(table)
    assert out.num_rows == table.num_rows and out.schema == table.schema
    langs, scores = out[S.LANG].to_pylist(), out[S.LANG_SCORE].to_pylist()
    assert langs[:2] == ["en", "de"] and all(s > 0.5 for s in scores[:2])
    assert (langs[2], scores[2]) == ("es", 0.9)  # already set by the clean stage: kept
    assert langs[3] is None and langs[4] is None  # rejected row; translation pair
    assert out[S.REJECT_REASON].to_pylist() == table[S.REJECT_REASON].to_pylist()  # labels, never rejects
