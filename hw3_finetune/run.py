"""Run the HW3 experiments; each writes results/<experiment>.json (rows merged across runs) and a plot.

    python run.py reviews --k 0 1 8 128 --modes head last all lora4 lora16     # encoder fine-tuning
    python run.py icl --task babi --k 0 1 4 --formats none instruction custom  # in-context learning
    python run.py icl --task xsum --k 0 1 4 --formats instruction
    python run.py lora-lm --task babi --k 8 32 128                             # LoRA-fine-tuned SmolLM2
    python run.py plot                                                         # redraw every plot
    python run.py table                                                        # Markdown tables of every result

Small settings (``--n_eval``, ``--k``) run on a laptop CPU in minutes; every row records its wall time
and device. Models come from ``cs330.models.pretrained`` (offline: the installed packages).
"""

from __future__ import annotations

import argparse
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

HERE = Path(__file__).resolve().parent
ENCODER, LM = "all-minilm-l6-v2", "smollm2-135m-instruct"
EVAL_SEED = 1234  # fixes every evaluation set; k-shot training sets use --seed


# ----------------------------------------------------------------------------------------------
# Results files


def save_rows(experiment: str, rows: list[dict], out: Path, key: tuple[str, ...]) -> Path:
    """Merge ``rows`` into out/<experiment>.json, replacing rows with the same ``key`` fields."""
    path = out / f"{experiment}.json"
    old = json.loads(path.read_text())["rows"] if path.is_file() else []
    new_keys = {tuple(r[f] for f in key) for r in rows}
    merged = [r for r in old if tuple(r.get(f) for f in key) not in new_keys] + rows
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"experiment": experiment, "rows": merged}, indent=1) + "\n")
    plot(path)
    return path


def plot(path: Path) -> None:
    """Metric against k, one line per method (and per task for ICL / LoRA), next to the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = json.loads(path.read_text())["rows"]
    metrics = [m for m in ("accuracy", "rougeL") if any(m in r for r in rows)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        lines: dict[str, list] = {}
        for r in rows:
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
    rows = json.loads(path.read_text())["rows"]
    cols = ["task", "k", "method", "order", "accuracy", "rouge1", "rouge2", "rougeL", "n_eval", "steps",
            "trainable_params", "wall_s", "device"]
    cols = [c for c in cols if any(c in r for r in rows)]
    def fmt(col, v):
        if isinstance(v, float):
            return f"{v:.0f}" if col == "wall_s" else f"{v:.3f}"
        return f"{v:,}" if isinstance(v, int) and col != "k" else str(v)

    key = lambda r: (r.get("task", ""), r["k"], r["method"], r.get("order", 0))
    lines = ["| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    lines += ["| " + " | ".join(fmt(c, r.get(c, "")) for c in cols) + " |" for r in sorted(rows, key=key)]
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
        enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
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
    truth, rows = evaluation.labels, []
    for k in args.k:
        if k == 0:
            start = time.time()
            majority = int(pool.class_counts().argmax())
            rows.append(dict(k=0, method="majority", accuracy=float((truth == majority).float().mean()),
                             trainable_params=0, wall_s=0.0, device=args.device))
            pred = zero_shot_embedding(evaluation.texts, evaluation.label_names, args.device)
            rows.append(dict(k=0, method="zero-shot", accuracy=float((pred == truth).float().mean()),
                             trainable_params=0, wall_s=round(time.time() - start, 1), device=args.device))
            print(rows[-2], rows[-1], sep="\n", flush=True)
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
            ft.finetune(model, params, ft.epoch_batches(len(train), batch_size, make_batch, args.seed), steps, lr,
                        ft.classification_loss_and_accuracy, args.device)
            pred = classify(model, tokenizer, evaluation.texts, args.device)
            rows.append(dict(k=k, method=mode, accuracy=float((pred == truth).float().mean()), steps=steps, lr=lr,
                             trainable_params=ft.count_parameters(params), wall_s=round(time.time() - start, 1),
                             device=args.device, seed=args.seed))
            print(rows[-1], flush=True)
    print(save_rows("reviews", rows, args.out, ("k", "method")))


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
    rows = []
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
                outputs = generate_all(model, tokenizer, prompts, args.device, gen["max_new_tokens"], f"{args.task} k={k} {style}")
                rows.append(dict(task=args.task, k=k, method=f"icl-{style}", order=order, **score(args.task, outputs, evaluation),
                                 n_eval=len(evaluation), trainable_params=0, wall_s=round(time.time() - start, 1),
                                 device=args.device, example_output=outputs[0]))
                print({key: v for key, v in rows[-1].items() if key != "example_output"}, flush=True)
    print(save_rows("icl", rows, args.out, ("task", "k", "method", "order")))


def run_lora_lm(args) -> None:
    pool, evaluation, make_prompt, gen = task_data(args.task, args.n_eval)
    rows = []
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

        def make_batch(index):
            return ft.tokenize_prompt_target(tokenizer, [prompts[i] for i in index], [targets[i] for i in index],
                                             max_length=args.max_length)

        ft.finetune(model, params, ft.epoch_batches(k, batch_size, make_batch, args.seed), steps, args.lr,
                    ft.lm_loss_and_accuracy, args.device, log_every=10)
        outputs = generate_all(model, tokenizer, [make_prompt([], q, "instruction") for q in evaluation], args.device,
                               gen["max_new_tokens"], f"{args.task} LoRA k={k}")
        rows.append(dict(task=args.task, k=k, method=f"lora{args.rank}", **score(args.task, outputs, evaluation),
                         n_eval=len(evaluation), steps=steps, lr=args.lr, trainable_params=ft.count_parameters(params),
                         wall_s=round(time.time() - start, 1), device=args.device, example_output=outputs[0]))
        print({key: v for key, v in rows[-1].items() if key != "example_output"}, flush=True)
    print(save_rows("lora_lm", rows, args.out, ("task", "k", "method")))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=["reviews", "icl", "lora-lm", "plot", "table"])
    p.add_argument("--k", type=int, nargs="+", default=[0, 1, 8])
    p.add_argument("--modes", nargs="+", default=["head", "last", "all", "lora4", "lora16"])
    p.add_argument("--task", choices=["babi", "xsum"], default="babi")
    p.add_argument("--formats", nargs="+", choices=icl.FORMATS, default=["instruction"])
    p.add_argument("--orders", type=int, default=1, help="ICL: example orderings to try for k > 1")
    p.add_argument("--n_eval", type=int, default=50, help="ICL / LoRA: evaluation questions or articles")
    p.add_argument("--epochs", type=float, default=5.0)
    p.add_argument("--max_steps", type=int, default=150)
    p.add_argument("--lr", type=float, default=1e-3, help="LoRA LM learning rate")
    p.add_argument("--rank", type=int, default=8, help="LoRA LM rank")
    p.add_argument("--max_length", type=int, default=384, help="LoRA LM: tokens per training sequence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.experiment in ("plot", "table"):
        for path in sorted(args.out.glob("*.json")):
            plot(path) if args.experiment == "plot" else print(table(path))
        return
    {"reviews": run_reviews, "icl": run_icl, "lora-lm": run_lora_lm}[args.experiment](args)


if __name__ == "__main__":
    main()
