"""HW1, part 1: episodic data for black-box meta-learning.

A meta-batch holds B tasks. Each task is an N-way K-shot problem: N distinct characters, K + 1
different drawings (drawers) of each. The first K rows are the support set, the last row the query
set::

    images (B, K+1, N, 784) float in [0, 1]     labels (B, K+1, N, N) float one-hot

Row k < K, column n is a drawing of the task's character n with label n. The query row holds one
more drawing of every character, in a shuffled order (so that the model cannot read a label off the
position). Which character gets label n is random for each task: the N characters are drawn in a
random order.

All images are preloaded as one tensor (``prepare_images``); sampling is pure tensor indexing, with
an optional ``torch.Generator`` so that a batch is exactly reproducible.
"""

from __future__ import annotations

import torch


def prepare_images(images: torch.Tensor) -> torch.Tensor:
    """(C, D, 1, H, W) images grouped by character -> float (C, D, H*W) in [0, 1].

    uint8 Omniglot (0..255) is divided by 255; 0/1 masks (synthetic glyphs) and floats are kept as they are.
    """
    images = torch.as_tensor(images)
    C, D = images.shape[:2]
    x = images.reshape(C, D, -1)
    if x.dtype == torch.uint8:
        scale = 255.0 if int(x.max()) > 1 else 1.0
        return x.float() / scale
    return x.float()


def sample_batch(
    images: torch.Tensor,
    n_way: int,
    k_shot: int,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample a meta-batch of ``batch_size`` N-way K-shot tasks from ``images``.

    Args:
        images: float (C, D, 784), C characters with D drawings each (see ``prepare_images``).
        n_way: N, characters per task (distinct within a task).
        k_shot: K, support drawings per character; one more drawing of each is the query.
        batch_size: B, tasks in the meta-batch.
        generator: the source of all randomness (None: torch's global generator), so that the same
            seeded generator gives the same batch.

    Returns:
        images (B, K+1, N, 784) float: ``[b, k, n]`` is a drawing of task b's character with label n
            for k < K; row K (the query) holds one drawing of each character in a random order.
        labels (B, K+1, N, N) float one-hot, matching ``images``.
        The K+1 drawings of a character within a task are all different drawers.
    """
    C, D, P = images.shape
    N, K, B = n_way, k_shot, batch_size
    if N > C or K + 1 > D:
        raise ValueError(f"cannot draw {N} characters x {K + 1} drawings from {C} characters x {D} drawings")
    # BEGIN SOLUTION hint="draw N distinct characters per task (their order is the labelling), K+1 distinct drawers \
    #     per character; gather; build one-hot labels; shuffle the query row"
    # the N largest of C uniform draws per task, largest first: N distinct characters in a random order
    # (label = position); topk is O(C), a full argsort of all C characters took ~80% of the sampling time
    chars = torch.rand(B, C, generator=generator).topk(N, dim=1).indices  # (B, N)
    drawers = torch.rand(B, N, D, generator=generator).argsort(dim=2)[:, :, : K + 1]  # (B, N, K+1)
    x = images[chars[:, :, None], drawers]  # (B, N, K+1, P)
    x = x.permute(0, 2, 1, 3).contiguous()  # (B, K+1, N, P)
    y = torch.eye(N).expand(B, K + 1, N, N).clone()
    # shuffle the query row: query position j shows the character with label perm[b, j]
    perm = torch.rand(B, N, generator=generator).argsort(dim=1)  # (B, N)
    x[:, -1] = x[:, -1].gather(1, perm[:, :, None].expand(B, N, P))
    y[:, -1] = y[:, -1].gather(1, perm[:, :, None].expand(B, N, N))
    return x, y
    # END SOLUTION


class DataGenerator:
    """Meta-batches from one split of Omniglot (or of synthetic glyphs), preloaded once.

    ``DataGenerator(n_way, k_shot, batch_size, split="train")`` loads the images; ``.sample()`` returns
    ``(images, labels)`` as ``sample_batch`` does, on ``device``; iterating over it yields batches
    forever. ``seed`` seeds its own ``torch.Generator``, so two generators built alike give the
    same stream.
    """

    def __init__(self, n_way: int, k_shot: int, batch_size: int, split: str = "train", data: str = "omniglot",
                 root=None, seed: int = 0, device: str | torch.device = "cpu", images: torch.Tensor | None = None):
        self.n_way, self.k_shot, self.batch_size, self.split = n_way, k_shot, batch_size, split
        self.data = data
        if images is None:
            images, self.data = load_images(split, data, root)
        self.images = prepare_images(images)
        self.generator = torch.Generator().manual_seed(seed)
        self.device = torch.device(device)

    def sample(self, batch_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = sample_batch(self.images, self.n_way, self.k_shot, batch_size or self.batch_size, self.generator)
        return x.to(self.device), y.to(self.device)

    def __iter__(self):
        while True:
            yield self.sample()


def load_images(split: str = "train", data: str = "omniglot", root=None) -> tuple[torch.Tensor, str]:
    """The images of a split, (C, 20, 1, 28, 28), and which data they are: ``"omniglot"`` (course split
    1100 / 100 / 423 characters) or ``"glyphs"`` (synthetic, no files needed: 600 / 100 / 300 characters).
    Asking for Omniglot where it is absent gives the glyphs, and says so; a corrupt Omniglot file is an
    error naming it (``cs330.training.omniglot_or_glyphs``)."""
    from cs330.training import omniglot_or_glyphs

    images, source = omniglot_or_glyphs(data, root, splits=(split,))
    return images[split], source
