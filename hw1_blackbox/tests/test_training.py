"""Question 2e: a short training run on synthetic glyphs; question 3: your results/*.json from Omniglot.

``student`` is your code: in the autograder the training run (``probes.short_run``: train.train with
your sampler and model) runs in a separate sandboxed process. It sees held-out episodes without their
query labels and sends back its predictions; the accuracy is computed here. The results files are read here.
"""

import math

import torch
import torch.nn.functional as F

import probes
from cs330.grading import drawn_seed, expect_tensor, graded, submission_path
from cs330.training import load_results


def held_out_episodes(n_tasks=512, n_way=2, draw="2e-0"):
    """1-shot episodes of glyph characters the short run never sees, built here: images (T, 2, N, 784),
    labels (T, 2, N, N) with the query row zeroed (what your model sees), and the query row's class
    indices (T, N) (kept here). The characters come from a glyph set drawn per grading (``drawn_seed``),
    not from the public one the run trains on, so no code can look the query images up."""
    from cs330.data import make_glyphs

    glyphs = make_glyphs(n_alphabets=12, chars_per_alphabet=20, n_drawers=20, seed=drawn_seed(f"{draw} glyphs"),
                         jitter=1.0).images[160:]
    pixels = glyphs.reshape(glyphs.shape[0], glyphs.shape[1], -1).float()  # 0/1 masks, as prepare_images leaves them
    g = torch.Generator().manual_seed(drawn_seed(f"{draw} episodes"))
    chars = torch.stack([torch.randperm(len(pixels), generator=g)[:n_way] for _ in range(n_tasks)])  # (T, N)
    drawers = torch.stack([torch.randperm(pixels.shape[1], generator=g)[:2] for _ in range(n_tasks * n_way)])
    drawers = drawers.view(n_tasks, n_way, 2)
    # (T, N, 784) each, column n = label n
    support, query = pixels[chars, drawers[..., 0]], pixels[chars, drawers[..., 1]]
    # query position j shows label order[j]
    order = torch.stack([torch.randperm(n_way, generator=g) for _ in range(n_tasks)])
    query = query.gather(1, order[..., None].expand_as(query))
    labels = torch.zeros(n_tasks, 2, n_way, n_way)
    labels[:, 0] = torch.eye(n_way)
    return torch.stack([support, query], dim=1), labels, order


@graded("2e-0-basic", points=3, timeout=60)
def test_short_training_run_beats_chance(student):
    """400 steps of 2-way 1-shot on synthetic glyphs (train.train, your sampler and model): on 512 held-out
    episodes, the query predictions after some evaluation reach a cross-entropy clearly below chance
    (< 0.66; chance is ln 2 = 0.693) or an accuracy of at least 60%.

    A model that cannot use the support labels stays at ln 2 and 50%; the reference passes with margin
    in seconds (see RESULTS.md)."""
    images, labels, query_labels = held_out_episodes()
    out = student.probe(probes.short_run, images, labels, steps=400, seed=drawn_seed("2e-0 init") % 2**31)
    assert isinstance(out, dict) and isinstance(out.get("train_loss"), list), "train.train must return its history"
    assert all(isinstance(x, (int, float)) and math.isfinite(x) for x in out["train_loss"]), (
        "non-finite training losses"
    )
    logits = out.get("query_logits")
    assert isinstance(logits, list) and len(logits) == 4, "train.train must evaluate every 100 of the 400 steps"
    losses, accs = [], []
    for step_logits in logits:
        step_logits = expect_tensor(step_logits, "MANN.forward's query row", (len(images), 2, 2))
        assert torch.isfinite(step_logits).all(), "non-finite query predictions"
        losses.append(float(F.cross_entropy(step_logits.reshape(-1, 2), query_labels.reshape(-1))))
        accs.append(float((step_logits.argmax(-1) == query_labels).float().mean()))
    assert min(losses) < 0.66 or max(accs) >= 0.6, (
        f"after 100-400 steps: held-out query loss {min(losses):.3f} at best (chance 0.693), "
        f"accuracy {max(accs):.3f} at best: the model does not learn from the support set "
        "(are the support labels concatenated to the images, is the loss on the query row, are the LSTMs run in order?)"
    )


# ---------------------------------------------------------------------------------------------
# Question 3: the artifacts of your Omniglot runs (python train.py ..., see the README)

