"""`ServeConfig`: what `sft-ray serve` deploys — which model, how many replicas, what resources,
how requests are batched and bounded.

One typed model, like the run config (sft_ray/config/): YAML plus dotted `--set` overrides, unknown keys rejected,
every field with a default and a description. Kept apart from `sft_ray/config/` (the build and
training run config) because a served model outlives the run that produced it: serving needs
only the exported folder, not the corpora or the training settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sft_ray.config import read_yaml_mapping, validated


class ServeConfig(BaseModel):
    """A Ray Serve application answering OpenAI-format chat completions for one model."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = Field(
        "tiny-llama",
        description="what to serve: a fine-tune run folder (its train/model is used), an exported model folder, a "
                    ".gguf export (served by llama.cpp: pip install llama-cpp-python), an "
                    "s3:// (any fsspec URL) folder of either, or a model name (tiny-llama, smollm2-135m-instruct, hub id)")
    storage_options: dict[str, Any] = Field(default_factory=dict,
                                            description="fsspec options for an s3:// model (e.g. endpoint_url)")
    served_model_name: str | None = Field(
        None, description="the `model` name clients send and /v1/models lists; default: the run or folder name")
    app_name: str = Field("sft-ray", description="Ray Serve application name")
    route_prefix: str = Field("/", description="HTTP path the application is mounted at ('/v1/...' lives under it)")
    host: str = Field("127.0.0.1", description="HTTP host the Serve proxy binds (0.0.0.0 to accept remote clients)")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the Serve proxy")
    num_replicas: int = Field(1, ge=1, description="model replicas (each holds one copy of the model)")
    num_cpus: float = Field(1.0, ge=0, description="logical CPUs reserved per replica (ray_actor_options.num_cpus)")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica; > 0 runs the model on CUDA in bf16")
    torch_threads: int | None = Field(
        None, ge=1, description="intra-op torch threads per replica on CPU; default: ceil(num_cpus)")
    max_ongoing_requests: int = Field(
        64, ge=1, description="requests a replica accepts at once (queued ones wait in the proxy); >= max_batch_size")
    max_batch_size: int = Field(8, ge=1, description="chat requests generated together in one padded batch")
    batch_wait_timeout_s: float = Field(
        0.02, ge=0, description="how long the first request of a batch waits for others to join it")
    max_tokens_limit: int = Field(512, ge=1, description="largest `max_tokens` a request may ask for (above: HTTP 400)")
    default_max_tokens: int = Field(128, ge=1, description="`max_tokens` of a request that sets none")
    max_prompt_tokens: int = Field(
        2048, ge=1, description="largest templated prompt in tokens (above: HTTP 400); bounds replica memory")
    trust_remote_code: bool = Field(False, description="let transformers run code shipped with the model (off: safe default)")

    @model_validator(mode="after")
    def _check(self) -> "ServeConfig":
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError(f"default_max_tokens ({self.default_max_tokens}) exceeds max_tokens_limit "
                             f"({self.max_tokens_limit})")
        if self.max_ongoing_requests < self.max_batch_size:
            raise ValueError(f"max_ongoing_requests ({self.max_ongoing_requests}) must be >= max_batch_size "
                             f"({self.max_batch_size}), or batches can never fill")
        if not self.route_prefix.startswith("/"):
            raise ValueError(f"route_prefix must start with '/' (got {self.route_prefix!r})")
        return self

    def model_name(self) -> str:
        """The name clients address: `served_model_name`, else the last path part of `model`."""
        if self.served_model_name:
            return self.served_model_name
        name = self.model.rstrip("/").rsplit("/", 1)[-1]
        return name or self.model


def load_serve_config(path: str | Path | None = None, overrides: list[str] | None = None,
                      model: str | None = None) -> ServeConfig:
    """YAML file (optional) + `--set` overrides + the positional model argument -> ServeConfig.

    A bad key or value raises ConfigError naming the key and the file, like the run config.
    """
    data: dict[str, Any] = {}
    origin = "<defaults>"
    if path is not None:
        p = Path(path)
        data, origin = read_yaml_mapping(p, "serve config"), str(p)
    if model is not None:
        data = {**data, "model": model}
    return validated(ServeConfig, data, overrides, origin)
