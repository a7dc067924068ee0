"""Finds libprefopt.so and loads it into torch, which registers the torch.ops.prefopt operators.

It looks, in order, at the PREFOPT_LIBRARY environment variable, a copy next to the package
(prefopt/libprefopt.so, or prefopt/lib/libprefopt.so where ``pip install`` puts it), the library that
``cmake --install`` put beside the package (prefopt/_install_location.txt says where) and the repository's build
folders (build/, build-*/).
It never builds, downloads or compiles anything, and it never falls back to a pure-Python implementation.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import List, Optional

import torch  # must be imported before the library: libprefopt.so links against libtorch

LIBRARY_NAME = "libprefopt.so"
ENV_VAR = "PREFOPT_LIBRARY"

_PACKAGE_DIR = Path(__file__).resolve().parent
# python/prefopt -> python -> <repo>
_REPO_DIR = _PACKAGE_DIR.parent.parent

_loaded_path: Optional[str] = None


def candidate_paths() -> List[Path]:
    """Where the library is looked for when PREFOPT_LIBRARY is not set, in order."""
    candidates = [_PACKAGE_DIR / LIBRARY_NAME, _PACKAGE_DIR / "lib" / LIBRARY_NAME]
    location = _PACKAGE_DIR / "_install_location.txt"  # written by cmake --install: a path relative to the package
    if location.is_file():
        candidates.append((_PACKAGE_DIR / location.read_text().strip()).resolve())
    candidates.append(_REPO_DIR / "build" / LIBRARY_NAME)
    for folder in sorted(glob.glob(str(_REPO_DIR / "build-*"))):
        candidates.append(Path(folder) / LIBRARY_NAME)
    return candidates


def find_library() -> Path:
    """The path of libprefopt.so that load_library() would load; raises ImportError when there is none."""
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ImportError(
                f"{ENV_VAR} is set to {env!r}, but no file exists there. Point it at a built {LIBRARY_NAME} "
                f"or unset it to search the default locations."
            )
        return path.absolute()
    looked_at = candidate_paths()
    for path in looked_at:
        if path.is_file():
            return path.absolute()
    looked = "\n  ".join(str(p) for p in looked_at)
    raise ImportError(
        f"prefopt could not find {LIBRARY_NAME}. Looked at:\n  {looked}\n"
        f"Build it from the repository root with `bash scripts/test.sh` or `bash scripts/build.sh` "
        f"(which writes build/{LIBRARY_NAME}), or set {ENV_VAR} to the path of a built {LIBRARY_NAME}."
    )


def load_library() -> str:
    """Loads the library once (later calls return the same path) and returns the path that was loaded."""
    global _loaded_path
    if _loaded_path is None:
        path = find_library()
        try:
            torch.ops.load_library(str(path))
        except OSError as exc:
            raise ImportError(
                f"prefopt found {path} but could not load it ({exc}). It must be built against the torch "
                f"that is imported ({torch.__version__}); rebuild with `bash scripts/build.sh`."
            ) from exc
        _loaded_path = str(path)
    return _loaded_path
