"""Conversations of `kind: sft` sources: OpenAI `messages` or ShareGPT `conversations`, validated
and normalised so they can be passed through as SFT examples (format task `dialogue`).

A valid conversation is an optional system turn, then user and assistant turns alternating,
starting with the user and ending with the assistant, none empty: that is what chat templates
expect (HF `apply_chat_template`; several, e.g. Llama 2's and Mistral's, raise on anything else)
and what a loss on assistant turns needs. Anything else is rejected `invalid_dialogue` with the
first problem named, never repaired by guessing.
"""

from __future__ import annotations

import json
from typing import Any

REASON = "invalid_dialogue"
# ShareGPT speaker names (FastChat's conversion, fastchat/train/train.py `roles`) -> OpenAI roles.
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "system": "system"}


def conversation_of(fields: dict[str, Any]) -> tuple[str, str | None]:
    """(normalised conversation as JSON, None) or (what is wrong, `invalid_dialogue`)."""
    if isinstance(fields.get("messages"), list):
        turns = [(m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None) for m in fields["messages"]]
    elif isinstance(fields.get("conversations"), list):
        turns = [(SHAREGPT_ROLES.get(str(m.get("from", "")).lower()), m.get("value")) if isinstance(m, dict) else (None, None)
                 for m in fields["conversations"]]
    else:
        return "no `messages` or `conversations` list", REASON
    problem = _problem(turns)
    if problem:
        return problem, REASON
    return json.dumps([{"role": r, "content": c.strip()} for r, c in turns], ensure_ascii=False), None


def _problem(turns: list[tuple[Any, Any]]) -> str | None:
    if not turns:
        return "empty conversation"
    body = turns[1:] if turns[0][0] == "system" else turns
    if not body:
        return "only a system turn"
    for i, (role, content) in enumerate(turns):
        if role not in ("system", "user", "assistant"):
            return f"turn {i}: unknown role {role!r}"
        if not isinstance(content, str) or not content.strip():
            return f"turn {i}: empty or non-text content"
    for i, (role, _) in enumerate(body):
        want = "user" if i % 2 == 0 else "assistant"
        if role != want:
            return f"turn {i + len(turns) - len(body)}: {role} where {want} was expected (roles must alternate, user first)"
    if body[-1][0] != "assistant":
        return "the last turn is not the assistant's"
    return None


def render(conversation: str) -> str:
    """Plain text of a conversation, one `role: content` per turn: what clean and dedup look at."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in json.loads(conversation))
