"""Run the HW3 experiments; each writes results/<experiment>.json and a plot.

    python run.py reviews --k 0 1 8 128 --modes head last all lora4 lora16     # encoder fine-tuning
    python run.py icl --task babi --k 0 1 4 --formats none instruction custom  # in-context learning
    python run.py icl --task xsum --k 0 1 4 --formats instruction
    python run.py lora-lm --task babi --k 8 32 128                             # LoRA-fine-tuned SmolLM2
    python run.py plot                                                         # redraw every plot
    python run.py table                                                        # Markdown tables of every result

``results/<experiment>.json`` is a table of runs, ``{name: results}`` in the cs330.training results schema
(``merge``: a rerun replaces the run of the same name, e.g. ``k8-lora4`` or ``babi-k4-icl-instruction-order0``):
``config`` the run's settings (model, task, k, method, order, n_eval, steps, lr, seed), ``env`` the device,
versions and data fingerprint (``text_fingerprint`` of the dataset the run read), ``history`` the fine-tuning
losses per step (empty for ICL and k = 0), ``final`` the scores, trainable parameters, wall time (and ICL /
LoRA: the first output). ``rows`` flattens a table for plots, tables and tests. Small settings (``--n-eval``,
``--k``) run on a CPU in minutes. Models come from ``cs330.models.pretrained`` (offline: the installed packages).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import finetune as ft
import icl
from cs330.data import text
from cs330.models.pretrained import load_causal_lm, load_classifier, load_encoder
from cs330.training import add_common_args, environment, make_results, merge, setup
from cs330.training.results import ResultsError, schema_problems

HERE = Path(__file__).resolve().parent
ENCODER, LM = "all-minilm-l6-v2", "smollm2-135m-instruct"
EVAL_SEED = 1234  # fixes every evaluation set; k-shot training sets use --seed


# ----------------------------------------------------------------------------------------------
# Results files


# a row's settings; the rest is its outcome
CONFIG = ("model", "task", "k", "method", "order", "n_eval", "steps", "lr", "seed")


def text_fingerprint(*texts: list[str]) -> str:
    """sha1 (16 hex digits) of lists of strings (a dataset as loaded): the same value means the same data."""
    h = hashlib.sha1()
    for strings in texts:
        h.update(f"{len(strings)}\n".encode())
        for t in strings:
            h.update(t.encode() + b"\0")
    return h.hexdigest()[:16]


def data_fingerprint(task: str) -> str:
    """The fingerprint of everything an experiment on ``task`` ("reviews", "babi", "xsum") reads from the data root."""
    if task == "reviews":
        data = text.load_clothing_reviews()
        return text_fingerprint(data.texts, [str(int(y)) for y in data.labels])
    if task == "babi":
        splits = [text.load_babi(1, split) for split in ("train", "test")]
        return text_fingerprint(*[[" ".join(ex.story) + "|" + ex.question + "|" + ex.answer for ex in examples]
                                  for examples in splits])
    docs = text.load_xsum()
    return text_fingerprint([d.document for d in docs], [d.summary for d in docs])


def record(row: dict, env: dict, history: list[dict] = ()) -> dict:
    """One row of an experiment (settings and outcome, flat) as a run in the results schema."""
    name = "-".join([*([row["task"]] if "task" in row else []), f"k{row['k']}", row["method"],
                     *([f"order{row['order']}"] if "order" in row else [])])
    return make_results(name, {k: row[k] for k in CONFIG if k in row}, env, list(history),
                        {k: v for k, v in row.items() if k not in CONFIG})


def loss_history(losses: list[float]) -> list[dict]:
    """``ft.finetune``'s training losses as history rows ``{step, train_loss}`` (steps 1, 2, ...)."""
    return [{"step": i + 1, "train_loss": loss} for i, loss in enumerate(losses)]


def rows(path: Path) -> list[dict]:
    """The runs of a results table, each flattened to ``{**config, **final, "device": env's device}``."""
    table = json.loads(path.read_text())
    for name, run in table.items():
        problems = schema_problems(run)
        if problems:
            raise ResultsError(f"{path}, run {name!r}: " + "; ".join(problems))
    return [{**run["config"], **run["final"], "device": run["env"]["device"]} for run in table.values()]


