"""Question 4: your experiment results (results/*.json written by run.py), read here.

Each file is a table of runs in the cs330.training results schema ({name, config, env, history,
final}). The runs the handout requires are checked for what run.py records (settings, model, data
fingerprint, versions, the fine-tuning losses per step) and for the scores stated in the handout.
"""

import json
import math

from cs330.grading import graded, submission_path
from cs330.training.results import schema_problems

ENCODER, LM = "all-minilm-l6-v2", "smollm2-135m-instruct"
# Trainable parameters run.py records: MiniLM with a 5-way head (1,925 of it), and SmolLM2 with LoRA on q_proj/v_proj.
REVIEW_PARAMS = {"head": 1_925, "last": 1_776_389, "all": 22_715_141, "lora4": 38_789}
LM_LORA_PER_RANK = 30 * (576 + 576 + 576 + 192)  # 30 blocks x (q: 576 -> 576, v: 576 -> 192) per unit of rank
REVIEW_LR = {"head": 3e-3, "last": 1e-4, "all": 1e-4, "lora4": 1e-3}  # run.py's learning rate per mode


def table(name):
    """results/<name>.json: {run name: run}, each run checked against the schema."""
    path = submission_path("results", f"{name}.json")
    assert path.is_file(), f"results/{name}.json is missing: run run.py (see the README, question 4)"
    runs = json.loads(path.read_text())
    assert isinstance(runs, dict) and runs, (
        f"results/{name}.json is not a table of runs in the cs330.training schema: rerun run.py"
    )
    for run_name, run in runs.items():
        problems = schema_problems(run)
        assert not problems, f"results/{name}.json, run {run_name!r}: " + "; ".join(problems)
    return runs


def find(runs, file, hint, **config):
    """The run whose config has these values (ICL: order 0), or a failure that says which command writes it."""
    found = [r for r in runs.values() if all(r["config"].get(k) == v for k, v in config.items())]
    if "order" not in config:
        found = [r for r in found if r["config"].get("order", 0) == 0]
    assert found, f"results/{file}.json has no run with {config}: run `{hint}`"
    return found[0]


def required_reviews():
    runs = table("reviews")
    hint = "python run.py reviews --k 0 1 8 --modes head last all lora4"
    out = {(0, m): find(runs, "reviews", hint, k=0, method=m) for m in ("majority", "zero-shot")}
    out.update({(k, m): find(runs, "reviews", hint, k=k, method=m) for k in (1, 8) for m in REVIEW_PARAMS})
    return out


def required_icl():
    runs = table("icl")
    hint = "python run.py icl --task babi --k 0 1 4 --formats instruction --n-eval 50"
    return {k: find(runs, "icl", hint, task="babi", k=k, method="icl-instruction") for k in (0, 1, 4)}


def required_lora_lm():
    hint = "python run.py lora-lm --task babi --k 8 --epochs 2 --max-steps 40"
    return find(table("lora_lm"), "lora_lm", hint, task="babi", k=8)


# The results files earn no autograder points: their figures cannot be verified from a file (one made up
# with the starter code passes every format check), so the staff grade them by hand from the figures
# these tests print. The checks stay, to tell you early what a file lacks.
@graded("4a-0-basic", points=0)
def test_reviews_results():
    """results/reviews.json: k = 0 (majority, zero-shot) and k = 1, 8 for head, last, all and lora4,
    with accuracies in [0, 1]."""
    for (k, method), run in required_reviews().items():
        acc = run["final"].get("accuracy")
        assert isinstance(acc, float) and 0.0 <= acc <= 1.0, f"reviews k={k} {method}: accuracy {acc!r}"
        assert isinstance(run["final"].get("trainable_params"), int), f"reviews k={k} {method}: no trainable_params"


@graded("4b-0-basic", points=0)
def test_icl_results():
    """results/icl.json: bAbI in-context learning at k = 0, 1, 4 (instruction format, order 0)
    on at least 50 questions."""
    for k, run in required_icl().items():
        assert isinstance(run["final"].get("accuracy"), float) and 0.0 <= run["final"]["accuracy"] <= 1.0, (
            f"bAbI ICL k={k}: no accuracy"
        )
        assert run["config"].get("n_eval", 0) >= 50, (
            f"bAbI ICL k={k}: n_eval {run['config'].get('n_eval')}; evaluate at least 50 questions"
        )


