"""Parity of prefopt's Llama-family model with Hugging Face transformers.

Builds tiny random LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM and MistralForCausalLM models with
transformers (float32; hidden 64, 2 layers, 4 heads, 2 key/value heads, vocabulary 101), saves them with
save_pretrained (single-file and sharded with an index, tied and untied embeddings, Llama 3, linear and dynamic rope
scaling, sliding windows shorter than the input, biases, a BF16 checkpoint), runs the C++ helper
tests/model/llama_logits_dump.cpp (built as <build>/tests/prefopt_llama_logits_dump) on the saved folder, and
compares its logits and final hidden states with transformers' on the same input ids, one case with right padding
and an attention mask. The float32 logits must agree within 1e-4 (max abs difference, printed per case with -s or in
the failure message). Skipped, with the reason, when transformers is not installed. It never reaches the network.
"""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install transformers)")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config, "qwen3": transformers.Qwen3Config,
           "mistral": transformers.MistralConfig}
CLASSES = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
           "qwen3": transformers.Qwen3ForCausalLM, "mistral": transformers.MistralForCausalLM}
HELPER = "prefopt_llama_logits_dump"
TOLERANCE = 1e-4


def built_helper(name: str, env_var: str) -> Path:
    """A C++ test helper: $env_var, else next to $PREFOPT_LIBRARY's build, else build/ and build-*/."""
    env = os.environ.get(env_var)
    if env:
        return Path(env)
    candidates = []
    library = os.environ.get("PREFOPT_LIBRARY")
    if library:
        candidates.append(Path(library).resolve().parent / "tests" / name)
    candidates.append(REPO / "build" / "tests" / name)
    candidates += sorted(REPO.glob(f"build-*/tests/{name}"))
    for path in candidates:
        if path.is_file():
            return path
    looked = "\n  ".join(str(p) for p in candidates)
    pytest.fail(
        f"{name} is not built. Looked at:\n  {looked}\nBuild it with `bash scripts/build.sh` (or "
        f"`cmake --build build --target {name}`), or set {env_var} to its path."
    )


def _helper_path() -> Path:
    return built_helper(HELPER, "PREFOPT_LLAMA_DUMP")


def _config(architecture: str, **overrides):
    common = dict(
        vocab_size=101,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
    )
    common.update(overrides)
    if "rope_parameters" in common and int(transformers.__version__.split(".")[0]) < 5:
        # transformers 4 (the pinned version) spells it rope_scaling + rope_theta, as most checkpoints on the Hub.
        rope = dict(common.pop("rope_parameters"))
        common["rope_theta"] = rope.pop("rope_theta", 10000.0)
        common["rope_scaling"] = rope
    return CONFIGS[architecture](**common)


def _model(architecture: str, seed: int, **overrides):
    torch.manual_seed(seed)
    config = _config(architecture, **overrides)
    model = CLASSES[architecture](config).to(torch.float32).eval()
    # Weights larger than the 0.02 initialisation, so that attention, rotary angles and the MLP all move the logits.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
            else:
                param.normal_(0.0, 0.25)
    return model


def _run_helper(model_dir: Path, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, tmp: Path,
                dtype: str = "float32", resave: Path | None = None):
    inputs = {"input_ids": input_ids.to(torch.int64).contiguous()}
    if attention_mask is not None:
        inputs["attention_mask"] = attention_mask.to(torch.int64).contiguous()
    in_path, out_path = tmp / "inputs.safetensors", tmp / "outputs.safetensors"
    safetensors_torch.save_file(inputs, str(in_path))
    command = [str(_helper_path()), str(model_dir), str(in_path), str(out_path), dtype]
    if resave is not None:
        command.append(str(resave))
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{HELPER} failed ({result.returncode}):\n{result.stderr}"
    return safetensors_torch.load_file(str(out_path))


def _reference(model, input_ids, attention_mask):
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return out.logits.float(), hidden.float()


def _compare(name, model, model_dir, input_ids, attention_mask, tmp, reference_model=None):
    got = _run_helper(model_dir, input_ids, attention_mask, tmp)
    logits, hidden = _reference(reference_model or model, input_ids, attention_mask)
    valid = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    logit_diff = (got["logits"] - logits).abs()
    max_diff = logit_diff.max().item()
    max_diff_valid = logit_diff[valid].max().item()
    hidden_diff = (got["hidden"] - hidden).abs().max().item()
    # The hidden-state path: logits are hidden @ lm_head_weight^T.
    recomputed = (got["hidden"].double() @ got["lm_head_weight"].double().T).float()
    head_diff = (recomputed - got["logits"]).abs().max().item()
    print(f"\n[llama parity] {name}: max |logits diff| = {max_diff:.3e} (real tokens {max_diff_valid:.3e}), "
          f"max |hidden diff| = {hidden_diff:.3e}, max |logit| = {logits.abs().max().item():.2f}")
    assert got["logits"].shape == logits.shape
    assert max_diff <= TOLERANCE, f"{name}: max abs logits difference {max_diff:.3e} > {TOLERANCE}"
    assert hidden_diff <= TOLERANCE, f"{name}: max abs hidden-state difference {hidden_diff:.3e} > {TOLERANCE}"
    assert head_diff <= TOLERANCE, f"{name}: hidden @ lm_head_weight^T differs from the logits by {head_diff:.3e}"
    return max_diff


