"""Markdown tables of the results in results/ (Part A, B, C): ``python report.py > results/summary.md``.

``python report.py --partB_dir results/partB_long``: the Part B table of another folder (the long runs).
Parts A and B are read with ``cs330.training.load_results`` (the results schema: a file off it is an error)."""

from __future__ import annotations

import json
from pathlib import Path

from cs330.training import load_results

RESULTS = Path(__file__).resolve().parent / "results"


def part_a() -> list[str]:
    lines = ["## Part A: memorisation (5-way 1-shot)", "",
             "| run | steps | train loss | meta-train acc | meta-test acc (new classes) | sensitivity train "
             "| sensitivity test | zero-shot train acc | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for path in sorted((RESULTS / "partA").glob("*.json")):
        if path.stem.startswith("tagged"):
            continue
        r = load_results(path)
        f = r["final"]
        zero_shot = f"{f['meta_train_zero_shot_acc']:.3f}" if "meta_train_zero_shot_acc" in f else "-"
        lines.append(f"| {path.stem} ({r['config']['data']}) | {f['step']} | {f['train_loss']:.3f} | "
                     f"{f['meta_train_acc']:.3f} | {f['meta_test_acc']:.3f} | {f['meta_train_sensitivity']:.3f} | "
                     f"{f['meta_test_sensitivity']:.3f} | {zero_shot} | {f['time_s']:.0f} |")
    return lines


def part_a_tagged() -> list[str]:
    rows = sorted((RESULTS / "partA").glob("tagged-*.json"))
    if not rows:
        return []
    lines = ["Tagged sinusoids (5 support points, 400 tasks x 50 queries per split):", "",
             "| run | steps | train-split MSE | test-split MSE | sensitivity train split | sensitivity test split |",
             "| --- | --- | --- | --- | --- | --- |"]
    for path in rows:
        r = load_results(path)
        f = r["final"]
        lines.append(f"| {path.stem} | {r['config']['steps']} | {f['train_split_mse']:.3f} | {f['test_split_mse']:.3f} "
                     f"| {f['train_split_sensitivity']:.3f} | {f['test_split_sensitivity']:.3f} |")
    return lines


def part_b(folder: Path = RESULTS / "partB") -> list[str]:
    lines = ["## Part B: regression (400 tasks x 50 queries per k)", "",
             "| family | method | steps | k | MSE | NLL | 95% coverage | train s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for path in sorted(folder.glob("*.json")):
        r = load_results(path)
        c, f = r["config"], r["final"]
        for k, m in f["metrics"].items():
            lines.append(f"| {c['family']} | {c['method']} | {c['steps']} | {k} | {m['mse']:.3f} | {m['nll']:.3f} | "
                         f"{m['coverage95']:.3f} | {f['train_wall_s']:.0f} |")
    return lines


def part_c() -> list[str]:
    path = RESULTS / "partC" / "metagrad.json"
    if not path.is_file():
        return []
    r = json.loads(path.read_text())
    lines = ["## Part C: meta-gradient cost (MLP 1-200-200-1, 25 tasks)", "",
             "| method | K | s per meta-iteration | peak RSS growth MB |", "| --- | --- | --- | --- |"]
    for c in r["cost"]:
        name = c["method"] + (f" (P={c['P']})" if c.get("P") else "")
        lines.append(f"| {name} | {c['K']} | {c['time_s']:.4f} | {c['mem_mb']:.1f} |")
    lines += ["", "Agreement with the exact meta-gradient (K = 5, MLP 1-40-40-1, D = 1761, float64):", "",
              "| estimator | activation | P | cosine | sqrt(P/(P+D+1)) | s |", "| --- | --- | --- | --- | --- | --- |"]
    for row in r["agreement"]:
        exp = row.get("expected_cosine_quadratic")
        exp = "" if exp is None else f"{exp:.3f}"
        secs = "" if row["time_s"] is None else f"{row['time_s']:.2f}"
        lines.append(f"| {row['method']} | {row.get('activation', '')} | {row['P'] or ''} | {row['cosine']:.3f} | "
                     f"{exp} | {secs} |")
    return lines


def plot_part_a(path: Path) -> None:
    """Grouped bars per Part A run: meta-train accuracy, meta-test accuracy, support sensitivity (test)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = [(p.stem, load_results(p)["final"]) for p in sorted((RESULTS / "partA").glob("*.json"))
            if not p.stem.startswith("tagged")]
    if not runs:
        return
    fig, ax = plt.subplots(figsize=(1.4 * len(runs) + 2, 3.4))
    bars = [("meta_train_acc", "meta-train acc"), ("meta_test_acc", "meta-test acc (new classes)"),
            ("meta_test_sensitivity", "support sensitivity (test)")]
    for i, (key, label) in enumerate(bars):
        ax.bar([j + 0.27 * (i - 1) for j in range(len(runs))], [f[key] for _, f in runs], 0.27, label=label)
    ax.axhline(0.2, ls=":", c="gray", label="chance (5-way)")
    ax.set_xticks(range(len(runs)), [name for name, _ in runs], rotation=20, fontsize=7)
    ax.set(ylim=(0, 1.05), title="Part A: non-mutually-exclusive training tasks")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_parser():
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    import argparse
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--partB_dir", type=Path, default=None, help="print only the Part B table of this folder")
    return p


if __name__ == "__main__":
    p = build_parser()
    a = p.parse_args()
    if a.partB_dir is not None:
        if not a.partB_dir.is_dir():
            p.error(f"--partB_dir {a.partB_dir}: no such folder (the long runs write results/partB_long)")
        print("\n".join(part_b(a.partB_dir.resolve())))
    else:
        if (RESULTS / "partA").is_dir():
            plot_part_a(RESULTS / "partA" / "summary.png")
        print("\n".join(part_a() + [""] + part_a_tagged() + [""] + part_b() + [""] + part_c()))
