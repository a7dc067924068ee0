"""scripts/plot_metrics.py turns a metrics.jsonl into a PNG."""
import json
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "plot_metrics.py"


def test_plot_writes_png(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    rows = []
    for step in range(1, 9):
        rows.append({"step": step, "epoch": step / 8, "loss": 0.7 - 0.05 * step, "learning_rate": 1e-4,
                     "grad_norm": 1.0 / step, "rewards/accuracies": min(1.0, 0.1 * step), "rewards/margins": None})
        if step % 4 == 0:
            rows.append({"step": step, "epoch": step / 8, "eval_loss": 0.72 - 0.04 * step,
                         "eval_rewards/accuracies": 0.5})
    metrics.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    output = tmp_path / "plot.png"
    subprocess.run([sys.executable, str(SCRIPT), str(metrics), "-o", str(output)], check=True)
    data = output.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000


def test_plot_rejects_invalid_lines(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "loss": 0.5}\n{not json\n')
    result = subprocess.run([sys.executable, str(SCRIPT), str(metrics)], capture_output=True, text=True)
    assert result.returncode != 0
    assert "metrics.jsonl:2" in result.stderr
