"""Curves from the results schema: one function, one figure, matplotlib's file backend (Agg)."""

from __future__ import annotations

from pathlib import Path


def plot_curves(runs: list[dict], path, metrics: list[str], *, title: str = "", chance: float | None = None,
                ylims: dict | None = None) -> Path:
    """One panel per metric of ``metrics`` (history keys), one line per run, against ``step``; save to ``path``.

    ``runs``: results dicts (``load_results``); a run without a metric is left out of that panel.
    ``chance``: a dotted line in every accuracy panel (a key ending in ``acc``). ``ylims``: metric -> (low, high).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for run in runs:
            rows = [r for r in run["history"] if metric in r]
            if rows:
                ax.plot([r["step"] for r in rows], [r[metric] for r in rows], label=run["name"])
        if chance is not None and metric.endswith("acc"):
            ax.axhline(chance, color="gray", ls=":", label="chance")
        ax.set(xlabel="step", ylabel=metric.replace("_", " "), ylim=(ylims or {}).get(metric))
        ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