def save_runs(experiment: str, runs: list[dict], out: Path) -> Path:
    """Merge ``runs`` (results) into out/<experiment>.json by name and redraw its plot."""
    path = out / f"{experiment}.json"
    merge(path, {run["name"]: run for run in runs})
    plot(path)
    return path


def plot(path: Path) -> None:
    """Metric against k, one line per method (and per task for ICL / LoRA), next to the JSON (a plot over k,
    not over training steps: ``plot_curves`` does not apply)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = rows(path)
    metrics = [m for m in ("accuracy", "rougeL") if any(m in r for r in found)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        lines: dict[str, list] = {}
        for r in found:
            if metric in r and r.get("order", 0) == 0:
                lines.setdefault(f"{r.get('task', '')} {r['method']}".strip(), []).append((r["k"], r[metric]))
        for label, pts in sorted(lines.items()):
            pts.sort()
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        ax.set(xscale="symlog", xlabel="k (examples per class / in the prompt)", ylabel=metric, title=path.stem)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.with_suffix(".png"), dpi=100)
    plt.close(fig)


def table(path: Path) -> str:
    """A Markdown table of one results file (the tables in RESULTS.md are printed by this)."""
    found = rows(path)
    cols = ["task", "k", "method", "order", "accuracy", "rouge1", "rouge2", "rougeL", "n_eval", "steps",
            "trainable_params", "wall_s", "device"]
    cols = [c for c in cols if any(c in r for r in found)]
    def fmt(col, v):
        if isinstance(v, float):
            return f"{v:.0f}" if col == "wall_s" else f"{v:.3f}"
        return f"{v:,}" if isinstance(v, int) and col != "k" else str(v)

    def key(r):
        return r.get("task", ""), r["k"], r["method"], r.get("order", 0)

    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(fmt(c, r.get(c, "")) for c in cols) + " |" for r in sorted(found, key=key)]
    return f"### {path.stem}\n\n" + "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# Experiment 1: fine-tuning the encoder on star-rated reviews


def review_splits(root=None) -> tuple[text.TextClassification, text.TextClassification]:
    """(pool, evaluation): evaluation is 100 reviews per star rating (500, fixed by EVAL_SEED); pool is the rest."""
    data = text.load_clothing_reviews(root)
    evaluation = text.k_shot_per_class(data, 100, seed=EVAL_SEED)
    held = set(evaluation.texts)
    pool = data.subset([i for i, t in enumerate(data.texts) if t not in held])
    return pool, evaluation


@torch.no_grad()
def classify(model, tokenizer, texts, device, batch_size=64, max_length=128) -> torch.Tensor:
    model.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
        out.append(model(**enc.to(device)).logits.argmax(-1).cpu())
    return torch.cat(out)


@torch.no_grad()
def zero_shot_embedding(texts, label_names, device, batch_size=64) -> torch.Tensor:
    """k = 0: the label whose description embeds closest (cosine of mean-pooled MiniLM embeddings) to the text."""
    tokenizer, model = load_encoder(ENCODER)
    model.to(device).eval()

    def embed(batch):
        enc = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt").to(device)
        h = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        return torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=-1)

    labels = embed([f"A review that gives the product {name} out of 5." for name in label_names])
    texts_emb = torch.cat([embed(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)])
    return (texts_emb @ labels.T).argmax(-1).cpu()


def run_reviews(args) -> None:
    pool, evaluation = review_splits()
    truth, runs, env = evaluation.labels, [], environment(args.device, data_fingerprint("reviews"))
    for k in args.k:
        if k == 0:
            start = time.time()
            majority = int(pool.class_counts().argmax())
            majority_accuracy = float((truth == majority).float().mean())
            runs.append(record(dict(model=ENCODER, k=0, method="majority", accuracy=majority_accuracy,
                                    trainable_params=0, wall_s=0.0), env))
            pred = zero_shot_embedding(evaluation.texts, evaluation.label_names, args.device)
            runs.append(record(dict(model=ENCODER, k=0, method="zero-shot",
                                    accuracy=float((pred == truth).float().mean()), trainable_params=0,
                                    wall_s=round(time.time() - start, 1)), env))
            print(*[{**r["config"], **r["final"]} for r in runs[-2:]], sep="\n", flush=True)
            continue
        train = text.k_shot_per_class(pool, k, seed=args.seed)
        for mode in args.modes:
            start = time.time()
            tokenizer, model = load_classifier(ENCODER, num_labels=5, seed=args.seed)
            params = ft.parameters_to_finetune(model, mode, seed=args.seed)
            batch_size = min(16, len(train))
            steps = ft.steps_for(len(train), batch_size, epochs=args.epochs, max_steps=args.max_steps)

            def make_batch(index, train=train, tokenizer=tokenizer):
                enc = tokenizer([train.texts[i] for i in index], padding=True, truncation=True, max_length=128,
                                return_tensors="pt")
                return {**enc, "labels": train.labels[index]}

            lr = {"head": 3e-3}.get(mode, 1e-3 if mode.startswith("lora") else 1e-4)
            losses = ft.finetune(model, params, ft.epoch_batches(len(train), batch_size, make_batch, args.seed), steps,
                                 lr, ft.classification_loss_and_accuracy, args.device)
            pred = classify(model, tokenizer, evaluation.texts, args.device)
            runs.append(record(dict(model=ENCODER, k=k, method=mode, accuracy=float((pred == truth).float().mean()),
                                    steps=steps, lr=lr, trainable_params=ft.count_parameters(params),
                                    wall_s=round(time.time() - start, 1), seed=args.seed), env, loss_history(losses)))
            print({**runs[-1]["config"], **runs[-1]["final"]}, flush=True)
    print(save_runs("reviews", runs, args.out))


# ----------------------------------------------------------------------------------------------
# Experiment 2: in-context learning with SmolLM2; experiment 3: LoRA fine-tuning it


def task_data(task: str, n_eval: int):
    """(training pool, evaluation list, prompt function, generation settings) for bAbI QA1 or XSum."""
    rng = np.random.default_rng(EVAL_SEED)
    if task == "babi":
        pool, test = text.load_babi(1, "train"), text.load_babi(1, "test")
        evaluation = [test[i] for i in rng.choice(len(test), n_eval, replace=False)]
        return pool, evaluation, icl.babi_prompt, dict(max_new_tokens=6)
    docs = text.load_xsum()  # one file of 1,000: the first 500 are the evaluation pool, the rest the examples
    evaluation = [docs[i] for i in rng.choice(500, n_eval, replace=False)]
    return docs[500:], evaluation, icl.xsum_prompt, dict(max_new_tokens=40)


def score(task: str, outputs: list[str], evaluation) -> dict:
    if task == "babi":
        return {"accuracy": float(np.mean([icl.babi_correct(o, ex.answer) for o, ex in zip(outputs, evaluation)]))}
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(ex.summary, o.strip()) for o, ex in zip(outputs, evaluation)]
    return {name: float(np.mean([s[name].fmeasure for s in scores])) for name in ("rouge1", "rouge2", "rougeL")}


def generate_all(model, tokenizer, prompts, device, max_new_tokens, desc) -> list[str]:
    stop = icl.stop_ids_for(tokenizer)
    outputs = []
    for prompt in tqdm(prompts, desc=desc, leave=False):
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)
        new = icl.greedy_decode(model, ids, max_new_tokens, stop)
        outputs.append(tokenizer.decode(new[0], skip_special_tokens=True))
    return outputs


def run_icl(args) -> None:
    tokenizer, model = load_causal_lm(LM)
    model.to(args.device).eval()
    pool, evaluation, make_prompt, gen = task_data(args.task, args.n_eval)
    runs, env = [], environment(args.device, data_fingerprint(args.task))
    for k in args.k:
        for style in args.formats:
            for order in range(args.orders if k > 1 else 1):
                start = time.time()
                prompts = []
                for i, query in enumerate(evaluation):
                    rng = np.random.default_rng([args.seed, i])  # the same k examples for every format and order
                    support = [pool[j] for j in rng.choice(len(pool), k, replace=False)]
                    if order:
                        support = [support[j] for j in np.random.default_rng([order, i]).permutation(k)]
                    prompts.append(make_prompt(support, query, style))
                outputs = generate_all(model, tokenizer, prompts, args.device, gen["max_new_tokens"],
                                       f"{args.task} k={k} {style}")
                runs.append(record(dict(model=LM, task=args.task, k=k, method=f"icl-{style}", order=order,
                                        **score(args.task, outputs, evaluation), n_eval=len(evaluation),
                                        trainable_params=0, wall_s=round(time.time() - start, 1), seed=args.seed,
                                        example_output=outputs[0]), env))
                shown = {**runs[-1]["config"], **runs[-1]["final"]}
                print({k: v for k, v in shown.items() if k != "example_output"}, flush=True)
    print(save_runs("icl", runs, args.out))


def run_lora_lm(args) -> None:
    pool, evaluation, make_prompt, gen = task_data(args.task, args.n_eval)
    runs, env = [], environment(args.device, data_fingerprint(args.task))
    for k in args.k:
        start = time.time()
        tokenizer, model = load_causal_lm(LM)
        params = ft.parameters_to_finetune(model, f"lora{args.rank}", seed=args.seed)
        rng = np.random.default_rng(args.seed)
        train = [pool[j] for j in rng.choice(len(pool), k, replace=False)]
        prompts = [make_prompt([], ex, "instruction") for ex in train]
        targets = [" " + (ex.answer if args.task == "babi" else ex.summary) for ex in train]
        batch_size = min(8, k)
        steps = ft.steps_for(k, batch_size, epochs=args.epochs, min_steps=10, max_steps=args.max_steps)

        def make_batch(index, tokenizer=tokenizer, prompts=prompts, targets=targets):
            return ft.tokenize_prompt_target(tokenizer, [prompts[i] for i in index], [targets[i] for i in index],
                                             max_length=args.max_length)

        losses = ft.finetune(model, params, ft.epoch_batches(k, batch_size, make_batch, args.seed), steps, args.lr,
                             ft.lm_loss_and_accuracy, args.device, log_every=10)
        outputs = generate_all(model, tokenizer, [make_prompt([], q, "instruction") for q in evaluation], args.device,
                               gen["max_new_tokens"], f"{args.task} LoRA k={k}")
        runs.append(record(dict(model=LM, task=args.task, k=k, method=f"lora{args.rank}",
                                **score(args.task, outputs, evaluation), n_eval=len(evaluation), steps=steps,
                                lr=args.lr, trainable_params=ft.count_parameters(params),
                                wall_s=round(time.time() - start, 1), seed=args.seed, example_output=outputs[0]),
                           env, loss_history(losses)))
        shown = {**runs[-1]["config"], **runs[-1]["final"]}
        print({k: v for k, v in shown.items() if k != "example_output"}, flush=True)
    print(save_runs("lora_lm", runs, args.out))


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "lr", "seed", "device", "threads", "out", out=str(HERE / "results"))  # --lr: LoRA LM only
    p.add_argument("experiment", choices=["reviews", "icl", "lora-lm", "plot", "table"])
    p.add_argument("--k", type=int, nargs="+", default=[0, 1, 8])
    p.add_argument("--modes", nargs="+", default=["head", "last", "all", "lora4", "lora16"])
    p.add_argument("--task", choices=["babi", "xsum"], default="babi")
    p.add_argument("--formats", nargs="+", choices=icl.FORMATS, default=["instruction"])
    p.add_argument("--orders", type=int, default=1, help="ICL: example orderings to try for k > 1")
    p.add_argument("--n-eval", type=int, default=50, help="ICL / LoRA: evaluation questions or articles")
    p.add_argument("--epochs", type=float, default=5.0,
                   help="fine-tuning passes over the k-shot set (capped by --max-steps)")
    p.add_argument("--max-steps", type=int, default=150)
    p.add_argument("--rank", type=int, default=8, help="LoRA LM rank")
    p.add_argument("--max-length", type=int, default=384, help="LoRA LM: tokens per training sequence")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    args.out = Path(args.out)
    if args.experiment in ("plot", "table"):
        for path in sorted(args.out.glob("*.json")):
            plot(path) if args.experiment == "plot" else print(table(path))
        return
    args.device = str(setup(args.seed, args.device, args.threads))
    {"reviews": run_reviews, "icl": run_icl, "lora-lm": run_lora_lm}[args.experiment](args)


if __name__ == "__main__":
    main()
