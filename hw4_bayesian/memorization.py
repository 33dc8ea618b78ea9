"""Part A: meta-overfitting by memorisation, label shuffling, and support sensitivity.

In a non-mutually-exclusive task distribution (``cs330.data.NonExclusiveEpisodeSampler``) label j
always means the same thing, so one function of the query alone, x* -> y*, solves every training
task. A meta-learner that finds it reaches ~zero training loss with a support set it never reads,
and is at chance on tasks of new classes. Two fixes (Yin et al., 2020):

- *Label shuffling*: relabel every task with its own random permutation pi of 0..N-1
  (y -> pi(y), the same pi for support and query). Then P(y* = j | x*) = 1/N for any x*, so the
  query alone says nothing about its label; only the support set does.
- *A meta-regulariser* (information bottleneck), see ``blackbox.py`` (activations) and ``maml.py`` (weights).

*Support sensitivity* measures whether predictions depend on the support labels: permute the
support labels with a derangement and count how many query predictions change.
"""

from __future__ import annotations

from typing import Callable

import torch


def shuffle_labels(support_y: torch.Tensor, query_y: torch.Tensor, n_way: int,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Relabel every task with its own random permutation of the labels.

    Args:
        support_y: (B, N*K) int64 labels in 0..N-1; query_y: (B, N*Q) labels of the same tasks.
        n_way: N. generator: the source of the B permutations.
    Returns:
        (support_y', query_y'), same shapes: y' = pi_b(y) in task b, with pi_b a uniformly random
        permutation of 0..N-1 drawn for task b, the same for its support and its query set.
    """
    # BEGIN SOLUTION hint="one random permutation per task (argsort of uniform noise, shape (B, N)); index it with \
    #     the labels (gather)"
    B = support_y.shape[0]
    perm = torch.rand(B, n_way, generator=generator).argsort(dim=1).to(support_y.device)  # (B, N): pi_b
    return perm.gather(1, support_y), perm.gather(1, query_y)
    # END SOLUTION


def cyclic_relabel(y: torch.Tensor, shift: torch.Tensor, n_way: int) -> torch.Tensor:
    """y (B, M) -> (y + shift_b) mod N per task, shift (B,) in 1..N-1: a permutation with no fixed point."""
    return (y + shift[:, None]) % n_way


def support_sensitivity(predict: Callable, support_x: torch.Tensor, support_y: torch.Tensor, query_x: torch.Tensor,
                        n_way: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """How much the query predictions depend on the support labels.

    Args:
        predict: predict(support_x, support_y, query_x) -> (B, M, N) logits (no gradient needed).
        support_x (B, N*K, ...), support_y (B, N*K), query_x (B, M, ...): a meta-batch.
        n_way: N. generator: draws one shift_b ~ U{1..N-1} per task (``torch.randint``).
    Returns:
        (B,): per task, the fraction of the M query predictions (argmax) that change when the support
        labels are relabelled with ``cyclic_relabel`` (a derangement). 0: the support labels are
        ignored; 1 for a learner that follows them (its predictions are relabelled too).
    """
    # BEGIN SOLUTION hint="predict twice, with support_y and with cyclic_relabel(support_y, shift, n_way); compare \
    #     the argmaxes"
    shift = torch.randint(1, n_way, (support_y.shape[0],), generator=generator).to(support_y.device)
    before = predict(support_x, support_y, query_x).argmax(-1)
    after = predict(support_x, cyclic_relabel(support_y, shift, n_way), query_x).argmax(-1)
    return (before != after).float().mean(-1)
    # END SOLUTION
