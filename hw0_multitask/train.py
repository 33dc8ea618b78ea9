"""Train the multi-task recommender on MovieLens 100K and record metrics and plots.

    python train.py --arch shared --weighting fixed --lam 0.5        # one run
    python train.py --arch shared --sweep 0 0.25 0.5 0.75 0.9        # one run per lambda, plus a plot
    python train.py --data synthetic --epochs 5                      # no data files needed

Every run is added (by name, e.g. ``shared-fixed-lam0.5``; ``...-synthetic`` on synthetic ratings, so that a
debug run never replaces a MovieLens one) to ``<out>/metrics.json``, a table of runs
in the cs330.training results schema (``history``: one row per epoch, ``step`` = epoch, with test RMSE
of the rating head and MRR of the ranking head, see ``evaluate``; ``final``: the best of each and their
epochs), and its curves are drawn in ``<out>/<name>.png``; a sweep also draws ``<out>/sweep-<arch>.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import model as mt
from cs330.data.movielens import MovieLens
from cs330.data.root import DataNotFoundError
from cs330.data.synthetic import make_ratings
from cs330.training import (RunState, add_common_args, environment, fingerprint, make_results, merge, plot_curves,
                            setup, train_loop)
from cs330.training.metrics import mean_reciprocal_rank, pairwise_mrr, rmse

HERE = Path(__file__).resolve().parent


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


def data_fingerprint(train: MovieLens, test: MovieLens) -> str:
    """``cs330.training.fingerprint`` of the whole rating table (train and test together, sorted by user
    and item): the same for every split seed, so a results file names the data it came from."""
    users, items = torch.cat([train.users, test.users]), torch.cat([train.items, test.items])
    order = (users * train.n_items + items).argsort(stable=True)
    ratings = torch.cat([train.ratings, test.ratings])
    return fingerprint({"users": users[order], "items": items[order], "ratings": ratings[order]})


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
    Returns one dict per epoch (``cs330.training.train_loop`` with one epoch per step): ``step`` (the
    epoch, 1, 2, ...), the epoch's mean ``loss_rank`` and ``loss_rate``, the evaluator's metrics,
    ``time_s``; PCGrad adds ``grad_cosine`` and ``conflict_frac``, uncertainty weighting ``log_var_*``.
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
    epoch_stats: dict[str, float] = {}  # the last epoch's training numbers, reported in its row

    def epoch_fn(epoch: int) -> dict:
        """One pass over the training ratings (and as many BPR triples)."""
        model.train()
        users, pos, neg = positives.bpr_triples(generator=g)
        perm = torch.randperm(len(train), generator=g, device=device)
        n_steps = (len(train) + batch_size - 1) // batch_size
        sums, cosines = torch.zeros(2, device=device), []
        for step in range(n_steps):
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
        epoch_stats.clear()
        epoch_stats.update(loss_rank=float(sums[0] / n_steps), loss_rate=float(sums[1] / n_steps))
        if cosines:  # PCGrad: how aligned the task gradients on the shared parameters were
            epoch_stats.update(grad_cosine=sum(cosines) / len(cosines),
                               conflict_frac=sum(c < 0 for c in cosines) / len(cosines))
        if weigher is not None:
            epoch_stats.update({f"log_var_{t}": float(s) for t, s in zip(("rank", "rate"), weigher.log_vars.detach())})
        return {}  # the epoch's means are exact: no running average (train_loop's) of them

    def evaluate_fn(epoch: int) -> dict:
        return {**epoch_stats, **evaluator(model, train, test)}

    state = train_loop(epoch_fn, evaluate_fn, RunState(), steps=epochs, eval_every=1, progress=progress, log=log,
                       desc="epoch")
    return state.history


def best_of(history: list[dict]) -> dict:
    """Best test RMSE and best MRR over the epochs, with the epochs they were reached."""
    b_rmse = min(history, key=lambda r: r["rmse"])
    b_mrr = max(history, key=lambda r: r["mrr"])
    return {"rmse": b_rmse["rmse"], "rmse_epoch": b_rmse["step"], "mrr": b_mrr["mrr"], "mrr_epoch": b_mrr["step"]}


def run(args, lam: float, train: MovieLens, test: MovieLens, data_kind: str) -> dict:
    """One training run: its results (cs330.training schema; ``final``: ``best_of``, n_train, n_test, wall_s)."""
    device = setup(args.seed, args.device, args.threads, deterministic=True)
    net = mt.MultiTaskRecommender(train.n_users, train.n_items, dim=args.dim, hidden=args.hidden, arch=args.arch,
                                  dropout=args.dropout, rating_mean=float(train.ratings.mean())).to(device)
    name = f"{args.arch}-{args.weighting}" + (f"-lam{lam:g}" if args.weighting == "fixed" else "")
    name += "-synthetic" if data_kind == "synthetic" else ""  # a debug run never replaces a MovieLens one
    print(f"== {name}: {data_kind} data, {len(train):,} train / {len(test):,} test ratings, "
          f"{train.n_users} users x {train.n_items} items, device {device}")
    history = fit(net, train, test, epochs=args.epochs, lam=lam, weighting=args.weighting, batch_size=args.batch_size,
                  lr=args.lr, weight_decay=args.weight_decay, seed=args.seed, progress=not args.no_progress)
    config = {k: getattr(args, k) for k in ("arch", "weighting", "epochs", "seed", "dim", "hidden", "dropout",
                                            "batch_size", "lr", "weight_decay")}
    final = {**best_of(history), "n_train": len(train), "n_test": len(test), "wall_s": round(history[-1]["time_s"], 1)}
    env = environment(device, data_fingerprint(train, test))
    return make_results(name, {**config, "lam": lam, "data": data_kind}, env, history, final)


def plot_sweep(results: list[dict], path: Path, title: str = "") -> None:
    """Best test RMSE and best MRR against lambda (not a curve over epochs: ``plot_curves`` draws those)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lams = [r["config"]["lam"] for r in results]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, label in zip(axes, ("rmse", "mrr"), ("best test RMSE (rating)", "best MRR (ranking)")):
        ax.plot(lams, [r["final"][key] for r in results], marker="o")
        ax.set(xlabel="lambda (weight of the ranking loss)", ylabel=label)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "batch_size", "lr", "seed", "device", "threads", "out", "no_progress", batch_size=512, lr=2e-3,
                    threads=1, out=str(HERE / "results"))
    p.add_argument("--arch", choices=mt.ARCHS, default="shared")
    p.add_argument("--weighting", choices=("fixed", "uncertainty", "pcgrad"), default="fixed")
    p.add_argument("--lam", type=float, default=0.5, help="weight of the ranking loss (fixed weighting)")
    p.add_argument("--sweep", type=float, nargs="+", metavar="LAM",
                   help="one fixed-weighting run per lambda, and a plot")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--data", choices=("real", "synthetic"), default="real")
    p.add_argument("--dim", type=int, default=32, help="embedding size")
    p.add_argument("--hidden", type=int, default=64, help="hidden units of the rating MLP")
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--weight-decay", type=float, default=5e-4, help="Adam's (coupled) L2 penalty")
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    out = Path(args.out)
    if args.sweep and args.weighting != "fixed":
        raise SystemExit("--sweep varies lambda of the fixed weighting; drop --weighting")
    device = setup(args.seed, args.device, args.threads, deterministic=True)
    train, test, kind = load_data(args.data, seed=args.seed)
    train, test = train.to(device), test.to(device)
    results = []
    for lam in args.sweep or [args.lam]:
        result = run(args, lam, train, test, kind)
        merge(out / "metrics.json", {result["name"]: result})
        plot_curves([result], out / f"{result['name']}.png", ["rmse", "mrr"], title=result["name"])
        results.append(result)
        best = result["final"]
        print(f"{result['name']}: best RMSE {best['rmse']:.4f} (epoch {best['rmse_epoch']}), "
              f"best MRR {best['mrr']:.4f} (epoch {best['mrr_epoch']}), {best['wall_s']} s")
    if args.sweep:
        plot_sweep(results, out / f"sweep-{args.arch}.png", title=f"{args.arch}: lambda sweep")
    print(f"wrote {out / 'metrics.json'}")


if __name__ == "__main__":
    main()
