"""Part B: meta-train a regression learner on sinusoid or mixture tasks and evaluate its predictive
distribution for 1, 2, 5 and 10 support points.

    python train_regression.py --method np --family sinusoid --steps 3000       # latent NP (ELBO)
    python train_regression.py --method cnp --family mixture
    python train_regression.py --method ensemble --family sinusoid              # ensemble of MAMLs
    python train_regression.py --method maml --family sinusoid                  # deterministic MAML
    python train_regression.py --method bayeshead --family sinusoid             # Gaussian over MAML's head

Tasks: ``cs330.data.sample_regression_tasks`` (sinusoid: A sin(x - phi); mixture: a sinusoid or a
line, 1/2 each). Every meta-batch draws its number of support points k ~ U{1..10}, with 10 queries.
Evaluation per k: 400 fixed tasks with 50 query points; MSE of the predictive mean, NLL per point of
the predictive distribution (a mixture over samples / members), coverage of its central 95% interval
(mean +- 1.96 sd of the mixture). Deterministic MAML has no variance: its predictive is
N(f(x), s_k^2) with s_k the RMSE on 400 other training tasks with the same k (a post-hoc fit).
Writes results/partB/<family>-<method>.json and a plot of sampled functions with the true one.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from cs330.data import sample_regression_tasks
from cs330.models import MLP
from bayes_head_maml import GaussianHeadMAML
from ensemble_maml import EnsembleMAML
from gaussian import interval_coverage, mixture_moments, mixture_nll
from maml import MAML
from neural_process import NeuralProcess

HERE = Path(__file__).resolve().parent
SHOTS = (1, 2, 5, 10)
# per-method defaults of --lr, --inner_lr, --inner_steps (when left out); every other method: 1e-3, 0.01, 1.
# The Bayesian head takes 5 inner steps (plain SGD at 0.01: more steps or a higher rate diverge) and a
# higher outer rate.
DEFAULTS = {"bayeshead": (3e-3, 0.01, 5)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=["maml", "ensemble", "np", "cnp", "bayeshead"], default="np")
    p.add_argument("--family", choices=["sinusoid", "mixture", "line"], default="sinusoid")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--meta_batch", type=int, default=25)
    p.add_argument("--max_k", type=int, default=10, help="support points per task ~ U{1..max_k} in training")
    p.add_argument("--n_query", type=int, default=10)
    p.add_argument("--lr", type=float, default=None, help="1e-3 (bayeshead: 3e-3)")
    p.add_argument("--inner_lr", type=float, default=None, help="0.01 (every method)")
    p.add_argument("--inner_steps", type=int, default=None, help="1 (bayeshead: 5)")
    p.add_argument("--members", type=int, default=5, help="ensemble size")
    p.add_argument("--samples", type=int, default=32,
                   help="z samples for the latent NP's predictive (bayeshead: head samples)")
    p.add_argument("--noise_std", type=float, default=0.0, help="observation noise of the tasks")
    p.add_argument("--eval_tasks", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "partB"))
    p.add_argument("--name", default=None, help="file name of the results (default <family>-<method>)")
    a = p.parse_args(argv)
    lr, inner_lr, steps = DEFAULTS.get(a.method, (1e-3, 0.01, 1))
    a.lr = lr if a.lr is None else a.lr
    a.inner_lr = inner_lr if a.inner_lr is None else a.inner_lr
    a.inner_steps = steps if a.inner_steps is None else a.inner_steps
    a.name = a.name or f"{a.family}-{a.method}"
    return a


def build(a):
    torch.manual_seed(a.seed)
    if a.method == "maml":
        return MAML(MLP(1, 1), inner_steps=a.inner_steps, inner_lr=a.inner_lr, loss_fn=F.mse_loss)
    if a.method == "ensemble":
        return EnsembleMAML(a.members, inner_steps=a.inner_steps, inner_lr=a.inner_lr)
    if a.method == "bayeshead":
        return GaussianHeadMAML(inner_steps=a.inner_steps, inner_lr=a.inner_lr)
    return NeuralProcess(latent=a.method == "np")


def train_step(model, a, tasks, generator):
    if a.method == "maml":
        return model.loss(tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query)[0]
    if a.method == "ensemble":
        return model.loss(tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query)
    # np, cnp, bayeshead: random draws with the training generator
    return model.loss(tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query, generator=generator)


def predictive(model, a, x_s, y_s, x_q, generator, sigma=None):
    """Mixture components (mu, logvar), each (S, B, m, 1)."""
    if a.method == "maml":
        mu = model.predict(x_s, y_s, x_q)[None]
        return mu, torch.full_like(mu, 2 * math.log(sigma))
    if a.method == "ensemble":
        return model.predict(x_s, y_s, x_q)
    return model.predict(x_s, y_s, x_q, n_samples=a.samples, generator=generator)


def tasks_for(a, k, seed, n_query=50):
    g = torch.Generator().manual_seed(seed)
    return sample_regression_tasks(a.family, a.eval_tasks, k, n_query, generator=g, noise_std=a.noise_std)


def evaluate(model, a) -> dict:
    out = {}
    for k in SHOTS:
        sigma = None
        if a.method == "maml":  # post-hoc noise level: RMSE on other training tasks with k support points
            cal = tasks_for(a, k, seed=5000 + k)
            sigma = float((model.predict(cal.x_support, cal.y_support, cal.x_query) - cal.y_query).pow(2).mean().sqrt())
        t = tasks_for(a, k, seed=9000 + k)
        mu, logvar = predictive(model, a, t.x_support, t.y_support, t.x_query, torch.Generator().manual_seed(k), sigma)
        mean, var = mixture_moments(mu, logvar)
        out[k] = {"mse": float((mean - t.y_query).pow(2).mean()), "nll": float(mixture_nll(t.y_query, mu, logvar).mean()),
                  "coverage95": float(interval_coverage(t.y_query, mean, var)), "sigma_fit": sigma}
    return out


def run(a) -> dict:
    torch.set_num_threads(1)
    model = build(a)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    g = torch.Generator().manual_seed(a.seed)
    history, t0, running = [], time.time(), 0.0
    for step in range(1, a.steps + 1):
        k = int(torch.randint(1, a.max_k + 1, (), generator=g))
        tasks = sample_regression_tasks(a.family, a.meta_batch, k, a.n_query, generator=g, noise_std=a.noise_std)
        opt.zero_grad(set_to_none=True)
        loss = train_step(model, a, tasks, g)
        loss.backward()
        opt.step()
        running = 0.98 * running + 0.02 * float(loss.detach())
        if step % max(1, a.steps // 10) == 0 or step == a.steps:
            history.append({"step": step, "train_loss": running / (1 - 0.98**step), "wall_s": time.time() - t0})
            print(json.dumps(history[-1]), flush=True)
    train_s = time.time() - t0
    metrics = evaluate(model, a)
    for k, m in metrics.items():
        print(f"{a.family} {a.method} k={k}: MSE {m['mse']:.3f}  NLL {m['nll']:.3f}  coverage95 {m['coverage95']:.3f}")
    name = a.name
    result = {"config": vars(a), "history": history, "train_wall_s": train_s, "metrics": metrics}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    torch.save(model.state_dict(), out / f"{name}.pt")
    plot_functions(model, a, metrics, out / f"{name}.png", name)
    return result


def plot_functions(model, a, metrics, path, title):
    """One task per k (the same tasks for every method): the true function, the support points, and
    the model's sampled functions (latent NP: 10 z samples; ensemble: the 5 members; MAML / CNP: the mean)
    with the predictive mean +- 1.96 sd band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    grid = torch.linspace(-5, 5, 200)[None, :, None]
    fig, axes = plt.subplots(1, len(SHOTS), figsize=(4 * len(SHOTS), 3.2), sharey=True)
    for ax, k in zip(axes, SHOTS):
        g = torch.Generator().manual_seed(31 + k)
        t = sample_regression_tasks(a.family, 1, k, 1, generator=g, noise_std=a.noise_std)
        mu, logvar = predictive(model, a, t.x_support, t.y_support, grid, torch.Generator().manual_seed(0),
                                metrics[k]["sigma_fit"])
        mean, var = mixture_moments(mu, logvar)
        x = grid[0, :, 0]
        ax.fill_between(x, (mean - 1.96 * var.sqrt())[0, :, 0], (mean + 1.96 * var.sqrt())[0, :, 0], alpha=0.2,
                        color="C0", label="95% predictive")
        for s in range(min(10, mu.shape[0])):
            ax.plot(x, mu[s, 0, :, 0], color="C0", lw=0.8, alpha=0.7, label="sampled functions" if s == 0 else None)
        ax.plot(x, t.evaluate(grid)[0, :, 0], "k--", lw=1.5, label="true")
        ax.scatter(t.x_support[0, :, 0], t.y_support[0, :, 0], c="C3", zorder=3, label="support")
        ax.set(title=f"{title}, k={k}", xlabel="x", ylim=(-6, 6))
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    run(parse_args())
