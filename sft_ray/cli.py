"""`sft-ray` console script and the shared entry of `jobs/*.py`.

    sft-ray build    [--config PATH] [--set key=value ...]   corpora -> SFT dataset
    sft-ray finetune [--config PATH] [--set key=value ...]   SFT dataset -> model
    sft-ray run      [--config PATH] [--set key=value ...]   both, in one Ray job
    sft-ray report   OUTPUT                                  print a finished run's summary
    sft-ray export   CHECKPOINT OUT [--dtype bf16]           a checkpoint as a from_pretrained folder
    sft-ray label export RUN | label import RUN FILE         human labels via Label Studio (label/studio.py)
    sft-ray validate-config PATH [--set key=value ...] [--explain]
    sft-ray --version
    sft-ray serve    [RUN_OR_MODEL] [--config serve.yaml] [--set key=value ...]   OpenAI-compatible chat API

With no --config the embedded demo runs. Exit code 0 only when the run completed; a bad config or
an unreadable input exits 2 with one message naming the key or path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from sft_ray.config import ConfigError, RunConfig, config_yaml, load_config, require_output
from sft_ray.output import OutputError
from sft_ray.preflight import PreflightError

EXIT_USAGE = 2


_VERBS = {
    "build": ("build the SFT dataset", "Read, clean, dedup, label and format the config's sources into <output>/curated, rejects "
              "and sft/{train,validation}, with manifest.json and report/report.html."),
    "finetune": ("fine-tune on a built dataset", "Fine-tune train.model on <output>/sft/train with Ray Train (checkpoints, "
                 "resume, evaluation before/after); the model goes to <output>/train/model."),
    "run": ("build, then fine-tune", "build, then finetune, in one Ray job (what `./dev demo` runs)."),
}
_EXAMPLES = """examples:
  sft-ray {verb}                                        the embedded demo (runs/demo)
  sft-ray {verb} --config jobs/configs/tiny.yaml --set output=runs/tiny
  sft-ray {verb} --config my.yaml --set train.max_steps=20 --set dedup.near.enabled=false
  ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- python jobs/pipeline.py --config my.yaml"""


def _verb(sub, name: str, help_: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """A subcommand whose --help shows its description and example command lines."""
    return sub.add_parser(name, help=help_, description=description, epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _parser() -> argparse.ArgumentParser:
    from sft_ray import __version__

    p = argparse.ArgumentParser(prog="sft-ray", description="Corpora -> SFT data -> fine-tuned model, on Ray.",
                                epilog="Run `sft-ray VERB --help` for a verb's options and examples; README.md for the rest.")
    p.add_argument("--version", action="version", version=f"sft-ray {__version__}")
    sub = p.add_subparsers(dest="verb", required=True)
    for verb, (help_, description) in _VERBS.items():
        s = sub.add_parser(verb, help=help_, description=description, epilog=_EXAMPLES.format(verb=verb),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        s.add_argument("--config", help="YAML run config (default: the embedded demo; a config file must name its output)")
        s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="dotted override, repeatable; the value is YAML (e.g. --set sources.0.limit=100)")
    s = _verb(sub, "validate-config", "validate a config and print it resolved",
              "Validate a run config (unknown keys and bad values name the key and the file) and print it resolved; "
              "--explain adds each key's description.",
              ["sft-ray validate-config jobs/configs/demo.yaml", "sft-ray validate-config jobs/configs/demo.yaml --explain --set train.max_steps=5"])
    s.add_argument("config")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--explain", action="store_true", help="print every key with its description, default and value")
    s = _verb(sub, "export", "turn a training checkpoint into a folder from_pretrained opens",
              "Load a checkpoint (<output>/train/checkpoints/step_NNNNNN) into its run's base model (LoRA adapters merged) "
              "and save it, with the tokenizer, as a Hugging Face folder.",
              ["sft-ray export runs/demo/train/checkpoints/step_000010 runs/demo/step10-hf",
               "sft-ray export s3://bucket/run/train/checkpoints/step_000050 /tmp/m --dtype bf16",
               "sft-ray export runs/lora/train/checkpoints/step_000010 runs/lora/step10-adapter --adapter"])
    s.add_argument("checkpoint", help="checkpoint folder (local path or fsspec URL)")
    s.add_argument("out", help="folder to write (local path or fsspec URL)")
    s.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "f16"], help="weights' dtype in the export")
    s.add_argument("--adapter", action="store_true", help="LoRA runs: the adapter alone (PeftModel.from_pretrained), not merged weights")
    s = sub.add_parser("report", help="print the summary of a finished build")
    s.add_argument("output", help="run output path or URL")
    s = sub.add_parser("label", help="human labels: Label Studio export / import (sft_ray/label/studio.py)",
                       description="Send the rows the model is least sure of (plus a random audit slice) to Label Studio, "
                       "and bring the people's labels back as <output>/labels/human.jsonl: the next build trains on them "
                       "(gold > human > model) and adds them to the labeler's seed set.",
                       epilog="examples:\n  sft-ray label export runs/news --uncertain 200 --audit 50\n"
                       "  sft-ray label import runs/news project-1-at-2026-12-05.json\n"
                       "  sft-ray build --config my.yaml --set overwrite=true     # rebuild with the human labels",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    lsub = s.add_subparsers(dest="label_verb", required=True)
    le = lsub.add_parser("export", help="write <run>/labels/studio/tasks.json and config.xml")
    le.add_argument("run", help="a finished build's output (label stage on)")
    le.add_argument("--labeler", default="topic", choices=["topic", "sentiment"])
    le.add_argument("--uncertain", type=int, default=200, help="least sure rows: smallest <labeler>_margin (default 200)")
    le.add_argument("--audit", type=int, default=50, help="random rows from the rest (default 50)")
    le.add_argument("--seed", type=int, default=0, help="seed of the audit sample")
    li = lsub.add_parser("import", help="read a Label Studio JSON / JSON-MIN export into <run>/labels/human.jsonl")
    li.add_argument("run")
    li.add_argument("file", help="the export file")
    li.add_argument("--labeler", default="topic", choices=["topic", "sentiment"])
    s = sub.add_parser("serve", help="serve a model over an OpenAI-compatible chat API (Ray Serve)")
    s.add_argument("model", nargs="?", help="fine-tune run folder, model folder, s3:// URL or model name")
    s.add_argument("--config", help="YAML ServeConfig (sft_ray/serve/config.py)")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="dotted override, repeatable")
    return p


def serve_verb(args) -> None:
    """Deploy the chat app and block until Ctrl-C (kept in sft_ray/serve; imported only here)."""
    from sft_ray.serve import load_serve_config

    cfg = load_serve_config(args.config, args.overrides, args.model)
    print("serve config:\n" + json.dumps(cfg.model_dump(exclude={"storage_options"}), indent=2), flush=True)
    from sft_ray.serve.app import run_serve

    run_serve(cfg)
    base = f"http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}"
    print(f"\nserving {cfg.model_name()!r} at {base}/v1/chat/completions (health: {base}/health); Ctrl-C stops",
          flush=True)
    import signal

    def _stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, and SIGTERM from `ray job stop` / a process manager, both shut the app down cleanly
    # (SIGINT explicitly: a shell that starts us in the background leaves it ignored).
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        while True:
            # Short sleeps: a signal that lands on one of Ray's threads only sets a flag, which the
            # main thread checks when it wakes.
            time.sleep(0.5)
    except KeyboardInterrupt:
        from ray import serve

        # A second Ctrl-C / SIGTERM while shutting down acts as usual (interrupt / terminate).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        print("stopping: serve.shutdown()", flush=True)
        serve.shutdown()


def label_verb(args) -> None:
    from sft_ray.label import studio

    if args.label_verb == "export":
        info = studio.export_tasks(args.run, args.labeler, args.uncertain, args.audit, args.seed)
        print(f"{info['uncertainty']} least-sure (smallest {info['ranked_by']}) + {info['audit']} audit rows of {info['candidates']} model-labelled "
              f"rows -> {info['tasks']}\nlabeling config -> {info['config']}\n"
              "In Label Studio: create a project with this labeling config, import the tasks, label, then Export -> JSON "
              f"and run: sft-ray label import {args.run} <export.json>")
    else:
        info = studio.import_export(args.run, args.file, args.labeler)
        print(f"{info['imported']} human labels imported ({info['without_annotation']} tasks without an annotation), "
              f"{info['held']} held in {info['file']}; rebuild (--set overwrite=true) to train on them")


def print_build(result) -> None:
    m = result.manifest
    c = m["counts"]
    print(f"\n== build {'(already complete, skipped)' if result.skipped else 'done'}: {m['output']}")
    print(f"records: input {c['input']:,}  kept {c['kept']:,}  rejected {c['rejected']:,}")
    for src, v in c["by_source"].items():
        print(f"  source {src:<16} input {v['input']:>7,}  kept {v['kept']:>7,}  rejected {v['rejected']:>7,}")
    for stage, reasons in c["by_stage"].items():
        print(f"  stage {stage:<8} " + ", ".join(f"{r}: {n:,}" for r, n in reasons.items()))
    sft = m.get("sft", {})
    print(f"sft examples: train {sft.get('train', 0):,}  validation {sft.get('validation', 0):,}  " + ", ".join(f"{t}: {sum(v.values()):,}" for t, v in sft.get("by_task", {}).items()))
    for w in m.get("warnings", []):
        print(f"  warning: {w}")
    for s in result.samples[:3]:
        print(f"-- sample [{s['task']}] {s['id']}")
        for msg in s["messages"]:
            print(f"   {msg['role']:>9}: {msg['content'][:200]!r}")
    print(f"outputs: {m['output']}/{{curated,rejects,sft/train,sft/validation,sft/rejects,report/report.html,manifest.json}}")


def _num(x) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else str(x)


def print_train(summary: dict) -> None:
    print("\n== finetune done")
    print(f"training loss: start {_num(summary.get('loss_start'))} -> end {_num(summary.get('loss_end'))} over {summary.get('steps')} steps")
    print(f"validation loss: before {_num(summary.get('val_loss_before'))} -> after {_num(summary.get('val_loss_after'))}")
    print(f"model: {summary.get('model_dir')}   checkpoints: {summary.get('checkpoint_dir')}   wall {summary.get('wall_s')} s")


def run_verb(verb: str, cfg: RunConfig) -> None:
    from sft_ray import console
    from sft_ray.preflight import check_before_ray
    from sft_ray.runtime import DASHBOARD_MIN_INPUT_BYTES, init_ray

    print(console.summary(cfg, verb), flush=True)
    t0 = time.time()
    inputs = check_before_ray(cfg, verb)  # bad paths, unwritable outputs, unknown models: seconds, not after Ray's start
    listed = sum(int(it["size"]) for items in (inputs or {}).values() for it in items)

    def start_ray() -> None:
        init_ray(cfg.ray_address, dashboard=verb != "build" or listed >= DASHBOARD_MIN_INPUT_BYTES)
        console.setup_logging()  # again: Ray has added its console handlers

    # A build that starts a local Ray starts it itself, staging units meanwhile (staging.DriverUnits).
    local = verb in ("build", "run") and not (cfg.ray_address or os.environ.get("RAY_ADDRESS"))
    if not local:
        start_ray()
    if verb in ("build", "run"):
        from sft_ray.build import build_sft_data

        print_build(build_sft_data(cfg, inputs=inputs, start_ray=start_ray if local else None))
    if verb in ("finetune", "run"):
        start_ray()  # already up unless the build was skipped as complete (it then needed no Ray)
        from sft_ray.train import run_finetune

        print_train(run_finetune(cfg))
    print(f"\n{verb} finished in {time.time() - t0:.1f} s")


def main(argv: list[str] | None = None) -> int:
    from sft_ray import console

    console.setup_logging()
    args = _parser().parse_args(argv)
    try:
        if args.verb == "report":
            from sft_ray import storage

            print(json.dumps(storage.read_json(storage.join(args.output, "manifest.json")), indent=2))
            return 0
        if args.verb == "export":
            from sft_ray.train.export import checkpoint_to_hf

            print(f"exported {checkpoint_to_hf(args.checkpoint, args.out, dtype=args.dtype, adapter=args.adapter)}")
            return 0
        if args.verb == "serve":
            serve_verb(args)
            return 0
        if args.verb == "label":
            try:
                label_verb(args)
            except ValueError as e:  # a bad export file or a run without the labeler: one message, no traceback
                print(f"sft-ray label {args.label_verb}: error: {e}", file=sys.stderr)
                return EXIT_USAGE
            return 0
        cfg = load_config(args.config, args.overrides)
        if args.verb == "validate-config":
            if args.explain:
                from sft_ray.config import explain

                print(explain(cfg))
            else:
                print(config_yaml(cfg))
            print(f"config OK: {args.config}")
            return 0
        if args.config is not None:
            require_output(cfg, args.config)
        run_verb(args.verb, cfg)
        return 0
    except (ConfigError, FileNotFoundError, OSError, PreflightError, OutputError) as e:
        print(f"sft-ray {args.verb}: error: {e}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
