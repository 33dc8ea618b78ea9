"""Question 4: your experiment results (results/*.json written by run.py)."""

import json

from cs330.grading import graded, submission_path
from cs330.training.results import schema_problems


def rows(name):
    """results/<name>.json, a table {run name: results} in the cs330.training schema (each run checked),
    as flat rows {**config, **final, "device": ...}."""
    path = submission_path("results", f"{name}.json")
    assert path.is_file(), f"results/{name}.json is missing: run run.py (see the README, question 4)"
    table = json.loads(path.read_text())
    assert isinstance(table, dict) and "rows" not in table, \
        f"results/{name}.json is not a table of runs in the cs330.training schema: rerun run.py (see the README)"
    assert table, f"results/{name}.json has no runs"
    for run_name, run in table.items():
        problems = schema_problems(run)
        assert not problems, f"results/{name}.json, run {run_name!r}: " + "; ".join(problems)
    return [{**run["config"], **run["final"], "device": run["env"]["device"]} for run in table.values()]


def has(rows_, **want):
    return [r for r in rows_ if all(r.get(k) == v for k, v in want.items())]


@graded("4a-0-basic", points=2)
def test_reviews_results():
    """results/reviews.json: k = 0 (majority, zero-shot) and k = 1, 8 for head, last, all and lora4, with accuracies and counts."""
    found = rows("reviews")
    for method in ("majority", "zero-shot"):
        assert has(found, k=0, method=method), f"no k=0 row for {method!r}"
    for k in (1, 8):
        for method in ("head", "last", "all", "lora4"):
            match = has(found, k=k, method=method)
            assert match, f"no row for k={k}, method={method!r}: run `python run.py reviews --k 1 8`"
            r = match[0]
            assert 0.0 <= r["accuracy"] <= 1.0 and r["trainable_params"] > 0, f"row {r} has an impossible value"
    heads = [r["trainable_params"] for r in has(found, method="head")]
    alls = [r["trainable_params"] for r in has(found, method="all")]
    assert max(heads) < min(alls), "head-only must train fewer parameters than full fine-tuning"


@graded("4b-0-basic", points=2)
def test_icl_results():
    """results/icl.json: bAbI in-context learning at k = 0, 1, 4 (instruction format) with accuracies."""
    found = has(rows("icl"), task="babi", method="icl-instruction")
    for k in (0, 1, 4):
        match = has(found, k=k)
        assert match, f"no bAbI ICL row for k={k}: run `python run.py icl --task babi --k 0 1 4`"
        assert 0.0 <= match[0]["accuracy"] <= 1.0 and match[0]["n_eval"] >= 20, f"row {match[0]}: need n_eval >= 20"


@graded("4c-0-basic", points=1)
def test_lora_lm_results():
    """results/lora_lm.json: at least one LoRA fine-tuning run of the language model on bAbI."""
    found = has(rows("lora_lm"), task="babi")
    assert found, "no bAbI row: run `python run.py lora-lm --task babi --k 8`"
    assert all(0 < r["trainable_params"] < 135_000_000 for r in found), "LoRA trains a small part of the model"
