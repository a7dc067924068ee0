"""prefopt-train launched the way users launch data-parallel jobs: ``torchrun --nproc-per-node 2 --no-python
prefopt-train run.json`` on the CPU (Gloo on loopback). The job trains, only rank 0 writes metrics.jsonl (one line
per logged step, not one per rank) and the checkpoints, and ``--resume`` continues it to the same final loss as the
uninterrupted run, also with ZeRO-1 (training.shard_optimizer_state) and a precomputed reference. The C++ tests
(tests/src/train/distributed_test.cpp) prove the numbers; this proves the launch.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_llama_parity import built_helper

REPO = Path(__file__).resolve().parents[2]


def _torchrun(train, config, out, *extra):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")
    return subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", "--no-python", str(train),
                           str(config), "--output_dir", str(out), *extra],
                          capture_output=True, text=True, timeout=600, env=env)


def _config(tmp_path, sharded):
    """examples/configs/dpo.json; sharded: with ZeRO-1 and a precomputed reference (computed in shares)."""
    config = REPO / "examples/configs/dpo.json"
    if not sharded:
        return config
    run = json.loads(config.read_text())
    for split in ("train", "eval"):
        run["data"][split] = str((config.parent / run["data"][split]).resolve())
    run["training"]["shard_optimizer_state"] = True
    run["loss"]["ref_model"] = "precomputed"
    path = tmp_path / "sharded.json"
    path.write_text(json.dumps(run))
    return path


@pytest.mark.parametrize("sharded", [False, True], ids=["plain", "zero1_precomputed_reference"])
def test_torchrun_two_processes_train_write_once_and_resume(tmp_path, sharded):
    train = built_helper("prefopt_llama_logits_dump", "PREFOPT_LLAMA_DUMP").parent.parent / "examples" / "prefopt-train"
    assert train.is_file(), f"{train} is not built"
    config = _config(tmp_path, sharded)
    full = _torchrun(train, config, tmp_path / "full", "--max_steps", "4")
    assert full.returncode == 0, full.stdout + full.stderr
    lines = [json.loads(l) for l in (tmp_path / "full/metrics.jsonl").read_text().splitlines()]
    steps = [l["step"] for l in lines if "loss" in l]
    assert steps == sorted(set(steps)) and steps[-1] == 4, lines  # each step logged once, by rank 0
    assert (tmp_path / "full/checkpoint-3").is_dir() and (tmp_path / "full/final").is_dir()
    if sharded:
        assert (tmp_path / "full/ref_logps.pt").is_file() and (tmp_path / "full/ref_logps_eval.pt").is_file()

    # Resume a copy of the run from its step-3 checkpoint: step 4 ends with the uninterrupted run's loss.
    shutil.copytree(tmp_path / "full", tmp_path / "part")
    shutil.rmtree(tmp_path / "part/checkpoint-4")
    shutil.rmtree(tmp_path / "part/final")
    resumed = _torchrun(train, config, tmp_path / "part", "--max_steps", "4", "--resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    last = lambda path: [json.loads(l) for l in path.read_text().splitlines() if '"loss"' in l][-1]
    assert last(tmp_path / "part/metrics.jsonl")["loss"] == last(tmp_path / "full/metrics.jsonl")["loss"]
