"""Ranked preference data for prefopt's TRL trainer: rows ``{"prompt", "responses": [...], "scores": [...]}`` (or
``"ranks"``), tokenized with TRL's own chat-template and tokenization functions (one response at a time, as TRL
tokenizes a chosen/rejected pair), and collated into ``[B, K, T]`` batches. It never runs a model and never
computes a score or a loss."""

from __future__ import annotations

import math
from typing import Any, Dict, List

import torch
from trl.data_utils import is_conversational, maybe_apply_chat_template

LABEL_KEYS = ("scores", "ranks")


def label_type_of(row: Dict[str, Any], where: str) -> str:
    """``"grades"`` for a row with ``scores``, ``"ranks"`` for one with ``ranks``; ValueError otherwise."""
    present = [k for k in LABEL_KEYS if row.get(k) is not None]
    if len(present) != 1:
        raise ValueError(f"{where}: a ranked row needs exactly one of 'scores' and 'ranks', got {present or 'neither'}")
    return "grades" if present[0] == "scores" else "ranks"


def split_steps(text: str, delimiter: str) -> List[str]:
    """TPO's steps of a response: cut after every occurrence of ``delimiter`` (kept with the step it ends), empty
    pieces dropped."""
    steps, start = [], 0
    while True:
        at = text.find(delimiter, start)
        end = len(text) if at < 0 else at + len(delimiter)
        if text[start:end]:
            steps.append(text[start:end])
        if at < 0:
            return steps
        start = end


def _step_tokens(response: str, tokenizer, delimiter: str, max_completion_length, where: str):
    """``(ids, step_ids)`` of a plain-text response cut into steps, each step encoded on its own, EOS in the last."""
    ids, step_ids = [], []
    steps = split_steps(response, delimiter)
    if not steps:
        raise ValueError(f"{where}: a response with no step (empty text)")
    for s, step in enumerate(steps):
        piece = tokenizer(step, add_special_tokens=False)["input_ids"]
        ids += piece
        step_ids += [s] * len(piece)
    ids.append(tokenizer.eos_token_id)
    step_ids.append(len(steps) - 1)
    if max_completion_length is not None:
        ids, step_ids = ids[:max_completion_length], step_ids[:max_completion_length]
    return ids, step_ids


def tokenize_ranked_row(row: Dict[str, Any], *, processing_class, tokenize_row, max_prompt_length,
                        max_completion_length, tools=None, index: int = -1,
                        step_delimiter=None) -> Dict[str, Any]:
    """One ranked row as ``prompt_input_ids``, ``responses_input_ids`` (one list per response) and
    ``response_labels``. Each response goes through TRL's ``maybe_apply_chat_template`` and
    ``DPOTrainer.tokenize_row`` as the chosen completion of a pair, so EOS, chat templates and truncation follow TRL.
    With ``step_delimiter`` (TPO; plain text only) each response is encoded step by step instead, and
    ``responses_step_ids`` gives each token's step."""
    where = f"row {index}" if index >= 0 else "ranked row"
    responses, label_type = row.get("responses"), label_type_of(row, where)
    labels = row["scores" if label_type == "grades" else "ranks"]
    if not isinstance(responses, list) or not responses:
        raise ValueError(f"{where}: 'responses' must be a non-empty list, got {type(responses).__name__}")
    if not isinstance(labels, list) or len(labels) != len(responses):
        raise ValueError(f"{where}: needs one label per response ({len(responses)}), got {labels!r}")
    for k, value in enumerate(labels):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}: label {k} must be a finite number, got {value!r}")
    prompt_ids, response_ids, step_ids = None, [], []
    for response in responses:
        pair = {"prompt": row["prompt"], "chosen": response, "rejected": response}
        is_chat = is_conversational(pair)
        if step_delimiter is not None and (is_chat or not isinstance(response, str)):
            raise ValueError(f"{where}: tpo cuts plain-text responses into steps; this row is conversational")
        text = maybe_apply_chat_template(pair, processing_class, tools=tools)
        ids = tokenize_row(text, processing_class, max_prompt_length=max_prompt_length,
                           max_completion_length=max_completion_length, add_special_tokens=False, is_chat=is_chat)
        prompt_ids = ids["prompt_input_ids"]
        if step_delimiter is None:
            response_ids.append(ids["chosen_input_ids"])
        else:
            tokens, steps = _step_tokens(response, processing_class, step_delimiter, max_completion_length, where)
            response_ids.append(tokens)
            step_ids.append(steps)
    out = {"prompt_input_ids": prompt_ids, "responses_input_ids": response_ids,
           "response_labels": [float(v) for v in labels], "label_type": label_type}
    if step_delimiter is not None:
        out["responses_step_ids"] = step_ids
    return out


