"""Part B: a probabilistic MAML, an ensemble of MAML inner loops with Gaussian outputs.

M networks f_1..f_M (each an ``MLP`` with two outputs: mean and log-variance) are meta-trained side by
side from different random initialisations theta_1..theta_M. On a task, each is adapted by its own
inner loop on the support set (SGD on the squared error of its mean output), giving phi_m, and the
prediction is the uniform mixture of the M adapted Gaussians:

    p(y* | x*, support) = (1/M) sum_m N(y*; mu_{phi_m}(x*), exp(logvar_{phi_m}(x*)))

Each member is meta-trained on its own query negative log-likelihood, so the members stay
independent (a deep ensemble of MAMLs); their spread is the model's epistemic uncertainty about
the task, and the learned variance its noise.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from cs330.models import MLP, map_tasks
from gaussian import gaussian_nll
from hw2_maml import inner_loop


def mean_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared error of the mean output (column 0) only: the inner-loop loss."""
    return F.mse_loss(out[..., :1], y)


class EnsembleMAML(nn.Module):
    """M MAML members; inner_steps, inner_lr as MAML; members are ``MLP(1, 2, hidden)``."""

    def __init__(self, n_members: int = 5, hidden=(40, 40), inner_steps: int = 1, inner_lr: float = 0.01):
        super().__init__()
        self.members = nn.ModuleList(MLP(1, 2, hidden) for _ in range(n_members))
        self.inner_steps, self.inner_lr = inner_steps, inner_lr

    def member_outputs(self, m: int, support_x, support_y, query_x, train: bool):
        """Member m adapted on every task (vmap over tasks): (mu, logvar) on the queries, each (B, Q, 1).
        logvar is bounded below by log(1e-4) (sigma >= 0.01)."""
        model = self.members[m]
        params = dict(model.named_parameters())
        lrs = {n: self.inner_lr for n in params}

        def one(sx, sy, qx):  # HW2's inner loop: second order when training, detached from params otherwise
            adapted = inner_loop(model, params, lrs, sx, sy, self.inner_steps, train, loss_fn=mean_mse)
            return functional_call(model, adapted, (qx,))

        out = map_tasks(one, support_x, support_y, query_x)
        mu, raw = out[..., :1], out[..., 1:]
        return mu, 2 * torch.log(0.01 + F.softplus(raw))

    def loss(self, support_x, support_y, query_x, query_y) -> torch.Tensor:
        """Meta-training loss: the mean over members of each member's mean query Gaussian NLL (0-dim)."""
        # BEGIN SOLUTION hint="for every member m: member_outputs(m, ..., train=True), then gaussian_nll(query_y, mu, \
        #     logvar).mean(); average over members"
        total = 0.0
        for m in range(len(self.members)):
            mu, logvar = self.member_outputs(m, support_x, support_y, query_x, train=True)
            total = total + gaussian_nll(query_y, mu, logvar).mean()
        return total / len(self.members)
        # END SOLUTION

    @torch.no_grad()
    def predict(self, support_x, support_y, query_x):
        """Mixture components (mu, logvar), each (M, B, Q, 1): every member adapted on the support."""
        with torch.enable_grad():  # the inner loop takes gradients even at evaluation
            outs = [self.member_outputs(m, support_x, support_y, query_x, train=False)
                    for m in range(len(self.members))]
        return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])
