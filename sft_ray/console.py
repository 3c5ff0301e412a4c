"""What a person sees in the terminal: one line per message, a short run summary, progress with ETA.

- `setup_logging`: one handler (on the root logger), so every message prints once, as
  `HH:MM:SS sft_ray: message`; on the console Ray's loggers show warnings and errors only, less
  the ones a user cannot act on ("Progress bars disabled"), and not Ray Data's per-execution
  "execution finished" lines or Ray Train's per-report lines. Ray's full logs stay in its session
  folder (`/tmp/ray/session_latest/logs`).
- `summary`: the run in a dozen lines (sources, which stages run, output); the whole resolved
  config is in `manifest.json` and `sft-ray validate-config`.
- `Progress`: "n/N units, records, elapsed, ETA" lines at most every `every_s` seconds (and at
  the end), for work whose total is known up front.
"""

from __future__ import annotations

import logging
import time

from sft_ray.config import RunConfig

log = logging.getLogger("sft_ray")

# Ray's console lines: INFO only for these (the rest is bookkeeping: "execution finished",
# Parquet estimates, dataset registration, worker-group starts, per-report lines) ...
_RAY_INFO_KEPT = ("Started a local Ray instance", "Connecting to existing Ray cluster", "Connected to Ray cluster")
# ... and warnings a user cannot act on.
_RAY_WARNINGS_DROPPED = (
    "Progress bars disabled",
    "Token authentication is enabled for this Ray cluster",  # printed on every start; the token path is documented
)
_FORMAT = "%(asctime)s %(name)s: %(message)s"
_DATEFMT = "%H:%M:%S"


class _QuietRay(logging.Filter):
    """On console handlers: Ray's records at WARNING and above (less the dropped ones), and a few
    INFO lines that say where Ray runs. sft_ray's and everyone else's records pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name == "ray" or record.name.startswith("ray.")):
            return True
        msg = record.getMessage()
        if record.levelno < logging.WARNING:
            return msg.startswith(_RAY_INFO_KEPT)
        return not msg.startswith(_RAY_WARNINGS_DROPPED)


def setup_logging(level: int = logging.INFO, worker: bool = False) -> None:
    """Idempotent; call it again after Ray and Ray Data have set up their loggers (they add their
    own console handlers). Used by the driver (cli.main) and, with `worker`, the training workers
    (train/loop.py), whose root logger already prints through Ray's handler: there sft_ray's lines
    get their own handler and do not propagate, so each prints once."""
    if worker:
        _own_handler(log)
        log.setLevel(level)
        log.propagate = False
        return
    root = logging.getLogger()
    _own_handler(root)
    root.setLevel(level)
    log.setLevel(level)
    log.propagate = True
    for h in list(log.handlers):  # a handler on our own logger would print each line twice
        log.removeHandler(h)
    # Printed by ray.init itself, before a second call here could filter Ray's new handlers.
    token = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _QuietRay) for f in token.filters):
        token.addFilter(_QuietRay())
    for name in ("", "ray", "ray.data", "ray.train", "ray.tune", "ray.serve"):
        for h in logging.getLogger(name).handlers:
            # Console handlers only: Ray's log files under its session folder keep every line.
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) \
                    and not any(isinstance(f, _QuietRay) for f in h.filters):
                h.addFilter(_QuietRay())


def _own_handler(logger: logging.Logger) -> None:
    """Our console handler on `logger`, once."""
    if not any(getattr(h, "_sft_ray", False) for h in logger.handlers):
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter(_FORMAT, _DATEFMT))
        h._sft_ray = True  # type: ignore[attr-defined]
        logger.addHandler(h)


def summary(cfg: RunConfig, verb: str) -> str:
    """The run at a glance: what is read, which stages run, where it goes."""
    lines = [f"sft-ray {verb}: output {cfg.output}"]
    if verb in ("build", "run"):
        for s in cfg.sources:
            path = s.path if isinstance(s.path, str) else ", ".join(f"{k}={v}" for k, v in s.path.items())
            lines.append(f"  source {s.name} ({s.kind}, {s.format}{f', limit {s.limit}' if s.limit is not None else ''}): {path}")
        d = cfg.dedup
        dedup = ", ".join(n for n, on in (("exact", d.exact.enabled), ("near", d.near.enabled), ("semantic", d.semantic.enabled),
                                           ("decontaminate", d.decontaminate.enabled), ("sft", d.sft.enabled)) if on) if d.enabled else "off"
        kinds = {s.kind for s in cfg.sources}
        labelers = [n for n in ("topic", "sentiment", "quality") if getattr(cfg.label, n).enabled] if cfg.label.enabled else []
        lines += [f"  clean {'on' if cfg.clean.enabled else 'off'}  dedup {dedup or 'off'}  label {', '.join(labelers) or 'off'}  "
                  f"teacher {cfg.teacher.model if cfg.teacher.enabled else 'off'}  "
                  f"format {', '.join(sorted({t for k, ts in cfg.format.tasks.items() if k in kinds for t in ts})) if cfg.format.enabled else 'off'}"]
    if verb in ("finetune", "run"):
        t = cfg.train
        steps = f"{t.max_steps} steps" if t.max_steps else f"{t.epochs} epoch(s)"
        lines.append(f"  train {t.model}{' + LoRA' if t.lora.enabled else ''}: {steps}, {t.num_workers} workers x batch {t.batch_size}, "
                     f"max_seq_len {t.max_seq_len}, {'GPU' if t.use_gpu else 'CPU'}")
    lines.append("  (full resolved config: manifest.json, or `sft-ray validate-config CONFIG --explain`)")
    return "\n".join(lines)


def duration(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """Count done work of a known total; log `what: n/N (p%) extra, elapsed, ETA` now and then."""

    def __init__(self, what: str, total: int, unit: str, every_s: float = 10.0):
        self.what, self.total, self.unit, self.every_s = what, total, unit, every_s
        self.done, self.t0, self.last = 0, time.time(), 0.0

    def add(self, n: int = 1, extra: str = "") -> None:
        self.done += n
        now = time.time()
        if self.done >= self.total or now - self.last >= self.every_s:
            self.last = now
            elapsed = now - self.t0
            eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
            tail = f", ETA {duration(eta)}" if self.done < self.total else ""
            log.info("%s: %d/%d %s (%d%%)%s, %s elapsed%s", self.what, self.done, self.total, self.unit,
                     100 * self.done // max(1, self.total), f", {extra}" if extra else "", duration(elapsed), tail)
