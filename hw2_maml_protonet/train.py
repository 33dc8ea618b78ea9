"""Meta-train and test MAML or a prototypical network on Omniglot (or synthetic glyphs).

    python train.py --algorithm protonet --steps 2000                  # train, validating as it goes
    python train.py --algorithm protonet --test                        # 600 test tasks, 95% CI -> results/metrics.json
    python train.py --algorithm maml --inner-steps 1 --first-order     # first-order MAML
    python train.py --algorithm maml --test --test-k-shot 5            # trained 1-shot, tested 5-shot
    python train.py --n-way 60 --n-query 5 --rotations --lr-halve-every 2000 --test-n-way 20   # Snell et al.'s recipe
    python train.py --algorithm maml --steps 30000 --time-limit 3600 --resume   # continue a run, for an hour more

A run is named from its settings (``maml_5w1s_K1`` ...). At every evaluation it checkpoints to
``--checkpoint-dir/<name>/`` (``checkpoint.pt``; ``best.pt``, the best validation accuracy, which
``--test`` uses; ``results.json``, the cs330.training results schema); ``--resume`` continues from
there (the same settings are required; a longer ``--steps`` is allowed). Without Omniglot under the
data root it uses the synthetic glyphs and says so.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import maml as maml_lib
import protonet as protonet_lib
from cs330.data import EpisodeSampler
from cs330.data.omniglot import with_rotations
from cs330.models import Conv4
from cs330.runtime import compiled, keep_freed_memory
from cs330.training import (RunState, add_common_args, environment, fingerprint, load_checkpoint, make_results, merge,
                            omniglot_or_glyphs, plot_curves, save_checkpoint, save_results, setup, train_loop)
from cs330.training.env import pick_device

HERE = Path(__file__).resolve().parent
# the settings that define what a run learns: a checkpoint resumes only with the same values
RUN_CONFIG = ("algorithm", "n_way", "k_shot", "n_query", "meta_batch_size", "inner_steps", "inner_lr", "lr",
              "lr_halve_every", "rotations", "learn_inner_lr", "anil", "first_order", "hidden", "seed", "data")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "n_way", "k_shot", "n_query", "meta_batch_size", "steps", "lr", "seed", "device", "eval_every",
                    "time_limit", "resume", "no_progress", steps=2000, eval_every=200)
    p.add_argument("--algorithm", choices=["maml", "protonet"], default="protonet")
    p.add_argument("--inner-steps", type=int, default=1, help="MAML: inner SGD steps")
    p.add_argument("--inner-lr", type=float, default=0.4, help="MAML: inner learning rate (initial value if learned)")
    p.add_argument("--lr-halve-every", type=int, default=None,
                   help="halve the Adam rate every this many steps (Snell et al.: 2000 episodes)")
    p.add_argument("--rotations", action="store_true",
                   help="also train on every training class rotated by 90, 180, 270 degrees as new classes "
                        "(4x classes)")
    p.add_argument("--learn-inner-lr", action="store_true", help="MAML: learn per-parameter inner rates (Meta-SGD)")
    p.add_argument("--anil", action="store_true", help="MAML: adapt the head only")
    p.add_argument("--first-order", action="store_true", help="MAML: first-order meta-gradient")
    p.add_argument("--tasks", choices=["auto", "vmap", "loop"], default="auto",
                   help="MAML: run a meta-batch's tasks with vmap or a per-task loop; auto = vmap on a GPU, "
                        "the loop on CPU, where it measured faster (bench/README.md)")
    p.add_argument("--hidden", type=int, default=64, help="channels per conv block")
    p.add_argument("--val-tasks", type=int, default=200, help="validation tasks per evaluation")
    p.add_argument("--data", choices=["omniglot", "glyphs"], default="omniglot")
    p.add_argument("--data-file", default=None, help="a torch.save'd {split: uint8 images} to use instead")
    p.add_argument("--checkpoint-dir", default=str(HERE / "runs"))
    p.add_argument("--results-dir", default=str(HERE / "results"))
    p.add_argument("--name", default=None, help="run name (default: from the settings)")
    p.add_argument("--test", action="store_true", help="evaluate the best checkpoint on test tasks")
    p.add_argument("--test-tasks", type=int, default=600)
    p.add_argument("--test-k-shot", type=int, default=None, help="K at test time (default --k-shot)")
    p.add_argument("--test-n-way", type=int, default=None,
                   help="ProtoNet: N of validation and test tasks (default --n-way; train wide, test narrow)")
    p.add_argument("--test-n-query", type=int, default=None,
                   help="queries per class at validation and test (default --n-query)")
    p.add_argument("--test-inner-steps", type=int, default=None,
                   help="MAML: inner steps at test (default --inner-steps)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step (CUDA graphs on a GPU; fused element-wise ops on CPU); "
                        "compiling takes a minute or more. --test always runs eagerly")
    p.add_argument("--no-keep-memory", action="store_true",
                   help="CPU: leave glibc malloc as it is (keep_freed_memory is ~2x faster, but raises peak memory)")
    return p


build_parser = parser  # the name every run script's parser has (the docs' commands are checked against it)


def _finish(a: argparse.Namespace, error) -> argparse.Namespace:
    a.test_n_way, a.test_n_query = a.test_n_way or a.n_way, a.test_n_query or a.n_query
    a.device = str(pick_device(a.device))
    if a.algorithm == "maml" and a.test_n_way != a.n_way:
        error(f"--test-n-way {a.test_n_way}: MAML's head has --n-way {a.n_way} outputs, so it is tested {a.n_way}-way")
    if a.algorithm == "protonet" and a.test_inner_steps:
        error("--test-inner-steps: ProtoNet has no inner loop")
    return a


def parse_args(argv=None) -> argparse.Namespace:
    p = parser()
    return _finish(p.parse_args(argv), p.error)


def options(**settings) -> argparse.Namespace:
    """The command line's settings by name (``options(algorithm="maml", n_way=20, steps=500)``): the defaults
    of ``parse_args([])`` with ``settings`` applied and checked as the command line checks them."""
    a = parser().parse_args([])
    unknown = sorted(set(settings) - set(vars(a)))
    if unknown:
        raise TypeError(f"unknown settings {unknown}; known: {sorted(vars(a))}")
    vars(a).update(settings)

    def error(message):
        raise ValueError(message)

    return _finish(a, error)


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
    return omniglot_or_glyphs(a.data)


def build(a) -> torch.nn.Module:
    if a.algorithm == "protonet":
        return protonet_lib.ProtoNet(Conv4(None, hidden=a.hidden))
    return maml_lib.MAML(Conv4(a.n_way, hidden=a.hidden), inner_steps=a.inner_steps, inner_lr=a.inner_lr,
                         learn_inner_lr=a.learn_inner_lr, first_order=a.first_order, anil=a.anil,
                         vectorize=a.tasks == "vmap" or (a.tasks == "auto" and a.device != "cpu"))


def compile_step(model: torch.nn.Module, device) -> torch.nn.Module:
    """--compile: ``cs330.runtime.compiled`` on the function every step calls (ProtoNet's forward,
    MAML's meta_loss), in place; returns the model."""
    name = "forward" if isinstance(model, protonet_lib.ProtoNet) else "meta_loss"
    setattr(model, name, compiled(getattr(model, name), device))
    return model


def evaluate(model, a, images, n_tasks: int, k_shot: int, seed: int) -> torch.Tensor:
    """Query accuracy of ``n_tasks`` ``--test-n-way`` tasks (fixed seed: the same tasks every time): (n_tasks,)."""
    batch = min(a.meta_batch_size, n_tasks)
    sampler = EpisodeSampler(images, a.test_n_way, k_shot, a.test_n_query, batch_size=batch, generator=seed,
                             num_batches=math.ceil(n_tasks / batch))
    accs = []
    for episode in sampler:
        acc = model.evaluate(episode.to(a.device))
        accs.append(acc.clone())  # a copy: a CUDA-graphed (--compile) step reuses its output memory on the next call
    # the accuracies stay on the device until here (ProtoNet syncs once per batch for N)
    return torch.cat(accs)[:n_tasks].cpu()


def fit(a, progress: bool = True) -> list[dict]:
    """Meta-train (from the run's checkpoint with ``--resume``); returns the validation history."""
    setup(a.seed, a.device)
    splits, data_name = load_splits(a)
    config = {k: getattr(a, k) for k in RUN_CONFIG}
    model = build(a).to(a.device)
    if a.compile:
        compile_step(model, a.device)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    run_dir = Path(a.checkpoint_dir) / run_name(a)
    state = RunState()
    if a.resume and (run_dir / "checkpoint.pt").is_file():
        saved = load_checkpoint(run_dir / "checkpoint.pt", config=config, model=model, optimizer=opt,
                                map_location=a.device)
        state = RunState(saved["step"], saved["time_s"], saved["history"])
        print(f"resumed {run_name(a)} at step {state.step}")
    train_images, val_images = splits["train"].to(a.device), splits["val"].to(a.device)
    if a.rotations:
        train_images = with_rotations(train_images)
    sampler = EpisodeSampler(train_images, a.n_way, a.k_shot, a.n_query, batch_size=a.meta_batch_size, generator=a.seed)
    env = environment(a.device, fingerprint(splits))
    best = max((r["val_acc"] for r in state.history), default=-1.0)

    def step_fn(step: int) -> dict:
        episode = sampler.sample(sampler.generator_for(step))  # step i's tasks depend on (seed, i) only
        if a.lr_halve_every:  # a function of the step, so a resumed run continues the schedule
            for group in opt.param_groups:
                group["lr"] = a.lr * 0.5 ** (step // a.lr_halve_every)
        return model.outer_step(episode, opt)

    def validate(step: int) -> dict:
        return {"val_acc": float(evaluate(model, a, val_images, a.val_tasks, a.k_shot, seed=12345).mean())}

    def save(state: RunState) -> None:
        nonlocal best
        checkpoint = dict(config=config, step=state.step, model=model, optimizer=opt, time_s=state.time_s,
                          history=state.history)
        save_checkpoint(run_dir / "checkpoint.pt", **checkpoint)
        row = state.history[-1] if state.history else None
        if row is not None and row["step"] == state.step and row["val_acc"] > best:
            best = row["val_acc"]
            save_checkpoint(run_dir / "best.pt", **checkpoint)
        save_results(run_dir / "results.json", make_results(run_name(a), config, env, state.history,
                                                           {"steps": state.step, "best_val_acc": best}))

    train_loop(step_fn, validate, state, steps=a.steps, eval_every=a.eval_every, time_limit=a.time_limit,
               save=save, progress=progress, log=None if progress else print, desc=run_name(a))
    return state.history


def plot(history: list[dict], path: Path, title: str) -> None:
    plot_curves([{"name": title, "history": history}], path, ["train_loss", "train_acc", "val_acc"], title=title,
                ylims={"train_acc": (0, 1), "val_acc": (0, 1)})


def test(a) -> dict:
    """Accuracy of the best checkpoint on ``--test-tasks`` test tasks, with a 95% CI. Merged into
    metrics.json as an entry of the results schema: the checkpoint's training config plus the test
    settings, the environment with the data's fingerprint, the checkpoint's validation history (its
    last row is the tested iteration) and ``final`` (returned)."""
    setup(a.seed, a.device)
    splits, data_name = load_splits(a)
    # eager: a test process would compile the evaluation step anew (minutes for MAML's per-task loop on
    # CPU) for one pass over the test tasks
    model = build(a).to(a.device)
    # the weights only: a test may name a run (--name) without repeating all of its training settings
    state = torch.load(Path(a.checkpoint_dir) / run_name(a) / "best.pt", map_location=a.device, weights_only=False)
    model.load_state_dict(state["model"])
    k = a.test_k_shot or a.k_shot
    t0 = time.time()
    if a.test_inner_steps:  # MAML only (the options check it)
        model.inner_steps = a.test_inner_steps
    accs = evaluate(model, a, splits["test"].to(a.device), a.test_tasks, k, seed=a.seed + 777)
    ci = 1.96 * float(accs.std()) / math.sqrt(len(accs))
    key = (run_name(a) + (f"_test{a.test_n_way}way" if a.test_n_way != a.n_way else "")
           + (f"_test{k}shot" if k != a.k_shot else "") + (f"_testK{a.test_inner_steps}" if a.test_inner_steps else ""))
    result = {"test_acc": float(accs.mean()), "ci95": ci, "n_tasks": len(accs), "n_way": a.test_n_way, "k_shot": k,
              "n_query": a.test_n_query, "train_n_way": a.n_way, "train_k_shot": a.k_shot, "algorithm": a.algorithm,
              "iterations": state["step"], "best_val_acc": state["history"][-1]["val_acc"],
              "train_wall_s": state["time_s"], "data": data_name, "device": str(a.device),
              "test_wall_s": time.time() - t0}
    config = {**state["config"], "test_n_way": a.test_n_way, "test_k_shot": k, "test_n_query": a.test_n_query,
              "test_inner_steps": a.test_inner_steps, "test_tasks": a.test_tasks}
    entry = make_results(key, config, environment(a.device, fingerprint(splits)), state["history"], result)
    print(f"{key}: test accuracy {100 * result['test_acc']:.2f} +- {100 * ci:.2f}% (95% CI, {len(accs)} tasks)")
    merge(Path(a.results_dir) / "metrics.json", {key: entry})
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
