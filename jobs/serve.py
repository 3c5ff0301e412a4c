"""Ray job / Serve app: serve a fine-tuned model over an OpenAI-compatible chat API.

    python jobs/serve.py runs/demo [--config serve.yaml] [--set num_replicas=2 --set port=8000]
    ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- python jobs/serve.py s3://bucket/runs/demo --set host=0.0.0.0
    serve run jobs.serve:app_builder model=runs/demo num_replicas=2      # Serve's own CLI / config files

The first two deploy the app and keep the driver alive until Ctrl-C (a Serve app outlives a job
whose driver exits only if it was deployed detached; keeping the driver is the simple, visible
choice). The third hands Serve an application builder: `import_path: jobs.serve:app_builder` and
`args: {model: ..., ...}` in a `serve deploy` config do the same. The code lives in sft_ray/serve.
"""

import sys
from pathlib import Path

# Under `ray job submit --working-dir .` the uploaded tree is the working directory: import it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sft_ray.cli import main  # noqa: E402


def app_builder(args: dict):
    """Serve application builder: `args` are ServeConfig keys (dotted, as strings from the CLI),
    plus `config` for a YAML file. Bad keys raise ConfigError naming them."""
    from sft_ray.serve import load_serve_config
    from sft_ray.serve.app import build_app

    args = dict(args)
    path = args.pop("config", None)
    cfg = load_serve_config(path, [f"{k}={v}" for k, v in args.items()])
    return build_app(cfg)


if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
