"""prefopt's LoRA against PEFT and transformers.

Tiny random Llama / Qwen2 / Qwen3 models are built and saved with transformers (as in test_llama_parity.py). Then:
- an adapter made and saved by PEFT (random A and B: init_lora_weights=False, so the update is not zero; with
  modules_to_save) is loaded by prefopt (the C++ helper tests/model/lora_dump.cpp, built as
  <build>/tests/prefopt_lora_dump): its logits equal PeftModel's, and with the adapters off they equal the base
  model's;
- an adapter made and saved by prefopt loads in peft.PeftModel.from_pretrained with equal logits, and prefopt's
  merged checkpoint loads in transformers with equal logits (and equals PEFT's merge_and_unload).
Float32 logits must agree within 1e-4. Skipped, with the reason, when transformers or peft is not installed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install transformers)")
peft = pytest.importorskip("peft", reason="peft is not installed (pip install peft)")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")

from test_llama_parity import INPUT_IDS, TOLERANCE, _model, built_helper  # noqa: E402

HELPER = "prefopt_lora_dump"


def _helper_path() -> Path:
    return built_helper(HELPER, "PREFOPT_LORA_DUMP")


def _run(base: Path, tmp: Path, *args: str, mask: torch.Tensor | None = None):
    inputs = {"input_ids": INPUT_IDS.to(torch.int64)}
    if mask is not None:
        inputs["attention_mask"] = mask.to(torch.int64)
    safetensors_torch.save_file(inputs, str(tmp / "inputs.safetensors"))
    out = tmp / "out.safetensors"
    result = subprocess.run([str(_helper_path()), str(base), str(tmp / "inputs.safetensors"), str(out), *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{HELPER} failed ({result.returncode}):\n{result.stderr}"
    return safetensors_torch.load_file(str(out))


def _logits(model, mask=None):
    with torch.no_grad():
        return model(input_ids=INPUT_IDS, attention_mask=mask).logits.float()


def _diff(a, b) -> float:
    return (a - b).abs().max().item()


CASES = {
    "llama q,v": ("llama", dict(target_modules=["q_proj", "v_proj"])),
    "qwen2 all-linear + lm_head": ("qwen2", dict(target_modules="all-linear", modules_to_save=["lm_head"],
                                                lora_alpha=16)),
    "qwen3 mlp, rslora, embed_tokens": ("qwen3", dict(target_modules=["gate_proj", "up_proj", "down_proj", "o_proj"],
                                                     modules_to_save=["embed_tokens"], use_rslora=True)),
}
ARCH_OVERRIDES = {"llama": {}, "qwen2": {}, "qwen3": {"head_dim": 16}}


def _base(architecture: str, seed: int, tmp: Path):
    model = _model(architecture, seed=seed, **ARCH_OVERRIDES[architecture])
    model.save_pretrained(tmp / "base")
    return model


@pytest.mark.parametrize("name", list(CASES))
def test_peft_adapter_loads_in_prefopt(name, tmp_path):
    architecture, options = CASES[name]
    base = _base(architecture, 30, tmp_path)
    expected_base = _logits(base)
    torch.manual_seed(31)
    config = peft.LoraConfig(r=4, init_lora_weights=False, task_type="CAUSAL_LM", **options)
    peft_model = peft.get_peft_model(base, config).eval()
    if "modules_to_save" in options:
        # Move the trained copy away from the original, so a mix-up shows.
        with torch.no_grad():
            for pname, param in peft_model.named_parameters():
                if "modules_to_save" in pname:
                    param.add_(0.05)
    peft_model.save_pretrained(tmp_path / "adapter")
    expected = _logits(peft_model)
    mask = torch.ones_like(INPUT_IDS)
    mask[0, 8:] = 0
    expected_masked = _logits(peft_model, mask)

    got = _run(tmp_path / "base", tmp_path, "load", str(tmp_path / "adapter"))
    print(f"\n[lora peft] {name}: PEFT's adapter in prefopt: max |logits diff| = {_diff(got['logits'], expected):.3e}, "
          f"adapters off vs base: {_diff(got['base_logits'], expected_base):.3e}")
    assert _diff(got["logits"], expected) <= TOLERANCE
    assert _diff(got["base_logits"], expected_base) <= TOLERANCE
    assert _diff(expected, expected_base) > 100 * TOLERANCE, "the adapter should change the logits"
    got_masked = _run(tmp_path / "base", tmp_path, "load", str(tmp_path / "adapter"), mask=mask)
    valid = mask.bool()
    assert _diff(got_masked["logits"][valid], expected_masked[valid]) <= TOLERANCE


@pytest.mark.parametrize("name", list(CASES))
def test_prefopt_adapter_and_merge_load_in_peft_and_transformers(name, tmp_path):
    architecture, options = CASES[name]
    _base(architecture, 32, tmp_path)
    config = peft.LoraConfig(r=4, init_lora_weights=False, task_type="CAUSAL_LM", **options)
    config.save_pretrained(tmp_path / "adapter")
    got = _run(tmp_path / "base", tmp_path, "create", str(tmp_path / "adapter"), str(tmp_path / "merged"), "7")
    saved = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and saved["r"] == 4

    base = CLASSES_FOR[architecture].from_pretrained(tmp_path / "base", dtype=torch.float32).eval()
    peft_model = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    expected = _logits(peft_model)
    merged = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32).eval()
    via_peft_merge = _logits(peft_model.merge_and_unload())
    print(f"\n[lora peft] {name}: prefopt's adapter in PEFT: {_diff(got['logits'], expected):.3e}; prefopt's merged "
          f"model in transformers: {_diff(_logits(merged), expected):.3e}; PEFT's own merge: "
          f"{_diff(via_peft_merge, _logits(merged)):.3e}")
    assert _diff(got["logits"], expected) <= TOLERANCE
    assert _diff(_logits(merged), expected) <= TOLERANCE
    assert _diff(via_peft_merge, _logits(merged)) <= TOLERANCE
    assert _diff(expected, got["base_logits"]) > 100 * TOLERANCE, "the adapter should change the logits"


CLASSES_FOR = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
               "qwen3": transformers.Qwen3ForCausalLM}


def test_unsupported_peft_adapter_is_refused(tmp_path):
    _base("llama", 33, tmp_path)
    config = peft.LoraConfig(r=4, target_modules=["q_proj"], use_dora=True, task_type="CAUSAL_LM")
    config.save_pretrained(tmp_path / "adapter")
    inputs = tmp_path / "inputs.safetensors"
    safetensors_torch.save_file({"input_ids": INPUT_IDS}, str(inputs))
    result = subprocess.run([str(_helper_path()), str(tmp_path / "base"), str(inputs), str(tmp_path / "o.safetensors"),
                             "load", str(tmp_path / "adapter")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "use_dora is true; only false is supported" in result.stderr
