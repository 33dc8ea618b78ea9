"""Part C: the cost of meta-gradients. Second-order MAML, first-order MAML and ES on sinusoid regression.

    python bench_metagrad.py                      # everything, on the CPU, one thread -> results/partC/
    python bench_metagrad.py --measure second 10  # one (method, K) cell: prints {"time_s", "mem_mb"}

1. Time and memory per meta-iteration as the inner steps K grow (1, 5, 10, 20): meta-batch of 25
   sinusoid tasks (10 support, 10 query points), an MLP 1-200-200-1 (ReLU), inner rate 0.01. A
   meta-iteration is one meta-gradient: second order (backward through the inner loop), first
   order, or ES with P = ``--es_population`` antithetic pairs (2P inner loops, no backward). Time:
   median of 5 iterations (3 for ES) after one warm-up. Memory: the growth of the process's peak
   resident set (``ru_maxrss``) over those iterations, each cell in a fresh process that first
   warms the library up on a 1-task, 1-step meta-gradient; it counts what autograd keeps for the
   backward pass (the adapted parameters and activations of every inner step), up to allocator noise.
2. Gradient agreement at K = 5 (MLP 1-40-40-1 with tanh, D = 1761 parameters, float64): cosine
   similarity of the first-order and ES estimates with the exact (second-order) meta-gradient, ES
   for growing P. For this estimator, E[cos^2] is about P / (P + D + 1) when f is locally linear at
   scale sigma; printed alongside. tanh, because with ReLU the meta-objective is not even
   continuous: the inner gradient jumps where a support point crosses a ReLU kink, and so does
   theta_K; one ReLU row (``"activation": "relu"``) shows what that does to ES at small sigma.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.func import functional_call
from torch.nn import functional as F

from cs330.data import sample_regression_tasks
from cs330.models import MLP, map_tasks
from es import es_gradient, flatten, unflatten
from hw2_maml import inner_loop

HERE = Path(__file__).resolve().parent
STEPS = (1, 5, 10, 20)


def meta_objective(model, params, tasks, steps: int, lr: float, second_order: bool) -> torch.Tensor:
    """F(theta): mean over tasks of the query MSE after ``steps`` inner SGD steps (vmap over tasks)."""
    lrs = {n: lr for n in params}

    def one(sx, sy, qx, qy):
        adapted = inner_loop(model, params, lrs, sx, sy, steps, True, first_order=not second_order, loss_fn=F.mse_loss)
        return F.mse_loss(functional_call(model, adapted, (qx,)), qy)

    return map_tasks(one, tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query).mean()


def meta_gradient(method: str, model, tasks, steps: int, lr: float, population: int, sigma: float,
                  generator: torch.Generator) -> torch.Tensor:
    """One meta-gradient (D,) with ``method`` in second / first / es."""
    params = dict(model.named_parameters())
    if method == "es":
        like = {n: p.detach() for n, p in params.items()}
        f = lambda flat: meta_objective(model, unflatten(flat, like), tasks, steps, lr, False)  # noqa: E731
        return es_gradient(f, flatten(like), sigma, population, generator)
    loss = meta_objective(model, params, tasks, steps, lr, second_order=method == "second")
    return flatten(dict(zip(params, torch.autograd.grad(loss, list(params.values())))))


def tasks_for(batch: int, seed: int, dtype=torch.float32):
    t = sample_regression_tasks("sinusoid", batch, 10, 10, generator=torch.Generator().manual_seed(seed))
    for name in ("x_support", "y_support", "x_query", "y_query"):
        setattr(t, name, getattr(t, name).to(dtype))
    return t


def measure(method: str, steps: int, a) -> dict:
    """Time (median s) and peak-RSS growth (MB) of meta-iterations of one (method, K); run in a fresh process."""
    torch.manual_seed(0)
    model, tasks, g = MLP(1, 1, (200, 200)), tasks_for(25, 0), torch.Generator().manual_seed(0)
    meta_gradient(method, model, tasks_for(1, 0), 1, 0.01, 1, 1e-3, g)  # load and initialise the library code
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(4 if method == "es" else 6):
        t0 = time.perf_counter()
        meta_gradient(method, model, tasks, steps, 0.01, a.es_population, 1e-3, g)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "K": steps, "time_s": statistics.median(times[1:]), "mem_mb": (peak - base) / 1024}


def agreement(a) -> list[dict]:
    rows = []
    for activation, populations in (("tanh", a.populations), ("relu", [a.populations[-2]])):
        torch.manual_seed(0)
        model = MLP(1, 1, activation={"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[activation]).double()
        tasks = tasks_for(25, 1, torch.float64)
        exact = meta_gradient("second", model, tasks, 5, 0.01, 0, 0.0, None)
        first = meta_gradient("first", model, tasks, 5, 0.01, 0, 0.0, None)

        def cos(u, exact=exact):
            return float(F.cosine_similarity(u, exact, dim=0))

        D = exact.numel()
        if activation == "tanh":
            rows.append({"method": "first", "activation": activation, "P": None, "cosine": cos(first), "time_s": None})
        for P in populations:
            t0 = time.perf_counter()
            g = meta_gradient("es", model, tasks, 5, 0.01, P, a.sigma, torch.Generator().manual_seed(P))
            rows.append({"method": "es", "activation": activation, "P": P, "sigma": a.sigma, "cosine": cos(g),
                         "time_s": time.perf_counter() - t0, "expected_cosine_quadratic": (P / (P + D + 1)) ** 0.5})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def plot(cells, rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    for m in ("second", "first", "es"):
        c = [r for r in cells if r["method"] == m]
        label = m if m != "es" else f"ES (P={c[0]['P']})"
        ax[0].plot([r["K"] for r in c], [r["time_s"] for r in c], "o-", label=label)
        ax[1].plot([r["K"] for r in c], [r["mem_mb"] for r in c], "o-", label=label)
    ax[0].set(xlabel="inner steps K", ylabel="s per meta-iteration", title="time (1 CPU thread)")
    ax[1].set(xlabel="inner steps K", ylabel="peak RSS growth (MB)", title="memory")
    es = [r for r in rows if r["method"] == "es" and r["activation"] == "tanh"]
    ax[2].semilogx([r["P"] for r in es], [r["cosine"] for r in es], "o-", label="ES")
    ax[2].semilogx([r["P"] for r in es], [r["expected_cosine_quadratic"] for r in es], ":", label="sqrt(P/(P+D+1))")
    ax[2].axhline([r for r in rows if r["method"] == "first"][0]["cosine"], color="C1", ls="--", label="first order")
    ax[2].set(xlabel="ES population P (pairs)", ylabel="cosine with exact meta-gradient", title="K = 5, D = 1761, tanh",
              ylim=(0, 1.05))
    for x in ax:
        x.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measure", nargs=2, metavar=("METHOD", "K"), help="measure one cell (used by the full run)")
    p.add_argument("--es_population", type=int, default=16)
    p.add_argument("--populations", type=int, nargs="+", default=[16, 64, 256, 1024, 4096])
    p.add_argument("--sigma", type=float, default=1e-4)
    p.add_argument("--out", default=str(HERE / "results" / "partC"))
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    if a.measure:
        print(json.dumps(measure(a.measure[0], int(a.measure[1]), a)))
        return
    cells = []
    for K in STEPS:
        for m in ("second", "first", "es"):
            cmd = [sys.executable, __file__, "--measure", m, str(K), "--es_population", str(a.es_population)]
            cell = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            cell["P"] = a.es_population if m == "es" else None
            cells.append(cell)
            print(json.dumps(cell), flush=True)
    rows = agreement(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"config": vars(a), "cost": cells, "agreement": rows}
    (out / "metagrad.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(cells, rows, out / "metagrad.png")


if __name__ == "__main__":
    main()
