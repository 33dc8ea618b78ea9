"""Question 3: short seeded training runs on synthetic glyphs; question 4: your results/metrics.json.

``student`` is your code: in the autograder the training run (``probes.short_run``: train.py's ``fit``
with your protonet.py / maml.py) runs in a separate sandboxed process. It returns the trained weights
(ProtoNet) or the adapted parameters of held-out tasks (MAML); the queries are predicted and scored
here, with the given Conv4, and their labels never leave this process. The results file is read here.
"""

import json
import math

import torch
from torch.func import functional_call
from torch.nn import functional as F

import probes
from cs330.data import EpisodeSampler
from cs330.models import Conv4
from cs330.grading import drawn_seed, expect_tensor, graded, submission_path
from cs330.training import glyph_splits
from cs330.training.results import schema_problems

CHANCE = 0.2  # 5-way
HELD_OUT_TASKS = 60


def held_out(draw):
    """60 5-way 1-shot tasks (5 queries per class) from the test alphabets of a glyph set drawn per grading
    (``drawn_seed``): characters no public set holds, so none can be looked up, and never trained on.
    The support sets are label-major; the queries are shuffled, so their order says nothing of their labels."""
    g = torch.Generator().manual_seed(drawn_seed(f"{draw} tasks"))
    test_glyphs = glyph_splits(drawn_seed(f"{draw} glyphs"))["test"]
    support_x, support_y, query_x, query_y = EpisodeSampler(test_glyphs, 5, 1, 5, batch_size=HELD_OUT_TASKS,
                                                          generator=g.initial_seed()).sample(g)
    order = torch.rand(query_y.shape, generator=g).argsort(dim=1)
    return support_x, support_y, query_x[torch.arange(HELD_OUT_TASKS)[:, None], order], query_y.gather(1, order)


def predictions(algorithm, out, support_x, support_y, query_x):
    """The trained model's predictions on the held-out queries (B, N*Q), computed here from the data your process
    returned (``probes.short_run``) with the given Conv4 (16 channels): ProtoNet's nearest class mean of the
    trained encoder's embeddings (support and query embedded in one pass, as ``ProtoNet.logits``), or the argmax
    of MAML's network with each task's adapted parameters."""
    if algorithm == "protonet":
        encoder = Conv4(None, hidden=16).double()
        weights = out.get("encoder")
        assert isinstance(weights, dict), "protonet: the trained model's encoder weights did not come back"
        encoder.load_state_dict({n: expect_tensor(w, f"encoder weight {n}").double() for n, w in weights.items()})
        with torch.no_grad():
            z = encoder(torch.cat([support_x, query_x], dim=1).double())
            zs, zq = z[:, :support_x.shape[1]], z[:, support_x.shape[1]:]
            one_hot = F.one_hot(support_y, 5).double()  # (B, N*K, N)
            means = one_hot.transpose(1, 2) @ zs / one_hot.sum(1)[..., None]
            return torch.cdist(zq, means).argmin(-1)
    model = Conv4(5, hidden=16).double()
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    rows = []
    for task, qx in zip(out.get("adapted") or [], query_x):
        assert isinstance(task, dict) and set(task) == set(shapes), (
            f"maml: inner_loop on a held-out task must return every parameter name, got {type(task).__name__}")
        params = {n: expect_tensor(task[n], f"adapted {n}", shapes[n]).double() for n in shapes}
        with torch.no_grad():
            rows.append(functional_call(model, params, (qx.double(),)).argmax(-1))
    assert len(rows) == len(query_x), "maml: no adapted parameters for some held-out tasks"
    return torch.stack(rows)


def short_run(student, algorithm, steps, draw):
    """Train with train.fit on glyphs (probes.short_run, in your process); the held-out query accuracy of the
    trained model, run and measured here."""
    support_x, support_y, query_x, query_y = held_out(draw)
    seed = drawn_seed(f"{draw} init") % 2**31
    out = student.probe(probes.short_run, algorithm, steps, seed, support_x, support_y, query_x)
    history = out["history"]
    assert history and all(math.isfinite(r["train_loss"]) for r in history), (
        f"{algorithm}: training produced no finite loss"
    )
    return float((predictions(algorithm, out, support_x, support_y, query_x) == query_y).double().mean())


@graded("3a-0-basic", points=2, timeout=60)
def test_protonet_short_run(student):
    """ProtoNet, 40 meta-iterations on synthetic glyphs: accuracy on 60 held-out 5-way 1-shot tasks > 0.5 (chance 0.2).
    The reference reaches 0.76-0.79 over seeds 0-2 in seconds."""
    acc = short_run(student, "protonet", 40, draw="3a-0")
    assert acc > 0.5, f"ProtoNet: held-out accuracy {acc:.3f} after 40 iterations, expected > 0.5 (chance {CHANCE})"


@graded("3a-1-hidden", points=2, timeout=60)
def test_maml_short_run(student):
    """Second-order MAML, 60 meta-iterations on synthetic glyphs (other tasks): held-out accuracy > 0.5.
    The reference reaches 0.68-0.73 over seeds 0-2 in seconds."""
    acc = short_run(student, "maml", 60, draw="3a-1")
    # BEGIN HIDDEN
    assert acc > 0.5, (
        f"second-order MAML: held-out accuracy {acc:.3f} after 60 iterations, expected > 0.5 (chance {CHANCE})"
    )
    # END HIDDEN


