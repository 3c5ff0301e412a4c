"""The OpenAI chat-completions wire format: request validation and response shapes.

Requests are validated by pydantic so a malformed body is refused with HTTP 400 and a message
naming the field, before it reaches the model (a bad request must never take a replica down).
Fields follow https://platform.openai.com/docs/api-reference/chat/create; the sampling knobs this
server implements are `max_tokens` (or its newer name `max_completion_tokens`), `temperature`,
`top_p`, `stop`, `seed` and `stream`. Other OpenAI fields (`user`, `presence_penalty`, ...) are
accepted and ignored, as many OpenAI-compatible servers do, so stock clients keep working;
`n` > 1 and tool calls are refused explicitly rather than silently answered wrongly.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, field_validator


class TextPart(BaseModel):
    """One `{"type": "text", "text": ...}` part of a content list (the only part type a text model takes)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: StrictStr


class ChatMessage(BaseModel):
    """One conversation turn. `content` is a string or a list of text parts (joined)."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: StrictStr | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """POST /v1/chat/completions body. Strict types: `"max_tokens": "5"` is an error, not 5."""

    model_config = ConfigDict(extra="ignore")
    model: StrictStr | None = None
    messages: list[ChatMessage] = Field(..., min_length=1)
    max_tokens: StrictInt | None = Field(None, ge=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=1)
    temperature: StrictFloat | StrictInt = Field(1.0, ge=0, le=2)
    top_p: StrictFloat | StrictInt = Field(1.0, gt=0, le=1)
    stop: StrictStr | list[StrictStr] | None = None
    seed: StrictInt | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt = Field(1, ge=1, le=1, description="only one choice per request is generated")
    tools: Any = None

    @field_validator("messages")
    @classmethod
    def _has_a_turn(cls, v: list[ChatMessage]) -> list[ChatMessage]:
        if all(m.role == "system" for m in v):
            raise ValueError("messages need at least one user or assistant turn, not only system prompts")
        return v

    @field_validator("stop")
    @classmethod
    def _stops(cls, v):
        stops = [v] if isinstance(v, str) else (v or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes up to 4 non-empty strings")
        return stops or None

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, v):
        if v:
            raise ValueError("tool calls are not supported by this server")
        return None

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


def error_body(message: str, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    """OpenAI's error envelope: the `openai` client reads `error.message` into its exception."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def completion_body(cid: str, model: str, text: str, finish_reason: str, prompt_tokens: int,
                    completion_tokens: int) -> dict:
    """A `chat.completion` object with one assistant choice and token usage."""
    return {
        "id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def chunk_body(cid: str, created: int, model: str, delta: dict, finish_reason: str | None = None,
               usage: dict | None = None) -> dict:
    """A `chat.completion.chunk` (one server-sent event of a streamed answer)."""
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}
    if usage is not None:  # the final usage chunk has no choices (OpenAI's stream_options.include_usage)
        body["choices"] = []
        body["usage"] = usage
    return body
