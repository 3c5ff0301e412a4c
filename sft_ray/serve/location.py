"""Find the model folder inside what the user pointed `sft-ray serve` at.

A fine-tune writes its export to `<output>/train/model` (sft_ray/train/export.py, docs/ARCHITECTURE.md
"Output layout"), so users naturally name the run (`runs/demo`), the training
folder (`runs/demo/train`) or the model folder itself. All three are accepted, locally and on
object storage; anything that is not a folder (`tiny-llama`, `smollm2-135m-instruct`, a hub id)
is passed through to `sft_ray.models.resolve_model` unchanged.
"""

from __future__ import annotations

from typing import Any

# Where an export sits relative to what the user may name, most specific first.
_CANDIDATES = ("", "train/model", "model")


def model_location(target: str, storage_options: dict[str, Any] | None = None) -> str:
    """The folder (or name) that holds `config.json` for `target`; FileNotFoundError if a folder
    holds no model in any of the accepted places (the message lists where it looked)."""
    from sft_ray.storage import get_fs

    is_url = "://" in target and not target.startswith("file://")
    local = target.removeprefix("file://")
    if not is_url:
        import os

        local = os.path.expanduser(local)
        if not os.path.isdir(local):
            if local.startswith((".", "/", "~")):
                raise FileNotFoundError(f"serve: model folder {target!r} does not exist")
            return target  # a model name: resolve_model knows it
        fs, base = get_fs(os.path.abspath(local), None)
    else:
        fs, base = get_fs(target, storage_options)
        if not fs.isdir(base):
            raise FileNotFoundError(f"serve: {target} is not a folder")
    for rel in _CANDIDATES:
        folder = base.rstrip("/") + ("/" + rel if rel else "")
        if fs.isfile(folder + "/config.json"):
            if is_url:
                return target.rstrip("/") + ("/" + rel if rel else "")
            return folder
    looked = ", ".join(f"{target.rstrip('/')}/{rel + '/' if rel else ''}config.json" for rel in _CANDIDATES)
    raise FileNotFoundError(f"serve: no exported model in {target} (looked for {looked}); "
                            f"a fine-tune writes it to <output>/train/model")
