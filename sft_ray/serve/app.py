"""The Ray Serve application: an OpenAI-compatible chat endpoint over one exported model.

    POST /v1/chat/completions   messages in, assistant message out (or SSE chunks with stream=true)
    GET  /v1/models             the one served model
    GET  /health                liveness plus batching counters of the replica that answers

A FastAPI app is the deployment's ingress (`@serve.ingress`), so request bodies are validated by
the pydantic models of `protocol.py` before any model code runs; every refusal is HTTP 4xx with
OpenAI's error envelope (`{"error": {"message", "type", "param", "code"}}`), which the `openai`
client turns into `BadRequestError` carrying the message. Non-streamed requests meet in
`@serve.batch` and are generated together (`engine.ChatEngine.generate`; a `.gguf` export is served
by llama.cpp instead, `llama_engine.LlamaCppEngine`, answering a batch in turn); generation runs in a
worker thread so the replica's event loop keeps answering health checks and accepting requests
while a batch decodes. Streamed requests decode one by one (a streamed answer cannot wait for a
batch to finish) and stop when the client disconnects.

Where it runs (replicas, CPUs, GPUs) comes from `ServeConfig` and is applied in `build_app`,
kept apart from what a replica does.
"""

# No `from __future__ import annotations`: FastAPI reads the request model from the live annotation
# of the route (under Serve's ingress wrapper a string annotation is not resolved: body -> query).
import asyncio
import json
import logging
import threading
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve

from sft_ray.serve.config import ServeConfig
from sft_ray.serve.engine import ChatEngine, GenJob, GenResult
from sft_ray.serve.llama_engine import LlamaCppEngine, is_gguf, local_gguf
from sft_ray.serve.protocol import (ChatCompletionRequest, chunk_body, completion_body, completion_id,
                                    error_body)

log = logging.getLogger("sft_ray")

api = FastAPI(title="sft_ray chat", description="OpenAI-compatible chat completions for a fine-tuned model")


def _error(status: int, message: str, param: str | None = None, code: str | None = None,
           type_: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status_code=status)


