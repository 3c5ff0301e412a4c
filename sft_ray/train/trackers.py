"""Optional experiment trackers for the training loop: TensorBoard and MLflow.

metrics.jsonl is always written (loop.py); these mirror the same rows when asked for:
- `train.tensorboard: true` -> `torch.utils.tensorboard.SummaryWriter` events under
  `<output>/train/tensorboard` (local outputs; object-store outputs log to a local folder and say so),
  the way Ray Train's docs show TensorBoard from the training function.
- `train.mlflow_tracking_uri: <uri>` -> Ray's standard MLflow integration,
  `ray.air.integrations.mlflow.setup_mlflow` (rank 0 only), params = the resolved train config.
Neither package is a dependency: enabling one without it installed fails at start with the name of
the package to install, not mid-run.
"""

from __future__ import annotations

import logging
import os
import tempfile

from sft_ray.storage import is_local

log = logging.getLogger("sft_ray")


class Trackers:
    """Rank 0's TensorBoard writer and/or MLflow run; `log(row)` mirrors one metrics.jsonl row."""

    def __init__(self, tc, train_dir: str, params: dict):
        self.tb = self.mlflow = None
        if tc.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise ImportError("train.tensorboard: true needs `pip install tensorboard`") from e
            folder = os.path.join(train_dir.removeprefix("file://"), "tensorboard") if is_local(train_dir) \
                else tempfile.mkdtemp(prefix="sft_ray_tensorboard_")
            if not is_local(train_dir):
                log.warning("tensorboard events go to %s on the rank-0 node (output is not a local path)", folder)
            self.tb = SummaryWriter(folder)
        if tc.mlflow_tracking_uri:
            try:
                import mlflow  # noqa: F401
            except ImportError as e:
                raise ImportError("train.mlflow_tracking_uri needs `pip install mlflow`") from e
            from ray.air.integrations.mlflow import setup_mlflow

            self.mlflow = setup_mlflow(params, tracking_uri=tc.mlflow_tracking_uri, experiment_name="sft_ray",
                                       create_experiment_if_not_exists=True, rank_zero_only=True)

    def log(self, row: dict) -> None:
        nums = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k not in ("step", "epoch")}
        if self.tb is not None:
            for k, v in nums.items():
                self.tb.add_scalar(f"train/{k}", v, row["step"])
        if self.mlflow is not None:
            self.mlflow.log_metrics(nums, step=row["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.mlflow is not None:
            self.mlflow.end_run()
