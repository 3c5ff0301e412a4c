"""Generation markers in the exported chat template, so TRL's `assistant_only_loss=True` (and
transformers' `return_assistant_tokens_mask`) can find the assistant tokens of the exported model.

Hugging Face marks the tokens a model should learn with `{% generation %}...{% endgeneration %}`
around each assistant reply in the chat template (transformers docs, "Chat templates: training
and generation markers"). Many instruct templates lack them (SmolLM2's ChatML does), and TRL then
refuses `assistant_only_loss`. For the ChatML family (`<|im_start|>role\\n content<|im_end|>\\n`:
SmolLM2, Qwen) the per-message expression is rewritten so that an assistant message's content and
its `<|im_end|>` are inside the markers, exactly the tokens sft_ray's own training supervises
(train/tokenize.py). The markers render to nothing: the rewritten template must render every probe
conversation byte for byte as the original, or it is not used.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("sft_ray")

def _chatml(nl: str) -> tuple[str, str]:
    """(ChatML's per-message expression, the same with markers) for a template that writes a line
    break as `nl` inside its Jinja strings (a real newline, as SmolLM2's, or the escape `\\n`)."""
    message = "{{'<|im_start|>' + message['role'] + '" + nl + "' + message['content'] + '<|im_end|>' + '" + nl + "'}}"
    marked = ("{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant" + nl + "' }}{% generation %}"
              "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '" + nl + "' }}{% else %}" + message + "{% endif %}")
    return message, marked


_CHATML = [_chatml("\n"), _chatml("\\n")]
_PROBES = [
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
     {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}],
]


def has_markers(template: str | None) -> bool:
    return bool(template) and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


def with_generation_markers(tokenizer) -> str | None:
    """The tokenizer's chat template with generation markers: its own when it has them, the
    rewritten ChatML template, or None when neither applies (the template is then left as it is)."""
    template = tokenizer.chat_template
    if not isinstance(template, str):
        return None
    if has_markers(template):
        return template
    forms = [(message, marked) for message, marked in _CHATML if message in template]
    if not forms:
        return None
    marked = template.replace(*forms[0])
    for messages in _PROBES:
        for gen in (False, True):
            a = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            b = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen, chat_template=marked)
            if a != b:
                log.warning("chat template: the marked template renders differently; generation markers not added")
                return None
    return marked


def add_generation_markers(tokenizer) -> bool:
    """Set the marked template on `tokenizer` in place; True when it has markers afterwards."""
    marked = with_generation_markers(tokenizer)
    if marked is not None:
        tokenizer.chat_template = marked
    return marked is not None


_MARKER = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")


def strip_generation_markers(template: str | None) -> str | None:
    """`template` without `{% generation %}` / `{% endgeneration %}`: they mark training targets for
    transformers' assistant mask and mean nothing at inference, where plain Jinja (llama.cpp,
    llama-cpp-python) rejects them as unknown tags. The rendered text is the same."""
    return _MARKER.sub("", template) if template else template
