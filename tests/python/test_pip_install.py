"""``pip install .`` as a user runs it: into a fresh virtual environment that sees only the torch already
installed (the test environment's, through a .pth file), from the repository, then ``import prefopt`` from another
directory with no PYTHONPATH or PREFOPT_LIBRARY. The installed package must load its own library (built against
that torch), report CMakeLists.txt's version, compute what the source tree's build computes, carry py.typed, and
install prefopt-train into the environment's bin/. The wheel is built CPU-only here (a CUDA toolkit would add the
kernels, as in the CMake build) and in build-wheel/, so a second run is incremental.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import torch

import prefopt

REPO = Path(__file__).resolve().parents[2]


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PREFOPT_LIBRARY", "PYTHONHOME")}
    # The build's cmake and ninja: the ones beside the test environment's python (a recent cmake knows CUDA 13).
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def test_pip_install_into_a_fresh_environment_imports_from_anywhere(tmp_path):
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "installed_torch.pth").write_text(str(Path(torch.__file__).resolve().parent.parent) + "\n")

    # CPU-only, to keep the suite short: the CUDA kernels' build is the CMake build's, tested there.
    install = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                              "--config-settings=cmake.define.PREFOPT_WITH_CUDA=OFF", str(REPO)],
                             capture_output=True, text=True, env=_clean_env(CMAKE_BUILD_PARALLEL_LEVEL="2"),
                             timeout=3600)
    assert install.returncode == 0, install.stdout[-6000:] + install.stderr[-6000:]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    probe = (
        "import torch, prefopt; "
        "print(prefopt.__file__); print(prefopt.library_path); print(prefopt.__version__); "
        "x = torch.tensor([-1.0, -2.0], dtype=torch.float64); "
        "print(repr(prefopt.dpo_loss(x, x - 1, x - 0.5, x - 0.25, beta=0.1)[0].sum().item()))"
    )
    run = subprocess.run([str(python), "-c", probe], cwd=elsewhere, capture_output=True, text=True, env=_clean_env())
    assert run.returncode == 0, run.stdout + run.stderr
    package_file, library, version, loss = run.stdout.strip().splitlines()[-4:]
    assert Path(package_file).resolve().is_relative_to(venv.resolve()), package_file
    assert Path(library).resolve().is_relative_to(venv.resolve()), library
    assert Path(library).name == "libprefopt.so"
    declared = re.search(r"project\(prefopt VERSION ([0-9.]+)", (REPO / "CMakeLists.txt").read_text()).group(1)
    assert version == declared == prefopt.__version__
    x = torch.tensor([-1.0, -2.0], dtype=torch.float64)
    assert float(loss) == prefopt.dpo_loss(x, x - 1, x - 0.5, x - 0.25, beta=0.1)[0].sum().item()
    assert (Path(package_file).parent / "py.typed").is_file()

    train = venv / "bin" / "prefopt-train"
    assert train.is_file()
    shown = subprocess.run([str(train), "--help"], capture_output=True, text=True, cwd=elsewhere, env=_clean_env())
    assert shown.returncode == 0 and "prefopt-train" in shown.stdout + shown.stderr, shown.stdout + shown.stderr

    # prefopt.trl is installed with the package (TRL reaches the environment through the .pth above).
    assert (Path(package_file).parent / "trl" / "trainer.py").is_file()
    trl_probe = subprocess.run([str(python), "-c", "import prefopt.trl as t; print(t.__file__)"], cwd=elsewhere,
                               capture_output=True, text=True, env=_clean_env())
    assert trl_probe.returncode == 0, trl_probe.stderr[-3000:]
    assert Path(trl_probe.stdout.strip()).resolve().is_relative_to(venv.resolve()), trl_probe.stdout
