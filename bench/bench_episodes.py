"""Episodic sampling speed: the tensor-indexed EpisodeSampler vs opening PNG files per episode.

    CS330_DATA=../shared/data python bench/bench_episodes.py [--root DIR] [--seconds 3]

Workload: 5-way 1-shot 15-query meta-batches of 16 tasks from the Omniglot ``course`` train split
(1100 characters), 28x28, on one thread (``torch.set_num_threads(1)``). The baseline is what a
torchvision ``ImageFolder``-style loader does: list the class folders, pick files, open each PNG with
PIL, resize and ``ToTensor`` it, per episode, from an extracted copy in a temporary folder.
Also times the Omniglot cache: first build (decode 32,460 PNGs; serial and a pool of 2, best of 2 runs
each) and a reload.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

from cs330.data.episodes import Episode, EpisodeSampler
from cs330.data.omniglot import PARTS, Omniglot, find_sources, load_omniglot, split_indices

N_WAY, K_SHOT, N_QUERY, BATCH = 5, 1, 15, 16


def rate(step, seconds: float, min_iters: int = 3) -> tuple[float, int]:
    """Seconds per call of ``step`` (after one warm-up call), run for about ``seconds``."""
    step()
    n, t0 = 0, time.perf_counter()
    while n < min_iters or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return (time.perf_counter() - t0) / n, n


def bench_cache(root) -> None:
    old = os.environ.get("CS330_CACHE")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for workers in (1, 2):
                times = []
                for rep in range(2):  # best of 2: the machine is shared
                    os.environ["CS330_CACHE"] = f"{tmp}/w{workers}r{rep}"
                    t = time.perf_counter()
                    load_omniglot(root, 28, workers=workers)
                    times.append(time.perf_counter() - t)
                print(f"omniglot cache first build (28px, {workers} process{'es' if workers > 1 else ''}): "
                      f"{min(times):6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})")
            t = time.perf_counter()
            load_omniglot(root, 28)
            print(f"omniglot cache load:                          {(time.perf_counter() - t) * 1e3:6.1f} ms")
            t = time.perf_counter()
            Omniglot(root, split="train")
            print(f"Omniglot(split='train') from the cache:       {(time.perf_counter() - t) * 1e3:6.1f} ms")
        finally:
            if old is None:
                os.environ.pop("CS330_CACHE", None)
            else:
                os.environ["CS330_CACHE"] = old


class PNGEpisodes:
    """Baseline: every episode opens its PNG files (ImageFolder-style class folders)."""

    def __init__(self, folder: Path, class_ids, seed: int = 0, n_way: int = N_WAY, k_shot: int = K_SHOT,
                 n_query: int = N_QUERY, batch: int = BATCH):
        all_classes = sorted(c for part in PARTS for c in (folder / part).glob("*/*") if c.is_dir())
        self.classes = [all_classes[i] for i in class_ids]
        self.rng = random.Random(seed)
        self.transform = transforms.Compose([transforms.Resize((28, 28), antialias=True), transforms.ToTensor()])
        self.n_way, self.k_shot, self.n_query, self.batch = n_way, k_shot, n_query, batch

    def load(self, path) -> torch.Tensor:
        with Image.open(path) as im:
            return 1.0 - self.transform(im.convert("L"))  # ink = 1

    def __call__(self) -> Episode:
        B, N, K, Q = self.batch, self.n_way, self.k_shot, self.n_query
        sx, sy, qx, qy = [], [], [], []
        for _ in range(B):
            for label, cls in enumerate(self.rng.sample(self.classes, N)):
                files = self.rng.sample(sorted(os.listdir(cls)), K + Q)
                images = [self.load(cls / f) for f in files]
                sx += images[:K]
                qx += images[K:]
                sy += [label] * K
                qy += [label] * Q
        return Episode(torch.stack(sx).view(B, N * K, 1, 28, 28), torch.tensor(sy).view(B, -1),
                       torch.stack(qx).view(B, N * Q, 1, 28, 28), torch.tensor(qy).view(B, -1))


@contextlib.contextmanager
def png_folder(root=None):
    """A temporary folder holding the Omniglot PNGs (the zips extracted, or links to extracted folders)."""
    with tempfile.TemporaryDirectory() as tmp:
        for part, src in find_sources(root).items():
            if src.is_dir():
                os.symlink(src, Path(tmp) / part)
            else:
                with zipfile.ZipFile(src) as z:
                    z.extractall(tmp)
        yield Path(tmp)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="data root (default: $CS330_DATA or data/)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(1)
    print(f"{platform.node()}: {os.cpu_count()} CPU cores, torch {torch.__version__}, 1 thread; "
          f"{N_WAY}-way {K_SHOT}-shot {N_QUERY}-query, meta-batch {BATCH}")

    bench_cache(args.root)

    train = Omniglot(args.root, split="train")
    sampler = iter(EpisodeSampler(train, N_WAY, K_SHOT, N_QUERY, BATCH, generator=0))
    t_fast, n_fast = rate(lambda: next(sampler), args.seconds)

    with png_folder(args.root) as folder:
        baseline = PNGEpisodes(folder, split_indices("train", "course", seed=0).tolist())
        t_slow, n_slow = rate(baseline, args.seconds)

    print(f"EpisodeSampler (tensor indexing): {t_fast * 1e3:8.3f} ms / meta-batch, "
          f"{1 / t_fast:8.1f} meta-batches/s, {BATCH / t_fast:9.0f} tasks/s  ({n_fast} batches)")
    print(f"PNG files per episode (baseline): {t_slow * 1e3:8.3f} ms / meta-batch, "
          f"{1 / t_slow:8.1f} meta-batches/s, {BATCH / t_slow:9.0f} tasks/s  ({n_slow} batches)")
    print(f"speed-up: {t_slow / t_fast:.0f}x  (goal >= 100x; goal < 2 ms per meta-batch: "
          f"{'met' if t_fast < 2e-3 else 'missed'})")


if __name__ == "__main__":
    main()
