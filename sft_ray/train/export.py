"""Write the final model + tokenizer (with its chat template) to `<output>/train/model`.

The folder is a plain Hugging Face checkpoint: `AutoModelForCausalLM.from_pretrained` and
`AutoTokenizer.from_pretrained` open it, and `tokenizer.apply_chat_template` formats prompts the
way training did (with generation markers, so TRL's assistant-only loss works: chat_template.py),
and README.md is its model card (cards.py). It is written to a local temporary folder first and then moved into place
(local output) or uploaded file by file through fsspec (s3:// and other object stores), so a
reader never sees a half-written model next to a complete-looking config.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from sft_ray.storage import get_fs, is_local
from sft_ray.train.chat_template import add_generation_markers


def save_hf(model, tokenizer, folder: str, card: str | None = None) -> None:
    """save_pretrained for model (safetensors, tied weights handled) and tokenizer, whose chat
    template gains generation markers where it lacks them (chat_template.py), and the model card."""
    model.save_pretrained(folder, safe_serialization=True)
    add_generation_markers(tokenizer)
    tokenizer.save_pretrained(folder)
    if card is not None:
        with open(os.path.join(folder, "README.md"), "w") as f:
            f.write(card)


def export_model(model, tokenizer, url: str, storage_options: dict[str, Any] | None = None, card: str | None = None) -> str:
    """Save `model` (unwrapped, not DDP), `tokenizer` and the model card `card` (README.md) as a HF
    folder at `url`; returns `url`."""
    model = getattr(model, "module", model)
    if is_local(url):
        dest = url.removeprefix("file://")
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".model.", dir=parent)
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model is meant to be shared
            save_hf(model, tokenizer, tmp, card)
            if os.path.exists(dest):
                old = dest + ".old"
                shutil.rmtree(old, ignore_errors=True)
                os.replace(dest, old)
                os.replace(tmp, dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return url
    fs, path = get_fs(url, storage_options)
    with tempfile.TemporaryDirectory(prefix="sft_ray_model_") as tmp:
        save_hf(model, tokenizer, tmp, card)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        # config.json last: a reader that polls for it finds the weights already there.
        names = sorted(os.listdir(tmp), key=lambda n: n == "config.json")
        for name in names:
            fs.put_file(os.path.join(tmp, name), path.rstrip("/") + "/" + name)
    return url