# ---------------------------------------------------------------------------------------------
# Question 4: the artifact of your runs on Omniglot (python train.py ... --test)

# the least test accuracy of each required entry (5-way 1-shot, >= 600 test tasks): what the
# smallest run in the README's table reaches on a CPU, with a margin (RESULTS.md has the curves)
REQUIRED = {"protonet_5w1s": ("protonet", 0.90), "maml_5w1s_K1": ("maml", 0.85)}
# cs330.training.fingerprint of Omniglot's course splits (train, val, test) as train.py loads them
OMNIGLOT = "42e99c69d7d33e82"
CONFIG_KEYS = ("algorithm", "n_way", "k_shot", "n_query", "meta_batch_size", "inner_steps", "inner_lr", "lr", "seed",
               "data", "test_n_way", "test_k_shot", "test_tasks")
FINAL_KEYS = ("test_acc", "ci95", "n_tasks", "n_way", "k_shot", "iterations", "best_val_acc")


def load_entry(name):
    """results/metrics.json's entry ``name``: a run in the cs330.training results schema,
    as train.py --test writes it."""
    path = submission_path("results", "metrics.json")
    assert path.is_file(), "results/metrics.json is missing: run train.py with --test (see the README)"
    table = json.loads(path.read_text())
    assert isinstance(table, dict) and name in table, \
        f"results/metrics.json has no {name!r} entry (run: python train.py --algorithm ... --test, see the README)"
    entry = table[name]
    problems = schema_problems(entry)
    assert not problems, \
        f"results/metrics.json, {name!r} is not an entry written by train.py --test: " + "; ".join(problems)
    missing = [k for k in CONFIG_KEYS if k not in entry["config"]] + [k for k in FINAL_KEYS if k not in entry["final"]]
    assert not missing, f"results/metrics.json, {name!r} lacks {missing}: rerun train.py --test"
    return entry


# The results files earn no autograder points: their figures cannot be verified from a file (one made up
# with the starter code passes every format check), so the staff grade them by hand from the figures
# these tests print. The checks stay, to tell you early what a file lacks.
@graded("4a-0-basic", points=0)
def test_metrics_entries():
    """results/metrics.json has the 5-way 1-shot ProtoNet and MAML entries of train.py --test, each over >= 600 test
    tasks, with the history of the checkpoint it tested (its last row is the tested iteration)."""
    for name, (algorithm, _) in REQUIRED.items():
        entry = load_entry(name)
        config, final, history = entry["config"], entry["final"], entry["history"]
        assert entry["name"] == name and config["algorithm"] == algorithm, (
            f"{name}: the entry holds another run ({entry['name']}, {config['algorithm']})"
        )
        assert (config["n_way"], config["k_shot"], config["test_n_way"], config["test_k_shot"]) == (5, 1, 5, 1), \
            f"{name}: expected a run trained and tested 5-way 1-shot, got config {config}"
        assert final["n_tasks"] >= 600 and final["n_tasks"] == config["test_tasks"], (
            f"{name}: tested on {final['n_tasks']} tasks, need >= 600"
        )
        assert history and history[-1]["step"] == final["iterations"] > 0, \
            f"{name}: the history must end at the tested checkpoint's iteration {final['iterations']}"
        assert abs(history[-1]["val_acc"] - final["best_val_acc"]) < 1e-9, (
            f"{name}: best_val_acc is not the tested checkpoint's validation accuracy"
        )
        # for the staff, who grade question 4 from these figures
        print(f"{name}: test accuracy {final['test_acc']:.3f} +- {final['ci95']:.3f} over {final['n_tasks']} tasks, "
              f"{final['iterations']} iterations")


@graded("4a-1-basic", points=0)
def test_metrics_on_omniglot():
    """The required entries were trained and tested on Omniglot (train.py records the data's fingerprint)."""
    for name in REQUIRED:
        entry = load_entry(name)
        assert entry["config"]["data"] == "omniglot" and entry["env"]["data_fingerprint"] == OMNIGLOT, (
            f"{name}: not run on Omniglot's course splits (data {entry['config']['data']!r}, fingerprint "
            f"{entry['env']['data_fingerprint']!r}, expected {OMNIGLOT!r}): "
            "get the data (cs330 data info) and rerun train.py"
        )


@graded("4a-2-hidden", points=0)
def test_metrics_accuracy():
    """Each required entry reaches its test accuracy (README: ProtoNet >= 0.90, MAML >= 0.85)
    with a CI that fits its task count."""
    entries = {name: load_entry(name) for name in REQUIRED}
    # BEGIN HIDDEN
    for name, entry in entries.items():
        final, least = entry["final"], REQUIRED[name][1]
        assert least <= final["test_acc"] <= 1, (
            f"{name}: test accuracy {final['test_acc']:.4f}, the README asks for >= {least}"
        )
        # the CI half-width 1.96 * std / sqrt(n) with std <= 0.5 (accuracies in [0, 1])
        assert 0 < final["ci95"] <= 1.96 * 0.5 / math.sqrt(final["n_tasks"]) + 1e-9, (
            f"{name}: CI {final['ci95']} does not fit {final['n_tasks']} tasks"
        )
    # END HIDDEN
