"""Shared by the prefopt.trl tests: a tiny random Llama, a word-level tokenizer and a preference dataset built here
(no hub), and a helper that builds stock TRL's and prefopt's DPOTrainer on identical copies of them."""

from __future__ import annotations

import copy
import os
import random

import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import datasets  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402

WORDS = [f"w{i}" for i in range(40)]
SPECIAL = ["<pad>", "<unk>", "<eos>"]


def tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer: ids 0-2 are <pad>, <unk>, <eos>, then w0..w39."""
    vocab = {token: i for i, token in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                                eos_token="<eos>")


def model(seed: int = 0, vocab_size: int = 64) -> transformers.LlamaForCausalLM:
    """A 2-layer Llama with hidden size 32 and weights larger than the default initialisation (so the scores move)."""
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      pad_token_id=0, eos_token_id=2, bos_token_id=None)
    m = transformers.LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" not in name:
                p.normal_(0.0, 0.15)
    return m.float().train()


def dataset(n: int = 6, seed: int = 0) -> datasets.Dataset:
    """Prompts of 2-6 words, completions of 1-7 words, chosen and rejected of different lengths."""
    rng = random.Random(seed)
    rows = {"prompt": [], "chosen": [], "rejected": []}
    for _ in range(n):
        rows["prompt"].append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6))))
        rows["chosen"].append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 7))))
        rows["rejected"].append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 7))))
    return datasets.Dataset.from_dict(rows)


def config(cls, tmp_path, **overrides):
    """A DPOConfig (or PrefoptDPOConfig) for CPU tests: no logging, no saving, fp32, deterministic."""
    options = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=3, report_to=[], logging_steps=1,
                   save_strategy="no", use_cpu=True, seed=0, data_seed=0, dataloader_num_workers=0,
                   remove_unused_columns=False, bf16=False, fp16=False, max_length=None, learning_rate=1e-3)
    options.update(overrides)
    return cls(**options)


def trainer(cls, args, policy, ref, train=None, peft_config=None):
    return cls(model=policy, ref_model=ref, args=args, train_dataset=train if train is not None else dataset(),
               processing_class=tokenizer(), peft_config=peft_config)


def copies(seed: int = 0):
    """(policy, reference) for stock TRL and for prefopt: four models, two identical pairs."""
    base = model(seed)
    ref = model(seed + 100)
    return (copy.deepcopy(base), copy.deepcopy(ref)), (copy.deepcopy(base), copy.deepcopy(ref))


def first_batch(t):
    """The first training batch of trainer t, as TRL collates it."""
    return next(iter(t.get_train_dataloader()))


def ranked_dataset(n: int = 6, seed: int = 0, ranks: bool = False, steps: bool = False) -> datasets.Dataset:
    """Ranked rows: a prompt, 2-4 responses of 1-6 words, and a score per response (or a rank, 0 best), ties
    included. With ``steps``, responses of 1-3 lines (TPO's steps)."""
    rng = random.Random(seed)
    rows = {"prompt": [], "responses": [], "ranks" if ranks else "scores": []}
    for _ in range(n):
        k = rng.randint(2, 4)
        rows["prompt"].append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))))
        if steps:
            rows["responses"].append(["\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))
                                                for _ in range(rng.randint(1, 3))) for _ in range(k)])
        else:
            rows["responses"].append([" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))
                                      for _ in range(k)])
        labels = [float(rng.randint(0, 3)) for _ in range(k)]
        rows["ranks" if ranks else "scores"].append([float(r) for r in range(k)] if ranks else labels)
        if ranks:
            rng.shuffle(rows["ranks"][-1])
    return datasets.Dataset.from_dict(rows)


def joint_dataset(n: int = 6, seed: int = 0, same_prompt: bool = False) -> datasets.Dataset:
    """DOVE rows: chosen and rejected responses to different prompts (the same prompt with ``same_prompt``)."""
    pairs = dataset(n, seed)
    other = dataset(n, seed + 1)
    return datasets.Dataset.from_dict({
        "chosen_prompt": pairs["prompt"], "chosen": pairs["chosen"],
        "rejected_prompt": pairs["prompt"] if same_prompt else other["prompt"], "rejected": pairs["rejected"]})
