"""Meta-train and test MAML or a prototypical network on Omniglot (or synthetic glyphs).

    python train.py --algorithm protonet --iterations 2000                  # train, validating as it goes
    python train.py --algorithm protonet --test                             # 600 test tasks, 95% CI -> results/metrics.json
    python train.py --algorithm maml --inner_steps 1 --first_order          # first-order MAML
    python train.py --algorithm maml --test --test_k_shot 5                 # trained 1-shot, tested 5-shot
    python train.py --n_way 60 --n_query 5 --rotations --lr_halve_every 2000 --test_n_way 20   # Snell et al.'s recipe

A run is named from its settings (``maml_5w1s_K1`` ...); it checkpoints to ``--checkpoint_dir/<name>/``
and resumes from there. Without Omniglot under the data root, it uses synthetic glyphs and says so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

import maml as maml_lib
import protonet as protonet_lib
from cs330.data import EpisodeSampler
from cs330.data.omniglot import with_rotations
from cs330.models import Conv4
from cs330.runtime import compiled, keep_freed_memory

HERE = Path(__file__).resolve().parent


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algorithm", choices=["maml", "protonet"], default="protonet")
    p.add_argument("--n_way", type=int, default=5)
    p.add_argument("--k_shot", type=int, default=1)
    p.add_argument("--n_query", type=int, default=15, help="queries per class")
    p.add_argument("--meta_batch", type=int, default=16, help="tasks per meta-batch")
    p.add_argument("--inner_steps", type=int, default=1, help="MAML: inner SGD steps")
    p.add_argument("--inner_lr", type=float, default=0.4, help="MAML: inner learning rate (initial value if learned)")
    p.add_argument("--outer_lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--lr_halve_every", type=int, default=None,
                   help="halve the Adam rate every this many iterations (Snell et al.: 2000 episodes)")
    p.add_argument("--rotations", action="store_true",
                   help="also train on every training class rotated by 90, 180, 270 degrees as new classes (4x classes)")
    p.add_argument("--learn_inner_lr", action="store_true", help="MAML: learn per-parameter inner rates (Meta-SGD)")
    p.add_argument("--anil", action="store_true", help="MAML: adapt the head only")
    p.add_argument("--first_order", action="store_true", help="MAML: first-order meta-gradient")
    p.add_argument("--tasks", choices=["auto", "vmap", "loop"], default="auto",
                   help="MAML: run a meta-batch's tasks with vmap or a per-task loop; auto = vmap on a GPU, "
                        "the loop on CPU, where it measured faster (bench/README.md)")
    p.add_argument("--hidden", type=int, default=64, help="channels per conv block")
    p.add_argument("--iterations", type=int, default=2000, help="meta-training iterations (total, across resumes)")
    p.add_argument("--max_minutes", type=float, default=None, help="stop training after this wall time (checkpointed)")
    p.add_argument("--val_every", type=int, default=200)
    p.add_argument("--val_tasks", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--data", choices=["omniglot", "glyphs"], default="omniglot")
    p.add_argument("--data_file", default=None, help="a torch.save'd {split: uint8 images} to use instead")
    p.add_argument("--checkpoint_dir", default=str(HERE / "runs"))
    p.add_argument("--results_dir", default=str(HERE / "results"))
    p.add_argument("--name", default=None, help="run name (default: from the settings)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--test", action="store_true", help="evaluate the checkpoint on test tasks")
    p.add_argument("--test_tasks", type=int, default=600)
    p.add_argument("--test_k_shot", type=int, default=None, help="K at test time (default --k_shot)")
    p.add_argument("--test_n_way", type=int, default=None,
                   help="ProtoNet: N of validation and test tasks (default --n_way; train wide, test narrow)")
    p.add_argument("--test_n_query", type=int, default=None, help="queries per class at validation and test (default --n_query)")
    p.add_argument("--test_inner_steps", type=int, default=None, help="MAML: inner steps at test (default --inner_steps)")
    p.add_argument("--no_progress", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (CUDA graphs on a GPU; fused element-wise ops on CPU); "
                        "compiling takes a minute or more. --test always runs eagerly")
    p.add_argument("--no_keep_memory", action="store_true",
                   help="CPU: leave glibc malloc as it is (keep_freed_memory is ~2x faster, but raises peak memory)")
    a = p.parse_args(argv)
    a.test_n_way, a.test_n_query = a.test_n_way or a.n_way, a.test_n_query or a.n_query
    if a.algorithm == "maml" and a.test_n_way != a.n_way:
        p.error(f"--test_n_way {a.test_n_way}: MAML's head has --n_way {a.n_way} outputs, so it is tested {a.n_way}-way")
    return a


def run_name(a) -> str:
    if a.name:
        return a.name
    name = f"{a.algorithm}_{a.n_way}w{a.k_shot}s"
    if a.algorithm == "maml":
        name += f"_K{a.inner_steps}" + "_fo" * a.first_order + "_anil" * a.anil + "_metasgd" * a.learn_inner_lr
    name += "_rot" * a.rotations + (f"_lrh{a.lr_halve_every}" if a.lr_halve_every else "")
    return name + ("_glyphs" if a.data == "glyphs" else "")


def load_splits(a) -> tuple[dict[str, torch.Tensor], str]:
    """{"train", "val", "test": uint8 (classes, drawers, 1, 28, 28)} and the data's name."""
    if a.data_file:
        return torch.load(a.data_file), "omniglot"
    if a.data == "omniglot":
        from cs330.data import Omniglot
        try:
            return {s: Omniglot(split=s).images for s in ("train", "val", "test")}, "omniglot"
        except Exception as e:  # DataNotFoundError and friends
            print(f"Omniglot is not available ({type(e).__name__}: {e}); using synthetic glyphs instead.", file=sys.stderr)
    from cs330.data.synthetic import make_glyphs
    g = make_glyphs(n_alphabets=30, chars_per_alphabet=20, seed=a.seed + 1000)
    order = g.alphabets.argsort(stable=True)  # classes by alphabet: split by alphabet
    images = g.images[order]
    n = images.shape[0]
    cut1, cut2 = int(0.7 * n), int(0.8 * n)
    return {"train": images[:cut1], "val": images[cut1:cut2], "test": images[cut2:]}, "glyphs"


