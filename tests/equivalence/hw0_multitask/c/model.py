"""HW0: a multi-task movie recommender (the parts you write are marked TODO).

Two tasks on the same users and items:

* ranking (implicit feedback): score(u, i) = <p_u, q_i> + b_i, trained with the pairwise BPR loss
  L_rank = -mean log sigmoid(score(u, i+) - score(u, i-)) against sampled negatives i-;
* rating regression (explicit feedback): r_hat(u, i) = mu + MLP([p_u, q_i, p_u * q_i]),
  trained with L_rate = mean (r_hat - r)^2.

Architectures: ``arch="shared"`` uses one user table and one item table for both tasks;
``arch="separate"`` gives each task its own tables (so the tasks share nothing).

Combining the task losses (``train.py --weighting``):

* fixed:        L = lam * L_rank + (1 - lam) * L_rate
* uncertainty:  L = sum_i exp(-s_i) * L_i + s_i, with learned log-variances s_i (Kendall et al., 2018)
* pcgrad:       per-task gradients on the shared parameters, each projected onto the normal plane of
                the other when they conflict, then summed (Yu et al., 2020)
"""

# Equivalence variant c (never ships): tables from randn, item bias from_pretrained, min() table choice, vecdot, hand-written stable BPR, lerp weighting, PCGrad grouped by gradient.

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RANK, RATE = 0, 1  # task indices
ARCHS = ("shared", "separate")


class MultiTaskRecommender(nn.Module):
    """Users and items as ``dim``-d embeddings, a ranking head and a rating head.

    Attributes you build in ``__init__`` (the tests check their names and shapes):
        user_emb:  nn.ModuleList of nn.Embedding(n_users, dim): one table if arch == "shared",
                   two if "separate" (index RANK = 0 for ranking, RATE = 1 for rating)
        item_emb:  nn.ModuleList of nn.Embedding(n_items, dim), the same way
        item_bias: nn.Embedding(n_items, 1), initialised to zero (ranking only)
        mlp:       nn.Sequential(Linear(3 * dim, hidden), ReLU(), Dropout(dropout), Linear(hidden, 1))
                   (rating only)
    Embedding weights start as N(0, init_std^2). ``rating_mean`` (a buffer) is the offset mu.
    """

    def __init__(self, n_users: int, n_items: int, dim: int = 32, hidden: int = 64, arch: str = "shared",
                 dropout: float = 0.0, init_std: float = 0.1, rating_mean: float = 3.5):
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.n_users, self.n_items, self.dim, self.arch = n_users, n_items, dim, arch
        self.register_buffer("rating_mean", torch.tensor(float(rating_mean)))
        n_tables = 1 if arch == "shared" else 2
        def table(n):
            emb = nn.Embedding(n, dim)
            with torch.no_grad():
                emb.weight.copy_(torch.randn(n, dim) * init_std)
            return emb

        self.user_emb = nn.ModuleList([table(n_users) for _ in range(n_tables)])
        self.item_emb = nn.ModuleList([table(n_items) for _ in range(n_tables)])
        self.item_bias = nn.Embedding.from_pretrained(torch.zeros(n_items, 1), freeze=False)
        layers = [nn.Linear(3 * dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)]
        self.mlp = nn.Sequential(*layers)

    def embed(self, users: Tensor, items: Tensor, task: int) -> tuple[Tensor, Tensor]:
        """The embeddings ``task`` (RANK or RATE) uses: users (B,), items (B,) -> p (B, dim), q (B, dim).

        Shared: both tasks read table 0. Separate: task t reads table t.
        """
        k = min(task, len(self.user_emb) - 1)  # one table: 0 for both tasks; two: the task's own
        return self.user_emb[k](users), self.item_emb[k](items)

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """Ranking score <p_u, q_i> + b_i: users (B,), items (B,) -> (B,)."""
        p, q = self.embed(users, items, RANK)
        return torch.linalg.vecdot(p, q) + self.item_bias(items).view(-1)

    def predict_rating(self, users: Tensor, items: Tensor) -> Tensor:
        """Predicted rating mu + MLP([p, q, p * q]) with the RATE embeddings: (B,), (B,) -> (B,)."""
        p, q = self.embed(users, items, RATE)
        h = torch.cat([p, q, p * q], dim=-1)
        return self.rating_mean + self.mlp(h).view(-1)

    def score_all(self, users: Tensor) -> Tensor:
        """Ranking scores of every item for each user: users (U,) -> (U, n_items).

        The same as ``score`` for every (user, item) pair; table RANK = 0 is the ranking table in both
        architectures."""
        return self.user_emb[RANK](users) @ self.item_emb[RANK].weight.T + self.item_bias.weight[:, 0]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters both tasks use: the embedding tables when shared, nothing when separate."""
        if self.arch == "separate":
            return []
        return [*self.user_emb.parameters(), *self.item_emb.parameters()]


def bpr_loss(pos_scores: Tensor, neg_scores: Tensor) -> Tensor:
    """Bayesian personalised ranking: -mean log sigmoid(s+ - s-). (B,), (B,) -> scalar."""
    diff = pos_scores - neg_scores
    # -log sigmoid(d) = log(1 + e^-d), written stably: max(-d, 0) + log1p(e^-|d|)
    return (torch.clamp(-diff, min=0) + torch.log1p(torch.exp(-diff.abs()))).mean()


def task_losses(model: MultiTaskRecommender, rank_batch: tuple[Tensor, Tensor, Tensor],
                rate_batch: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Both task losses, stacked: (2,) = [L_rank, L_rate].

    rank_batch = (users, positive items, negative items), each (B,): L_rank is the BPR loss.
    rate_batch = (users, items, ratings), each (B',): L_rate is the mean squared error.
    """
    u, i_pos, i_neg = rank_batch
    l_rank = bpr_loss(model.score(u, i_pos), model.score(u, i_neg))
    u_r, i_r, r = rate_batch
    err = model.predict_rating(u_r, i_r) - r
    l_rate = err.pow(2).sum() / err.numel()
    return torch.stack([l_rank, l_rate])


