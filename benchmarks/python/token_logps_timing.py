"""Quick timing of torch.ops.prefopt.token_logps against the ATen composite, from Python.

Times, as the median of --repeats runs after one warm-up: the memory-read floor ``logits.sum()``, the fused forward,
fused forward + backward through autograd, and ``log_softmax(logits).gather(...)`` forward + backward. It never
validates values (the Google Benchmark binary and the tests do) and is not a test: run it by hand, e.g.

    PREFOPT_LIBRARY=build/libprefopt.so .venv/bin/python benchmarks/python/token_logps_timing.py \\
        --threads 1 --rows 4096 --vocab 32000 --dtype fp32
"""

import argparse
import os
import time
from pathlib import Path

import torch


def median_ms(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2] * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    root = Path(__file__).resolve().parents[2]
    torch.ops.load_library(os.environ.get("PREFOPT_LIBRARY") or str(root / "build" / "libprefopt.so"))
    torch.set_num_threads(args.threads)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    logits = (torch.randn(args.rows, args.vocab) * 3).to(dtype)
    labels = torch.randint(args.vocab, (args.rows,))

    def fused_fwd_bwd():
        x = logits.detach().requires_grad_()
        torch.ops.prefopt.token_logps(x, labels)[0].sum().backward()

    def composite_fwd_bwd():
        x = logits.detach().requires_grad_()
        torch.log_softmax(x, -1).gather(1, labels[:, None]).sum().backward()

    floor = median_ms(lambda: logits.sum(), args.repeats)
    fwd = median_ms(lambda: torch.ops.prefopt.token_logps(logits, labels), args.repeats)
    fused = median_ms(fused_fwd_bwd, args.repeats)
    composite = median_ms(composite_fwd_bwd, args.repeats)
    print(
        f"N={args.rows} V={args.vocab} {args.dtype} threads={args.threads}: sum {floor:.1f} ms, fused fwd {fwd:.1f} ms "
        f"({fwd / floor:.2f}x floor), fused fwd+bwd {fused:.1f} ms, composite fwd+bwd {composite:.1f} ms "
        f"(speed-up {composite / fused:.2f}x)"
    )


if __name__ == "__main__":
    main()
