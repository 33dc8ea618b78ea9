"""Train the black-box meta-learner (model.py) on episodes from data_generator.py.

    python train.py --n-way 2 --k-shot 1 --steps 3000              # writes results/lstm-k1-n2.{json,png}
    python train.py --n-way 3 --k-shot 1 --model transformer --steps 3000
    python train.py --data glyphs ...                              # synthetic glyphs, no files needed
    python train.py --compare results/lstm-k?-n?.json --tag lstm   # one plot of several runs: results/compare-lstm.png
    python train.py --n-way 4 --steps 25000 --time-limit 1800 --resume   # continue from results/ckpt/lstm-k1-n4.pt

Every --eval-every steps it measures the query accuracy and loss on --eval-batches meta-batches of
held-out characters (the test split, fixed episodes), logs them and saves a checkpoint,
``<out>/ckpt/<run>.pt`` (git-ignored), which ``--resume`` continues from (a longer ``--steps``, or
after ``--time-limit``, Ctrl-C or a kill). At the end it writes ``<out>/<run>.json`` (the
cs330.training results schema) and ``<out>/<run>.png`` (curves), where ``<run>`` is
``<model>-k<K>-n<N>`` plus ``-<tag>`` if given. Omniglot is read from the data root (``CS330_DATA``,
see ``cs330 data info``); where it is absent the script says so and uses the synthetic glyphs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import data_generator as dg
import model as mann
from cs330.training import (RunState, add_common_args, environment, fingerprint, load_checkpoint, load_results,
                            make_results, omniglot_or_glyphs, plot_curves, save_checkpoint, save_results, setup,
                            train_loop)


def evaluate(net, images: torch.Tensor, n_way: int, k_shot: int, batch_size: int, n_batches: int,
             seed: int, device) -> dict:
    """Mean query loss and accuracy over ``n_batches`` fixed (seeded) meta-batches of ``images``."""
    g = torch.Generator().manual_seed(seed)
    net.eval()
    losses, accs = [], []
    with torch.no_grad():
        for _ in range(n_batches):
            x, y = dg.sample_batch(images, n_way, k_shot, batch_size, g)
            x, y = x.to(device), y.to(device)
            preds = net(x, y)
            losses.append(mann.loss_function(preds, y).item())
            accs.append(mann.query_accuracy(preds, y))
    net.train()
    return {"test_loss": sum(losses) / len(losses), "test_acc": sum(accs) / len(accs)}


def train(n_way: int = 2, k_shot: int = 1, meta_batch_size: int = 128, steps: int = 1000, model: str = "lstm",
          seed: int = 0, device: str = "cpu", data: str = "omniglot", lr: float = 1e-3, hidden_dim: int = 128,
          eval_every: int = 100, eval_batches: int = 4, train_images: torch.Tensor | None = None,
          test_images: torch.Tensor | None = None, root=None, time_limit: float | None = None,
          progress: bool = True, log=print, checkpoint: str | Path | None = None, resume: bool = False,
          name: str | None = None, evaluator=None) -> dict:
    """Train a MANN for ``steps`` Adam steps; return its results (cs330.training schema).

    ``history`` rows: step, train_loss (smoothed), test_loss, test_acc, time_s; ``final``: test_acc (the
    last row's), best_test_acc, wall_time_s. ``train_images`` / ``test_images`` (C, D, 1, 28, 28) override
    loading ``data``. ``time_limit`` (seconds, this call): stop after an evaluation once it has passed;
    ``config["steps"]`` is then the steps done. ``checkpoint`` (a ``.pt`` path): saved at every evaluation;
    with ``resume`` too, training continues from it if it exists (the same settings are required).
    ``evaluator(net, step)`` (default: ``evaluate`` on the test split) gives each evaluation's metrics; the
    autograder passes one that records the model's predictions on episodes whose query labels it keeps,
    and computes the accuracy itself. ``final`` has test_acc and best_test_acc only when the rows do.
    """
    device = setup(seed, device)
    if train_images is None or test_images is None:
        splits, data = omniglot_or_glyphs(data, root, splits=("train", "test"), log=log)
        train_images, test_images = splits["train"], splits["test"]
    # sampling runs on the CPU (cheap tensor indexing); each batch is then moved to the device
    train_x, test_x = dg.prepare_images(train_images), dg.prepare_images(test_images)
    net = mann.MANN(n_way, k_shot + 1, hidden_dim=hidden_dim, model=model, input_dim=train_x.shape[-1]).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)  # the training episodes
    config = {"n_way": n_way, "k_shot": k_shot, "meta_batch_size": meta_batch_size, "model": model, "seed": seed,
              "data": data, "lr": lr, "hidden_dim": hidden_dim}
    state = RunState()
    if checkpoint and resume and Path(checkpoint).is_file():
        saved = load_checkpoint(checkpoint, config=config, model=net, optimizer=opt, generators=[g])
        state = RunState(saved["step"], saved["time_s"], saved["history"])
        if log:
            log(f"resuming from {checkpoint} at step {state.step} ({state.time_s:.0f} s of training so far)")

    def step_fn(step: int) -> float:
        x, y = dg.sample_batch(train_x, n_way, k_shot, meta_batch_size, g)
        x, y = x.to(device), y.to(device)
        loss = mann.loss_function(net(x, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def save(state: RunState) -> None:
        save_checkpoint(checkpoint, config=config, step=state.step, model=net, optimizer=opt, generators=[g],
                        time_s=state.time_s, history=state.history)

    if evaluator is None:
        def evaluator(net, step):
            return evaluate(net, test_x, n_way, k_shot, meta_batch_size, eval_batches, seed + 1, device)

    train_loop(step_fn, lambda step: evaluator(net, step), state, steps=steps, eval_every=eval_every,
               time_limit=time_limit, save=save if checkpoint else None, progress=progress, log=log,
               desc=f"{model} K={k_shot} N={n_way}")
    history = state.history
    final = {"wall_time_s": round(state.time_s, 1)}
    if all("test_acc" in r for r in history):
        final = {"test_acc": history[-1]["test_acc"], "best_test_acc": max(r["test_acc"] for r in history), **final}
    env = environment(device, fingerprint({"train": train_images, "test": test_images}))
    return make_results(name or f"{model}-k{k_shot}-n{n_way}", {**config, "steps": state.step}, env, history, final)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p, "n_way", "k_shot", "meta_batch_size", "steps", "lr", "seed", "device", "eval_every",
                    "time_limit", "out", "resume", "no_progress", n_way=2, meta_batch_size=128, steps=25000)
    p.add_argument("--model", choices=mann.MODELS, default="lstm")
    p.add_argument("--hidden-dim", type=int, default=128)
    p.add_argument("--data", choices=("omniglot", "glyphs"), default="omniglot")
    p.add_argument("--eval-batches", type=int, default=4, help="meta-batches per evaluation")
    p.add_argument("--tag", default="", help="appended to the run name, e.g. for your own experiment")
    p.add_argument("--compare", nargs="+", metavar="RUN.json",
                   help="no training: plot these runs' accuracy curves together into <out>/compare.png "
                        "(or --tag: compare-<tag>.png)")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if args.compare:
        path = plot_curves([load_results(r) for r in args.compare],
                           out / (f"compare-{args.tag}.png" if args.tag else "compare.png"), ["test_acc"],
                           ylims={"test_acc": (0, 1)})
        print(f"wrote {path}")
        return {}
    name = f"{args.model}-k{args.k_shot}-n{args.n_way}" + (f"-{args.tag}" if args.tag else "")
    result = train(args.n_way, args.k_shot, args.meta_batch_size, args.steps, args.model, args.seed, args.device,
                   args.data, args.lr, args.hidden_dim, args.eval_every, args.eval_batches, time_limit=args.time_limit,
                   progress=not args.no_progress, checkpoint=out / "ckpt" / f"{name}.pt", resume=args.resume, name=name)
    save_results(out / f"{name}.json", result)
    c = result["config"]
    plot_curves([result], out / f"{name}.png", ["test_acc", "train_loss", "test_loss"], chance=1 / c["n_way"],
                title=f"{c['model']}: K={c['k_shot']}, N={c['n_way']}, data: {c['data']}", ylims={"test_acc": (0, 1)})
    final = result["final"]
    print(f"{name}: final test query accuracy {final['test_acc']:.4f} (best {final['best_test_acc']:.4f}) "
          f"after {c['steps']} steps, {final['wall_time_s']} s; wrote {out / name}.json and .png")
    return result


if __name__ == "__main__":
    main()
