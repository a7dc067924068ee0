"""pytest setup for the prefopt Python tests: makes <repo>/python importable and defines the `cuda` marker
and fixture. It never builds the library and never reaches the network; without a CUDA device the CUDA
tests are skipped with the reason "no CUDA device".
"""

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "python") not in sys.path:
    sys.path.insert(0, str(REPO / "python"))

NO_CUDA_REASON = "no CUDA device"


def pytest_configure(config):
    config.addinivalue_line("markers", "cuda: needs a CUDA device; skipped with 'no CUDA device' otherwise")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=NO_CUDA_REASON)
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture
def cuda():
    """The CUDA device; skips the test with 'no CUDA device' when there is none."""
    if not torch.cuda.is_available():
        pytest.skip(NO_CUDA_REASON)
    return torch.device("cuda")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_accelerate_state_from_earlier_tests(monkeypatch):
    """Each test starts without the process-wide state earlier tests' trainers leave: transformers'
    TrainingArguments(bf16=True) (TRL's DPOConfig default) sets ACCELERATE_MIXED_PRECISION for the whole process, and
    accelerate keeps one AcceleratorState; both would turn a later fp32 trainer into a bf16 one."""
    for key in [k for k in list(__import__("os").environ) if k.startswith("ACCELERATE_")]:
        monkeypatch.delenv(key)
    state = sys.modules.get("accelerate.state")
    if state is not None:
        state.AcceleratorState._reset_state(reset_partial_state=True)
    yield
