"""Encoding speed of prefopt.Tokenizer against Hugging Face `tokenizers` (Rust) on the same tokenizer.json and text.

For each family of tests/python/hf_tokenizer_families.py (trained here, nothing downloaded) it encodes a few MB of
mixed-script text (lines of every script, emoji, numbers, whitespace runs; --megabytes) and prints MB/s of both:
  single: one thread, the whole batch (prefopt encode_batch(num_threads=1); tokenizers encode_batch with
          RAYON_NUM_THREADS=1, so neither pays a Python call per line)
  batch:  all cores (prefopt encode_batch(num_threads=0); tokenizers encode_batch with its default thread pool)
The two libraries run interleaved, --repeats times each, and the best time is kept; the ratio is
prefopt / tokenizers (> 1: prefopt is faster). Before timing, the ids are checked equal.

Run from the repository root after building:
    RAYON_NUM_THREADS=1 .venv/bin/python benchmarks/python/tokenizer_bench.py           # the single-thread rows
    .venv/bin/python benchmarks/python/tokenizer_bench.py --batch                       # the threaded rows
(tokenizers reads RAYON_NUM_THREADS once, at its first parallel call, so one process measures one setting.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "tests" / "python"))

import prefopt  # noqa: E402
from hf_tokenizer_families import FAMILIES, INLINE, make_strings  # noqa: E402


def best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=float, default=4.0, help="text per family (default 4 MB)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", action="store_true", help="time the threaded batch (all cores) instead")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset")
    args = parser.parse_args()
    threads = 0 if args.batch else 1
    if not args.batch and os.environ.get("RAYON_NUM_THREADS") != "1":
        sys.exit("single-thread rows need RAYON_NUM_THREADS=1 in the environment (see the docstring)")
    print(f"mode: {'batch, all cores' if args.batch else 'single thread'}; cores: {os.cpu_count()}")
    print(f"{'family':10} {'MB':>6} {'tokenizers MB/s':>16} {'prefopt MB/s':>13} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.families.split(","):
            reference = FAMILIES[name]()
            path = Path(tmp) / f"{name}.json"
            reference.save(str(path))
            ours = prefopt.Tokenizer.from_file(str(path))
            lines = []
            size = 0
            seed = 100
            while size < args.megabytes * 1e6:
                chunk = make_strings(2000, seed, INLINE[name])
                seed += 1
                lines += chunk
                size += sum(len(s.encode("utf-8")) for s in chunk)
            want = [e.ids for e in reference.encode_batch(lines[:2000])]
            assert ours.encode_batch(lines[:2000], num_threads=threads) == want, f"{name}: ids differ"
            times = {"tokenizers": float("inf"), "prefopt": float("inf")}
            for _ in range(args.repeats):  # interleaved, so both see the same machine load
                times["tokenizers"] = min(times["tokenizers"], best_of(lambda: reference.encode_batch(lines), 1))
                times["prefopt"] = min(times["prefopt"],
                                       best_of(lambda: ours.encode_batch(lines, num_threads=threads), 1))
            mb = size / 1e6
            print(f"{name:10} {mb:6.1f} {mb / times['tokenizers']:16.2f} {mb / times['prefopt']:13.2f} "
                  f"{times['tokenizers'] / times['prefopt']:7.2f}")


if __name__ == "__main__":
    main()
