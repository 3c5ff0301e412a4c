"""Fine-tuning: SFT dataset on storage -> Ray Train TorchTrainer -> checkpoints, eval, HF model.

driver.py     `run_finetune(cfg)`: plans the run (`TrainPlan`), tokenizes with Ray Data, starts the workers
loop.py       `train_loop_per_worker`: one worker's setup, resume, optimizer steps, eval, export
checkpoint.py what a checkpoint holds and the resume contract
parallel.py   DDP / FSDP / LoRA wrapping and full state dicts
"""

from sft_ray.train.driver import TrainPlan, plan_steps, run_finetune, sample_stats, task_sample

__all__ = ["run_finetune", "plan_steps", "TrainPlan", "sample_stats", "task_sample"]
