"""Part A: train a black-box learner or MAML on non-mutually-exclusive tasks, with or without a fix.

    python train_memorization.py --learner blackbox --fix none --steps 500      # memorises
    python train_memorization.py --learner blackbox --fix shuffle               # label shuffling
    python train_memorization.py --learner blackbox --fix mr --beta 0.03        # activation bottleneck
    python train_memorization.py --learner maml --fix mr --beta 1e-4            # MR-MAML(W)

Training tasks: ``NonExclusiveEpisodeSampler`` on ``--train-classes`` classes (label j = class group j).
Evaluation every ``--eval-every`` steps on ``--eval-tasks`` fixed tasks: query accuracy and support
sensitivity (``memorization.support_sensitivity``) on fresh training tasks (``meta_train_*``, the
distribution trained on) and on mutually exclusive tasks of new classes with random labels
(``meta_test_*``); for MAML also the zero-shot accuracy (the initialisation, support unused).
Writes ``<out>/<name>.json`` (cs330.training results schema) and ``<out>/<name>.png``.
Data: ``--data glyphs`` (default) is Part A's synthetic set (20 alphabets x 20 characters, seed 1000;
new classes: alphabets 10-19); ``--data omniglot`` the course split under the data root (``cs330 data info``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from blackbox import BlackBoxClassifier
from cs330.data import EpisodeSampler, NonExclusiveEpisodeSampler, make_glyphs
from cs330.models import Conv4
from cs330.training import (RunState, add_common_args, environment, fingerprint, make_results, omniglot_or_glyphs,
                            plot_curves, save_results, setup, train_loop)
from maml import MAML, MRMAML
from memorization import shuffle_labels, support_sensitivity

HERE = Path(__file__).resolve().parent


def load_data(data: str, train_classes: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(train classes, new classes) uint8 images (C, 20, 1, 28, 28), and the source (``glyphs`` / ``omniglot``)."""
    if data == "glyphs":
        glyphs = make_glyphs(n_alphabets=20, chars_per_alphabet=20, seed=1000).images  # 400 classes, by alphabet
        return glyphs[:train_classes], glyphs[200:], "glyphs"
    splits, source = omniglot_or_glyphs("omniglot", splits=("train", "test"))
    return splits["train"][:train_classes], splits["test"], source


def build(learner: str, fix: str, n_way: int, hidden: int, inner_steps: int, inner_lr: float) -> torch.nn.Module:
    """The learner; the meta-regulariser's variant (stochastic encoder / MR-MAML) when ``fix == "mr"``."""
    if learner == "blackbox":
        return BlackBoxClassifier(n_way, hidden=hidden, stochastic=fix == "mr")
    maml = MRMAML if fix == "mr" else MAML
    return maml(Conv4(n_way, hidden=hidden), inner_steps=inner_steps, inner_lr=inner_lr, vectorize=False)


