"""Question 2e: a short training run on synthetic glyphs; question 3: your results/*.json from Omniglot.

``student`` is your code: in the autograder the training run (``probes.short_run``: train.train with
your sampler and model) runs in a separate sandboxed process and its history comes back as data.
The results files are read here.
"""

import math

import probes
from cs330.grading import graded, submission_path
from cs330.training import load_results


@graded("2e-0-basic", points=3, timeout=60)
def test_short_training_run_beats_chance(student):
    """400 steps of 2-way 1-shot on synthetic glyphs (train.train, your sampler and model): the query loss
    drops clearly below chance (ln 2) or the query accuracy reaches 60%.

    A model that cannot use the support labels stays at ln 2 = 0.693 and 50%; the reference reaches
    0.45-0.62 and 60-89% across seeds in ~10 s."""
    history = student.probe(probes.short_run, steps=400, seed=0)
    assert isinstance(history, list) and history and all(isinstance(r, dict) for r in history), "train.train must return a history of rows"
    for key in ("train_loss", "test_loss", "test_acc"):
        assert all(isinstance(r.get(key), (int, float)) for r in history), f"history rows need a number {key!r}"
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["test_loss"]) for r in history), "non-finite losses"
    final_loss, best_acc = history[-1]["test_loss"], max(r["test_acc"] for r in history)
    assert final_loss < 0.66 or best_acc >= 0.6, (
        f"after 400 steps: test query loss {final_loss:.3f} (chance 0.693), best accuracy {best_acc:.3f}: the model does not learn")


# ---------------------------------------------------------------------------------------------
# Question 3: the artifacts of your Omniglot runs (python train.py ..., see the README)

REQUIRED = {(1, 2): 0.75, (2, 2): 0.75, (1, 3): 0.55, (1, 4): 0.45}  # (K, N): least best test accuracy (hidden check)


def load_run(name):
    path = submission_path("results", f"{name}.json")
    assert path.is_file(), f"results/{name}.json is missing: run train.py (see the README)"
    return load_results(path)  # raises, naming the file and the problem, when it is not in the results schema


def check_run(name, run):
    config, history = run["config"], run["history"]
    assert history, f"{name}: empty history"
    for key in ("step", "train_loss", "test_loss", "test_acc"):
        assert key in history[0], f"{name}: history rows lack {key!r}"
    steps = [r["step"] for r in history]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), f"{name}: steps must increase"
    assert steps[-1] == config["steps"], f"{name}: the history ends at step {steps[-1]}, config says {config['steps']}"
    assert all(0 <= r["test_acc"] <= 1 for r in history), f"{name}: accuracies outside [0, 1]"
    assert abs(run["final"]["test_acc"] - history[-1]["test_acc"]) < 1e-9, f"{name}: final test_acc is not the last test accuracy"


@graded("3a-0-basic", points=2)
def test_required_runs():
    """results/lstm-k{K}-n{N}.json for (K, N) = (1, 2), (2, 2), (1, 3), (1, 4): LSTM runs of at least 1000 steps with a history."""
    for (K, N) in REQUIRED:
        name = f"lstm-k{K}-n{N}"
        run = load_run(name)
        config = run["config"]
        assert (config["k_shot"], config["n_way"], config["model"]) == (K, N, "lstm"), f"{name}.json holds another run: {config}"
        assert config["steps"] >= 1000, f"{name}: {config['steps']} steps; train for at least 1000 (the course runs 25000)"
        check_run(name, run)


@graded("3a-1-hidden", points=3)
def test_required_runs_learned():
    """The required runs are on Omniglot and clearly beat chance."""
    runs = {f"lstm-k{K}-n{N}": (K, N, load_run(f"lstm-k{K}-n{N}")) for (K, N) in REQUIRED}
    # BEGIN HIDDEN
    for name, (K, N, run) in runs.items():
        assert run["config"]["data"] == "omniglot", f"{name}: trained on {run['config']['data']}, not Omniglot"
        best = max(r["test_acc"] for r in run["history"])
        assert best >= REQUIRED[(K, N)], f"{name}: best test query accuracy {best:.3f}, expected at least {REQUIRED[(K, N)]}"
        assert run["history"][-1]["test_loss"] < math.log(N), f"{name}: final test loss is not below chance (ln {N})"
    # END HIDDEN


@graded("3b-0-basic", points=2)
def test_variant_and_experiment_runs():
    """1-shot 3-way: a variant (results/conv_lstm-k1-n3.json or transformer-k1-n3.json) and your experiment
    (results/<model>-k1-n3-<tag>.json, written by train.py --tag ...)."""
    folder = submission_path("results")
    variants = [f"{m}-k1-n3" for m in ("conv_lstm", "transformer") if (folder / f"{m}-k1-n3.json").is_file()]
    assert variants, "no variant run: run train.py --k_shot 1 --n_way 3 --model conv_lstm (or transformer)"
    experiments = sorted(p.stem for p in folder.glob("*-k1-n3-*.json"))
    assert experiments, "no experiment run: run train.py --k_shot 1 --n_way 3 --tag <name> with your change"
    for name in variants + experiments:
        check_run(name, load_run(name))