# (K, N): the best test query accuracy each required run must reach in its history (the handout states these).
# 3000 steps (minutes a run on one CPU core) reach them with margin: the reference's results/ runs reach best 0.917 /
# 0.932 / 0.813 / 0.581 and cross the bars at steps 600 / 700 / 1500 / 1900; an older sampler's random stream
# gave 0.905 / 0.938 / 0.798 / 0.596 at 3000 steps (RESULTS.md).
REQUIRED = {(1, 2): 0.85, (2, 2): 0.88, (1, 3): 0.72, (1, 4): 0.50}
CONFIG_KEYS = {"n_way", "k_shot", "meta_batch_size", "model", "seed", "data", "lr", "hidden_dim", "steps"}


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
    assert abs(run["final"]["test_acc"] - history[-1]["test_acc"]) < 1e-9, (
        f"{name}: final test_acc is not the last test accuracy"
    )


# The results files earn no autograder points: their figures cannot be verified from a file (one made up
# with the starter code passes every format check), so the staff grade them by hand from the figures
# these tests print. The checks stay, to tell you early what a file lacks.
@graded("3a-0-basic", points=0)
def test_required_runs():
    """results/lstm-k{K}-n{N}.json for (K, N) = (1, 2), (2, 2), (1, 3), (1, 4): LSTM runs of at least 1000 steps
    with a history."""
    for (K, N) in REQUIRED:
        name = f"lstm-k{K}-n{N}"
        run = load_run(name)
        config = run["config"]
        assert (config["k_shot"], config["n_way"], config["model"]) == (K, N, "lstm"), (
            f"{name}.json holds another run: {config}"
        )
        assert config["steps"] >= 1000, (
            f"{name}: {config['steps']} steps; train for at least 1000 (the course runs 25000)"
        )
        check_run(name, run)
        # for the staff, who grade question 3 from these figures
        print(f"{name}: best test query accuracy {max(r['test_acc'] for r in run['history']):.3f}, "
              f"{config['steps']} steps")


@graded("3a-1-hidden", points=0)
def test_required_runs_from_train_py():
    """The required runs were written by train.py on Omniglot: config, name, data fingerprint and summary agree."""
    runs = {f"lstm-k{K}-n{N}": load_run(f"lstm-k{K}-n{N}") for (K, N) in REQUIRED}
    # BEGIN HIDDEN
    # cs330.training.fingerprint of Omniglot's course train and test splits, as train.py loads them
    omniglot = "d83648dab9db5612"
    for name, run in runs.items():
        settings, rows = run["config"], run["history"]
        missing = CONFIG_KEYS - set(settings)
        assert not missing, f"{name}: the config lacks {sorted(missing)}: not written by train.py"
        assert settings["data"] == "omniglot", f"{name}: trained on {settings['data']}, not Omniglot"
        assert run["env"]["data_fingerprint"] == omniglot, (
            f"{name}: data fingerprint {run['env']['data_fingerprint']}, not Omniglot's: "
            "rerun train.py on Omniglot (cs330 data info)"
        )
        assert run["name"] == name, f"results/{name}.json holds the run {run['name']!r}"
        accs = [r["test_acc"] for r in rows]
        assert run["final"].get("best_test_acc") == max(accs), (
            f"{name}: final best_test_acc is not the best of its history"
        )
    # END HIDDEN


@graded("3a-2-hidden", points=0)
def test_required_runs_reach_the_bars():
    """Each required run's history reaches its bar of best test query accuracy: (K, N) = (1, 2) 0.85, (2, 2) 0.88,
    (1, 3) 0.72, (1, 4) 0.50."""
    best = {(K, N): max(r["test_acc"] for r in load_run(f"lstm-k{K}-n{N}")["history"]) for (K, N) in REQUIRED}
    # BEGIN HIDDEN
    for (K, N), acc in best.items():
        assert acc >= REQUIRED[(K, N)], (
            f"lstm-k{K}-n{N}: best test query accuracy {acc:.3f}, the bar is {REQUIRED[(K, N)]} "
            "(3000 steps reach it with the reference; see the README)"
        )
    # END HIDDEN


@graded("3b-0-basic", points=0)
def test_variant_and_experiment_runs():
    """1-shot 3-way: a variant (results/conv_lstm-k1-n3.json or transformer-k1-n3.json) and your experiment
    (results/<model>-k1-n3-<tag>.json, written by train.py --tag ...)."""
    folder = submission_path("results")
    variants = [f"{m}-k1-n3" for m in ("conv_lstm", "transformer") if (folder / f"{m}-k1-n3.json").is_file()]
    assert variants, "no variant run: run python train.py --k-shot 1 --n-way 3 --model conv_lstm (or transformer)"
    experiments = sorted(p.stem for p in folder.glob("*-k1-n3-*.json"))
    assert experiments, "no experiment run: run python train.py --k-shot 1 --n-way 3 --tag <name> with your change"
    for name in variants + experiments:
        check_run(name, load_run(name))
