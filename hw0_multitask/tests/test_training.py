"""Question 5: a short seeded training run; question 6: your submitted results/metrics.json
(a table of runs in the cs330.training results schema, as train.py writes it)."""

import json
import math

import torch

import probes
from cs330.data.synthetic import make_ratings
from cs330.grading import graded, submission_path
from cs330.training.metrics import mean_reciprocal_rank, rmse
from cs330.training.results import schema_problems

# Synthetic low-rank ratings (~7,800 train / ~2,000 test): predicting the training mean gives test
# RMSE ~1.1 and a random ranking MRR ~0.12; the reference reaches RMSE 0.64-0.72 and MRR 0.53-0.64 in 12
# epochs (~1 s each run), in every architecture and weighting.
EPOCHS = 12


def short_run(student, arch="shared", weighting="fixed", lam=0.5, seed=0):
    """Train on small synthetic ratings for EPOCHS epochs with your train.fit (probes.short_run, in
    your process, which sees the held-out pairs but not their ratings); returns the history with
    test RMSE and MRR per epoch, computed here from your model's predictions."""
    data = make_ratings(n_users=200, n_items=300, rank=4, ratings_per_user=40, noise=0.3, seed=seed)
    train, test = data.split(test_fraction=0.2, seed=seed)
    train_data = {"users": train.users, "items": train.items, "ratings": train.ratings, "n_users": train.n_users, "n_items": train.n_items}
    out = student.probe(probes.short_run, train_data, (test.users, test.items), arch=arch, weighting=weighting, lam=lam, seed=seed,
                        epochs=EPOCHS)
    assert isinstance(out, dict) and len(out.get("predictions", [])) == EPOCHS, f"{arch}-{weighting}: train.fit must evaluate after each of the {EPOCHS} epochs"
    seen, relevant = train.interactions().mask(), test.interactions().mask()
    history = []
    for losses, pred in zip(out["losses"], out["predictions"]):
        ratings, scores = pred["ratings"], pred["scores"]
        assert isinstance(ratings, torch.Tensor) and ratings.shape == (len(test),), "predict_rating must give one rating per pair"
        assert isinstance(scores, torch.Tensor) and scores.shape == (train.n_users, train.n_items), "score_all must give (U, n_items)"
        history.append({**losses, "rmse": rmse(ratings, test.ratings), "mrr": mean_reciprocal_rank(scores, seen, relevant)})
    return history


def check_band(history, max_rmse, min_mrr, what):
    best_rmse = min(r["rmse"] for r in history)
    best_mrr = max(r["mrr"] for r in history)
    assert all(math.isfinite(r["loss_rank"]) and math.isfinite(r["loss_rate"]) for r in history), f"{what}: non-finite losses"
    assert best_rmse < max_rmse, f"{what}: best test RMSE {best_rmse:.3f}, expected below {max_rmse}"
    assert best_mrr > min_mrr, f"{what}: best MRR {best_mrr:.3f}, expected above {min_mrr}"


@graded("5a-0-basic", points=3, timeout=60)
def test_short_training_run(student):
    """Shared embeddings, lam = 0.5, 12 epochs on synthetic ratings: RMSE < 0.85 and MRR > 0.3."""
    check_band(short_run(student, "shared", "fixed", 0.5), max_rmse=0.85, min_mrr=0.3, what="shared, lam 0.5")


@graded("5a-1-hidden", points=4, timeout=60)
def test_short_training_runs_hidden(student):
    """Separate embeddings, uncertainty weighting and PCGrad also train (another seed)."""
    histories = {f"{arch}-{w}": short_run(student, arch, w, 0.5, seed=1)
                 for arch, w in (("separate", "fixed"), ("shared", "uncertainty"), ("shared", "pcgrad"))}
    # BEGIN HIDDEN
    for what, history in histories.items():
        check_band(history, max_rmse=0.85, min_mrr=0.3, what=what)
    # END HIDDEN


# ---------------------------------------------------------------------------------------------
# Question 6: the artifact from your runs on MovieLens 100K

REQUIRED = ("shared-fixed-lam0.5", "separate-fixed-lam0.5", "shared-uncertainty", "shared-pcgrad")


def load_runs():
    """results/metrics.json: a table {run name: results} in the cs330.training schema, each checked."""
    path = submission_path("results", "metrics.json")
    assert path.is_file(), "results/metrics.json is missing: run train.py (see the README)"
    runs = json.loads(path.read_text())
    assert isinstance(runs, dict) and "runs" not in runs, \
        "results/metrics.json is not a table of runs in the cs330.training schema: rerun train.py (see the README)"
    for name, run in runs.items():
        problems = schema_problems(run)
        assert not problems, f"results/metrics.json, run {name!r}: " + "; ".join(problems)
        assert run["name"] == name, f"results/metrics.json: the entry {name!r} holds the run {run['name']!r}"
    return runs


@graded("6a-0-basic", points=2)
def test_metrics_artifact():
    """results/metrics.json holds the required runs and a lambda sweep, each with a per-epoch history."""
    runs = load_runs()
    missing = [name for name in REQUIRED if name not in runs]
    assert not missing, f"results/metrics.json lacks the run(s) {missing}; it has {sorted(runs)}"
    sweep = {r["config"]["lam"] for r in runs.values() if r["config"]["arch"] == "shared" and r["config"]["weighting"] == "fixed"}
    assert len(sweep) >= 4, f"the lambda sweep needs at least 4 values of lambda (shared, fixed), found {sorted(sweep)}"
    for name, run in runs.items():
        assert run["history"], f"{name}: empty history"
        for key in ("step", "rmse", "mrr", "loss_rank", "loss_rate"):
            assert key in run["history"][0], f"{name}: history rows lack {key!r}"


@graded("6a-1-hidden", points=3)
def test_metrics_artifact_hidden():
    """The runs are on the real MovieLens 100K and their numbers are plausible."""
    runs = load_runs()
    # BEGIN HIDDEN
    for run_name, record in runs.items():
        config, final = record["config"], record["final"]
        assert config["data"] == "real", f"{run_name}: trained on {config['data']} data, not MovieLens 100K"
        assert final["n_train"] + final["n_test"] == 100_000, f"{run_name}: {final['n_train']} + {final['n_test']} ratings, expected 100,000"
        assert len(record["history"]) == config["epochs"], f"{run_name}: history length != epochs"
        rmse, mrr = [r["rmse"] for r in record["history"]], [r["mrr"] for r in record["history"]]
        assert abs(final["rmse"] - min(rmse)) < 1e-9 and abs(final["mrr"] - max(mrr)) < 1e-9, f"{run_name}: best != history"
        assert all(0.0 <= m <= 1.0 for m in mrr), f"{run_name}: MRR outside [0, 1]"
        if run_name in REQUIRED:
            assert 0.80 < final["rmse"] < 0.97, f"{run_name}: best RMSE {final['rmse']:.3f} is implausible (expected 0.80-0.97)"
            assert 0.05 < final["mrr"] < 0.6, f"{run_name}: best MRR {final['mrr']:.3f} is implausible (expected 0.05-0.6)"
    # END HIDDEN