@api.exception_handler(RequestValidationError)
async def _bad_body(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A body that fails validation is the client's error: 400 (as OpenAI answers), naming the field."""
    problems = []
    param = None
    for e in exc.errors():
        loc = [str(p) for p in e.get("loc", ()) if p != "body"]
        param = param or (".".join(loc) or None)
        problems.append(f"{'.'.join(loc) or 'body'}: {e.get('msg')}")
    return _error(400, "invalid request: " + "; ".join(problems), param=param)


@serve.deployment(name="ChatCompletions")
@serve.ingress(api)
class ChatDeployment:
    """One replica: loads the model once, then answers chat requests (batched or streamed)."""

    def __init__(self, config: dict):
        self.cfg = ServeConfig.model_validate(config)
        threads = self.cfg.torch_threads or max(1, int(-(-self.cfg.num_cpus // 1)))
        t0 = time.time()
        if is_gguf(self.cfg.model):  # a GGUF export: llama.cpp on CPU (serve/llama_engine.py)
            self.engine = LlamaCppEngine(self.cfg.model, storage_options=self.cfg.storage_options, threads=threads)
        else:
            self.engine = ChatEngine(self.cfg.model, storage_options=self.cfg.storage_options,
                                     use_gpu=self.cfg.num_gpus > 0, torch_threads=threads,
                                     trust_remote_code=self.cfg.trust_remote_code)
        self.name = self.cfg.model_name()
        self.created = int(time.time())
        self._generate_batch.set_max_batch_size(self.cfg.max_batch_size)
        self._generate_batch.set_batch_wait_timeout_s(self.cfg.batch_wait_timeout_s)
        self.stats = {"requests": 0, "batches": 0, "batched_requests": 0, "max_batch": 0, "streams": 0,
                      "rejected": 0}
        log.info("serve: %s loaded from %s on %s in %.1f s", self.name, self.engine.path, self.engine.device,
                 time.time() - t0)

    # -------------------------------------------------------------------------------- routes
    @api.get("/health")
    async def health(self) -> dict:
        return {"status": "ok", "model": self.name, "device": str(self.engine.device), **self.stats}

    @api.get("/v1/models")
    async def models(self) -> dict:
        return {"object": "list", "data": [{"id": self.name, "object": "model", "created": self.created,
                                            "owned_by": "sft_ray"}]}

    @api.post("/v1/chat/completions")
    async def chat(self, req: ChatCompletionRequest):
        self.stats["requests"] += 1
        job_or_error = self._job(req)
        if isinstance(job_or_error, JSONResponse):
            self.stats["rejected"] += 1
            return job_or_error
        job = job_or_error
        if req.stream:
            self.stats["streams"] += 1
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(self._sse(job, include_usage), media_type="text/event-stream")
        try:
            result = await self._generate_batch(job)
        except Exception as e:  # noqa: BLE001 - a failed generation is a 500 for this request, not a dead replica
            log.exception("serve: generation failed")
            return _error(500, f"generation failed: {type(e).__name__}: {e}", type_="server_error")
        return completion_body(completion_id(), self.name, result.text, result.finish_reason,
                               result.prompt_tokens, result.completion_tokens)

    # -------------------------------------------------------------------------------- helpers
    def _job(self, req: ChatCompletionRequest) -> GenJob | JSONResponse:
        """Checks that need the server's limits or the tokenizer; the body's shape is already valid."""
        if req.model is not None and req.model != self.name:
            return _error(404, f"model {req.model!r} is not served here; this server serves {self.name!r} "
                               f"(GET /v1/models)", param="model", code="model_not_found")
        max_tokens = req.requested_max_tokens() or self.cfg.default_max_tokens
        if max_tokens > self.cfg.max_tokens_limit:
            return _error(400, f"max_tokens={max_tokens} is above this server's limit of "
                               f"{self.cfg.max_tokens_limit}", param="max_tokens", code="max_tokens_too_large")
        try:
            prompt = self.engine.encode([{"role": m.role, "content": m.text()} for m in req.messages])
        except Exception as e:  # noqa: BLE001 - a template that rejects the conversation (e.g. role order)
            return _error(400, f"messages cannot be formatted with the model's chat template: {e}", param="messages")
        if len(prompt) > self.cfg.max_prompt_tokens:
            return _error(400, f"the prompt is {len(prompt)} tokens after the chat template; this server accepts "
                               f"at most {self.cfg.max_prompt_tokens}", param="messages", code="context_length_exceeded")
        limit = self.engine.max_positions
        if limit and len(prompt) + max_tokens > limit:
            return _error(400, f"prompt ({len(prompt)} tokens) + max_tokens ({max_tokens}) exceeds the model's "
                               f"context of {limit} tokens", param="max_tokens", code="context_length_exceeded")
        return GenJob(tuple(prompt), max_tokens, float(req.temperature), float(req.top_p),
                      tuple(req.stop or ()), req.seed)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _generate_batch(self, jobs: list[GenJob]) -> list[GenResult]:
        """Requests that arrive together decode together: one padded forward per step for all."""
        self.stats["batches"] += 1
        self.stats["batched_requests"] += len(jobs)
        self.stats["max_batch"] = max(self.stats["max_batch"], len(jobs))
        return await asyncio.to_thread(self.engine.generate, jobs)

    async def _sse(self, job: GenJob, include_usage: bool):
        """Server-sent events in OpenAI's `chat.completion.chunk` format, ending with `[DONE]`."""
        cid, created = completion_id(), int(time.time())
        cancel = threading.Event()
        it = self.engine.stream(job, cancel)
        done = object()

        def event(body: dict) -> str:
            return f"data: {json.dumps(body)}\n\n"

        try:
            yield event(chunk_body(cid, created, self.name, {"role": "assistant", "content": ""}))
            while True:
                part = await asyncio.to_thread(next, it, done)
                if part is done:
                    break
                if isinstance(part, GenResult):
                    yield event(chunk_body(cid, created, self.name, {}, part.finish_reason))
                    if include_usage:
                        yield event(chunk_body(cid, created, self.name, {}, usage={
                            "prompt_tokens": part.prompt_tokens, "completion_tokens": part.completion_tokens,
                            "total_tokens": part.prompt_tokens + part.completion_tokens}))
                    continue
                yield event(chunk_body(cid, created, self.name, {"content": part}))
        except Exception as e:  # noqa: BLE001 - headers are sent: report the failure in-stream
            log.exception("serve: streamed generation failed")
            yield event(error_body(f"generation failed: {type(e).__name__}: {e}", "server_error"))
        finally:
            cancel.set()  # client gone or done: the generate thread stops at its next token
        yield "data: [DONE]\n\n"


def build_app(cfg: ServeConfig):
    """The Serve application for `cfg`: replicas and per-replica resources from the config."""
    return ChatDeployment.options(
        num_replicas=cfg.num_replicas,
        max_ongoing_requests=cfg.max_ongoing_requests,
        # A replica busy decoding a long batch on loaded CPUs must not be taken for dead (default 30 s).
        health_check_timeout_s=120,
        ray_actor_options={"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus},
    ).bind(cfg.model_dump())


def run_serve(cfg: ServeConfig, *, blocking: bool = False):
    """Start Ray (or join RAY_ADDRESS), start Serve's HTTP proxy on cfg.host:cfg.port, deploy the app.

    A local model folder that holds no model fails here, before anything is deployed. Returns the
    app's DeploymentHandle (or blocks until Ctrl-C when `blocking`).
    """
    from sft_ray.runtime import init_ray
    from sft_ray.serve.location import model_location

    if is_gguf(cfg.model):
        if "://" not in cfg.model:
            local_gguf(cfg.model)  # fail fast on a missing file
    elif "://" not in cfg.model:
        model_location(cfg.model)  # fail fast on a wrong local path (URLs are resolved by the replicas)
    init_ray()
    # Serve's controller gives the HTTP proxy 5 s to report ready and kills it after three misses;
    # on a busy machine (measured: 2 shared cores at load 25) the proxy took longer and was killed
    # in a loop. The controller reads these at start, so they go in its own runtime env.
    patience = {"RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "60", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S": "60"}
    serve.start(http_options={"host": cfg.host, "port": cfg.port},
                controller_options={"runtime_env": {"env_vars": patience}})
    return serve.run(build_app(cfg), name=cfg.app_name, route_prefix=cfg.route_prefix, blocking=blocking)
