"""Serve a fine-tuned model over HTTP: Ray Serve + an OpenAI-compatible chat endpoint.

    config.py    ServeConfig: model, replicas, CPUs/GPUs, batching, request limits
    location.py  run folder / train folder / model folder / name -> the folder with config.json
    protocol.py  OpenAI request validation and response/chunk shapes
    engine.py    ChatEngine: chat template, batched (left-padded) and streamed generation
    app.py       the Serve deployment (FastAPI ingress, @serve.batch, /health), build_app, run_serve

`app.py` imports Ray Serve; import it only where serving happens.
"""

from sft_ray.serve.config import ServeConfig, load_serve_config

__all__ = ["ServeConfig", "load_serve_config"]
