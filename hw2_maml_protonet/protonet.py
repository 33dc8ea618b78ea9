"""Prototypical networks (Snell et al., 2017).

An embedding network f maps images to vectors. For one task, the prototype of class n is the mean
embedding of its K support examples, and a query is classified by its (negative, squared) Euclidean
distance to every prototype:

    c_n = (1/K) sum_{i: y_i = n} f(x_i)                  (prototypes)
    logits[m, n] = -|| f(x_m) - c_n ||^2                  (softmax over n = p(y_m = n | x_m))
    loss = mean_m cross_entropy(logits[m], y_m)           (query set)

Everything is batched over a leading task dimension B (it also works without one).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def prototypes(z: torch.Tensor, y: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class means of the support embeddings.

    Args:
        z: (..., N*K, D) support embeddings. y: (..., N*K) int64 labels in 0..N-1 (any order).
        n_way: N.
    Returns:
        (..., N, D): row n is the mean of the embeddings labelled n.
    """
    # BEGIN SOLUTION hint="one-hot the labels, sum the embeddings of each class, divide by the class counts"
    onehot = F.one_hot(y, n_way).to(z.dtype)  # (..., N*K, N)
    sums = onehot.transpose(-1, -2) @ z  # (..., N, D)
    return sums / onehot.sum(-2).unsqueeze(-1)
    # END SOLUTION


def squared_distances(q: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances: q (..., M, D), c (..., N, D) -> (..., M, N), entry [m, n] = ||q_m - c_n||^2."""
    return ((q.unsqueeze(-2) - c.unsqueeze(-3)) ** 2).sum(-1)  # SOLUTION


def protonet_logits(z_support: torch.Tensor, y_support: torch.Tensor, z_query: torch.Tensor,
                    n_way: int) -> torch.Tensor:
    """Logits of the queries: (..., N*Q, N), the negative squared distance to each prototype."""
    # BEGIN SOLUTION replace="logits = None"
    logits = -squared_distances(z_query, prototypes(z_support, y_support, n_way))
    # END SOLUTION
    return logits


def loss_and_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy and mean accuracy (0-dim tensors) of logits (..., M, N) against labels (..., M)."""
    # BEGIN SOLUTION hint="mean cross-entropy over all queries of all tasks; accuracy = fraction of argmax(logits) \
    #     equal to y"
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    acc = (logits.argmax(-1) == y).float().mean()
    return loss, acc
    # END SOLUTION


class ProtoNet(nn.Module):
    """An embedding network (e.g. ``Conv4(out_features=None)``) used as a prototypical network."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def logits(self, support_x, support_y, query_x, n_way: int) -> torch.Tensor:
        """Query logits of a meta-batch: support_x (B, N*K, C, H, W), support_y (B, N*K), query_x (B, N*Q, C, H, W)
        -> (B, N*Q, N). Support and query are embedded in one pass (per-task normalisation statistics)."""
        z = self.encoder(torch.cat([support_x, query_x], dim=-4))  # (B, N*K + N*Q, D)
        n_support = support_x.shape[-4]
        return protonet_logits(z[..., :n_support, :], support_y, z[..., n_support:, :], n_way)

    def forward(self, support_x, support_y, query_x, query_y, n_way: int):
        """(loss, accuracy) on the query sets of a meta-batch."""
        return loss_and_accuracy(self.logits(support_x, support_y, query_x, n_way), query_y)

    def outer_step(self, episode, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One training step on a meta-batch ``episode`` (support_x, support_y, query_x, query_y with a leading
        task dim B): mean query loss, backward, optimizer step. The same interface as ``MAML.outer_step``."""
        optimizer.zero_grad()
        loss, acc = self(*episode, n_way=n_way_of(episode))
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach()), "acc": float(acc)}

    @torch.no_grad()
    def evaluate(self, episode) -> torch.Tensor:
        """Query accuracy of every task of ``episode``: (B,). The same interface as ``MAML.evaluate``."""
        support_x, support_y, query_x, query_y = episode
        return (self.logits(support_x, support_y, query_x, n_way_of(episode)).argmax(-1) == query_y).float().mean(-1)


def n_way_of(episode) -> int:
    """N of an episode's tasks: its support labels are 0..N-1 (the largest + 1; one device sync on a GPU)."""
    return int(episode[1].max()) + 1
