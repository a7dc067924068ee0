"""SPO's pieces for prefopt's TRL trainer: the graded variants of each chosen response (prefopt.graded_removal on
its text, tokenized by TRL as chosen completions), their collation, and the degree head (a linear layer over the
policy's pooled final hidden states) with its parameters' data-parallel averaging and its file in checkpoints.
It never computes a loss: the degree term comes from prefopt.spo_loss in the trainer."""

from __future__ import annotations

import copy
import os
from typing import Any, Dict, List

import torch
from torch import nn
from trl.data_utils import is_conversational, maybe_apply_chat_template, maybe_extract_prompt

import prefopt

HEAD_FILE = "prefopt_degree_head.pt"


def _variant_texts(chosen, num_degrees: int, where: str):
    """The degree variants of a chosen completion: text, or a conversation whose last message's content is cut."""
    if isinstance(chosen, str):
        return [text for text, _ in prefopt.graded_removal(chosen, num_degrees=num_degrees)]
    if isinstance(chosen, list) and chosen and isinstance(chosen[-1], dict) and isinstance(
            chosen[-1].get("content"), str):
        out = []
        for text, _ in prefopt.graded_removal(chosen[-1]["content"], num_degrees=num_degrees):
            messages = copy.deepcopy(chosen)
            messages[-1]["content"] = text
            out.append(messages)
        return out
    raise ValueError(f"{where}: spo cuts the chosen completion's text; got {type(chosen).__name__} without a text "
                     "content in its last message")


def add_variant_ids(row: Dict[str, Any], index: int, *, processing_class, tokenize_row, num_degrees: int,
                    max_prompt_length, max_completion_length, tools=None) -> Dict[str, Any]:
    """``spo_variants_input_ids``: the K graded variants of the row's chosen completion (degree 0 untouched), each
    tokenized by TRL's chat template and ``tokenize_row`` as a chosen completion."""
    row = maybe_extract_prompt(dict(row))
    ids = []
    for variant in _variant_texts(row["chosen"], num_degrees, f"row {index}"):
        pair = {"prompt": row["prompt"], "chosen": variant, "rejected": variant}
        text = maybe_apply_chat_template(pair, processing_class, tools=tools)
        tokens = tokenize_row(text, processing_class, max_prompt_length=max_prompt_length,
                              max_completion_length=max_completion_length, add_special_tokens=False,
                              is_chat=is_conversational(pair))
        ids.append(tokens["chosen_input_ids"])
    return {"spo_variants_input_ids": ids}


class VariantCollator:
    """TRL's preference collator, plus the variants padded on the right: ``spo_variants_input_ids`` and
    ``spo_variants_attention_mask`` ``[B * K, T]`` (pair-major, degree 0 first)."""

    def __init__(self, base, pad_token_id: int):
        self.base, self.pad_token_id = base, int(pad_token_id)

    def __call__(self, examples: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        out = self.base([{k: v for k, v in e.items() if k != "spo_variants_input_ids"} for e in examples])
        variants = [v for e in examples for v in e["spo_variants_input_ids"]]
        width = max(len(v) for v in variants)
        ids = torch.full((len(variants), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(variants), width), dtype=torch.long)
        for i, v in enumerate(variants):
            ids[i, :len(v)] = torch.tensor(v, dtype=torch.long)
            mask[i, :len(v)] = 1
        out["spo_variants_input_ids"], out["spo_variants_attention_mask"] = ids, mask
        return out


def average_gradients(head: nn.Module, accelerator) -> None:
    """Averages the head's gradients over the processes (DDP does not hold the head)."""
    if accelerator.num_processes <= 1:
        return
    for p in head.parameters():
        if p.grad is not None:
            p.grad.copy_(accelerator.reduce(p.grad, reduction="mean"))


def save_head(head: nn.Module, output_dir: str) -> None:
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, HEAD_FILE)
    tmp = path + ".tmp"
    torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, tmp)
    os.replace(tmp, path)


def load_head(head: nn.Module, checkpoint_dir: str) -> None:
    path = os.path.join(checkpoint_dir, HEAD_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{checkpoint_dir}: no {HEAD_FILE} (the SPO degree head) to resume from")
    state = torch.load(path, map_location="cpu", weights_only=True)
    head.load_state_dict(state)
