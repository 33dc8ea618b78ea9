"""Evaluation metrics shared by run scripts and graders (the grader computes them from a student's
predictions, so the student's process never sees the held-out labels).

- ``rmse``                  root mean squared error of rating predictions (clipped to a range)
- ``mean_reciprocal_rank``  MRR of the best-ranked relevant item per user, seen items masked
- ``pairwise_mrr``          MRR per held-out (user, item) pair: a stricter variant
"""

from __future__ import annotations

import torch
from torch import Tensor


@torch.no_grad()
def rmse(pred: Tensor, target: Tensor, low: float = 1.0, high: float = 5.0) -> float:
    """sqrt(mean((clamp(pred, low, high) - target)^2)) over (N,) predictions and targets."""
    return float(((pred.clamp(low, high) - target) ** 2).mean()) ** 0.5


@torch.no_grad()
def mean_reciprocal_rank(scores: Tensor, seen: Tensor, relevant: Tensor) -> float:
    """MRR of the first relevant item: scores, seen, relevant are (U, n_items) (floats, bool, bool).

    Seen (training) items are removed from the ranking; for each user with at least one relevant
    (held-out) item, the reciprocal rank of the best-ranked relevant item among all unseen items,
    averaged over those users. Ties count against the relevant item.
    """
    scores = scores.masked_fill(seen, float("-inf"))
    best = scores.masked_fill(~relevant, float("-inf")).max(dim=1).values  # (U,)
    rank = (scores >= best[:, None]).sum(dim=1)  # the item itself, every better item, and every tie
    has = relevant.any(dim=1)
    return float((1.0 / rank[has].double()).mean()) if has.any() else 0.0


@torch.no_grad()
def pairwise_mrr(scores: Tensor, seen: Tensor, users: Tensor, items: Tensor) -> float:
    """Mean over held-out pairs (users[k], items[k]) of 1 / rank of the item among the user's unseen
    items (other held-out items included). A stricter variant of MRR, for comparison."""
    scores = scores.masked_fill(seen, float("-inf"))
    total = 0.0
    for k in range(0, len(users), 4096):
        u, i = users[k:k + 4096], items[k:k + 4096]
        rank = (scores[u] >= scores[u, i][:, None]).sum(dim=1)  # ties count against the item
        total += float((1.0 / rank.double()).sum())
    return total / max(len(users), 1)
