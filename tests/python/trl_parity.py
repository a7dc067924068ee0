"""Shared by the TRL parity tests (test_reference_free, test_unpaired, test_reward): imports the pinned TRL once,
builds the minimal stand-ins for a trainer's ``self`` that TRL's own loss methods read, and records the largest
absolute difference seen per loss, dtype and quantity.

The parity tests never re-derive TRL's math: they call TRL's trainer methods (``CPOTrainer.cpo_loss``,
``ORPOTrainer.get_batch_loss_metrics``, ``KTOTrainer.kto_loss``, ``RewardTrainer.compute_loss``, ...) with a
``types.SimpleNamespace`` in place of the trainer. Each module prints its table of differences when it
finishes (``pytest -s``); set PREFOPT_TRL_PARITY_LOG to a file path to also append it there as JSON lines.
"""

from __future__ import annotations

import json
import os
import types
from collections import defaultdict
from typing import Dict, Tuple

import pytest
import torch

TRL_VERSION = "0.28.0"  # the version the parity tests were written against; pinned


def import_trl():
    """The trl module at the pinned version; skips (with the reason) when TRL is not installed."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    trl = pytest.importorskip(
        "trl", reason=f"trl=={TRL_VERSION} is not importable (pip install trl=={TRL_VERSION})", exc_type=ImportError
    )
    if trl.__version__ != TRL_VERSION:
        pytest.fail(f"the TRL parity tests are pinned to trl=={TRL_VERSION}, found {trl.__version__}")
    return trl


def accelerator() -> types.SimpleNamespace:
    """A single-process accelerator: gathers are the identity, the device is the CPU."""
    return types.SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x, gather=lambda x: x)


class ParityLog:
    """Max abs difference per (loss, dtype, quantity); compares and records in one call."""

    def __init__(self, module: str):
        self.module = module
        self.diffs: Dict[Tuple[str, str, str], float] = defaultdict(float)

    def close(self, loss: str, dtype: torch.dtype, quantity: str, got, want, *, atol: float, rtol: float = 0.0) -> None:
        """Asserts got ~ want (tensors or floats, compared in float64) and records the max abs difference under
        the inputs' dtype."""
        got_t = torch.as_tensor(got).detach().double().reshape(-1)
        want_t = torch.as_tensor(want).detach().double().reshape(-1)
        assert got_t.shape == want_t.shape, f"{loss} {quantity}: shape {tuple(got_t.shape)} vs {tuple(want_t.shape)}"
        diff = (got_t - want_t).abs().max().item() if got_t.numel() else 0.0
        key = (loss, str(dtype).replace("torch.", ""), quantity)
        self.diffs[key] = max(self.diffs[key], diff)
        torch.testing.assert_close(got_t, want_t, atol=atol, rtol=rtol, msg=lambda m: f"{loss} {quantity}: {m}")

    def dump(self) -> None:
        """Prints the table (visible with ``pytest -s``) and appends it to $PREFOPT_TRL_PARITY_LOG when set."""
        if not self.diffs:
            return
        quantities = ["losses", "rewards", "loss", "metrics"]
        quantities += sorted({q for (_, _, q) in self.diffs} - set(quantities))
        dtypes = ["float32", "float64"]
        lines = ["", f"prefopt vs TRL {TRL_VERSION} ({self.module}): max abs difference (float32 | float64)",
                 f"{'loss':<34}" + "".join(f"{q:>22}" for q in quantities)]
        for loss in sorted({loss for (loss, _, _) in self.diffs}):
            cells = []
            for q in quantities:
                values = [self.diffs.get((loss, d, q)) for d in dtypes]
                cells.append(" | ".join("-".rjust(8) if v is None else f"{v:8.1e}" for v in values))
            lines.append(f"{loss:<34}" + "".join(f"{c:>22}" for c in cells))
        print("\n".join(lines))
        path = os.environ.get("PREFOPT_TRL_PARITY_LOG")
        if path:
            with open(path, "a") as f:
                for (loss, dtype, quantity), diff in sorted(self.diffs.items()):
                    row = dict(module=self.module, trl=TRL_VERSION, loss=loss, dtype=dtype, quantity=quantity,
                               max_abs_diff=diff)
                    f.write(json.dumps(row, sort_keys=True) + "\n")
