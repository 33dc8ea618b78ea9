"""Episodic (N-way, K-shot) sampling by tensor indexing.

Input: ``images`` grouped by class, (n_classes, n_per_class, *item_shape), e.g. Omniglot's
uint8 (1623, 20, 1, 28, 28). One task (episode) draws N distinct classes and, for each, K + Q
distinct examples (drawers); the first K are the support set, the other Q the query set, so the two
never share an example. Class j of the task (in random order) gets label j, so labels are a fresh
random relabelling 0..N-1 per task. A meta-batch stacks B tasks::

    support_x (B, N*K, *item_shape) float     support_y (B, N*K) int64 in 0..N-1
    query_x   (B, N*Q, *item_shape) float     query_y   (B, N*Q) int64 in 0..N-1

Examples are label-major: ``support_x.view(B, N, K, ...)[:, j]`` are the K shots of label j
(``shuffle=True`` permutes the examples inside each support and query set instead). uint8 input is
scaled to [0, 1]: by 1/255, or by 1 when its maximum is 1 (0/1 masks such as the synthetic glyphs);
float input is passed through.

Randomness: meta-batch ``i`` of epoch ``e`` is drawn from its own ``torch.Generator`` seeded from
``(seed, e, i)``. The stream is therefore exactly reproducible, and the same with any number of
DataLoader workers (worker w makes batches w, w + W, ...; the DataLoader interleaves them in order).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np
import torch


class Episode(NamedTuple):
    """A meta-batch of B tasks; see the module docstring for shapes. Plain tensors: move with ``.to``."""

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor

    def to(self, device, non_blocking: bool = False) -> "Episode":
        return Episode(*(t.to(device, non_blocking=non_blocking) for t in self))


def _seed_of(generator) -> int:
    if generator is None:  # follow torch.manual_seed
        return int(torch.randint(0, 2**62, (), dtype=torch.int64))
    if isinstance(generator, torch.Generator):
        return int(torch.randint(0, 2**62, (), dtype=torch.int64, generator=generator))
    return int(generator)


class EpisodeSampler(torch.utils.data.IterableDataset):
    """Iterate meta-batches (``Episode``) of ``batch_size`` N-way K-shot tasks with Q queries per class.

    Args:
        images: tensor (n_classes, n_per_class, *item_shape), uint8 or float; or a dataset with ``.images``.
            It may live on a GPU: the indices are drawn on the CPU and the gather runs where the images are.
        n_way, k_shot, n_query: N, K, Q.
        batch_size: B tasks per meta-batch.
        generator: None (seed drawn from torch's global RNG), an int seed, or a ``torch.Generator``
            (one seed is drawn from it).
        num_batches: meta-batches per epoch (``len``); None iterates forever.
        shuffle: permute the examples inside each support / query set (default: label-major order).

    Use it directly (``next(iter(sampler))``) or in ``DataLoader(sampler, batch_size=None,
    num_workers=...)``; call ``set_epoch(e)`` for a different stream per epoch.
    """

    def __init__(self, images, n_way: int, k_shot: int, n_query: int, batch_size: int = 1,
                 generator=None, num_batches: int | None = None, shuffle: bool = False):
        images = getattr(images, "images", images)
        if not isinstance(images, torch.Tensor) or images.dim() < 3:
            raise ValueError("images must be a tensor (n_classes, n_per_class, *item_shape), "
                             f"got {type(images).__name__} with shape {tuple(getattr(images, 'shape', ()))}")
        n_classes, n_per_class = images.shape[:2]
        for name, v, low in (("n_way", n_way, 1), ("k_shot", k_shot, 1), ("n_query", n_query, 0),
                             ("batch_size", batch_size, 1)):
            if int(v) != v or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v}")
        if n_way > n_classes:
            raise ValueError(f"n_way={n_way} is more than the {n_classes} classes available")
        if k_shot + n_query > n_per_class:
            raise ValueError(f"k_shot + n_query = {k_shot} + {n_query} = {k_shot + n_query} is more than the "
                             f"{n_per_class} examples per class")
        if num_batches is not None and num_batches < 0:
            raise ValueError(f"num_batches must be >= 0 or None, got {num_batches}")
        self.images = images.contiguous()
        self._flat = self.images.flatten(0, 1)  # (n_classes * n_per_class, *item_shape), a view
        binary = images.dtype == torch.uint8 and int(images.max()) <= 1
        self.scale = 1 / 255 if images.dtype == torch.uint8 and not binary else 1.0
        self.n_way, self.k_shot, self.n_query, self.batch_size = int(n_way), int(k_shot), int(n_query), int(batch_size)
        self.num_batches, self.shuffle = num_batches, shuffle
        self.seed = _seed_of(generator)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("an EpisodeSampler with num_batches=None is infinite and has no len()")
        return self.num_batches

    def generator_for(self, index: int) -> torch.Generator:
        """The CPU generator of meta-batch ``index`` in the current epoch."""
        seed = np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1, np.uint64)[0]
        return torch.Generator().manual_seed(int(seed) >> 1)

    def sample(self, generator: torch.Generator) -> Episode:
        """One meta-batch drawn with ``generator`` (a CPU generator)."""
        B, N, K, Q = self.batch_size, self.n_way, self.k_shot, self.n_query
        n_classes, n_per_class = self.images.shape[:2]
        # N distinct classes per task, in random order: the N largest of n_classes uniform keys
        classes = torch.rand(B, n_classes, generator=generator).topk(N, dim=1).indices  # (B, N)
        # K + Q distinct examples per class: a random permutation of the drawers, cut
        drawers = torch.rand(B, N, n_per_class, generator=generator).argsort(dim=2)[..., :K + Q]  # (B, N, K+Q)
        rows = classes[..., None] * n_per_class + drawers  # (B, N, K+Q) ids into images.flatten(0, 1)
        labels = torch.arange(N).view(1, N, 1).expand(B, N, K + Q)  # class j of the task gets label j
        sets = []
        for ids, y in ((rows[..., :K], labels[..., :K]), (rows[..., K:], labels[..., K:])):
            ids, y = ids.flatten(1), y.flatten(1)  # (B, N*M), label-major
            if self.shuffle:
                perm = torch.rand(ids.shape, generator=generator).argsort(dim=1)
                ids, y = ids.gather(1, perm), y.gather(1, perm)
            sets += [self._gather(ids), y.to(self.images.device).contiguous()]
        return Episode(*sets)

    def _gather(self, ids: torch.Tensor) -> torch.Tensor:
        """images.flatten(0, 1)[ids] as float (B, M, *item_shape); index_select is ~20x faster than x[i, j]."""
        x = self._flat.index_select(0, ids.flatten().to(self._flat.device)).view(*ids.shape, *self._flat.shape[1:])
        return x.float().mul_(self.scale) if self.scale != 1.0 else x.float()

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        indices = itertools.count(worker, n_workers) if self.num_batches is None \
            else range(worker, self.num_batches, n_workers)
        for i in indices:
            yield self.sample(self.generator_for(i))

    def __repr__(self) -> str:
        return (f"EpisodeSampler({self.n_way}-way {self.k_shot}-shot {self.n_query}-query, batch_size="
                f"{self.batch_size}, classes={self.images.shape[0]}, per_class={self.images.shape[1]}, "
                f"seed={self.seed}, num_batches={self.num_batches})")


class NonExclusiveEpisodeSampler(EpisodeSampler):
    """Non-mutually-exclusive N-way tasks (Yin et al., 2020): the class-to-label map is fixed across tasks.

    The classes are split into N groups by index (class c is in group ``c % N``); a task draws one
    class from every group and gives it the group's label, so label j always means "a class of group
    j". A network can therefore solve every training task from the query image alone (memorise which
    group each class is in) and never look at the support set. Same arguments, shapes and
    reproducibility as ``EpisodeSampler`` (``n_classes >= n_way``); only the class draw differs.
    """

    def sample(self, generator: torch.Generator) -> Episode:
        B, N, K, Q = self.batch_size, self.n_way, self.k_shot, self.n_query
        n_classes, n_per_class = self.images.shape[:2]
        per_group = torch.tensor([len(range(j, n_classes, N)) for j in range(N)])  # classes in group j
        pick = (torch.rand(B, N, generator=generator) * per_group).long().clamp(max=per_group - 1)  # (B, N)
        classes = torch.arange(N) + N * pick  # the pick-th class of group j: label j, in label order
        drawers = torch.rand(B, N, n_per_class, generator=generator).argsort(dim=2)[..., :K + Q]
        rows = classes[..., None] * n_per_class + drawers  # (B, N, K+Q)
        labels = torch.arange(N).view(1, N, 1).expand(B, N, K + Q)
        sets = []
        for ids, y in ((rows[..., :K], labels[..., :K]), (rows[..., K:], labels[..., K:])):
            ids, y = ids.flatten(1), y.flatten(1)
            if self.shuffle:
                perm = torch.rand(ids.shape, generator=generator).argsort(dim=1)
                ids, y = ids.gather(1, perm), y.gather(1, perm)
            sets += [self._gather(ids), y.to(self.images.device).contiguous()]
        return Episode(*sets)
