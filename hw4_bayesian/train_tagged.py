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
Writes results/partA/tagged-<method>-<tasks>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from cs330.data import sample_tagged_sinusoids
from cs330.data.synthetic import tag_inputs
from cs330.models import MLP
from maml import MAML
from neural_process import NeuralProcess

HERE = Path(__file__).resolve().parent


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", choices=["cnp", "maml"], default="cnp")
    p.add_argument("--tasks", choices=["nonexclusive", "exclusive"], default="nonexclusive")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--n_slots", type=int, default=10)
    p.add_argument("--k_shot", type=int, default=5)
    p.add_argument("--meta_batch", type=int, default=25)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "partA"))
    return p.parse_args(argv)


def batch(a, split, g, n=None, n_query=10):
    t = sample_tagged_sinusoids(n or a.meta_batch, a.k_shot, n_query, a.n_slots, split, generator=g)
    slot = t.params["slot"]
    return tag_inputs(t.x_support, slot, a.n_slots), t.y_support, tag_inputs(t.x_query, slot, a.n_slots), t.y_query


def predict(model, a, sx, sy, qx):
    if a.method == "maml":
        return model.predict(sx, sy, qx)
    return model.predict(sx, sy, qx)[0][0]


def evaluate(model, a, split, seed) -> dict:
    sx, sy, qx, qy = batch(a, split, torch.Generator().manual_seed(seed), n=400, n_query=50)
    pred = predict(model, a, sx, sy, qx)
    shifted = predict(model, a, sx, sy.roll(1, dims=1), qx)  # support y's moved one point along: no fixed point
    return {"mse": float((pred - qy).pow(2).mean()),
            "sensitivity": float((shifted - pred).pow(2).mean().sqrt() / qy.pow(2).mean().sqrt())}


def run(a) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    d = 1 + a.n_slots
    if a.method == "maml":
        model = MAML(MLP(d, 1), inner_steps=1, inner_lr=0.01, loss_fn=F.mse_loss)
    else:
        model = NeuralProcess(latent=False, x_dim=d)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    g, t0 = torch.Generator().manual_seed(a.seed), time.time()
    split = "train" if a.tasks == "nonexclusive" else "test"
    for step in range(1, a.steps + 1):
        sx, sy, qx, qy = batch(a, split, g)
        opt.zero_grad(set_to_none=True)
        if a.method == "maml":
            loss = model.loss(sx, sy, qx, qy)[1]
        else:
            loss = model.loss(sx, sy, qx, qy)
        loss.backward()
        opt.step()
    result = {"config": vars(a), "train_wall_s": time.time() - t0,
              "train_split": evaluate(model, a, "train", 101), "test_split": evaluate(model, a, "test", 102)}
    print(json.dumps(result))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"tagged-{a.method}-{a.tasks}.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    run(parse_args())
