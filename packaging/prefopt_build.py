"""The build backend of ``pip install .``: scikit-build-core, told where the installing environment's torch is.

prefopt's compiled library must be built against the very torch it will be loaded into. pip builds in an isolated
environment that hides the installing environment's packages, torch included, so this backend asks that
environment's interpreter (pip runs the backend with it, only hiding its site-packages through PYTHONPATH and
PYTHONNOUSERSITE) for torch's CMake prefix and hands it to CMake. When that environment has PyPI's cmake, its
binary is put first on PATH too (its `cmake` command is a Python script the isolation breaks), so the wheel is
built by the same CMake as a source build and ccache serves both. It never installs or downloads torch: without
one installed, the build stops and says so. Everything else is scikit-build-core's.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

from scikit_build_core import build as _build

_HIDDEN = ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME")
_PROBE = """
import torch
print(torch.utils.cmake_prefix_path)
print(torch.__version__)
try:
    import cmake
    print(cmake.CMAKE_BIN_DIR)
except Exception:
    print("")
"""


@functools.lru_cache(maxsize=None)
def _installing_environment() -> tuple[str, str]:
    """(torch.utils.cmake_prefix_path, torch.__version__) of the environment pip installs into; puts its cmake
    first on PATH when it has PyPI's."""
    env = {k: v for k, v in os.environ.items() if k not in _HIDDEN}
    done = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(
            f"prefopt is built against the torch installed in the environment of {sys.executable}, which has none "
            f"that imports ({last}). Install torch there first (pip install torch), then pip install prefopt."
        )
    prefix, version, cmake_bin = (done.stdout.rstrip("\n").splitlines() + ["", "", ""])[:3]
    if cmake_bin and os.path.isfile(os.path.join(cmake_bin, "cmake")):
        os.environ["PATH"] = cmake_bin + os.pathsep + os.environ.get("PATH", "")
    return prefix, version


def _with_torch(config_settings):
    settings = dict(config_settings or {})
    prefix, version = _installing_environment()
    given = settings.get("cmake.define.CMAKE_PREFIX_PATH")
    settings["cmake.define.CMAKE_PREFIX_PATH"] = f"{prefix};{given}" if given else prefix
    print(f"prefopt: building against torch {version} ({prefix})", file=sys.stderr)
    return settings


def get_requires_for_build_wheel(config_settings=None):
    _installing_environment()
    return _build.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings=None):
    _installing_environment()
    return _build.get_requires_for_build_editable(config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build.build_wheel(wheel_directory, _with_torch(config_settings), metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build.build_editable(wheel_directory, _with_torch(config_settings), metadata_directory)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _build.prepare_metadata_for_build_wheel(metadata_directory, _with_torch(config_settings))


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _build.prepare_metadata_for_build_editable(metadata_directory, _with_torch(config_settings))


build_sdist = _build.build_sdist
get_requires_for_build_sdist = _build.get_requires_for_build_sdist