class RankedCollator:
    """Pads ranked examples: prompts on the left ``[B, Tp]``, responses on the right ``[B, K, Tr]``, with
    ``response_mask`` ``[B, K]`` marking the responses of lists shorter than K, and ``response_labels`` ``[B, K]`` float32
    (0 at masked entries, which the losses never read), and for TPO ``responses_step_ids`` ``[B, K, Tr]``."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = int(pad_token_id)

    def __call__(self, examples: List[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        types = {e["label_type"] for e in examples}
        if len(types) != 1:
            raise ValueError("a batch mixes rows with 'scores' and rows with 'ranks'; use one label kind per dataset")
        b = len(examples)
        k = max(len(e["responses_input_ids"]) for e in examples)
        tp = max(len(e["prompt_input_ids"]) for e in examples)
        tr = max(max(len(r) for r in e["responses_input_ids"]) for e in examples)
        prompt = torch.full((b, tp), self.pad_token_id, dtype=torch.long)
        prompt_mask = torch.zeros((b, tp), dtype=torch.long)
        responses = torch.full((b, k, tr), self.pad_token_id, dtype=torch.long)
        responses_mask = torch.zeros((b, k, tr), dtype=torch.long)
        response_mask = torch.zeros((b, k), dtype=torch.bool)
        labels = torch.zeros((b, k), dtype=torch.float32)
        with_steps = all("responses_step_ids" in e for e in examples)
        steps = torch.full((b, k, tr), -1, dtype=torch.long)
        for i, e in enumerate(examples):
            p = e["prompt_input_ids"]
            if p:
                prompt[i, tp - len(p):] = torch.tensor(p)
                prompt_mask[i, tp - len(p):] = 1
            for j, r in enumerate(e["responses_input_ids"]):
                responses[i, j, :len(r)] = torch.tensor(r, dtype=torch.long)
                responses_mask[i, j, :len(r)] = 1
                response_mask[i, j] = True
                labels[i, j] = e["response_labels"][j]
                if with_steps:
                    steps[i, j, :len(r)] = torch.tensor(e["responses_step_ids"][j], dtype=torch.long)
        out = {"prompt_input_ids": prompt, "prompt_attention_mask": prompt_mask, "responses_input_ids": responses,
                "responses_attention_mask": responses_mask, "response_mask": response_mask, "response_labels": labels,
                "label_type": next(iter(types))}
        if with_steps:
            out["responses_step_ids"] = steps  # [B, K, Tr], -1 at padding
        return out


def tokenize_joint_row(row: Dict[str, Any], *, processing_class, tokenize_row, max_prompt_length,
                       max_completion_length, tools=None, index: int = -1) -> Dict[str, Any]:
    """A DOVE row ``{"chosen_prompt", "chosen", "rejected_prompt", "rejected"}`` as a ranked row of two responses
    with an empty shared prompt: each response is its own prompt + completion (tokenized by TRL as above), so every
    token after the first is scored (the joint log-prob ``log pi(x) + log pi(y | x)``), chosen first (label 1)."""
    where = f"row {index}" if index >= 0 else "joint row"
    missing = [k for k in ("chosen_prompt", "chosen", "rejected_prompt", "rejected") if row.get(k) is None]
    if missing:
        raise ValueError(f"{where}: a DOVE row needs chosen_prompt, chosen, rejected_prompt, rejected; missing {missing}")
    sequences = []
    for side in ("chosen", "rejected"):
        pair = {"prompt": row[f"{side}_prompt"], "chosen": row[side], "rejected": row[side]}
        text = maybe_apply_chat_template(pair, processing_class, tools=tools)
        ids = tokenize_row(text, processing_class, max_prompt_length=max_prompt_length,
                           max_completion_length=max_completion_length, add_special_tokens=False,
                           is_chat=is_conversational(pair))
        sequences.append(ids["prompt_input_ids"] + ids["chosen_input_ids"])
    return {"prompt_input_ids": [], "responses_input_ids": sequences, "response_labels": [1.0, 0.0],
            "label_type": "grades"}
