"""Parse and validate one teacher output: the result's fields, or a reason detail.

A filter in the DataTrove sense: `validate` returns `(fields, None)` for a usable
output and `(None, detail)` otherwise; synthesize/teacher.py turns a detail into the reason
`invalid_teacher_output` and keeps the prompt and the raw output, so nothing is lost.
Parsing is lenient where small models are sloppy (prose or code fences around the JSON: the first
`{...}` that decodes to an object is used) and strict where the example would be wrong (missing or
empty fields, an extractive answer that is not in the passage).
"""

from __future__ import annotations

import json
import re
import unicodedata

from sft_ray.config import TeacherTaskConfig

_DECODER = json.JSONDecoder()


def first_json_object(text: str) -> tuple[dict | None, str | None]:
    """The first `{...}` in `text` that decodes to a JSON object, else (None, why)."""
    starts = [m.start() for m in re.finditer(r"\{", text)]
    if not starts:
        return None, "no JSON object in the output"
    error = None
    for at in starts:
        try:
            obj, _ = _DECODER.raw_decode(text, at)
        except json.JSONDecodeError as e:
            error = error or e.msg
            continue
        if isinstance(obj, dict):
            return obj, None
    return None, f"JSON does not parse ({error})" if error else "no JSON object in the output"


def normalise(text: str) -> str:
    """Casefolded, NFKC, punctuation and symbols removed, whitespace collapsed (SQuAD-style answer match)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c)[0] in "PS" else c for c in text)
    return " ".join(text.split())


def validate(task: TeacherTaskConfig, passage: str, output: str | None, finished: bool) -> tuple[dict | None, str | None]:
    """(placeholder values for the example templates, None) or (None, reason detail).

    `output` is the full assistant text (response prefix included); `finished` says the model
    stopped by itself rather than at max_new_tokens.
    """
    if output is None or not output.strip():
        return None, "empty output"
    if task.output == "text":
        text = output.strip()
        if not finished:
            return None, f"truncated: no end of sequence within max_new_tokens={task.max_new_tokens}"
        if len(text) < task.min_output_chars:
            return None, f"output shorter than {task.min_output_chars} characters"
        if normalise(text) and normalise(text) in normalise(passage) and len(text) > 0.8 * len(passage):
            return None, "output copies the passage"
        return {"output": text}, None
    obj, why = first_json_object(output)
    if obj is None:
        return None, why if finished else f"{why}; truncated at max_new_tokens={task.max_new_tokens}"
    values = {"output": output.strip()}
    for name in task.fields:
        value = obj.get(name)
        if value is None:
            return None, f"missing field {name!r}"
        if not isinstance(value, str):
            return None, f"field {name!r} is {type(value).__name__}, not a string"
        value = value.strip()
        if len(value) < max(1, task.min_output_chars):
            return None, f"field {name!r} is empty" if not value else f"field {name!r} shorter than {task.min_output_chars} characters"
        values[name] = value
    passage_norm = normalise(passage)
    for name in task.grounded:
        if normalise(values[name]) not in passage_norm or not normalise(values[name]):
            return None, f"{name} not found in the passage"
    return values, None
