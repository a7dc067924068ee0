"""prefopt.trl under `accelerate launch` with 2 CPU processes (Gloo, DistributedDataParallel): TRL's own
data-parallel handling, prefopt's scoring inside; with ``spo``, its degree head (outside DDP) averaged over the processes too. (accelerate 1.16's `--cpu` with `--num_processes 2` starts one
process unless given an MPI hostfile; `--multi_gpu` with no visible GPU starts torch.distributed.run's processes,
which accelerate runs as MULTI_CPU on Gloo: the multi-GPU code path, on CPUs.) After a few SGD steps both ranks hold bit-identical parameters, equal to one process trained on
the same global batch (per-device batch 2 x 2 processes = 4), updates included."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("trl", reason="trl is not installed (requirements.txt pins it)")
pytest.importorskip("accelerate", reason="accelerate is not installed (requirements.txt pins it)")

HERE = Path(__file__).resolve().parent
WORKER = HERE / "trl_accelerate_worker.py"
STEPS = 2


def _env(tmp_path: Path) -> dict:
    import prefopt

    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCELERATE_")}  # no leftovers of other tests
    package_root = str(Path(prefopt.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), package_root, env.get("PYTHONPATH", "")])
    env["PREFOPT_LIBRARY"] = prefopt.library_path
    env["HF_HOME"] = str(tmp_path / "hf")  # no accelerate default_config.yaml from the machine
    env["OMP_NUM_THREADS"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU and Gloo even where GPUs are present
    env["TRL_EXPERIMENTAL_SILENCE"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, env, what):
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"{what} failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"


def _load(path: Path):
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("loss_types", ["sigmoid", "sigmoid,spo"])
def test_two_processes_equal_one_with_the_same_global_batch(loss_types, tmp_path):
    env = _env(tmp_path)
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    one.mkdir()
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
              "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    _run(launch + [str(WORKER), str(two), "2", str(STEPS), loss_types], env, "accelerate launch (2 processes)")
    _run([sys.executable, str(WORKER), str(one), "4", str(STEPS), loss_types], env, "one process")

    log = _load(two / "log-rank0.pt")
    assert log["world_size"] == 2 and log["backend"] == "gloo", log
    assert log["distributed_type"].endswith("MULTI_CPU") and log["wrapped"] == "DistributedDataParallel", log
    rank0, rank1, single = (_load(p) for p in (two / "params-rank0.pt", two / "params-rank1.pt",
                                                 one / "params-rank0.pt"))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the ranks"
    import trl_integration_fixtures as fx

    start = dict(fx.model(0).named_parameters())
    moved = 0.0
    assert ("degree_head.weight" in single) == ("spo" in loss_types)
    for name, p in single.items():
        if name.startswith("degree_head."):  # its random start is not the model's: compare the end points
            assert (rank0[name] - p).norm() <= 1e-5 * p.norm(), f"{name}: 2 processes vs 1 beyond 1e-5 relative"
            continue
        update_1, update_2 = p - start[name].detach(), rank0[name] - start[name].detach()
        moved = max(moved, update_1.norm().item())
        assert (rank0[name] - p).norm() <= 1e-6 * p.norm(), f"{name}: 2 processes vs 1 beyond 1e-6 relative"
        assert (update_2 - update_1).norm() <= 1e-5 * update_1.norm() + 1e-12, (
            f"{name}: the update of 2 processes differs from 1 process's by more than 1e-5 relative")
    assert moved > 1e-3, "the parameters barely moved: a vacuous comparison"
