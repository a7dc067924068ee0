"""The test-only Python dependencies as requirements.txt pins them: installed at exactly those versions, and
importable the way a new user imports them (``from trl import DPOTrainer`` in a fresh interpreter, with no
patching of TRL or transformers). Never checks torch's version (any LibTorch must work)."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import subprocess
import sys

import pytest

REQUIREMENTS = pathlib.Path(__file__).resolve().parents[2] / "requirements.txt"
ECOSYSTEM = ("trl", "transformers", "tokenizers", "huggingface_hub", "datasets", "accelerate", "peft", "jinja2")


def _pins():
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s#]+)", line.strip())
        if m:
            pins[m.group(1).lower().replace("-", "_")] = m.group(2)
    return pins


@pytest.mark.parametrize("name", ECOSYSTEM)
def test_pinned_exactly_and_installed(name):
    pins = _pins()
    assert name in pins, f"requirements.txt must pin {name} with ==, found {sorted(pins)}"
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{name}=={pins[name]} is pinned in requirements.txt but not installed (bash scripts/setup.sh)")
    assert installed == pins[name], f"{name}: requirements.txt pins {pins[name]}, installed {installed}"


def test_trl_trainers_import_in_a_fresh_interpreter():
    code = "from trl import DPOTrainer, DPOConfig, KTOTrainer, RewardTrainer; import peft, accelerate, datasets"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, f"`{code}` failed with the pinned versions:\n{run.stderr[-3000:]}"