def weighted_loss(losses: Tensor, lam: float) -> Tensor:
    """The fixed weighting lam * L_rank + (1 - lam) * L_rate of losses (2,) -> scalar."""
    total = torch.lerp(losses[RATE], losses[RANK], lam)  # L_rate + lam * (L_rank - L_rate)
    return total


class UncertaintyWeighting(nn.Module):
    """Homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, 2018).

    Learns one log-variance s_i per task (``log_vars``, a (n_tasks,) parameter starting at 0) and
    returns  L = sum_i exp(-s_i) * L_i + s_i.  At the optimum over s_i, exp(-s_i) = 1 / L_i, so each
    task is weighted by the inverse of its current loss; the + s_i term stops s_i from growing forever.
    """

    def __init__(self, n_tasks: int = 2):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(n_tasks))

    def forward(self, losses: Tensor) -> Tensor:
        """losses (n_tasks,) -> scalar total loss."""
        weights = torch.exp(-self.log_vars)
        return torch.dot(weights, losses) + self.log_vars.sum()


def pcgrad(g_rank: Tensor, g_rate: Tensor) -> Tensor:
    """PCGrad (Yu et al., 2020) for two tasks: the combined gradient of flat gradients (P,), (P,) -> (P,).

    If g_rank . g_rate < 0 (the tasks conflict), each gradient is projected onto the normal plane
    of the *original* other one:  g_i <- g_i - (g_i . g_j) / |g_j|^2 * g_j.  Otherwise both are kept.
    Returns the sum of the (possibly projected) gradients. A zero gradient conflicts with nothing.
    """
    dot = torch.dot(g_rank, g_rate)
    if not bool(dot < 0):
        return g_rank + g_rate
    # (g_rank - dot/|g_rate|^2 g_rate) + (g_rate - dot/|g_rank|^2 g_rank), grouped by gradient
    return (1 - dot / torch.dot(g_rank, g_rank)) * g_rank + (1 - dot / torch.dot(g_rate, g_rate)) * g_rate


def pcgrad_backward(model: MultiTaskRecommender, losses: Tensor) -> dict[str, float]:
    """Set ``.grad`` of every parameter of ``model`` for the two task losses with PCGrad.

    Shared parameters get ``pcgrad`` of the two task gradients (flattened over all shared
    parameters together); every other parameter gets the sum of its task gradients (only one task
    reaches it). Returns {"cosine": cos(g_rank, g_rate) on the shared parameters (0 if none)}.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    shared_ids = {id(p) for p in model.shared_parameters()}
    grads = [torch.autograd.grad(losses[t], params, retain_graph=(t == RANK), allow_unused=True) for t in (RANK, RATE)]
    grads = [[torch.zeros_like(p) if g is None else g for g, p in zip(gs, params)] for gs in grads]
    shared = [k for k, p in enumerate(params) if id(p) in shared_ids]
    cosine = 0.0
    if shared:
        flat = [torch.cat([grads[t][k].reshape(-1) for k in shared]) for t in (RANK, RATE)]
        cosine = float(F.cosine_similarity(flat[0], flat[1], dim=0))
        combined, offset = pcgrad(flat[0], flat[1]), 0
        for k in shared:
            n = params[k].numel()
            params[k].grad = combined[offset : offset + n].view_as(params[k]).clone()
            offset += n
    for k, p in enumerate(params):
        if id(p) not in shared_ids:
            p.grad = grads[RANK][k] + grads[RATE][k]
    return {"cosine": cosine}