def build(a) -> torch.nn.Module:
    torch.manual_seed(a.seed)
    if a.algorithm == "protonet":
        model = protonet_lib.ProtoNet(Conv4(None, hidden=a.hidden))
    else:
        model = maml_lib.MAML(Conv4(a.n_way, hidden=a.hidden), inner_steps=a.inner_steps, inner_lr=a.inner_lr,
                              learn_inner_lr=a.learn_inner_lr, first_order=a.first_order, anil=a.anil,
                              vectorize=a.tasks == "vmap" or (a.tasks == "auto" and a.device != "cpu"))
    return model


def compile_step(model: torch.nn.Module, device) -> torch.nn.Module:
    """--compile: ``cs330.runtime.compiled`` on the function every step calls (ProtoNet's forward,
    MAML's meta_loss), in place; returns the model."""
    name = "forward" if isinstance(model, protonet_lib.ProtoNet) else "meta_loss"
    setattr(model, name, compiled(getattr(model, name), device))
    return model


def evaluate(model, a, images, n_tasks: int, k_shot: int, seed: int, steps: int | None = None) -> torch.Tensor:
    """Query accuracy of ``n_tasks`` ``--test_n_way`` tasks (fixed seed: the same tasks every time): (n_tasks,)."""
    batch = min(a.meta_batch, n_tasks)
    sampler = EpisodeSampler(images, a.test_n_way, k_shot, a.test_n_query, batch_size=batch, generator=seed,
                             num_batches=math.ceil(n_tasks / batch))
    accs = []
    for episode in sampler:
        episode = episode.to(a.device)
        if a.algorithm == "protonet":
            acc = model.evaluate(episode, a.test_n_way)
        else:
            acc = model.evaluate(episode, steps=steps)
        accs.append(acc.clone())  # a copy: a CUDA-graphed (--compile) step reuses its output memory on the next call
    return torch.cat(accs)[:n_tasks].cpu()  # one device sync per evaluation, not one per batch


