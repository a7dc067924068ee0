"""GPU benchmark of the fused scoring kernels (run by benchmarks/gpu/run.sh; needs a CUDA device).

Measures, on the same card in the same run: a device-to-device copy of the logits (its bandwidth is the yardstick),
token_logps forward, forward+backward (out of place and in place) and the ATen composite (log_softmax + gather, with
autograd), token_kl, token_entropy and wpo_token_stats forwards. Prints time, achieved bandwidth, the fraction of the
copy bandwidth, and peak memory. Validates every fused result against the composite before timing.

Targets (issue 4): forward >= 85% of the copy bandwidth; fwd+bwd within 1.3x of the read-twice-write-once floor.

`--device cpu --validate-only` runs the validation (not the timing) on the CPU kernels, so the script's own logic is
exercised where there is no GPU (tests/python/test_gpu_bench_script.py).
"""

import argparse
import os
import sys

import torch

LIB = os.environ.get("PREFOPT_LIBRARY") or os.path.join(os.path.dirname(__file__), "..", "..", "build", "libprefopt.so")
torch.ops.load_library(LIB)
ops = torch.ops.prefopt


def timed(fn, setup=None, iters=20):
    """Median milliseconds of fn() over iters runs (CUDA events), setup() run untimed before each."""
    for _ in range(3):
        if setup:
            setup()
        fn()
    times = []
    for _ in range(iters):
        if setup:
            setup()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


def peak_gib(fn, setup=None):
    if setup:
        setup()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**30


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=16384)
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--validate-only", action="store_true", help="validate the fused results, time nothing")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device")
        return 0
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    dev = torch.device(args.device)
    torch.manual_seed(0)
    n, v = args.rows, args.vocab
    logits = (torch.randn(n, v, device=dev) * 3).to(dtype)
    ref = (logits.float() + torch.randn(n, v, device=dev) * 0.1).to(dtype)
    labels = torch.randint(0, v, (n,), device=dev)
    grad = torch.randn(n, device=dev)
    work = torch.empty_like(logits)
    nbytes = logits.numel() * logits.element_size()
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu"
    print(f"device {name}, N={n}, V={v}, {args.dtype}, logits {nbytes / 2**30:.2f} GiB")

    def composite(x, targets=labels):
        return torch.log_softmax(x, -1).gather(1, targets.unsqueeze(1)).squeeze(1)

    # ---- validation before timing (a slice of rows against float64, with that slice's labels) ----
    rows = slice(0, 256)
    want = composite(logits[rows].double(), labels[rows])
    got = ops.token_logps(logits, labels)[0][rows].double()
    err = (got - want).abs().max().item()
    x = logits.detach().clone().requires_grad_()
    ops.token_logps(x, labels)[0].backward(grad)
    y = logits.detach().clone().requires_grad_()
    composite(y).float().backward(grad)
    gerr = (x.grad.float() - y.grad.float()).abs().max().item()
    work.copy_(logits)
    _, lse = ops.token_logps(work, labels)
    ops._token_logps_backward_inplace(grad, work, labels, lse, -100, 1.0)
    same = torch.equal(work, x.grad)
    kl = ops.token_kl(logits[rows], ref[rows])[0].double()
    kl_want = (torch.softmax(ref[rows].double(), -1) * (torch.log_softmax(ref[rows].double(), -1) - torch.log_softmax(logits[rows].double(), -1))).sum(-1)
    kerr = (kl - kl_want).abs().max().item()
    print(f"validate: logps err {err:.3g}, grad vs composite {gerr:.3g}, in-place identical {same}, kl err {kerr:.3g}")
    if not (err < 1e-3 and gerr < 5e-2 and same and kerr < 1e-3):
        print("validation FAILED")
        return 1
    del x, y
    if args.validate_only:
        print("validation passed; nothing timed (--validate-only)")
        return 0
    torch.cuda.empty_cache()

    # ---- timing ----
    copy_ms = timed(lambda: work.copy_(logits))
    copy_bw = 2 * nbytes / (copy_ms * 1e-3)  # a copy reads and writes
    print(f"\n{'variant':34s} {'ms':>9s} {'GB/s':>9s} {'x copy bw':>10s} {'peak GiB':>9s}")
    print(f"{'d2d copy (read + write)':34s} {copy_ms:9.3f} {copy_bw / 1e9:9.1f} {1.0:10.2f} {'':>9s}")

    def report(name, fn, passes, setup=None):
        ms = timed(fn, setup)
        bw = passes * nbytes / (ms * 1e-3)
        mem = peak_gib(fn, setup)
        print(f"{name:34s} {ms:9.3f} {bw / 1e9:9.1f} {bw / copy_bw:10.2f} {mem:9.2f}")
        return ms

    fwd_ms = report("token_logps fwd (fused)", lambda: ops.token_logps(logits, labels), 1)
    report("token_logps fwd (composite)", lambda: composite(logits), 1)

    def fused_fb():
        x = logits.detach().requires_grad_()
        ops.token_logps(x, labels)[0].backward(grad)

    def inplace_fb():
        _, lse = ops.token_logps(work, labels)
        ops._token_logps_backward_inplace(grad, work, labels, lse, -100, 1.0)

    def composite_fb():
        x = logits.detach().requires_grad_()
        composite(x).float().backward(grad)

    fb_ms = report("token_logps fwd+bwd (fused)", fused_fb, 3)
    report("token_logps fwd+bwd (fused in-place)", inplace_fb, 3, setup=lambda: work.copy_(logits))
    comp_fb_ms = report("token_logps fwd+bwd (composite)", composite_fb, 3)
    report("token_kl fwd (2 rows read)", lambda: ops.token_kl(logits, ref), 2)
    report("token_entropy fwd", lambda: ops.token_entropy(logits), 1)
    report("wpo_token_stats fwd", lambda: ops.wpo_token_stats(logits, labels), 1)

    floor_fb_ms = 3 * nbytes / copy_bw * 1e3
    fwd_fraction = (nbytes / (fwd_ms * 1e-3)) / copy_bw
    print(f"\nforward at {fwd_fraction:.0%} of the copy bandwidth (target >= 85%)")
    print(f"fwd+bwd {fb_ms / floor_fb_ms:.2f}x the read-twice-write-once floor of {floor_fb_ms:.3f} ms (target <= 1.3x)")
    print(f"fwd+bwd speed-up over the composite: {comp_fb_ms / fb_ms:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