INPUT_IDS = torch.tensor([[1, 17, 42, 99, 5, 63, 28, 7, 100, 3, 56, 11],
                          [9, 0, 77, 31, 18, 45, 2, 88, 64, 12, 39, 71]])


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_single_file_untied(architecture, tmp_path):
    model = _model(architecture, seed=1, tie_word_embeddings=False)
    model.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").is_file()
    _compare(f"{architecture} single file, untied", model, tmp_path / "model", INPUT_IDS, None, tmp_path)


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_right_padding_with_attention_mask(architecture, tmp_path):
    model = _model(architecture, seed=2)
    model.save_pretrained(tmp_path / "model")
    mask = torch.ones_like(INPUT_IDS)
    mask[0, 8:] = 0  # row 0: 8 real tokens, then 4 pads; row 1: no padding
    ids = INPUT_IDS.clone()
    ids[0, 8:] = 0
    _compare(f"{architecture} right padding", model, tmp_path / "model", ids, mask, tmp_path)


@pytest.mark.parametrize("architecture", ["llama", "qwen2"])
def test_sharded_tied_with_rope_scaling(architecture, tmp_path):
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 16}
    model = _model(architecture, seed=3, tie_word_embeddings=True, rope_parameters=rope)
    model.save_pretrained(tmp_path / "model", max_shard_size="60KB")
    index = tmp_path / "model" / "model.safetensors.index.json"
    assert index.is_file(), "the checkpoint was expected to be sharded"
    assert len(list((tmp_path / "model").glob("model-*.safetensors"))) > 1
    _compare(f"{architecture} sharded, tied, llama3 rope", model, tmp_path / "model", INPUT_IDS, None, tmp_path)


def test_bf16_checkpoint_loads_as_float32(tmp_path):
    model = _model("llama", seed=4)
    model.to(torch.bfloat16).save_pretrained(tmp_path / "model")
    # transformers' own float32 load of the BF16 file. (model.to(torch.float32) would not do: .to() also rounds the
    # rotary inv_freq buffer through bf16, which from_pretrained recomputes in float32.)
    reference = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "model", dtype=torch.float32).eval()
    _compare("llama bf16 checkpoint -> float32", model, tmp_path / "model", INPUT_IDS, None, tmp_path,
             reference_model=reference)


def test_bf16_forward_is_close(tmp_path):
    model = _model("qwen2", seed=5)
    model.save_pretrained(tmp_path / "model")
    got = _run_helper(tmp_path / "model", INPUT_IDS, None, tmp_path, dtype="bfloat16")
    with torch.no_grad():
        exact = model(input_ids=INPUT_IDS).logits.double()
        expected_bf16 = copy.deepcopy(model).to(torch.bfloat16)(input_ids=INPUT_IDS).logits.float()
    ours = (got["logits"].double() - exact).abs().max().item()
    theirs = (expected_bf16.double() - exact).abs().max().item()
    print(f"\n[llama parity] qwen2 bf16 forward: max error vs float32 {ours:.3e} (transformers bf16: {theirs:.3e})")
    assert ours <= 2 * theirs + 1e-2, f"bf16 error {ours:.3e} is more than twice transformers' {theirs:.3e}"