@graded("4c-0-basic", points=0)
def test_lora_lm_results():
    """results/lora_lm.json: a LoRA fine-tuning run of the language model on bAbI with k = 8,
    on at least 50 questions."""
    run = required_lora_lm()
    assert run["config"].get("method", "").startswith("lora"), (
        f"bAbI k=8: method {run['config'].get('method')!r} is not LoRA"
    )
    assert run["config"].get("n_eval", 0) >= 50, (
        f"bAbI LoRA k=8: n_eval {run['config'].get('n_eval')}; evaluate at least 50 questions"
    )
    assert isinstance(run["final"].get("accuracy"), float), "bAbI LoRA k=8: no accuracy"


# BEGIN HIDDEN
# The hidden checks below hold the required runs to what run.py writes and to the handout's bars.
REVIEWS_DATA = "53a875d5dddce72c"  # run.data_fingerprint("reviews"), "babi": of the course's data files
BABI_DATA = "b2c8b46e226b6a49"


def check_written_by_run_py(run, what, keys, model, data, expected_name):
    """Settings, model, data, versions and name as run.py records them."""
    config, env = run["config"], run["env"]
    assert set(config) == keys, f"{what}: config keys {sorted(config)}, run.py writes {sorted(keys)}: rerun run.py"
    assert config["model"] == model, f"{what}: model {config['model']!r}, the experiment uses {model!r}"
    assert env["data_fingerprint"] == data, (
        f"{what}: data fingerprint {env['data_fingerprint']!r}, not the course's data: rerun run.py on it"
    )
    assert "torch" in env["versions"], f"{what}: no versions recorded: rerun run.py"
    assert run["name"] == expected_name, f"{what}: the run is named {run['name']!r}, run.py names it {expected_name!r}"


def check_losses(run, what):
    """history: one finite training loss per step 1..steps."""
    history, steps = run["history"], run["config"]["steps"]
    assert [r["step"] for r in history] == list(range(1, steps + 1)), (
        f"{what}: the history does not hold steps 1..{steps}"
    )
    assert all(isinstance(r.get("train_loss"), float) and math.isfinite(r["train_loss"]) for r in history), (
        f"{what}: non-finite training losses"
    )
# END HIDDEN


@graded("4a-1-hidden", points=0)
def test_reviews_runs_from_run_py():
    """The required reviews runs were written by run.py on the course's reviews: settings, model, data fingerprint,
    trainable parameters, learning rate and one training loss per step."""
    runs = required_reviews()
    # BEGIN HIDDEN
    for (k, method), run in runs.items():
        what = f"reviews k={k} {method}"
        keys = {"model", "k", "method"} | ({"steps", "lr", "seed"} if k else set())
        check_written_by_run_py(run, what, keys, ENCODER, REVIEWS_DATA, f"k{k}-{method}")
        final = run["final"]
        assert abs(final["accuracy"] * 500 - round(final["accuracy"] * 500)) < 1e-3, (
            f"{what}: not an accuracy on the 500 evaluation reviews"
        )
        if k == 0:
            assert final["trainable_params"] == 0 and run["history"] == [], f"{what}: k = 0 trains nothing"
            continue
        assert final["trainable_params"] == REVIEW_PARAMS[method], \
            f"{what}: {final['trainable_params']} trainable parameters, expected {REVIEW_PARAMS[method]:,}"
        assert run["config"]["lr"] == REVIEW_LR[method] and run["config"]["steps"] >= 30, (
            f"{what}: not run.py's settings"
        )
        check_losses(run, what)
    # END HIDDEN


