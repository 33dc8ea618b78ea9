"""Question 3: short seeded training runs on synthetic glyphs; question 4: your results/metrics.json."""

import json
import math
import tempfile

from cs330.grading import graded, student_module, submission_path

CHANCE = 0.2  # 5-way


def short_run(algorithm, iterations, seed=0, **extra):
    """Train train.py's ``fit`` on synthetic glyphs (Conv4 with 16 channels, 4 tasks of 5-way 1-shot per step)
    and return its validation history. The reference reaches ~0.78 (ProtoNet, 40 steps) and ~0.74
    (MAML, 60 steps) validation accuracy in about 5 s each."""
    train = student_module("train")  # the training script, running your protonet.py / maml.py
    with tempfile.TemporaryDirectory() as checkpoints:
        args = train.options(algorithm=algorithm, data="glyphs", hidden=16, meta_batch_size=4, n_query=5,
                             steps=iterations, eval_every=iterations, val_tasks=100, lr=3e-3, seed=seed, device="cpu",
                             checkpoint_dir=checkpoints, **extra)
        return train.fit(args, progress=False)


def check_run(history, min_acc, what):
    assert history and math.isfinite(history[-1]["train_loss"]), f"{what}: training produced no finite loss"
    acc = history[-1]["val_acc"]
    assert acc > min_acc, f"{what}: validation accuracy {acc:.3f}, expected > {min_acc} (chance {CHANCE})"


@graded("3a-0-basic", points=2, timeout=60)
def test_protonet_short_run():
    """ProtoNet, 40 meta-iterations on synthetic glyphs: validation accuracy > 0.5 (chance 0.2)."""
    check_run(short_run("protonet", 40), 0.5, "ProtoNet")


@graded("3a-1-hidden", points=2, timeout=60)
def test_maml_short_run():
    """Second-order MAML, 60 meta-iterations on synthetic glyphs (another seed): validation accuracy > 0.5."""
    history = short_run("maml", 60, 1)
    # BEGIN HIDDEN
    check_run(history, min_acc=0.5, what="second-order MAML")
    # END HIDDEN


# ---------------------------------------------------------------------------------------------
# Question 4: the artifact of your runs on Omniglot (python train.py ... --test)

REQUIRED = ("protonet_5w1s", "maml_5w1s_K1")


def load_metrics():
    path = submission_path("results", "metrics.json")
    assert path.is_file(), "results/metrics.json is missing: run train.py with --test (see the README)"
    return json.loads(path.read_text())


@graded("4a-0-basic", points=2)
def test_metrics_artifact():
    """results/metrics.json has 5-way 1-shot ProtoNet and MAML test results over >= 600 tasks, well above chance."""
    metrics = load_metrics()
    for key in REQUIRED:
        assert key in metrics, f"results/metrics.json has no {key!r} entry (run: python train.py --algorithm ... --test)"
        r = metrics[key]
        assert r["n_tasks"] >= 600, f"{key}: tested on {r['n_tasks']} tasks, need >= 600"
        assert r["n_way"] == 5 and r["k_shot"] == 1, f"{key}: expected 5-way 1-shot"
        assert 0.6 < r["test_acc"] <= 1.0, f"{key}: test accuracy {r['test_acc']:.3f} is not plausible (chance 0.2)"
        assert 0 < r["ci95"] < 0.05, f"{key}: 95% CI half-width {r['ci95']} is not plausible"


@graded("4a-1-hidden", points=1)
def test_metrics_consistent():
    """Reported CI matches the number of tasks (a binomial-like spread), and iterations are recorded."""
    metrics = load_metrics()
    # BEGIN HIDDEN
    for name in REQUIRED:
        r = metrics[name]
        # the CI half-width 1.96 * std / sqrt(n) with std <= 0.5 (accuracies in [0, 1])
        assert r["ci95"] <= 1.96 * 0.5 / math.sqrt(r["n_tasks"]) + 1e-9, f"{name}: CI too wide for {r['n_tasks']} tasks"
        assert r.get("iterations", 0) > 0, f"{name}: no training iterations recorded"
    # END HIDDEN
