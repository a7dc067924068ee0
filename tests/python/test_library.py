"""Tests of how the prefopt package finds and loads libprefopt.so (python/prefopt/_library.py).

In-process only: the search is pointed at temporary folders by monkeypatching, so nothing is rebuilt,
no second copy of the library is loaded, and no subprocess starts.
"""

import re
from pathlib import Path

import pytest
import torch

import prefopt
from prefopt import _library


def test_package_metadata_and_loaded_library():
    assert prefopt.__version__ == "0.1.0"
    assert Path(prefopt.library_path).is_file()
    assert Path(prefopt.library_path).name.startswith("libprefopt")
    assert _library.load_library() == prefopt.library_path  # loads once
    for name in ("token_logps", "_token_logps_backward", "sequence_logps", "dpo_loss"):
        assert hasattr(torch.ops.prefopt, name)
    for name in ("token_logps", "sequence_logps", "dpo_loss"):
        assert callable(getattr(prefopt, name)) and getattr(prefopt, name).__doc__


def test_env_var_wins(monkeypatch, tmp_path):
    fake = tmp_path / "custom" / "libprefopt.so"
    fake.parent.mkdir()
    fake.write_bytes(b"")
    monkeypatch.setenv("PREFOPT_LIBRARY", str(fake))
    assert _library.find_library() == fake.absolute()


def test_env_var_pointing_nowhere_is_an_error(monkeypatch, tmp_path):
    missing = tmp_path / "nope" / "libprefopt.so"
    monkeypatch.setenv("PREFOPT_LIBRARY", str(missing))
    with pytest.raises(ImportError, match=f"PREFOPT_LIBRARY is set to '{missing}', but no file exists there"):
        _library.find_library()


def _fake_repo(monkeypatch, tmp_path):
    package = tmp_path / "python" / "prefopt"
    package.mkdir(parents=True)
    monkeypatch.delenv("PREFOPT_LIBRARY", raising=False)
    monkeypatch.setattr(_library, "_PACKAGE_DIR", package)
    monkeypatch.setattr(_library, "_REPO_DIR", tmp_path)
    return package


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_search_order(monkeypatch, tmp_path):
    package = _fake_repo(monkeypatch, tmp_path)
    build_release = _touch(tmp_path / "build-release" / "libprefopt.so")
    assert _library.find_library() == build_release
    build = _touch(tmp_path / "build" / "libprefopt.so")
    assert _library.find_library() == build
    # cmake --install: the package says where the library is, relative to itself.
    prefix_lib = _touch(tmp_path / "prefix" / "lib" / "libprefopt.so")
    (package / "_install_location.txt").write_text("../../prefix/lib/libprefopt.so\n")
    assert _library.find_library() == prefix_lib
    installed = _touch(package / "lib" / "libprefopt.so")
    assert _library.find_library() == installed
    monkeypatch.setenv("PREFOPT_LIBRARY", str(build_release))
    assert _library.find_library() == build_release


def test_nothing_found_says_where_it_looked_and_how_to_build(monkeypatch, tmp_path):
    package = _fake_repo(monkeypatch, tmp_path)
    (tmp_path / "build-debug").mkdir()
    with pytest.raises(ImportError) as info:
        _library.find_library()
    message = str(info.value)
    for looked_at in (package / "lib" / "libprefopt.so", tmp_path / "build" / "libprefopt.so",
                      tmp_path / "build-debug" / "libprefopt.so"):
        assert str(looked_at) in message
    assert "bash scripts/test.sh" in message and "bash scripts/build.sh" in message
    assert "PREFOPT_LIBRARY" in message


@pytest.mark.parametrize("module", ["prefopt.scoring", "prefopt.pairwise"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_version_is_the_one_cmakelists_declares():
    cmakelists = (Path(__file__).resolve().parents[2] / "CMakeLists.txt").read_text()
    declared = re.search(r"project\(prefopt VERSION ([0-9.]+)", cmakelists).group(1)
    assert prefopt.__version__ == declared
