"""Reward models against transformers' LlamaForSequenceClassification / Qwen2ForSequenceClassification.

1. A random classifier saved by transformers loads in prefopt (tests/model/llama_logits_dump.cpp, which uses
   prefopt::load_llama_sequence_classifier) and gives the same scores on a right-padded batch: same parameters, same
   rule for the position a score is read at (the last non-pad token).
2. A reward model trained by prefopt-train (examples/configs/reward.json, two steps) is written as a folder that
   transformers' AutoModelForSequenceClassification loads, and both give the same scores on the same token ids.
Skipped, with the reason, when transformers is not installed. It never reaches the network.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install transformers)")

from test_llama_parity import REPO, _helper_path, _run_helper  # noqa: E402

TOLERANCE = 1e-4


def _classifier(architecture: str, seed: int):
    torch.manual_seed(seed)
    common = dict(vocab_size=101, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, num_labels=1,
                  pad_token_id=0)
    if architecture == "llama":
        model = transformers.LlamaForSequenceClassification(transformers.LlamaConfig(**common))
    else:
        model = transformers.Qwen2ForSequenceClassification(transformers.Qwen2Config(**common))
    model = model.to(torch.float32).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(0.0, 0.25)
    return model


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_transformers_classifier_loads_with_equal_scores(architecture, tmp_path):
    model = _classifier(architecture, seed=3)
    model.save_pretrained(tmp_path / "rm", safe_serialization=True)
    torch.manual_seed(4)
    ids = torch.randint(1, 101, (3, 9))
    mask = torch.ones_like(ids)
    ids[1, 6:] = 0  # right padding with the pad token
    mask[1, 6:] = 0
    ids[2, 4:] = 0
    mask[2, 4:] = 0
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
    got = _run_helper(tmp_path / "rm", ids, mask, tmp_path)["scores"]
    assert got.shape == expected.shape == (3, 1)
    diff = (got - expected).abs().max().item()
    assert diff < TOLERANCE, f"max |score diff| {diff:.3e}"


def test_trained_reward_model_loads_in_transformers_with_equal_scores(tmp_path):
    train = _helper_path().parent.parent / "examples" / "prefopt-train"
    assert train.is_file(), f"{train} is not built"
    out = tmp_path / "run"
    result = subprocess.run([str(train), str(REPO / "examples/configs/reward.json"), "--output_dir", str(out),
                             "--max_steps", "2", "--overwrite"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    final = out / "final"
    config = json.loads((final / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(final).to(torch.float32).eval()
    assert model.config.num_labels == 1
    # Byte-level token ids (ByteTokenizer: bytes 0-255, pad 256, BOS 257, EOS 258), right-padded with 256.
    texts = [b"The capital of France is Paris.", b"Two plus two is five.", b"Hi"]
    width = max(len(t) for t in texts) + 2
    ids = torch.full((len(texts), width), 256, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    for i, t in enumerate(texts):
        row = [257] + list(t) + [258]
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
    got = _run_helper(final, ids, mask, tmp_path)["scores"]
    diff = (got - expected).abs().max().item()
    assert diff < TOLERANCE, f"max |score diff| {diff:.3e}"
    # The scores differ between texts: the head is not a constant.
    assert expected.std().item() > 0
