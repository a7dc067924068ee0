"""prefopt.trl's import-time check of the installed TRL: a missing TRL or one outside SUPPORTED_TRL is an
ImportError naming the supported range (checked with stand-in modules, so the installed TRL is not touched)."""

import sys
import types

import pytest

from prefopt.trl import _versions


@pytest.mark.parametrize("version", ["0.27.2", "0.29.0", "1.0.0"])
def test_other_versions_are_refused_naming_the_range(version, monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", types.SimpleNamespace(__version__=version))
    with pytest.raises(ImportError, match=r"prefopt.trl supports TRL >=0.28,<0.29, found trl==" + version):
        _versions.require_trl()


def test_supported_versions_pass(monkeypatch):
    for version in ("0.28.0", "0.28.1", "0.28.0.dev0+abc"):
        monkeypatch.setitem(sys.modules, "trl", types.SimpleNamespace(__version__=version))
        assert _versions.require_trl() == version


def test_missing_trl_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "trl", None)  # import trl -> ImportError
    with pytest.raises(ImportError, match=r"prefopt.trl needs TRL >=0.28,<0.29 \(pip install"):
        _versions.require_trl()
