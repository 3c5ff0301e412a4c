"""What a teacher task is (`teacher.tasks.<name>`), and the default tasks with their prompt templates.

Kept apart from `TeacherConfig` so that the config reads as fields and the prompts read as prompts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sft_ray.config.base import SourceKind, StrictModel


class TeacherTaskConfig(StrictModel):
    """One teacher task: which records, the prompt, how the output is parsed, how the example reads."""

    kinds: list[SourceKind] = Field(default_factory=list, description="Source kinds whose live records with text get this task.")
    prompt: str = Field(description="User prompt to the teacher; `{text}` (the passage, cut to max_input_chars) and `{title}`.")
    response_prefix: str = Field(
        default="",
        description="Text the assistant turn is started with (prefilled after the chat template) and that is "
        "prepended to the output before parsing, e.g. '{\"question\": \"' to steer small models into JSON.",
    )
    output: Literal["json", "text"] = Field(
        default="json", description="`json`: the first {...} object in the output must parse; `text`: the stripped output is the result."
    )
    fields: list[str] = Field(default_factory=list, description="json: keys that must hold a non-empty string.")
    grounded: list[str] = Field(
        default_factory=list,
        description="Fields whose value must occur in the passage (casefolded, punctuation and whitespace normalised): extractive QA.",
    )
    user: str = Field(description="SFT user turn: `{text}`, `{title}` and the parsed fields (`{output}` for output=text).")
    assistant: str = Field(description="SFT assistant turn, same placeholders as `user`.")
    max_new_tokens: int = Field(default=128, ge=1, description="Generation budget; an output that does not end within it is invalid (`truncated`).")
    min_output_chars: int = Field(default=1, ge=0, description="Shorter results (each json field, or the text) are invalid.")

    @model_validator(mode="after")
    def _check_templates(self) -> TeacherTaskConfig:
        keys = {"text": "t", "title": "t", "output": "o", **{f: "f" for f in self.fields}}
        for name in ("prompt", "user", "assistant"):
            try:
                getattr(self, name).format(**keys)
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(f"{name} template: unknown or malformed placeholder {e} (literal braces must be doubled)") from e
        if "{text}" not in self.prompt:
            raise ValueError("prompt must contain {text}")
        if self.output == "json" and not self.fields:
            raise ValueError("output=json needs fields (the keys that must be present)")
        if not set(self.grounded) <= set(self.fields):
            raise ValueError(f"grounded {self.grounded} must be among fields {self.fields}")
        return self


DEFAULT_TEACHER_TASKS: dict[str, TeacherTaskConfig] = {
    # Extractive QA: the answer must occur in the passage (`grounded`), so a small model cannot make
    # one up; the response prefix opens the JSON object to keep small models in the format.
    "qa": TeacherTaskConfig(
        kinds=["web", "text"],
        prompt="Read the passage and write one question that it answers. The answer must be a short phrase copied "
        "from the passage. Reply with JSON only: {{\"question\": \"...\", \"answer\": \"...\"}}\n\nPassage:\n{text}",
        response_prefix='{"question": "',
        fields=["question", "answer"], grounded=["answer"],
        user="Answer the question using the passage.\n\nPassage:\n{text}\n\nQuestion: {question}",
        assistant="{answer}", max_new_tokens=96,
    ),
    "summary": TeacherTaskConfig(
        kinds=["web"], output="text",
        prompt="Summarize the following text in one or two sentences.\n\n{text}",
        user="Summarize the following text in one or two sentences.\n\n{text}", assistant="{output}",
        max_new_tokens=96, min_output_chars=20,
    ),
}
"""The default `teacher.tasks`: extractive qa (web, text) and summary (web). Validated at import, so a
broken default template fails at once; `TeacherConfig` hands out deep copies."""