@graded("4a-2-hidden", points=0)
def test_reviews_runs_reach_the_bars():
    """Majority 0.200 and zero-shot at least 0.22 on the 500 evaluation reviews; every fine-tuning run's mean
    training loss over its last 5 steps is below 97% of its first step's (the reference: 14% to 94%)."""
    runs = required_reviews()
    # BEGIN HIDDEN
    assert abs(runs[0, "majority"]["final"]["accuracy"] - 0.2) < 1e-6, (
        "the majority class scores 0.2 on the balanced evaluation set"
    )
    assert runs[0, "zero-shot"]["final"]["accuracy"] >= 0.22, (
        f"zero-shot accuracy {runs[0, 'zero-shot']['final']['accuracy']:.3f} < 0.22"
    )
    for (k, method), run in runs.items():
        if k:
            losses = [r["train_loss"] for r in run["history"]]
            assert losses and sum(losses[-5:]) / len(losses[-5:]) < 0.97 * losses[0], (
                f"reviews k={k} {method}: training loss {losses[0]:.3f} -> {losses[-1]:.3f} does not fall "
                "(check the loss and what is trained)"
            )
    # END HIDDEN


@graded("4b-1-hidden", points=0)
def test_icl_runs_from_run_py():
    """The required bAbI ICL runs were written by run.py on bAbI QA1: settings, model, data fingerprint,
    nothing trained."""
    runs = required_icl()
    # BEGIN HIDDEN
    for k, run in runs.items():
        what = f"bAbI ICL k={k}"
        check_written_by_run_py(run, what, {"model", "task", "k", "method", "order", "n_eval", "seed"}, LM, BABI_DATA,
                                f"babi-k{k}-icl-instruction-order0")
        n = run["config"]["n_eval"]
        assert abs(run["final"]["accuracy"] * n - round(run["final"]["accuracy"] * n)) < 1e-6, (
            f"{what}: not an accuracy on {n} questions"
        )
        assert run["final"]["trainable_params"] == 0 and run["history"] == [], (
            f"{what}: in-context learning trains nothing"
        )
    # END HIDDEN


@graded("4b-2-hidden", points=0)
def test_icl_runs_reach_the_bars():
    """bAbI ICL (instruction format, SmolLM2): accuracy at least 0.30 with k = 1 and at least 0.20 with k = 4."""
    acc = {k: run["final"]["accuracy"] for k, run in required_icl().items()}
    # BEGIN HIDDEN
    for k, bar in ((1, 0.30), (4, 0.20)):
        assert acc[k] >= bar, (
            f"bAbI ICL k={k}: accuracy {acc[k]:.2f} < {bar} (check the prompt format and greedy_decode)"
        )
    # END HIDDEN


@graded("4c-1-hidden", points=0)
def test_lora_lm_run_from_run_py():
    """The bAbI LoRA run (k = 8) was written by run.py: settings, model, data fingerprint, trainable parameters
    (57,600 per unit of rank) and one training loss per step."""
    run = required_lora_lm()
    # BEGIN HIDDEN
    what = "bAbI LoRA k=8"
    method = run["config"]["method"]
    keys = {"model", "task", "k", "method", "n_eval", "steps", "lr", "seed"}
    check_written_by_run_py(run, what, keys, LM, BABI_DATA, f"babi-k8-{method}")
    rank = int(method[len("lora"):])
    assert run["final"]["trainable_params"] == LM_LORA_PER_RANK * rank, (
        f"{what}: {run['final']['trainable_params']} trainable parameters, "
        f"LoRA rank {rank} on q_proj/v_proj has {LM_LORA_PER_RANK * rank:,}"
    )
    check_losses(run, what)
    # END HIDDEN


@graded("4c-2-hidden", points=0)
def test_lora_lm_run_reaches_the_bar():
    """bAbI LoRA k = 8 (0-shot prompt at test time): accuracy at least 0.25, and the last step's training loss at most a
    quarter of the first step's."""
    run = required_lora_lm()
    # BEGIN HIDDEN
    assert run["final"]["accuracy"] >= 0.25, f"bAbI LoRA k=8: accuracy {run['final']['accuracy']:.2f} < 0.25"
    losses = [r["train_loss"] for r in run["history"]]
    assert losses and losses[-1] <= 0.25 * losses[0], (
        f"bAbI LoRA k=8: training loss {losses[0]:.3f} -> {losses[-1]:.3f}: "
        "the 8 answers are not fitted (check lm_loss_and_accuracy)"
    )
    # END HIDDEN
