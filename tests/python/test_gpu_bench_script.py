"""benchmarks/gpu/bench.py's own logic, where there is no GPU: its validation (fused token_logps, its backward out of
place and in place, token_kl, against the float64 / autograd composite on a slice of rows with that slice's labels)
runs on the CPU kernels with --device cpu --validate-only, in fp32 and bf16, and passes. A size mismatch in the
script (the composite once gathered every row's labels on a 256-row slice) or a kernel disagreement fails it, so the
script cannot rot before its first GPU run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_bench_validation_runs_on_the_cpu_kernels(dtype):
    env = dict(os.environ)
    library = os.environ.get("PREFOPT_LIBRARY")
    if library:
        env["PREFOPT_LIBRARY"] = str(Path(library).resolve())
    result = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu/bench.py"), "--device", "cpu", "--rows", "300",
                             "--vocab", "1000", "--dtype", dtype, "--validate-only"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validation passed" in result.stdout, result.stdout