def evaluate(model, sampler, n_tasks: int, n_way: int, shuffle: bool, seed: int) -> dict:
    """Query accuracy and support sensitivity on ``n_tasks`` tasks of ``sampler`` (its fixed per-index seeds);
    for MAML also ``zero_shot_acc``, that of the initialisation before any inner step."""
    g = torch.Generator().manual_seed(seed)
    accs, sens, zero_shot = [], [], []
    for i in range(n_tasks // sampler.batch_size):
        sx, sy, qx, qy = sampler.sample(sampler.generator_for(i))
        if shuffle:
            sy, qy = shuffle_labels(sy, qy, n_way, g)
        accs.append((model.predict(sx, sy, qx).argmax(-1) == qy).float().mean(-1))
        sens.append(support_sensitivity(model.predict, sx, sy, qx, n_way, g))
        if isinstance(model, MAML):
            zero_shot.append((model.predict(sx, sy, qx, steps=0).argmax(-1) == qy).float().mean(-1))
    out = {"acc": float(torch.cat(accs).mean()), "sensitivity": float(torch.cat(sens).mean())}
    if zero_shot:
        out["zero_shot_acc"] = float(torch.cat(zero_shot).mean())
    return out


def train(learner="blackbox", fix="none", beta=0.0, n_way=5, k_shot=1, n_query=5, meta_batch_size=8, hidden=16,
          inner_steps=1, inner_lr=0.4, lr=3e-3, steps=500, eval_every=100, eval_tasks=64, train_classes=100,
          data="glyphs", seed=0, name=None, progress=True, log=print) -> dict:
    """Meta-train on non-exclusive tasks for ``steps`` Adam steps; return the results (cs330.training schema).

    ``history`` rows: step, train_loss / train_acc / train_reg (smoothed, on the training tasks), meta_train_*
    and meta_test_* (acc, sensitivity, MAML: zero_shot_acc), time_s. ``final``: the last row.
    """
    device = setup(seed, "cpu", threads=1)  # small tensors: one thread is fastest
    train_images, test_images, data = load_data(data, train_classes)
    model = build(learner, fix, n_way, hidden, inner_steps, inner_lr)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    shuffle, beta = fix == "shuffle", beta if fix == "mr" else 0.0
    shape = (n_way, k_shot, n_query, meta_batch_size)
    train_tasks = NonExclusiveEpisodeSampler(train_images, *shape, generator=seed)
    train_eval = NonExclusiveEpisodeSampler(train_images, *shape, generator=seed + 1)
    # mutually exclusive: new classes, random labels
    test_eval = EpisodeSampler(test_images, *shape, generator=seed + 2)
    g = torch.Generator().manual_seed(seed)  # label shuffling and the learners' noise

    def step_fn(step: int) -> dict:
        sx, sy, qx, qy = train_tasks.sample(train_tasks.generator_for(step))  # meta-batch `step`, seeded by its index
        if shuffle:
            sy, qy = shuffle_labels(sy, qy, n_way, g)
        opt.zero_grad(set_to_none=True)
        total, task_loss, reg, acc = model.loss(sx, sy, qx, qy, beta=beta, generator=g)
        total.backward()
        opt.step()
        return {"loss": float(task_loss.detach()), "acc": float(acc.detach()), "reg": float(reg.detach())}

    def evaluate_fn(step: int) -> dict:
        on_train = evaluate(model, train_eval, eval_tasks, n_way, shuffle, seed=11)
        on_test = evaluate(model, test_eval, eval_tasks, n_way, False, seed=12)
        return {**{f"meta_train_{k}": v for k, v in on_train.items()},
                **{f"meta_test_{k}": v for k, v in on_test.items()}}

    state = train_loop(step_fn, evaluate_fn, RunState(), steps=steps, eval_every=eval_every, progress=progress, log=log,
                       desc=f"{learner} {fix}")
    config = {"learner": learner, "fix": fix, "beta": beta, "n_way": n_way, "k_shot": k_shot, "n_query": n_query,
              "meta_batch_size": meta_batch_size, "hidden": hidden, "inner_steps": inner_steps, "inner_lr": inner_lr,
              "lr": lr, "steps": steps, "eval_tasks": eval_tasks, "train_classes": train_classes, "data": data,
              "seed": seed}
    env = environment(device, fingerprint({"train": train_images, "test": test_images}))
    name = name or f"{learner}-{fix}" + (f"-beta{beta:g}" if fix == "mr" else "")
    return make_results(name, config, env, state.history, dict(state.history[-1]))


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "n_way", "k_shot", "n_query", "meta_batch_size", "lr", "steps", "eval_every", "seed", "out",
                    "no_progress", n_query=5, meta_batch_size=8, lr=3e-3, steps=500,
                    out=str(HERE / "results" / "partA"))
    p.add_argument("--learner", choices=["blackbox", "maml"], default="blackbox")
    p.add_argument("--fix", choices=["none", "shuffle", "mr"], default="none")
    p.add_argument("--beta", type=float, default=0.0, help="weight of the meta-regulariser (fix=mr)")
    p.add_argument("--hidden", type=int, default=16, help="Conv4 channels")
    p.add_argument("--inner-steps", type=int, default=1)
    p.add_argument("--inner-lr", type=float, default=0.4)
    p.add_argument("--eval-tasks", type=int, default=64, help="tasks per evaluation, of each kind")
    p.add_argument("--train-classes", type=int, default=100,
                   help="the training pool (5: every task the same 5 classes)")
    p.add_argument("--data", choices=["glyphs", "omniglot"], default="glyphs")
    p.add_argument("--name", default=None, help="default: <learner>-<fix>[-beta<beta>]")
    return p


def main(argv=None) -> dict:
    args = vars(build_parser().parse_args(argv))
    out, progress = Path(args.pop("out")), not args.pop("no_progress")
    result = train(**args, progress=progress)
    save_results(out / f"{result['name']}.json", result)
    metrics = ["meta_train_acc", "meta_test_acc", "meta_train_sensitivity", "meta_test_sensitivity"]
    plot_curves([result], out / f"{result['name']}.png", metrics, title=result["name"], chance=1 / args["n_way"],
                ylims={m: (0, 1) for m in metrics})
    return result


if __name__ == "__main__":
    main()
