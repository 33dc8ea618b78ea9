"""HW1 training speed: steps/s of the black-box meta-learner at meta-batch 128, and the share of a step
spent sampling the batch, against a named peer that opens PNG files for every batch.

    CS330_DATA=../shared/data python bench/bench_blackbox.py [--quick] [--seconds 4]

Workload: hw1's training step (``data_generator.sample_batch`` on the preloaded Omniglot train split, then
``MANN`` forward, ``loss_function``, backward, Adam step) at meta-batch 128 for 5-way 1-shot and the
course's 1-shot 2-way, with ``model="lstm"`` and ``"transformer"``, on 2 threads and on 1 thread. Time is
the mean over the steps of a ``--seconds`` window after 3 warm-up steps; the sampling share is the time in
``sample_batch`` over the time of the whole step.

Peer: ``bench_episodes.PNGEpisodes`` (the ``ImageFolder``-style loader: per batch, list the class folders,
open every PNG with PIL, resize, ``ToTensor``), asked for the same meta-batches (K support + 1 query per
class) and put into hw1's layout, on 1 thread. The ratio is the peer's time per batch over ``sample_batch``'s,
both measured in this run. The machine may be shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hw1_blackbox"))
import data_generator as dg  # noqa: E402
import model as mann  # noqa: E402
from bench_episodes import PNGEpisodes, png_folder  # noqa: E402

from cs330.data.omniglot import split_indices  # noqa: E402

B = 128
SETTINGS = [(1, 5), (1, 2)]  # (K, N): 5-way 1-shot, and the course's first setting


def time_training(images, k_shot, n_way, model, seconds) -> tuple[float, float, int]:
    """(seconds per training step, seconds of it in sample_batch, steps timed)."""
    torch.manual_seed(0)
    net = mann.MANN(n_way, k_shot + 1, model=model, input_dim=images.shape[-1])
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    sample_s = step_s = 0.0
    n = -3  # warm-up steps, not timed
    while n < 3 or step_s < seconds:
        t0 = time.perf_counter()
        x, y = dg.sample_batch(images, n_way, k_shot, B, g)
        t1 = time.perf_counter()
        loss = mann.loss_function(net(x, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if n >= 0:
            sample_s, step_s = sample_s + t1 - t0, step_s + t2 - t0
        n += 1
    return step_s / n, sample_s / n, n


def png_batch(peer: PNGEpisodes) -> tuple[torch.Tensor, torch.Tensor]:
    """One meta-batch from the PNG peer in hw1's layout: images (B, K+1, N, 784), one-hot labels, query row shuffled."""
    e = peer()
    Bp, N, K = peer.batch, peer.n_way, peer.k_shot
    support = e.support_x.view(Bp, N, K, -1).transpose(1, 2)
    perm = torch.rand(Bp, N).argsort(1)
    query = e.query_x.view(Bp, N, -1).gather(1, perm[:, :, None].expand(-1, -1, support.shape[-1]))
    x = torch.cat([support, query[:, None]], 1)
    y = torch.eye(N).expand(Bp, K + 1, N, N).clone()
    y[:, -1] = torch.eye(N)[perm]
    return x, y


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: $CS330_DATA or data/)")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per configuration")
    parser.add_argument("--quick", action="store_true", help="1 s per configuration, fewer peer batches")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    seconds = 1.0 if args.quick else args.seconds
    load = lambda: "load average %.1f %.1f %.1f" % os.getloadavg()  # noqa: E731
    print(f"{platform.node()}: {os.cpu_count()} CPU cores, torch {torch.__version__}, meta-batch {B}; {load()}")
    images, source = dg.load_images("train", "omniglot", args.root)
    assert source == "omniglot", "Omniglot is needed (set CS330_DATA)"
    images = dg.prepare_images(images)

    rows = []
    for threads in (2, 1):
        torch.set_num_threads(threads)
        for k, n in SETTINGS:
            for model in ("lstm", "transformer"):
                step, sample, steps = time_training(images, k, n, model, seconds)
                rows.append((threads, k, n, model, step, sample))
                print(f"{threads} thread{'s' if threads > 1 else ' '}  K={k} N={n}  {model:11s}  "
                      f"{1 / step:6.2f} steps/s  {step * 1e3:7.1f} ms/step  sample_batch {sample * 1e3:6.2f} ms = "
                      f"{sample / step:5.1%} of the step  ({steps} steps; {load()})")

    torch.set_num_threads(1)
    print(f"\npeer: PNG files per batch (bench_episodes.PNGEpisodes), 1 thread; {load()}")
    with png_folder(args.root) as folder:
        train_ids = split_indices("train", "course", seed=0).tolist()
        for k, n in SETTINGS:
            peer = PNGEpisodes(folder, train_ids, seed=0, n_way=n, k_shot=k, n_query=1, batch=B)
            x, y = png_batch(peer)
            assert x.shape == (B, k + 1, n, 784) and y.shape == (B, k + 1, n, n)
            reps = 2 if args.quick else 5
            t = time.perf_counter()
            for _ in range(reps):
                png_batch(peer)
            png = (time.perf_counter() - t) / reps
            step, sample = next((r[4], r[5]) for r in rows if r[:4] == (1, k, n, "lstm"))
            print(f"K={k} N={n}: PNG peer {png * 1e3:7.1f} ms / batch vs sample_batch {sample * 1e3:5.2f} ms: "
                  f"{png / sample:.0f}x slower; an LSTM step with it: {(step - sample + png) * 1e3:.0f} ms "
                  f"({png / (step - sample + png):.0%} sampling) vs {step * 1e3:.0f} ms ({reps} batches)")
    print(f"done; {load()}")


if __name__ == "__main__":
    main()
