"""Part B: meta-train a regression learner on sinusoid or mixture tasks and evaluate its predictive
distribution for 1, 2, 5 and 10 support points.

    python train_regression.py --method np --family sinusoid --steps 3000 --lr 3e-3   # latent NP (ELBO)
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
Writes ``<out>/<name>.json`` (cs330.training results schema; ``final``: ``metrics`` per k and ``train_wall_s``),
``<out>/<name>.pt`` (the weights) and ``<out>/<name>.png`` (sampled functions with the true one).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch.nn import functional as F

from bayes_head_maml import GaussianHeadMAML
from cs330.data import sample_regression_tasks
from cs330.models import MLP
from cs330.training import RunState, add_common_args, environment, make_results, save_results, setup, train_loop
from ensemble_maml import EnsembleMAML
from gaussian import interval_coverage, mixture_moments, mixture_nll
from maml import MAML
from neural_process import NeuralProcess

HERE = Path(__file__).resolve().parent
METHODS = ("maml", "ensemble", "np", "cnp", "bayeshead")
SHOTS = (1, 2, 5, 10)
# per-method defaults of lr, inner_lr, inner_steps (when left out); every other method: 1e-3, 0.01, 1.
# The Bayesian head takes 5 inner steps (plain SGD at 0.01: more steps or a higher rate diverge) and a
# higher outer rate.
DEFAULTS = {"bayeshead": (3e-3, 0.01, 5)}


def build(method: str, inner_steps: int, inner_lr: float, members: int) -> torch.nn.Module:
    if method == "maml":
        return MAML(MLP(1, 1), inner_steps=inner_steps, inner_lr=inner_lr, loss_fn=F.mse_loss)
    if method == "ensemble":
        return EnsembleMAML(members, inner_steps=inner_steps, inner_lr=inner_lr)
    if method == "bayeshead":
        return GaussianHeadMAML(inner_steps=inner_steps, inner_lr=inner_lr)
    return NeuralProcess(latent=method == "np")


def meta_loss(model, method: str, tasks, generator) -> torch.Tensor:
    """The training loss of one meta-batch (np, cnp, bayeshead draw their noise with ``generator``)."""
    if method == "maml":
        return model.loss(tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query)[0]
    if method == "ensemble":
        return model.loss(tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query)
    return model.loss(tasks.x_support, tasks.y_support, tasks.x_query, tasks.y_query, generator=generator)


def predictive(model, method: str, x_s, y_s, x_q, generator, n_samples: int, sigma=None):
    """Mixture components (mu, logvar), each (S, B, m, 1); deterministic MAML: N(f(x), sigma^2), S = 1."""
    if method == "maml":
        mu = model.predict(x_s, y_s, x_q)[None]
        return mu, torch.full_like(mu, 2 * math.log(sigma))
    if method == "ensemble":
        return model.predict(x_s, y_s, x_q)
    return model.predict(x_s, y_s, x_q, n_samples=n_samples, generator=generator)


def evaluate(model, method: str, family: str, n_tasks: int, n_samples: int, noise_std: float) -> dict:
    """``{str(k): {mse, nll, coverage95, sigma_fit}}`` for k in SHOTS, on ``n_tasks`` fixed tasks x 50 queries."""
    def tasks(k, seed):
        return sample_regression_tasks(family, n_tasks, k, 50, generator=torch.Generator().manual_seed(seed),
                                       noise_std=noise_std)
    out = {}
    for k in SHOTS:
        sigma = None
        if method == "maml":  # post-hoc noise level: RMSE on other training tasks with k support points
            cal = tasks(k, 5000 + k)
            sigma = float((model.predict(cal.x_support, cal.y_support, cal.x_query) - cal.y_query).pow(2).mean().sqrt())
        t = tasks(k, 9000 + k)
        mu, logvar = predictive(model, method, t.x_support, t.y_support, t.x_query, torch.Generator().manual_seed(k),
                                n_samples, sigma)
        mean, var = mixture_moments(mu, logvar)
        out[str(k)] = {"mse": float((mean - t.y_query).pow(2).mean()),
                       "nll": float(mixture_nll(t.y_query, mu, logvar).mean()),
                       "coverage95": float(interval_coverage(t.y_query, mean, var)), "sigma_fit": sigma}
    return out


def train(method="np", family="sinusoid", steps=3000, meta_batch_size=25, max_k=10, n_query=10, lr=None,
          inner_lr=None, inner_steps=None, members=5, samples=32, noise_std=0.0, eval_tasks=400, seed=0,
          name=None, progress=True, log=print) -> tuple[dict, torch.nn.Module]:
    """Meta-train ``method`` for ``steps`` Adam steps, then evaluate; return (results, model).

    Every step draws k ~ U{1..max_k} support points for the whole meta-batch. ``history``: the smoothed
    training loss at every tenth of the run; ``final``: ``metrics`` (``evaluate``) and ``train_wall_s``.
    """
    default_lr, default_inner_lr, default_inner_steps = DEFAULTS.get(method, (1e-3, 0.01, 1))
    lr, inner_lr = default_lr if lr is None else lr, default_inner_lr if inner_lr is None else inner_lr
    inner_steps = default_inner_steps if inner_steps is None else inner_steps
    device = setup(seed, "cpu", threads=1)  # small tensors: one thread is fastest
    model = build(method, inner_steps, inner_lr, members)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)  # the tasks, their k and the models' noise, in order

    def step_fn(step: int) -> float:
        k = int(torch.randint(1, max_k + 1, (), generator=g))
        tasks = sample_regression_tasks(family, meta_batch_size, k, n_query, generator=g, noise_std=noise_std)
        opt.zero_grad(set_to_none=True)
        loss = meta_loss(model, method, tasks, g)
        loss.backward()
        opt.step()
        return float(loss.detach())

    state = train_loop(step_fn, lambda step: {}, RunState(), steps=steps, eval_every=max(1, steps // 10),
                       smoothing=0.98, progress=progress, log=log, desc=f"{family} {method}")
    metrics = evaluate(model, method, family, eval_tasks, samples, noise_std)
    for k, m in metrics.items() if log else ():
        log(f"{family} {method} k={k}: MSE {m['mse']:.3f}  NLL {m['nll']:.3f}  coverage95 {m['coverage95']:.3f}")
    config = {"method": method, "family": family, "steps": steps, "meta_batch_size": meta_batch_size, "max_k": max_k,
              "n_query": n_query, "lr": lr, "inner_lr": inner_lr, "inner_steps": inner_steps, "members": members,
              "samples": samples, "noise_std": noise_std, "eval_tasks": eval_tasks, "seed": seed}
    final = {"metrics": metrics, "train_wall_s": round(state.time_s, 2)}
    return make_results(name or f"{family}-{method}", config, environment(device), state.history, final), model


def plot_functions(model, config: dict, metrics: dict, path, title):
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
        t = sample_regression_tasks(config["family"], 1, k, 1, generator=g, noise_std=config["noise_std"])
        mu, logvar = predictive(model, config["method"], t.x_support, t.y_support, grid,
                                torch.Generator().manual_seed(0), config["samples"], metrics[str(k)]["sigma_fit"])
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


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "meta_batch_size", "n_query", "steps", "lr", "seed", "out", "no_progress", meta_batch_size=25,
                    n_query=10, steps=3000, lr=None, out=str(HERE / "results" / "partB"))
    p.add_argument("--method", choices=METHODS, default="np")
    p.add_argument("--family", choices=["sinusoid", "mixture", "line"], default="sinusoid")
    p.add_argument("--max-k", type=int, default=10, help="support points per task ~ U{1..max_k} in training")
    p.add_argument("--inner-lr", type=float, default=None, help="0.01 (every method)")
    p.add_argument("--inner-steps", type=int, default=None, help="1 (bayeshead: 5)")
    p.add_argument("--members", type=int, default=5, help="ensemble size")
    p.add_argument("--samples", type=int, default=32,
                   help="z samples for the latent NP's predictive (bayeshead: head samples)")
    p.add_argument("--noise-std", type=float, default=0.0, help="observation noise of the tasks")
    p.add_argument("--eval-tasks", type=int, default=400)
    p.add_argument("--name", default=None, help="file name of the results (default <family>-<method>)")
    return p


def main(argv=None) -> dict:
    args = vars(build_parser().parse_args(argv))
    out, progress = Path(args.pop("out")), not args.pop("no_progress")
    result, model = train(**args, progress=progress)
    name = result["name"]
    save_results(out / f"{name}.json", result)
    torch.save(model.state_dict(), out / f"{name}.pt")
    plot_functions(model, result["config"], result["final"]["metrics"], out / f"{name}.png", name)
    return result


if __name__ == "__main__":
    main()
