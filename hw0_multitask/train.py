"""Train the multi-task recommender on MovieLens 100K and record metrics and plots.

    python train.py --arch shared --weighting fixed --lam 0.5        # one run
    python train.py --arch shared --sweep 0 0.25 0.5 0.75 0.9        # one run per lambda, plus a plot
    python train.py --data synthetic --epochs 5                      # no data files needed

Every run is added (by name) to ``results/metrics.json``, with a CSV and a plot of its per-epoch
metrics: test RMSE of the rating head and MRR of the ranking head (see ``evaluate``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import Tensor
from tqdm import tqdm

import model as mt
from cs330.data.movielens import MovieLens
from cs330.data.root import DataNotFoundError
from cs330.data.synthetic import make_ratings
from cs330.training.metrics import mean_reciprocal_rank, pairwise_mrr, rmse

HERE = Path(__file__).resolve().parent
DEFAULTS = dict(dim=32, hidden=64, dropout=0.3, epochs=30, batch_size=512, lr=2e-3, weight_decay=5e-4)


# ----------------------------------------------------------------------------------------------
# Data and metrics


def load_data(kind: str = "real", seed: int = 0, test_fraction: float = 0.1) -> tuple[MovieLens, MovieLens, str]:
    """(train, test, what) with a seeded per-user holdout of ``test_fraction`` of each user's ratings.

    kind="real" reads MovieLens 100K from the data root ($CS330_DATA); if it is missing, it says so
    and falls back to synthetic low-rank ratings (``cs330.data.synthetic.make_ratings``).
    """
    if kind == "real":
        try:
            data = MovieLens(variant="100k")
        except DataNotFoundError as e:
            print(f"MovieLens 100K not found, using synthetic ratings instead.\n{e}", file=sys.stderr)
            kind = "synthetic"
    if kind == "synthetic":
        data = make_ratings(n_users=500, n_items=800, ratings_per_user=60, seed=0)
    elif kind != "real":
        raise ValueError(f"--data must be 'real' or 'synthetic', got {kind!r}")
    train, test = data.split(test_fraction=test_fraction, seed=seed, by="user")
    return train, test, kind


@torch.no_grad()
def evaluate(model: mt.MultiTaskRecommender, train: MovieLens, test: MovieLens) -> dict[str, float]:
    """Test MSE and RMSE of the rating head (predictions clipped to [1, 5]); MRR of the ranking head over
    all items, seen (training) ones masked: per user (``mrr``) and per held-out pair (``mrr_pairs``)."""
    was_training = model.training
    model.eval()
    pred = torch.cat([model.predict_rating(test.users[i:i + 65536], test.items[i:i + 65536])
                      for i in range(0, len(test), 65536)])
    error = rmse(pred, test.ratings)
    users = torch.arange(train.n_users, device=train.users.device)
    scores = model.score_all(users)
    seen = train.interactions().mask()
    mrr = mean_reciprocal_rank(scores, seen, test.interactions().mask())
    mrr_pairs = pairwise_mrr(scores, seen, test.users, test.items)
    model.train(was_training)
    return {"mse": error**2, "rmse": error, "mrr": mrr, "mrr_pairs": mrr_pairs}


# ----------------------------------------------------------------------------------------------
# Training


def fit(model: mt.MultiTaskRecommender, train: MovieLens, test: MovieLens, epochs: int = 30, lam: float = 0.5,
        weighting: str = "fixed", batch_size: int = 512, lr: float = 2e-3, weight_decay: float = 5e-4,
        seed: int = 0, progress: bool = True, log=print, evaluator=None) -> list[dict]:
    """Train ``model`` (already on the data's device) and evaluate after every epoch.

    Each step takes a minibatch of ratings (rating loss) and one of BPR triples (ranking loss), one
    triple per training interaction with a freshly sampled negative each epoch. The weighting is
    "fixed" (lam), "uncertainty" (UncertaintyWeighting) or "pcgrad" (pcgrad_backward; lam unused).
    ``weight_decay`` is Adam's (coupled) L2 penalty on the model's parameters. After each epoch,
    ``evaluator(model, train, test)`` (default ``evaluate``) gives the metrics of that epoch's row.
    Returns one dict per epoch.
    """
    evaluator = evaluator or evaluate
    if weighting not in ("fixed", "uncertainty", "pcgrad"):
        raise ValueError(f"weighting must be fixed, uncertainty or pcgrad, got {weighting!r}")
    device = train.users.device
    g = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    weigher = mt.UncertaintyWeighting(2).to(device) if weighting == "uncertainty" else None
    groups = [{"params": list(model.parameters()), "weight_decay": weight_decay}]
    if weigher is not None:  # the log-variances are not decayed
        groups.append({"params": list(weigher.parameters()), "weight_decay": 0.0})
    opt = torch.optim.Adam(groups, lr=lr)
    positives = train.interactions()
    history = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        users, pos, neg = positives.bpr_triples(generator=g)
        perm = torch.randperm(len(train), generator=g, device=device)
        n_steps = (len(train) + batch_size - 1) // batch_size
        sums, cosines = torch.zeros(2, device=device), []
        bar = tqdm(range(n_steps), desc=f"epoch {epoch}/{epochs}", leave=False, disable=not progress)
        for step in bar:
            r = perm[step * batch_size:(step + 1) * batch_size]
            k = slice(step * len(users) // n_steps, (step + 1) * len(users) // n_steps)
            rank_batch, rate_batch = (users[k], pos[k], neg[k]), (train.users[r], train.items[r], train.ratings[r])
            losses = mt.task_losses(model, rank_batch, rate_batch)
            opt.zero_grad(set_to_none=True)
            if weighting == "pcgrad":
                cosines.append(mt.pcgrad_backward(model, losses)["cosine"])
            else:
                (weigher(losses) if weigher is not None else mt.weighted_loss(losses, lam)).backward()
            opt.step()
            sums += losses.detach()
        metrics = evaluator(model, train, test)
        row = {"epoch": epoch, "loss_rank": float(sums[0] / n_steps), "loss_rate": float(sums[1] / n_steps), **metrics,
               "time_s": round(time.perf_counter() - start, 2)}
        if cosines:  # PCGrad: how aligned the task gradients on the shared parameters were
            row.update(grad_cosine=sum(cosines) / len(cosines), conflict_frac=sum(c < 0 for c in cosines) / len(cosines))
        if weigher is not None:
            row.update({f"log_var_{t}": float(s) for t, s in zip(("rank", "rate"), weigher.log_vars.detach())})
        history.append(row)
        if log:
            log(f"epoch {epoch:3d}  L_rank {row['loss_rank']:.4f}  L_rate {row['loss_rate']:.4f}  "
                f"test RMSE {row['rmse']:.4f}  MRR {row['mrr']:.4f}  ({row['time_s']:.1f}s)")
    return history


def best_of(history: list[dict]) -> dict:
    """Best test RMSE and best MRR over the epochs, with the epochs they were reached."""
    b_rmse = min(history, key=lambda r: r["rmse"])
    b_mrr = max(history, key=lambda r: r["mrr"])
    return {"rmse": b_rmse["rmse"], "rmse_epoch": b_rmse["epoch"], "mrr": b_mrr["mrr"], "mrr_epoch": b_mrr["epoch"]}


def run(args, lam: float, train: MovieLens, test: MovieLens, data_kind: str) -> tuple[str, dict]:
    """One training run: (name, record for metrics.json)."""
    torch.manual_seed(args.seed)
    net = mt.MultiTaskRecommender(train.n_users, train.n_items, dim=args.dim, hidden=args.hidden, arch=args.arch,
                                  dropout=args.dropout, rating_mean=float(train.ratings.mean())).to(args.device)
    name = f"{args.arch}-{args.weighting}" + (f"-lam{lam:g}" if args.weighting == "fixed" else "")
    print(f"== {name}: {data_kind} data, {len(train):,} train / {len(test):,} test ratings, "
          f"{train.n_users} users x {train.n_items} items, device {args.device}")
    start = time.perf_counter()
    history = fit(net, train, test, epochs=args.epochs, lam=lam, weighting=args.weighting,
                  batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                  seed=args.seed, progress=not args.quiet)
    config = {k: getattr(args, k) for k in ("arch", "weighting", "epochs", "seed", "dim", "hidden", "dropout",
                                            "batch_size", "lr", "weight_decay")}
    record = {"config": {**config, "lam": lam, "device": str(args.device)}, "data": data_kind,
              "n_train": len(train), "n_test": len(test), "history": history, "best": best_of(history),
              "wall_s": round(time.perf_counter() - start, 1)}
    return name, record


# ----------------------------------------------------------------------------------------------
# Output: metrics.json, CSV, plots


def save(out: Path, name: str, record: dict) -> None:
    """Add (or replace) run ``name`` in out/metrics.json and write out/<name>.csv and out/<name>.png."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    metrics.setdefault("runs", {})[name] = record
    metrics["runs"] = dict(sorted(metrics["runs"].items()))
    metrics["env"] = {"torch": torch.__version__, "python": platform.python_version()}
    path.write_text(json.dumps(metrics, indent=1) + "\n")
    keys = list(record["history"][0])
    with open(out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(record["history"])
    plot_history(record["history"], out / f"{name}.png", title=name)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: list[dict], path: Path, title: str = "") -> None:
    """Test RMSE and MRR across epochs, side by side."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in zip(axes, ("rmse", "mrr"), ("test RMSE (rating)", "MRR (ranking)")):
        ax.plot(epochs, [r[key] for r in history], marker="o", ms=3)
        ax.set(xlabel="epoch", ylabel=label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_sweep(lams: list[float], records: list[dict], path: Path, title: str = "") -> None:
    """Best test RMSE and best MRR against lambda."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in zip(axes, ("rmse", "mrr"), ("best test RMSE (rating)", "best MRR (ranking)")):
        ax.plot(lams, [r["best"][key] for r in records], marker="o")
        ax.set(xlabel="lambda (weight of the ranking loss)", ylabel=label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", choices=mt.ARCHS, default="shared")
    p.add_argument("--weighting", choices=("fixed", "uncertainty", "pcgrad"), default="fixed")
    p.add_argument("--lam", type=float, default=0.5, help="weight of the ranking loss (fixed weighting)")
    p.add_argument("--sweep", type=float, nargs="+", metavar="LAM", help="one fixed-weighting run per lambda, and a plot")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data", choices=("real", "synthetic"), default="real")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    for key in ("dim", "hidden", "batch_size"):
        p.add_argument(f"--{key.replace('_', '-')}", type=int, default=DEFAULTS[key])
    for key in ("dropout", "lr", "weight_decay"):
        p.add_argument(f"--{key.replace('_', '-')}", type=float, default=DEFAULTS[key])
    args = p.parse_args(argv)
    args.device = torch.device(args.device)
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.type == "cuda":  # deterministic embedding backward and cuBLAS
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    train, test, kind = load_data(args.data, seed=args.seed)
    train, test = train.to(args.device), test.to(args.device)
    if args.sweep:
        if args.weighting != "fixed":
            raise SystemExit("--sweep varies lambda of the fixed weighting; drop --weighting")
        records = []
        for lam in args.sweep:
            name, record = run(args, lam, train, test, kind)
            save(args.out, name, record)
            records.append(record)
        plot_sweep(args.sweep, records, args.out / f"sweep-{args.arch}.png", title=f"{args.arch}: lambda sweep")
        for lam, r in zip(args.sweep, records):
            print(f"lam {lam:<5g} best RMSE {r['best']['rmse']:.4f}  best MRR {r['best']['mrr']:.4f}")
    else:
        name, record = run(args, args.lam, train, test, kind)
        save(args.out, name, record)
        print(f"{name}: best RMSE {record['best']['rmse']:.4f} (epoch {record['best']['rmse_epoch']}), "
              f"best MRR {record['best']['mrr']:.4f} (epoch {record['best']['mrr_epoch']}), {record['wall_s']} s")
    print(f"wrote {args.out / 'metrics.json'}")


if __name__ == "__main__":
    main()
