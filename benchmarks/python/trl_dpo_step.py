"""A DPO step (policy and reference forward, loss, backward) under stock TRL 0.28's DPOTrainer against
prefopt.trl's PrefoptDPOTrainer, on the same random Llama, data and batch: seconds per step and peak RSS.

Each run is its own process (peak RSS only grows), the two variants interleaved (A B A B ...) so that a noisy,
shared machine loads both alike; the table gives medians and the TRL / prefopt ratios. Not a test: nothing here
asserts a speed. Usage (from the repository root, after scripts/build.sh):

    PYTHONPATH=python:tests/python .venv/bin/python benchmarks/python/trl_dpo_step.py [--vocab 128256 --seq 512]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def worker(args) -> None:
    import random

    import torch

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import datasets
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers
    from trl import DPOConfig, DPOTrainer

    from prefopt.trl import PrefoptDPOConfig, PrefoptDPOTrainer

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    words = [f"w{i}" for i in range(args.vocab - 3)]
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<eos>"] + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                                     eos_token="<eos>")
    rng = random.Random(0)
    half = args.seq // 2

    def text(n):
        return " ".join(rng.choice(words) for _ in range(n))

    rows = [{"prompt": text(half), "chosen": text(half - 1), "rejected": text(half - 1)} for _ in range(args.pairs)]
    data = datasets.Dataset.from_list(rows)
    config = transformers.LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=2 * args.hidden,
                                      num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=args.seq + 8, pad_token_id=0, eos_token_id=2)
    policy = transformers.LlamaForCausalLM(config).float()
    ref = transformers.LlamaForCausalLM(config).float()
    cls, cfg = (DPOTrainer, DPOConfig) if args.variant == "trl" else (PrefoptDPOTrainer, PrefoptDPOConfig)
    trainer = cls(model=policy, ref_model=ref, train_dataset=data, processing_class=tokenizer,
                  args=cfg(output_dir="/tmp/trl_dpo_step_out", per_device_train_batch_size=args.pairs, report_to=[],
                           use_cpu=True, max_length=None, save_strategy="no", bf16=args.bf16))
    batch = next(iter(trainer.get_train_dataloader()))
    times = []
    for _ in range(args.steps + 1):
        trainer.model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        loss, _ = trainer.get_batch_loss_metrics(trainer.model, batch)
        loss.backward()
        times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"variant": args.variant, "step_s": statistics.median(times[1:]), "peak_rss_mib": peak_mib,
                      "loss": loss.item()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq", type=int, default=512, help="tokens per sequence (prompt + completion)")
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per run (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="TRL's default mixed precision (CPU autocast); else fp32")
    parser.add_argument("--variant", choices=["trl", "prefopt"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        worker(args)
        return
    results = {"trl": [], "prefopt": []}
    for _ in range(args.repeats):
        for variant in ("trl", "prefopt"):
            cmd = [sys.executable, __file__, "--variant", variant] + [
                f"--{k}={v}" for k, v in vars(args).items() if k not in ("variant", "repeats", "bf16")]
            cmd += ["--bf16"] if args.bf16 else []
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                sys.exit(f"{variant} run failed:\n{run.stderr[-4000:]}")
            results[variant].append(json.loads(run.stdout.strip().splitlines()[-1]))
    print(f"DPO step, V={args.vocab}, H={args.hidden}, {args.layers} layers, {args.pairs} pairs x {args.seq} tokens, "
          f"{'bf16 autocast' if args.bf16 else 'fp32'}, {args.threads} threads, {args.repeats} interleaved runs x {args.steps} steps (medians)")
    print(f"{'':10}{'s/step':>10}{'peak RSS MiB':>15}{'loss':>12}")
    med = {}
    for variant, runs in results.items():
        med[variant] = (statistics.median(r["step_s"] for r in runs), statistics.median(r["peak_rss_mib"] for r in runs))
        print(f"{variant:10}{med[variant][0]:>10.3f}{med[variant][1]:>15.0f}{runs[-1]['loss']:>12.6f}")
    print(f"{'TRL/prefopt':10}{med['trl'][0] / med['prefopt'][0]:>10.2f}{med['trl'][1] / med['prefopt'][1]:>15.2f}")


if __name__ == "__main__":
    main()
