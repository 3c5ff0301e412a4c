"""How the model is spread over the Ray Train workers, and how its state is saved and restored.

- `prepare(model, tc, device)`: optional LoRA adapters (PEFT), optional gradient checkpointing, then
  DDP (Ray Train's `prepare_model`: replicas, gradients all-reduced) or FSDP2 (`fully_shard` per
  decoder layer and on the root: parameters, gradients and optimizer state sharded across workers,
  gathered layer by layer in forward/backward; PyTorch's recommended FSDP since 2.4).
- `no_sync(model)`: skip the gradient reduction on the micro-steps of gradient accumulation.
- `model_state` / `optim_state` / `load_state`: full (unsharded) state dicts through
  `torch.distributed.checkpoint.state_dict`, the one API that handles plain, DDP and FSDP modules
  alike (FQNs without wrapper prefixes). With LoRA only the trainable adapter weights are saved:
  the frozen base is re-read from the base model on resume, so checkpoints stay small.
- `export_module(...)`: a plain Hugging Face module for `save_pretrained`: the trained model itself
  under DDP; under FSDP or LoRA a fresh copy of the base model on rank 0 loaded with the gathered
  weights and, for LoRA, merged (`merge_and_unload`), so the export needs no PEFT to load (the
  training loop saves the adapter alone first, `<train>/adapter`).
"""

from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def add_lora(model, lora):
    """Wrap `model` with PEFT LoRA adapters (config.LoraConfig); base weights frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:  # peft is a dependency; a broken env should say what is missing
        raise ImportError("train.lora.enabled needs the `peft` package") from e
    cfg = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                     target_modules=list(lora.target_modules), task_type="CAUSAL_LM")
    return get_peft_model(model, cfg)


def prepare(model, tc, device):
    """Returns (wrapped model for forward/backward, the unwrapped module for eval/generation)."""
    import ray.train.torch

    if tc.lora.enabled:
        model = add_lora(model, tc.lora)
    if tc.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if tc.lora.enabled:
            model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks need a grad input
    if tc.strategy == "fsdp" and _world() > 1:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        model.to(device)
        mesh = init_device_mesh(device.type, (_world(),))
        for layer in _decoder_layers(model):
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model, model
    model = ray.train.torch.prepare_model(model)  # to device; DDP when world > 1
    return model, getattr(model, "module", model)


def _decoder_layers(model) -> list:
    """The transformer blocks (Llama/Qwen/Mistral: `model.layers`), found by class name so PEFT's
    extra wrappers do not matter."""
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    if not layers:
        raise ValueError(f"fsdp: found no *DecoderLayer modules in {type(model).__name__}")
    return layers


def is_fsdp(model) -> bool:
    return hasattr(model, "set_requires_gradient_sync")


def no_sync(model, skip: bool):
    """Context for one micro-step: without gradient reduction when `skip` (accumulation)."""
    if not skip:
        return contextlib.nullcontext()
    if is_fsdp(model):
        @contextlib.contextmanager
        def _fsdp():
            model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                model.set_requires_gradient_sync(True)
        return _fsdp()
    if hasattr(model, "no_sync"):  # DDP
        return model.no_sync()
    return contextlib.nullcontext()


def grad_norm(model, max_norm: float) -> float:
    """Clip gradients of trainable parameters to `max_norm`; returns the total norm before clipping."""
    norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_norm)
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor
        norm = norm.full_tensor()
    return float(norm)


def _options(lora: bool, **kw) -> StateDictOptions:
    return StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=lora, **kw)


def model_state(model, lora: bool) -> dict:
    """Full state dict on rank 0 (empty elsewhere under FSDP); every rank must call it.

    With LoRA only trainable tensors are kept: `ignore_frozen_params` still returns a tied
    `lm_head.weight` (the frozen embedding under another name), 28M parameters for SmolLM2.
    """
    sd = get_model_state_dict(model, options=_options(lora))
    if lora:
        trainable = {n.removeprefix("module.") for n, p in model.named_parameters() if p.requires_grad}
        sd = {k: v for k, v in sd.items() if k in trainable}
    return sd


def optim_state(model, optimizer, lora: bool) -> dict:
    return get_optimizer_state_dict(model, optimizer, options=_options(lora))


def load_state(model, optimizer, model_sd: dict, optim_sd: dict | None, lora: bool) -> None:
    """Restore full state dicts (every rank passes the same dicts) into a prepared model/optimizer."""
    opts = _options(lora, strict=not lora)
    set_model_state_dict(model, model_sd, options=opts)
    if optim_sd is not None:
        set_optimizer_state_dict(model, optimizer, optim_state_dict=optim_sd, options=opts)


def export_module(model, raw, tc, model_path: str, rank: int, merge: bool = True):
    """A plain HF module with the trained weights on rank 0 (None elsewhere); every rank calls it.
    With LoRA and `merge=False`, the PEFT model itself (its adapter can then be saved before
    `merge_and_unload`)."""
    if not tc.lora.enabled and not is_fsdp(model):
        return raw if rank == 0 else None
    sd = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank != 0:
        return None
    from sft_ray.models import load_model

    fresh = load_model(model_path, trust_remote_code=tc.trust_remote_code)
    if tc.lora.enabled:
        fresh = add_lora(fresh, tc.lora)
    missing, unexpected = fresh.load_state_dict(sd, strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:  # lm_head may be tied to the embeddings
        raise RuntimeError(f"export: state dict mismatch; missing {missing[:5]}, unexpected {unexpected[:5]}")
    return fresh.merge_and_unload() if tc.lora.enabled and merge else fresh
