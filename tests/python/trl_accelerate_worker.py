"""One process of the prefopt.trl data-parallel test (test_trl_accelerate.py): trains PrefoptDPOTrainer for a few
SGD steps on the shared tiny model and dataset, under `accelerate launch` or alone, and saves this rank's final
parameters. Usage: trl_accelerate_worker.py OUT_DIR PER_DEVICE_BATCH STEPS LOSS_TYPES (comma-separated)"""

import os
import sys
from pathlib import Path

import torch

import trl_integration_fixtures as fx
from prefopt.trl import PrefoptDPOConfig, PrefoptDPOTrainer


def main() -> None:
    out, per_device, steps, loss_type = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.manual_seed(0)
    policy, ref = fx.model(0), fx.model(100)
    args = fx.config(PrefoptDPOConfig, out, per_device_train_batch_size=per_device, max_steps=steps, optim="sgd",
                     learning_rate=0.05, lr_scheduler_type="constant", warmup_steps=0, loss_type=loss_type.split(","),
                     gradient_accumulation_steps=1, max_grad_norm=0.0)
    trainer = PrefoptDPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=fx.dataset(n=8, seed=1),
                                processing_class=fx.tokenizer())
    trainer.train()
    rank = int(os.environ.get("RANK", "0"))
    model = trainer.accelerator.unwrap_model(trainer.model)
    params = {n: p.detach().cpu() for n, p in model.named_parameters()}
    if trainer.prefopt_degree_head is not None:  # SPO's degree head, outside the model
        params.update({f"degree_head.{n}": p.detach().cpu() for n, p in trainer.prefopt_degree_head.named_parameters()})
    torch.save(params, out / f"params-rank{rank}.pt")
    state = trainer.accelerator.state
    torch.save({"world_size": trainer.accelerator.num_processes, "backend": str(state.backend),
                "distributed_type": str(state.distributed_type),
                "wrapped": type(trainer.model_wrapped).__name__,
                "losses": [e["loss"] for e in trainer.state.log_history if "loss" in e]}, out / f"log-rank{rank}.pt")


if __name__ == "__main__":
    main()
