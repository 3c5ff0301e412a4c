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
    return _write_folder(url, lambda d: save_hf(model, tokenizer, d, card), "config.json", storage_options)


def export_adapter(peft_model, tokenizer, url: str, storage_options: dict[str, Any] | None = None) -> str:
    """Save a LoRA run's adapter alone (PEFT `save_pretrained`: adapter_config.json and
    adapter_model.safetensors, a few MB) with the tokenizer and its chat template, so
    `PeftModel.from_pretrained(base, url)` puts it on the base model again. Called before the merge
    (`merge_and_unload` removes the adapter layers). Returns `url`."""
    from peft import PeftModel

    if not isinstance(peft_model, PeftModel):
        raise TypeError(f"export_adapter needs a PEFT model (train.lora.enabled), got {type(peft_model).__name__}")

    def fill(folder: str) -> None:
        peft_model.save_pretrained(folder, safe_serialization=True)
        add_generation_markers(tokenizer)
        tokenizer.save_pretrained(folder)

    return _write_folder(url, fill, "adapter_config.json", storage_options)


def _write_folder(url: str, fill, last: str, storage_options: dict[str, Any] | None) -> str:
    """`fill(folder)` a local temporary folder, then publish it at `url` whole: locally renamed over
    the old one; on an object store uploaded file by file with `last` (the file loaders look for
    first) uploaded last, so a reader that polls for it finds the rest already there."""
    if is_local(url):
        dest = url.removeprefix("file://")
        parent = os.path.dirname(os.path.abspath(dest))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".model.", dir=parent)
        try:
            os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model is meant to be shared
            fill(tmp)
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
        fill(tmp)
        if fs.exists(path):
            fs.rm(path, recursive=True)
        for name in sorted(os.listdir(tmp), key=lambda n: n == last):
            fs.put_file(os.path.join(tmp, name), path.rstrip("/") + "/" + name)
    return url


# ------------------------------------------------------------------------ smaller / other exports
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "f16": "float16"}
"""`train.export_dtypes` names -> torch dtypes: each non-fp32 one is written as `<train>/model-<name>`."""


def export_dtypes(model, tokenizer, train_dir: str, dtypes: list[str], storage_options: dict[str, Any] | None = None) -> list[str]:
    """`model` cast to each of `dtypes` (fp32 is `<train>/model` itself, written by `export_model`) as
    its own HF folder `<train>/model-<dtype>`; half the size, loads with `from_pretrained` in that dtype.
    Each cast starts from the fp32 weights (bf16 -> f16 would round twice). Returns the URLs written."""
    import copy

    import torch

    from sft_ray.storage import join

    model = getattr(model, "module", model)
    urls = []
    for name in dict.fromkeys(dtypes):
        if name == "fp32":
            continue
        cast = copy.deepcopy(model).to(getattr(torch, DTYPES[name]))
        urls.append(export_model(cast, tokenizer, join(train_dir, f"model-{name}"), storage_options))
        del cast
    return urls


def checkpoint_to_hf(checkpoint: str, out: str, *, dtype: str = "fp32", adapter: bool = False,
                     storage_options: dict[str, Any] | None = None) -> str:
    """Turn a training checkpoint (`<output>/train/checkpoints/step_NNNNNN`: torch state dicts plus
    state.json with the resolved config, sft_ray/train/checkpoint.py) into a folder `from_pretrained`
    opens: the base model of the run's config loaded with the checkpoint's weights (LoRA: adapters
    merged), in `dtype`, with the tokenizer. `adapter` (LoRA runs only): the adapter alone instead, as
    `export_adapter` writes it at the end of a run. Returns `out`."""
    import json

    import torch

    from sft_ray.config.train import TrainConfig
    from sft_ray.models import load_model, load_tokenizer, resolve_model
    from sft_ray.train.parallel import add_lora

    if dtype not in DTYPES:
        raise ValueError(f"export dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    with tempfile.TemporaryDirectory(prefix="sft_ray_ckpt_") as tmp:
        if is_local(checkpoint):
            src = checkpoint.removeprefix("file://")
        else:
            fs, path = get_fs(checkpoint, storage_options)
            for name in ("state.json", "model.pt"):
                fs.get_file(path.rstrip("/") + "/" + name, os.path.join(tmp, name))
            src = tmp
        for name in ("state.json", "model.pt"):
            if not os.path.isfile(os.path.join(src, name)):
                raise FileNotFoundError(f"{checkpoint} is not a training checkpoint: it has no {name}")
        with open(os.path.join(src, "state.json")) as f:
            config = json.load(f).get("config") or {}
        if "train" not in config:
            raise ValueError(f"{checkpoint}/state.json has no train config to rebuild the model from")
        tc = TrainConfig.model_validate(config["train"])
        if adapter and not tc.lora.enabled:
            raise ValueError(f"{checkpoint}: --adapter needs a LoRA run (train.lora.enabled); this run trained every weight")
        state = torch.load(os.path.join(src, "model.pt"), weights_only=True)
    path = resolve_model(tc.model, tc.trust_remote_code, tiny=tc.tiny, seed=tc.seed, storage_options=storage_options)
    model = load_model(path, trust_remote_code=tc.trust_remote_code)
    if tc.lora.enabled:
        model = add_lora(model, tc.lora)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or (not tc.lora.enabled and [k for k in missing if "lm_head" not in k]):
        raise RuntimeError(f"{checkpoint}: state dict does not fit {tc.model}; missing {missing[:5]}, unexpected {unexpected[:5]}")
    if adapter:
        return export_adapter(model.to(getattr(torch, DTYPES[dtype])), load_tokenizer(path, tc.trust_remote_code), out, storage_options)
    if tc.lora.enabled:
        model = model.merge_and_unload()
    model = model.to(getattr(torch, DTYPES[dtype]))
    return export_model(model, load_tokenizer(path, tc.trust_remote_code), out, storage_options)
