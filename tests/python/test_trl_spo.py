"""prefopt.trl's ``spo`` term: graded variants of each chosen response run in the policy's forward, a degree head
over their pooled final hidden states, and prefopt.spo_loss's total equal to a float64 reference built here from
each variant run alone; the head trains, is averaged over processes, and is saved and restored with checkpoints."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("trl", reason="trl is not installed (requirements.txt pins it)")

import prefopt  # noqa: E402
from prefopt.trl import PrefoptDPOConfig, PrefoptDPOTrainer  # noqa: E402
from prefopt.trl.spo import HEAD_FILE  # noqa: E402

import trl_integration_fixtures as fx  # noqa: E402

K = 3


def _trainer(tmp_path, **options):
    args = fx.config(PrefoptDPOConfig, tmp_path, loss_type=["sigmoid", "spo"], spo_num_degrees=K,
                     prefopt_loss_options={"spo": {"degree_weight": 0.5}}, **options)
    return PrefoptDPOTrainer(model=fx.model(0), ref_model=fx.model(100), args=args, train_dataset=fx.dataset(),
                             processing_class=fx.tokenizer())


def test_spo_total_equals_a_float64_reference(tmp_path):
    trainer = _trainer(tmp_path)
    batch = fx.first_batch(trainer)
    b = batch["prompt_input_ids"].size(0)
    assert batch["spo_variants_input_ids"].size(0) == b * K
    loss, metrics = trainer.get_batch_loss_metrics(trainer.model, batch)
    # The alignment term: prefopt's sigmoid DPO on the trainer's own pair scores (checked against stock TRL in
    # test_trl_integration); the degree term: built here in float64 from each variant run alone.
    out = trainer.concatenated_forward(trainer.model, batch)
    ref_c, ref_r = trainer.compute_ref_log_probs(batch)
    align = prefopt.dpo_loss(out["chosen_logps"].double(), out["rejected_logps"].double(), ref_c.double(),
                             ref_r.double(), beta=trainer.beta)[0].mean()
    head = trainer.prefopt_degree_head
    w, bias = head.weight.detach().double(), head.bias.detach().double()
    ce = []
    with torch.no_grad():
        for i in range(b * K):
            prompt = batch["prompt_input_ids"][i // K][batch["prompt_attention_mask"][i // K].bool()]
            variant = batch["spo_variants_input_ids"][i][batch["spo_variants_attention_mask"][i].bool()]
            ids = torch.cat((prompt, variant)).unsqueeze(0)
            hidden = trainer.model(ids, output_hidden_states=True).hidden_states[-1].double()[0]
            logits = hidden.mean(0) @ w.t() + bias
            ce.append(-torch.log_softmax(logits, -1)[i % K])
    want = align + 0.5 * torch.stack(ce).mean()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    assert metrics["spo/degree_loss"] == pytest.approx(torch.stack(ce).mean().item(), rel=1e-5)
    # degree 0 is the chosen completion itself
    chosen = batch["chosen_input_ids"][0][batch["chosen_attention_mask"][0].bool()]
    assert torch.equal(batch["spo_variants_input_ids"][0][batch["spo_variants_attention_mask"][0].bool()], chosen)


def test_spo_trains_the_head_and_resumes_it(tmp_path):
    trainer = _trainer(tmp_path, max_steps=2, save_strategy="steps", save_steps=1)
    head_before = trainer.prefopt_degree_head.weight.detach().clone()
    trainer.train()
    assert not torch.equal(head_before, trainer.prefopt_degree_head.weight.detach()), "the degree head did not train"
    checkpoint = tmp_path / "out" / "checkpoint-1"
    saved = torch.load(checkpoint / HEAD_FILE, weights_only=True)
    assert (tmp_path / "out" / "checkpoint-2" / HEAD_FILE).is_file()
    resumed = _trainer(tmp_path / "again", max_steps=2)
    resumed._load_from_checkpoint(str(checkpoint))
    assert torch.equal(resumed.prefopt_degree_head.weight.detach().cpu(), saved["weight"])


def test_spo_settings_are_checked(tmp_path):
    with pytest.raises(ValueError, match="adds SPO's degree term to an alignment loss"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type="spo")
    with pytest.raises(ValueError, match="the 'spo' entry must be 1.0"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type=["sigmoid", "spo"], loss_weights=[1.0, 0.1])
    with pytest.raises(ValueError, match="spo_num_degrees must be an int >= 2"):
        fx.config(PrefoptDPOConfig, tmp_path, loss_type=["sigmoid", "spo"], spo_num_degrees=1)


def test_evaluate_with_spo_logs_the_degree_metrics(tmp_path):
    args = fx.config(PrefoptDPOConfig, tmp_path, loss_type=["sigmoid", "spo"], per_device_eval_batch_size=3)
    trainer = PrefoptDPOTrainer(model=fx.model(0), ref_model=fx.model(100), args=args, train_dataset=fx.dataset(),
                                eval_dataset=fx.dataset(seed=3), processing_class=fx.tokenizer())
    metrics = trainer.evaluate()
    assert "eval_spo/degree_loss" in metrics and "eval_logits/chosen" in metrics, sorted(metrics)