def fit(a, progress: bool = True) -> list[dict]:
    """Meta-train (resuming from the run's checkpoint); returns the validation history."""
    splits, data_name = load_splits(a)
    model = build(a).to(a.device)
    if a.compile:
        compile_step(model, a.device)
    opt = torch.optim.Adam(model.parameters(), lr=a.outer_lr)
    run_dir = Path(a.checkpoint_dir) / run_name(a)
    ckpt = run_dir / "checkpoint.pt"
    start, history, best = 0, [], -1.0
    if ckpt.is_file() and not a.fresh:
        state = torch.load(ckpt, map_location=a.device)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, history, best = state["iteration"], state["history"], state["best_val"]
        print(f"resumed {run_name(a)} at iteration {start}")
    train_images, val_images = splits["train"].to(a.device), splits["val"].to(a.device)
    if a.rotations:
        train_images = with_rotations(train_images)
    sampler = EpisodeSampler(train_images, a.n_way, a.k_shot, a.n_query, batch_size=a.meta_batch, generator=a.seed)
    sampler.set_epoch(start)  # a resumed run draws fresh tasks
    stream = iter(sampler)
    t0, wall = time.time(), (history[-1]["wall_s"] if history else 0.0)
    try:
        from tqdm import tqdm
        bar = tqdm(range(start, a.iterations), initial=start, total=a.iterations, disable=not progress, desc=run_name(a))
    except ImportError:
        bar = range(start, a.iterations)
    train_loss = train_acc = 0.0
    for it in bar:
        episode = next(stream)
        if a.lr_halve_every:  # a function of the iteration, so a resumed run continues the schedule
            for group in opt.param_groups:
                group["lr"] = a.outer_lr * 0.5 ** (it // a.lr_halve_every)
        if a.algorithm == "protonet":
            m = model.outer_step(episode, a.n_way, opt)
        else:
            m = model.outer_step(episode, opt)
        train_loss, train_acc = 0.9 * train_loss + 0.1 * m["loss"], 0.9 * train_acc + 0.1 * m["acc"]
        done = it + 1
        out_of_time = a.max_minutes is not None and time.time() - t0 > 60 * a.max_minutes
        if done % a.val_every == 0 or done == a.iterations or out_of_time:
            val = float(evaluate(model, a, val_images, a.val_tasks, a.k_shot, seed=12345).mean())
            row = {"iteration": done, "train_loss": train_loss / (1 - 0.9 ** (done - start)),
                   "train_acc": train_acc / (1 - 0.9 ** (done - start)), "val_acc": val,
                   "wall_s": wall + time.time() - t0, "data": data_name}
            history.append(row)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", val=f"{val:.3f}")
            if not progress:
                print(json.dumps(row))
            run_dir.mkdir(parents=True, exist_ok=True)
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "iteration": done,
                     "history": history, "best_val": max(best, val), "args": vars(a)}
            if val > best:
                best = val
                torch.save(state, run_dir / "best.pt")
            torch.save(state, ckpt)
            (run_dir / "history.json").write_text(json.dumps(history, indent=1))
        if out_of_time:
            print(f"stopped at iteration {done} of {a.iterations}: --max_minutes {a.max_minutes} reached")
            break
    return history


def plot(history: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    it = [r["iteration"] for r in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(it, [r["train_loss"] for r in history])
    ax[0].set(xlabel="meta-iteration", ylabel="train query loss", title=title)
    ax[1].plot(it, [r["train_acc"] for r in history], label="train")
    ax[1].plot(it, [r["val_acc"] for r in history], label="val")
    ax[1].set(xlabel="meta-iteration", ylabel="query accuracy", ylim=(0, 1))
    ax[1].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def test(a) -> dict:
    """Accuracy of the best checkpoint on ``--test_tasks`` test tasks, with a 95% CI; merged into metrics.json."""
    splits, data_name = load_splits(a)
    # eager: a test process would compile the evaluation step anew (minutes for MAML's per-task loop on
    # CPU) for one pass over the test tasks
    model = build(a).to(a.device)
    run_dir = Path(a.checkpoint_dir) / run_name(a)
    state = torch.load(run_dir / "best.pt", map_location=a.device)
    model.load_state_dict(state["model"])
    k = a.test_k_shot or a.k_shot
    t0 = time.time()
    accs = evaluate(model, a, splits["test"].to(a.device), a.test_tasks, k, seed=a.seed + 777, steps=a.test_inner_steps)
    ci = 1.96 * float(accs.std()) / math.sqrt(len(accs))
    key = (run_name(a) + (f"_test{a.test_n_way}way" if a.test_n_way != a.n_way else "")
           + (f"_test{k}shot" if k != a.k_shot else "") + (f"_testK{a.test_inner_steps}" if a.test_inner_steps else ""))
    result = {"test_acc": float(accs.mean()), "ci95": ci, "n_tasks": len(accs), "n_way": a.test_n_way, "k_shot": k,
              "n_query": a.test_n_query, "train_n_way": a.n_way, "train_k_shot": a.k_shot, "algorithm": a.algorithm,
              "iterations": state["iteration"],
              "best_val_acc": state["best_val"], "train_wall_s": state["history"][-1]["wall_s"], "data": data_name,
              "device": str(a.device), "test_wall_s": time.time() - t0}
    print(f"{key}: test accuracy {100 * result['test_acc']:.2f} +- {100 * ci:.2f}% (95% CI, {len(accs)} tasks)")
    path = Path(a.results_dir) / "metrics.json"
    metrics = json.loads(path.read_text()) if path.is_file() else {}
    metrics[key] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    plot(state["history"], Path(a.results_dir) / f"{run_name(a)}.png", run_name(a))
    return result


def main(argv=None) -> None:
    a = parse_args(argv)
    if a.device == "cpu" and not a.no_keep_memory:
        keep_freed_memory()  # reuse freed activation memory instead of page-faulting it in every pass
    if a.test:
        test(a)
    else:
        history = fit(a, progress=not a.no_progress)
        if history:
            plot(history, Path(a.results_dir) / f"{run_name(a)}.png", run_name(a))


if __name__ == "__main__":
    main()
