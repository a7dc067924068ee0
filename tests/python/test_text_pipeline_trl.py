"""Text in, end to end, against TRL's DPOTrainer: a checkpoint folder as a user has it (a tiny random transformers
Llama saved with save_pretrained, a tokenizer.json trained by the test, a chat template) and a conversational TRL
preference dataset, with no pre-tokenizing.

1. The ids prefopt-train trains on (``--dump_dataset``) equal the ids TRL's DPOTrainer builds for the same records
   (maybe_extract_prompt, maybe_apply_chat_template, tokenize_row), for explicit and implicit prompts and for plain
   text.
2. prefopt-train's step-0 DPO loss equals TRL's on the same weights and data.
3. The saved final/ folder is a complete Hugging Face folder: AutoTokenizer and AutoModelForCausalLM load it.
4. The errors a new user meets are clear: pre-tokenized ids beyond the model's vocabulary, a tokenizer too big for
   the model, tokenizer.type "byte" for a checkpoint that has its own tokenizer.
5. A LoRA run (model.lora) writes a PEFT adapter to final/ and a merged checkpoint to merged/ that agree.
Never reaches the network.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="transformers is not installed")
trl = pytest.importorskip("trl", reason="trl is not installed")
datasets = pytest.importorskip("datasets", reason="datasets is not installed")

from hf_tokenizer_families import llama3  # noqa: E402
from test_llama_parity import _helper_path  # noqa: E402

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

EXPLICIT = [
    {"prompt": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "What is 2+2?"}],
     "chosen": [{"role": "assistant", "content": "4"}],
     "rejected": [{"role": "assistant", "content": "Five, I think."}]},
    {"prompt": [{"role": "user", "content": "Столица Франции?"}],
     "chosen": [{"role": "assistant", "content": "Париж."}],
     "rejected": [{"role": "assistant", "content": "Лион 🤖"}]},
    {"prompt": [{"role": "user", "content": "Name a color."}],
     "chosen": [{"role": "assistant", "content": "Blue"}],
     "rejected": [{"role": "assistant", "content": ""}]},
    {"prompt": [{"role": "user", "content": "日本の首都は？"}, {"role": "assistant", "content": "東京です。"},
                {"role": "user", "content": "Population, roughly?"}],
     "chosen": [{"role": "assistant", "content": "About 14 million in the city proper."}],
     "rejected": [{"role": "assistant", "content": "12"}]},
]
IMPLICIT = [
    {"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]} for r in EXPLICIT
]
PLAIN = [
    {"prompt": "The capital of France is", "chosen": " Paris.", "rejected": " Berlin, obviously."},
    {"prompt": "2 + 2 =", "chosen": " 4", "rejected": " 22"},
    {"prompt": "Translate 'cat' to German:", "chosen": " Katze", "rejected": " Hund"},
    {"prompt": "Écris un mot:", "chosen": " bonjour", "rejected": " 🤖🤖"},
]


def _train_binary() -> Path:
    path = _helper_path().parent.parent / "examples" / "prefopt-train"
    assert path.is_file(), f"{path} is not built"
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=llama3(), bos_token="<|begin_of_text|>",
                                                eos_token="<|im_end|>", pad_token="<|end_of_text|>")
    fast.chat_template = CHATML
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                      tie_word_embeddings=False, bos_token_id=fast.bos_token_id,
                                      eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    model = transformers.LlamaForCausalLM(config).to(torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.save_pretrained(folder)
    return folder


def _write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _config(tmp: Path, checkpoint: Path, data: Path, **training) -> Path:
    config = {
        "model": {"path": str(checkpoint)},
        "data": {"train": str(data), "format": "pairwise", "max_length": 200, "max_prompt_length": 100},
        "loss": {"name": "dpo", "options": {"beta": 0.1}, "ref_model": "copy"},
        "optimizer": {"learning_rate": 1e-3, "weight_decay": 0.0},
        "schedule": {"type": "constant"},
        "training": {"batch_size": 4, "max_steps": 1, "logging_steps": 1, "output_dir": str(tmp / "run"),
                     "seed": 1, "progress": "silent", **training},
    }
    path = tmp / "run.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def _trl_trainer(checkpoint: Path, records, tmp: Path):
    from trl import DPOConfig, DPOTrainer

    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    model = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, torch_dtype=torch.float32)
    args = DPOConfig(output_dir=str(tmp / "trl"), beta=0.1, max_length=200, max_prompt_length=100,
                         per_device_train_batch_size=4, report_to=[], dataset_num_proc=None, use_cpu=True,
                         learning_rate=1e-3, logging_steps=1, max_steps=1)
    return DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(records),
                          processing_class=tokenizer)


def _dump(tmp: Path, config: Path):
    out = tmp / "encoded.jsonl"
    result = subprocess.run([str(_train_binary()), str(config), "--dump_dataset", str(out)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("records", [EXPLICIT, IMPLICIT, PLAIN], ids=["explicit", "implicit", "plain"])
def test_the_ids_prefopt_trains_on_equal_trl_dpo_trainer_ids(tmp_path, checkpoint, records):
    data = _write_jsonl(tmp_path / "train.jsonl", records)
    ours = _dump(tmp_path, _config(tmp_path, checkpoint, data))
    trainer = _trl_trainer(checkpoint, records, tmp_path)
    theirs = trainer.train_dataset
    assert len(ours) == len(theirs) == len(records)
    for mine, row in zip(ours, theirs):
        assert mine["prompt_ids"] == row["prompt_input_ids"]
        assert mine["chosen_ids"] == row["chosen_input_ids"]
        assert mine["rejected_ids"] == row["rejected_input_ids"]


def test_step_zero_dpo_loss_equals_trl_and_final_folder_is_complete(tmp_path, checkpoint):
    data = _write_jsonl(tmp_path / "train.jsonl", EXPLICIT)
    config = _config(tmp_path, checkpoint, data)
    result = subprocess.run([str(_train_binary()), str(config)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    logs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    ours = next(entry for entry in logs if "loss" in entry)["loss"]

    trainer = _trl_trainer(checkpoint, EXPLICIT, tmp_path)
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.eval()
    with torch.no_grad():
        theirs, _ = trainer.get_batch_loss_metrics(trainer.model, batch)
    assert abs(ours - theirs.item()) < 1e-4, (ours, theirs.item())

    final = tmp_path / "run" / "final"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "generation_config.json"):
        assert (final / name).is_file(), name
    tokenizer = transformers.AutoTokenizer.from_pretrained(final)
    original = transformers.AutoTokenizer.from_pretrained(checkpoint)
    assert tokenizer.eos_token == original.eos_token and tokenizer.pad_token == original.pad_token
    conversation = EXPLICIT[0]["prompt"]
    assert tokenizer.apply_chat_template(conversation, tokenize=False) == original.apply_chat_template(
        conversation, tokenize=False)
    model = transformers.AutoModelForCausalLM.from_pretrained(final)
    assert model.config.vocab_size == len(original)
    generation = json.loads((final / "generation_config.json").read_text())
    assert generation["eos_token_id"] == original.eos_token_id


def test_pretokenized_ids_are_checked_against_the_model_vocabulary(tmp_path, checkpoint):
    vocab = json.loads((checkpoint / "config.json").read_text())["vocab_size"]
    # Ids above the byte tokenizer's 259 but inside the model's vocabulary are accepted...
    good = _write_jsonl(tmp_path / "good.jsonl", [{"prompt_ids": [300, 301], "chosen_ids": [vocab - 1],
                                                    "rejected_ids": [400]}])
    assert _dump(tmp_path, _config(tmp_path, checkpoint, good))[0]["chosen_ids"] == [vocab - 1]
    # ...and one past it is an error naming the field and the model's vocabulary.
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"prompt_ids": [300], "chosen_ids": [vocab], "rejected_ids": [1]}])
    result = subprocess.run([str(_train_binary()), str(_config(tmp_path, checkpoint, bad)), "--dump_dataset",
                             str(tmp_path / "x.jsonl")], capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "chosen_ids" in result.stderr and f"model's vocabulary [0, {vocab})" in result.stderr


def test_a_tokenizer_bigger_than_the_model_is_an_error(tmp_path, checkpoint):
    small = tmp_path / "small"
    small.mkdir()
    for f in checkpoint.iterdir():
        (small / f.name).write_bytes(f.read_bytes())
    config = json.loads((small / "config.json").read_text())
    config["vocab_size"] = 100
    (small / "config.json").write_text(json.dumps(config))
    data = _write_jsonl(tmp_path / "train.jsonl", PLAIN)
    result = subprocess.run([str(_train_binary()), str(_config(tmp_path, small, data)), "--dump_dataset",
                             str(tmp_path / "x.jsonl")], capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "vocab_size is 100" in result.stderr


def test_byte_tokenizer_for_a_checkpoint_with_its_own_tokenizer_is_an_error(tmp_path, checkpoint):
    data = _write_jsonl(tmp_path / "train.jsonl", PLAIN)
    path = _config(tmp_path, checkpoint, data)
    config = json.loads(path.read_text())
    config["tokenizer"] = {"type": "byte"}
    path.write_text(json.dumps(config))
    result = subprocess.run([str(_train_binary()), str(path), "--dump_dataset", str(tmp_path / "x.jsonl")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "has its own tokenizer.json" in result.stderr


def test_lora_run_writes_a_peft_adapter_and_a_merged_model_that_agree(tmp_path, checkpoint):
    """prefopt-train with model.lora on a Hugging Face folder: final/ is a PEFT adapter (with the tokenizer) that
    peft.PeftModel.from_pretrained loads on the base checkpoint, merged/ a plain checkpoint transformers loads, the
    two give the same logits, and training moved them away from the base model."""
    peft = pytest.importorskip("peft", reason="peft is not installed (pip install peft)")
    data = _write_jsonl(tmp_path / "train.jsonl", EXPLICIT)
    config = json.loads(_config(tmp_path, checkpoint, data, max_steps=3, gradient_checkpointing=True,
                                fused_linear_logps=True).read_text())
    config["model"]["lora"] = {"r": 4, "alpha": 8, "target_modules": "all-linear", "merge": True}
    (tmp_path / "run.json").write_text(json.dumps(config), encoding="utf-8")
    result = subprocess.run([str(_train_binary()), str(tmp_path / "run.json")], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    final, merged = tmp_path / "run" / "final", tmp_path / "run" / "merged"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (final / name).is_file(), name
    assert not (final / "model.safetensors").exists()
    base = transformers.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    ids = transformers.AutoTokenizer.from_pretrained(final)("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        base_logits = base(**ids).logits
        adapted = peft.PeftModel.from_pretrained(base, final).eval()
        lora_logits = adapted(**ids).logits
        merged_logits = transformers.AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32).eval()(
            **ids).logits
    assert (lora_logits - merged_logits).abs().max().item() < 1e-4
    assert (lora_logits - base_logits).abs().max().item() > 1e-3, "three LoRA steps at lr 1e-3 should move the model"
