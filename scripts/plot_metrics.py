#!/usr/bin/env python3
"""Plot a prefopt-train metrics.jsonl to a PNG: one subplot per metric, training and evaluation curves together.

Each line of metrics.jsonl is one JSON object with "step", "epoch" and metric values under TRL's names ("loss",
"rewards/accuracies", ...); evaluation lines carry the same names prefixed with "eval_". A metric and its eval_
twin share a subplot. null values (metrics undefined on a step) are skipped.

    python scripts/plot_metrics.py runs/dpo/metrics.jsonl -o runs/dpo/metrics.png
"""
import argparse
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

SKIP = {"step", "epoch"}


def read_metrics(path):
    """Returns {metric: {"train": [(step, value)], "eval": [(step, value)]}} in file order."""
    series = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{number}: invalid JSON: {e}")
            if not isinstance(row, dict) or "step" not in row:
                raise SystemExit(f'{path}:{number}: expected an object with a "step"')
            for key, value in row.items():
                if key in SKIP or not isinstance(value, (int, float)) or isinstance(value, bool):
                    continue
                if not math.isfinite(value):
                    continue
                kind, name = ("eval", key[len("eval_"):]) if key.startswith("eval_") else ("train", key)
                series.setdefault(name, {"train": [], "eval": []})[kind].append((row["step"], value))
    return series


def plot(series, output, title=None):
    if not series:
        raise SystemExit("no metric to plot")
    names = sorted(series, key=lambda n: (n != "loss", n))
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for kind, style in (("train", "-"), ("eval", "o--")):
            points = series[name][kind]
            if points:
                steps, values = zip(*points)
                ax.plot(steps, values, style, label=kind, markersize=4)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", help="a metrics.jsonl written by prefopt-train")
    parser.add_argument("-o", "--output", help="the PNG to write (default: beside the metrics file)")
    parser.add_argument("--title", help="a title for the figure")
    args = parser.parse_args(argv)
    output = args.output or (args.metrics.rsplit(".", 1)[0] + ".png")
    plot(read_metrics(args.metrics), output, args.title)
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
