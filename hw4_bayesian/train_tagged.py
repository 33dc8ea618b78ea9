"""Part A, regression: memorisation on tagged sinusoids (``cs330.data.sample_tagged_sinusoids``).

    python train_tagged.py --method cnp --tasks nonexclusive     # each tag is always the same sinusoid
    python train_tagged.py --method cnp --tasks exclusive        # control: fresh sinusoid every task
    python train_tagged.py --method maml --tasks nonexclusive

Every point's input is (x, one-hot tag of the task's slot), 10 slots. "nonexclusive" trains on the
train split, where a slot always holds the same sinusoid: the tag alone tells the function.
"exclusive" trains on the test split's distribution (a fresh sinusoid per task, the tag tells
nothing). Both are evaluated with 5 support points on fresh tasks of each split: query MSE, and
support sensitivity = RMS change of the query predictions when the support y's are permuted among
the support points (a derangement), divided by the RMS of the query y's (0: the support is ignored).
Writes ``<out>/tagged-<method>-<tasks>.json`` (cs330.training results schema; ``final``: ``train_split_*`` and
``test_split_*`` mse and sensitivity, ``train_wall_s``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn import functional as F

from cs330.data import sample_tagged_sinusoids
from cs330.data.synthetic import tag_inputs
from cs330.models import MLP
from cs330.training import RunState, add_common_args, environment, make_results, save_results, setup, train_loop
from maml import MAML
from neural_process import NeuralProcess

HERE = Path(__file__).resolve().parent


def tagged_tasks(split: str, n_tasks: int, k_shot: int, n_query: int, n_slots: int, generator):
    """(support x, support y, query x, query y): x (n_tasks, points, 1 + n_slots) with the one-hot slot tag."""
    t = sample_tagged_sinusoids(n_tasks, k_shot, n_query, n_slots, split, generator=generator)
    slot = t.params["slot"]
    return tag_inputs(t.x_support, slot, n_slots), t.y_support, tag_inputs(t.x_query, slot, n_slots), t.y_query


def evaluate(model, split: str, k_shot: int, n_slots: int, seed: int) -> dict:
    """Query MSE and support sensitivity on 400 fixed tasks x 50 queries of ``split``."""
    sx, sy, qx, qy = tagged_tasks(split, 400, k_shot, 50, n_slots, torch.Generator().manual_seed(seed))
    pred = model.predict(sx, sy, qx)
    shifted = model.predict(sx, sy.roll(1, dims=1), qx)  # support y's moved one point along: no fixed point
    if isinstance(model, NeuralProcess):  # (mu, logvar) of one sample: the mean
        pred, shifted = pred[0][0], shifted[0][0]
    return {"mse": float((pred - qy).pow(2).mean()),
            "sensitivity": float((shifted - pred).pow(2).mean().sqrt() / qy.pow(2).mean().sqrt())}


def train(method="cnp", tasks="nonexclusive", steps=2000, n_slots=10, k_shot=5, meta_batch_size=25, lr=1e-3, seed=0,
          progress=True, log=print) -> dict:
    """Meta-train on tagged sinusoids of the train split (``nonexclusive``) or of the test split's distribution
    (``exclusive``), then evaluate on both splits; return the results (cs330.training schema)."""
    device = setup(seed, "cpu", threads=1)  # small tensors: one thread is fastest
    x_dim = 1 + n_slots
    if method == "maml":
        model = MAML(MLP(x_dim, 1), inner_steps=1, inner_lr=0.01, loss_fn=F.mse_loss)
    else:
        model = NeuralProcess(latent=False, x_dim=x_dim)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    split = "train" if tasks == "nonexclusive" else "test"

    def step_fn(step: int) -> float:
        sx, sy, qx, qy = tagged_tasks(split, meta_batch_size, k_shot, 10, n_slots, g)
        opt.zero_grad(set_to_none=True)
        loss = model.loss(sx, sy, qx, qy)
        loss = loss[1] if method == "maml" else loss  # MAML: (total, task loss, regulariser, accuracy)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def evaluate_fn(step: int) -> dict:  # once, at the end
        return {f"{s}_split_{k}": v for s, seed in (("train", 101), ("test", 102))
                for k, v in evaluate(model, s, k_shot, n_slots, seed).items()}

    state = train_loop(step_fn, evaluate_fn, RunState(), steps=steps, eval_every=steps, progress=progress, log=log,
                       desc=f"{method} {tasks}")
    config = {"method": method, "tasks": tasks, "steps": steps, "n_slots": n_slots, "k_shot": k_shot,
              "meta_batch_size": meta_batch_size, "lr": lr, "seed": seed}
    final = {k: v for k, v in state.history[-1].items() if "_split_" in k}
    final["train_wall_s"] = state.history[-1]["time_s"]
    return make_results(f"tagged-{method}-{tasks}", config, environment(device), state.history, final)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "k_shot", "meta_batch_size", "steps", "lr", "seed", "out", "no_progress", k_shot=5,
                    meta_batch_size=25, steps=2000, out=str(HERE / "results" / "partA"))
    p.add_argument("--method", choices=["cnp", "maml"], default="cnp")
    p.add_argument("--tasks", choices=["nonexclusive", "exclusive"], default="nonexclusive")
    p.add_argument("--n-slots", type=int, default=10)
    return p


def main(argv=None) -> dict:
    args = vars(build_parser().parse_args(argv))
    out, progress = Path(args.pop("out")), not args.pop("no_progress")
    result = train(**args, progress=progress)
    save_results(out / f"{result['name']}.json", result)
    return result


if __name__ == "__main__":
    main()
