"""Part A: train a black-box learner or MAML on non-mutually-exclusive tasks, with or without a fix.

    python train_memorization.py --learner blackbox --fix none --steps 500      # memorises
    python train_memorization.py --learner blackbox --fix shuffle               # label shuffling
    python train_memorization.py --learner blackbox --fix mr --beta 0.03        # activation bottleneck
    python train_memorization.py --learner maml --fix mr --beta 1e-4            # MR-MAML(W)

Training tasks: ``NonExclusiveEpisodeSampler`` on ``--train_classes`` classes (label j = class group j).
Evaluation: accuracy on fresh training tasks (the distribution trained on) and on mutually exclusive
tasks of new classes (random labels), and support sensitivity (``memorization.support_sensitivity``)
on both. Writes results/partA/<name>.json (config, history, final metrics) and <name>.png.
Data: synthetic glyphs by default; ``--data omniglot`` uses Omniglot under the data root.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from blackbox import BlackBoxClassifier
from cs330.data import EpisodeSampler, NonExclusiveEpisodeSampler
from cs330.models import Conv4
from maml import MAML, MRMAML
from memorization import shuffle_labels, support_sensitivity

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--learner", choices=["blackbox", "maml"], default="blackbox")
    p.add_argument("--fix", choices=["none", "shuffle", "mr"], default="none")
    p.add_argument("--beta", type=float, default=0.0, help="weight of the meta-regulariser (fix=mr)")
    p.add_argument("--n_way", type=int, default=5)
    p.add_argument("--k_shot", type=int, default=1)
    p.add_argument("--n_query", type=int, default=5, help="queries per class")
    p.add_argument("--meta_batch", type=int, default=8)
    p.add_argument("--hidden", type=int, default=16, help="Conv4 channels")
    p.add_argument("--inner_steps", type=int, default=1)
    p.add_argument("--inner_lr", type=float, default=0.4)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--eval_tasks", type=int, default=64)
    p.add_argument("--train_classes", type=int, default=100)
    p.add_argument("--data", choices=["glyphs", "omniglot"], default="glyphs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "partA"))
    p.add_argument("--name", default=None)
    return p.parse_args(argv)


def load_data(a):
    """(train classes, test classes) uint8 images (C, 20, 1, 28, 28), and the data's name."""
    if a.data == "omniglot":
        from cs330.data import Omniglot
        try:
            return Omniglot(split="train").images[:a.train_classes], Omniglot(split="test").images, "omniglot"
        except Exception as e:  # DataNotFoundError and friends
            print(f"Omniglot is not available ({type(e).__name__}); using synthetic glyphs.", file=sys.stderr)
    from cs330.data import make_glyphs
    g = make_glyphs(n_alphabets=20, chars_per_alphabet=20, seed=1000).images  # 400 classes, by alphabet
    return g[:a.train_classes], g[200:], "glyphs"


def build(a):
    torch.manual_seed(a.seed)
    if a.learner == "blackbox":
        return BlackBoxClassifier(a.n_way, hidden=a.hidden, stochastic=a.fix == "mr")
    kw = dict(inner_steps=a.inner_steps, inner_lr=a.inner_lr, vectorize=False)
    if a.fix == "mr":
        return MRMAML(Conv4(a.n_way, hidden=a.hidden), **kw)
    return MAML(Conv4(a.n_way, hidden=a.hidden), **kw)


def evaluate(model, a, sampler, shuffle: bool, seed: int) -> dict:
    """Accuracy and support sensitivity on ``a.eval_tasks`` tasks of ``sampler`` (fixed seed); for MAML also
    the zero-shot accuracy, that of the initialisation before any inner step (the support set unused)."""
    g = torch.Generator().manual_seed(seed)
    accs, sens, zero_shot = [], [], []
    for i in range(a.eval_tasks // a.meta_batch):
        sx, sy, qx, qy = sampler.sample(sampler.generator_for(i))
        if shuffle:
            sy, qy = shuffle_labels(sy, qy, a.n_way, g)
        logits = model.predict(sx, sy, qx)
        accs.append((logits.argmax(-1) == qy).float().mean(-1))
        sens.append(support_sensitivity(model.predict, sx, sy, qx, a.n_way, g))
        if a.learner == "maml":
            zero_shot.append((model.predict(sx, sy, qx, steps=0).argmax(-1) == qy).float().mean(-1))
    out = {"acc": float(torch.cat(accs).mean()), "sensitivity": float(torch.cat(sens).mean())}
    if zero_shot:
        out["zero_shot_acc"] = float(torch.cat(zero_shot).mean())
    return out


def run(a) -> dict:
    torch.set_num_threads(1)
    train_images, test_images, data = load_data(a)
    model = build(a)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    train = NonExclusiveEpisodeSampler(train_images, a.n_way, a.k_shot, a.n_query, a.meta_batch, generator=a.seed)
    train_eval = NonExclusiveEpisodeSampler(train_images, a.n_way, a.k_shot, a.n_query, a.meta_batch, generator=a.seed + 1)
    test_eval = EpisodeSampler(test_images, a.n_way, a.k_shot, a.n_query, a.meta_batch, generator=a.seed + 2)
    g = torch.Generator().manual_seed(a.seed)
    history, t0, shuffle = [], time.time(), a.fix == "shuffle"
    beta = a.beta if a.fix == "mr" else 0.0
    run_loss = run_acc = 0.0
    for step, (sx, sy, qx, qy) in zip(range(1, a.steps + 1), train):
        if shuffle:
            sy, qy = shuffle_labels(sy, qy, a.n_way, g)
        opt.zero_grad(set_to_none=True)
        total, task_loss, reg, acc = model.loss(sx, sy, qx, qy, beta=beta, generator=g)
        total.backward()
        opt.step()
        run_loss, run_acc = 0.9 * run_loss + 0.1 * float(task_loss.detach()), 0.9 * run_acc + 0.1 * float(acc.detach())
        if step % a.eval_every == 0 or step == a.steps:
            debias = 1 - 0.9 ** step
            row = {"step": step, "train_loss": run_loss / debias, "train_acc": run_acc / debias, "reg": float(reg.detach()),
                   "train": evaluate(model, a, train_eval, shuffle, seed=11),
                   "test": evaluate(model, a, test_eval, False, seed=12), "wall_s": time.time() - t0}
            history.append(row)
            print(json.dumps(row), flush=True)
    name = a.name or f"{a.learner}-{a.fix}" + (f"-beta{a.beta:g}" if a.fix == "mr" else "")
    result = {"config": {**vars(a), "data_used": data}, "history": history, "final": history[-1]}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(history, out / f"{name}.png", name, a.n_way)
    return result


def plot(history, path, title, n_way):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = [r["step"] for r in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(s, [r["train"]["acc"] for r in history], label="meta-train tasks")
    ax[0].plot(s, [r["test"]["acc"] for r in history], label="meta-test tasks (new classes)")
    ax[0].axhline(1 / n_way, ls=":", c="gray", label="chance")
    ax[0].set(xlabel="step", ylabel="query accuracy", ylim=(0, 1), title=title)
    ax[0].legend(fontsize=7)
    ax[1].plot(s, [r["train"]["sensitivity"] for r in history], label="meta-train tasks")
    ax[1].plot(s, [r["test"]["sensitivity"] for r in history], label="meta-test tasks")
    ax[1].set(xlabel="step", ylabel="support sensitivity", ylim=(0, 1))
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    run(parse_args())