def test_unsupported_config_is_refused(tmp_path):
    model = _model("llama", seed=6)
    model.save_pretrained(tmp_path / "model")
    config = (tmp_path / "model" / "config.json").read_text()
    (tmp_path / "model" / "config.json").write_text(config.replace('"silu"', '"gelu"'))
    inputs = tmp_path / "inputs.safetensors"
    safetensors_torch.save_file({"input_ids": INPUT_IDS}, str(inputs))
    result = subprocess.run([str(_helper_path()), str(tmp_path / "model"), str(inputs), str(tmp_path / "o.safetensors")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "hidden_act is 'gelu'; only 'silu' (SwiGLU) is supported" in result.stderr


@pytest.mark.parametrize("architecture,tied", [("llama", True), ("qwen2", False)])
def test_checkpoint_saved_by_prefopt_loads_in_transformers(architecture, tied, tmp_path):
    model = _model(architecture, seed=8, tie_word_embeddings=tied)
    model.save_pretrained(tmp_path / "model")
    _run_helper(tmp_path / "model", INPUT_IDS, None, tmp_path, resave=tmp_path / "resaved")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "resaved", dtype=torch.float32).eval()
    assert type(reloaded) is type(model)
    assert reloaded.config.tie_word_embeddings == tied
    expected, _ = _reference(model, INPUT_IDS, None)
    got, _ = _reference(reloaded, INPUT_IDS, None)
    diff = (got - expected).abs().max().item()
    print(f"\n[llama parity] {architecture} saved by prefopt, loaded by transformers: max |logits diff| = {diff:.3e}")
    assert diff <= TOLERANCE


# The architectures and options beyond Llama / Qwen2 defaults. The inputs are 12 tokens long, so a window of 5
# hides most of each row's past and max_position_embeddings 8 puts dynamic rope in its scaled regime.
VARIANTS = {
    "qwen3": ("qwen3", dict(head_dim=16)),
    "qwen3 attention_bias, sliding layer 1": ("qwen3", dict(head_dim=16, attention_bias=True, use_sliding_window=True,
                                                            sliding_window=5, max_window_layers=1)),
    "qwen2 sliding window": ("qwen2", dict(use_sliding_window=True, sliding_window=5, max_window_layers=0)),
    "mistral sliding window": ("mistral", dict(sliding_window=5)),
    "mistral no window, tied": ("mistral", dict(sliding_window=None, tie_word_embeddings=True)),
    "llama dynamic rope": ("llama", dict(max_position_embeddings=8,
                                         rope_parameters={"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0})),
    "llama linear rope": ("llama", dict(rope_parameters={"rope_type": "linear", "factor": 3.0, "rope_theta": 10000.0})),
    "llama attention and mlp biases": ("llama", dict(attention_bias=True, mlp_bias=True)),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_architecture_variants(name, tmp_path):
    architecture, overrides = VARIANTS[name]
    model = _model(architecture, seed=20, **overrides)
    model.save_pretrained(tmp_path / "model")
    mask = torch.ones_like(INPUT_IDS)
    mask[0, 9:] = 0
    ids = INPUT_IDS.clone()
    ids[0, 9:] = 0
    _compare(name, model, tmp_path / "model", INPUT_IDS, None, tmp_path)
    _compare(name + ", right padding", model, tmp_path / "model", ids, mask, tmp_path)


@pytest.mark.parametrize("name", ["qwen3 attention_bias, sliding layer 1", "mistral sliding window",
                                  "llama dynamic rope", "qwen2 sliding window"])
def test_architecture_variants_round_trip_through_prefopt(name, tmp_path):
    architecture, overrides = VARIANTS[name]
    model = _model(architecture, seed=21, **overrides)
    model.save_pretrained(tmp_path / "model")
    _run_helper(tmp_path / "model", INPUT_IDS, None, tmp_path, resave=tmp_path / "resaved")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "resaved", dtype=torch.float32).eval()
    assert type(reloaded) is type(model)
    for key in ("sliding_window", "layer_types", "attention_bias", "rope_parameters", "rope_scaling", "rope_theta"):
        if hasattr(model.config, key):
            assert getattr(reloaded.config, key) == getattr(model.config, key), key
    # transformers 4's MistralConfig keeps head_dim None (derived); prefopt writes the derived value.
    def head_dim(config):
        return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    assert head_dim(reloaded.config) == head_dim(model.config)
    expected, _ = _reference(model, INPUT_IDS, None)
    got, _ = _reference(reloaded, INPUT_IDS, None)
    diff = (got - expected).abs().max().item()
    print(f"\n[llama parity] {name} saved by prefopt, loaded by transformers: max |logits diff| = {diff:.3e}")
    assert diff <= TOLERANCE


def test_comparison_detects_a_different_model(tmp_path):
    """A control: the same weights under another rope_theta give logits far outside the tolerance, so the exact
    agreement above is the helper computing the same function, not the test comparing transformers with itself."""
    model = _model("qwen2", seed=7)
    model.save_pretrained(tmp_path / "model")
    config = tmp_path / "model" / "config.json"
    text = config.read_text()
    assert '"rope_theta": 10000.0' in text
    config.write_text(text.replace('"rope_theta": 10000.0', '"rope_theta": 20000.0'))
    got = _run_helper(tmp_path / "model", INPUT_IDS, None, tmp_path)
    logits, _ = _reference(model, INPUT_IDS, None)
    assert (got["logits"] - logits).abs().max().item() > 100 * TOLERANCE
