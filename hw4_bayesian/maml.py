"""MR-MAML with stochastic weights, on HW2's MAML.

MAML itself is HW2's, imported from ``hw2_maml.py``: HW2's ``maml.py``, *given* to HW4 because
HW2 is past due (``given`` in homework.toml; in the course repository the file is a link to
``../hw2_maml_protonet/maml.py``, in your release a solved copy). Its ``inner_loop`` is the one
MAML inner loop of the course (any loss, a subset of names adapted, second order, first order, or
no meta-graph at evaluation), and its ``MAML`` class is the base of the one here:

    inner loop, K steps:  phi_0 = theta,  phi_{k+1} = phi_k - alpha * grad_phi L(phi_k; support)
    task loss:            L(phi_K; query);   meta-gradient d/d theta through the inner loop (second
                          order), or with d phi_K / d theta = I (first order)

MR-MAML(W) (Yin et al., 2020, meta-regularisation on weights): the body's weights theta (not adapted
by the inner loop) become a Gaussian q(theta) = N(theta_mu, diag sigma^2) with a learned sigma; the
head phi (adapted) starts from a meta-learned init. The meta-objective adds beta * KL(q(theta) || N(0, I)):

    E_{theta ~ q} [ mean_tasks L(phi_K(theta, support); query) ] + beta * KL(q(theta) || N(0, I))

The KL bounds the information the shared weights can store about the training tasks, so that a
memorised x* -> y* map costs more than adapting the head on the support set.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

import hw2_maml
from cs330.models import map_tasks
from gaussian import kl_diag_gaussians, sample_gaussian
from hw2_maml import Params, accuracy, inner_loop


class MAML(hw2_maml.MAML):
    """HW2's MAML around ``model`` (its inner loop, ``lrs``, ``meta_loss``, ``evaluate``) with HW4's objective:
    ``meta_params`` (MR-MAML: a sample), ``loss`` with a ``regularizer``, and ``predict`` on queries alone.
    adapt="all" or "head" (ANIL's ``head.*`` names); loss_fn: cross-entropy or MSE; vectorize: tasks with
    ``vmap`` (True) or a Python loop (False, faster for Conv4 on a CPU)."""

    def __init__(self, model: nn.Module, inner_steps: int = 1, inner_lr: float = 0.4, first_order: bool = False,
                 adapt: str = "all", loss_fn=F.cross_entropy, vectorize: bool = True):
        if adapt not in ("all", "head"):
            raise ValueError(f"adapt is 'all' or 'head', got {adapt!r}")
        super().__init__(model, inner_steps, inner_lr, first_order=first_order, anil=adapt == "head",
                         vectorize=vectorize, loss_fn=loss_fn)

    def meta_params(self, generator: torch.Generator | None = None) -> Params:
        """theta used for this meta-batch (MR-MAML: a sample)."""
        return self.params()

    def regularizer(self) -> torch.Tensor:
        return torch.zeros(())

    def per_task(self, params: Params, support_x, support_y, query_x, query_y, train: bool, steps: int | None = None):
        """Per-task query losses (B,), accuracies (B,) and query outputs (B, M, out): HW2's ``task_loss``,
        keeping the outputs, from ``params`` (detached by ``inner_loop`` unless ``train``)."""
        steps, lrs = self.inner_steps if steps is None else steps, self.lrs()

        def one(sx, sy, qx, qy):
            adapted = inner_loop(self.model, params, lrs, sx, sy, steps, train, self.first_order, self.adapt,
                                 self.loss_fn)
            out = functional_call(self.model, adapted, (qx,))
            return self.loss_fn(out, qy), accuracy(out, qy), out

        return map_tasks(one, support_x, support_y, query_x, query_y, vectorize=self.vectorize)

    def loss(self, support_x, support_y, query_x, query_y, beta: float = 0.0, generator=None):
        """(total, task loss, regulariser, accuracy): total = mean query loss + beta * regulariser."""
        losses, accs, _ = self.per_task(self.meta_params(generator), support_x, support_y, query_x, query_y, True)
        reg = self.regularizer()
        return losses.mean() + beta * reg, losses.mean(), reg, accs.mean()

    def outer_step(self, episode, optimizer: torch.optim.Optimizer, beta: float = 0.0,
                   generator=None) -> dict[str, float]:
        """HW2's outer step on this objective (``loss``: MR-MAML samples the weights and adds beta * KL).
        Returns {"loss": mean query loss, "acc": mean accuracy, "reg": regulariser}."""
        optimizer.zero_grad(set_to_none=True)
        total, task, reg, acc = self.loss(*episode, beta=beta, generator=generator)
        total.backward()
        optimizer.step()
        return {"loss": float(task.detach()), "acc": float(acc.detach()), "reg": float(reg.detach())}

    def predict(self, support_x, support_y, query_x, steps: int | None = None) -> torch.Tensor:
        """Adapted outputs on the queries (B, M, out), no meta-graph, mean weights."""
        if support_y.is_floating_point():  # query targets are not needed: zeros of the right shape
            dummy = support_y.new_zeros(*query_x.shape[:2], support_y.shape[-1])
        else:
            dummy = support_y.new_zeros(query_x.shape[:2])
        return self.per_task(self.params(), support_x, support_y, query_x, dummy, False, steps)[2].detach()


class MRMAML(MAML):
    """MR-MAML(W): stochastic body weights N(theta_mu, exp(2 rho)), KL to N(0, I); only the head adapts.
    ``init_log_sigma``: rho's initial value (small noise at first)."""

    def __init__(self, model: nn.Module, init_log_sigma: float = -6.0, **kwargs):
        super().__init__(model, adapt="head", **kwargs)
        self.stochastic = [n for n, _ in model.named_parameters() if not n.startswith("head.")]
        self.log_sigma = nn.ParameterDict({n.replace(".", "__"): nn.Parameter(torch.full_like(p, init_log_sigma))
                                           for n, p in model.named_parameters() if n in self.stochastic})

    def meta_params(self, generator: torch.Generator | None = None) -> Params:
        """theta ~ q: {name: tensor} of every parameter of the model; every name in ``self.stochastic`` a
        reparameterised sample mu + sigma * eps with sigma = exp(log_sigma) (differentiable in mu and log_sigma),
        eps ~ N(0, I) from ``generator`` (one per weight, in any order: the tests do not depend on it); the head
        (not stochastic) is the mean itself."""
        params = dict(self.model.named_parameters())
        # BEGIN SOLUTION hint="for each name in self.stochastic: sample_gaussian(mu, 2 * log_sigma, \
        #     generator=generator); log_sigma is self.log_sigma[name with '.' -> '__']"
        for n in self.stochastic:
            params[n] = sample_gaussian(params[n], 2 * self.log_sigma[n.replace(".", "__")], generator=generator)
        # END SOLUTION
        return params

    def regularizer(self) -> torch.Tensor:
        """KL(N(mu, exp(2 log_sigma)) || N(0, I)) summed (not averaged) over every stochastic weight: a 0-dim tensor,
        differentiable in the means and the log-sigmas."""
        params = dict(self.model.named_parameters())
        # BEGIN SOLUTION hint="sum over self.stochastic of kl_diag_gaussians on the flattened mu and logvar = 2 * \
        #     log_sigma, against zeros"
        kl = 0.0
        for n in self.stochastic:
            mu, logvar = params[n].flatten(), 2 * self.log_sigma[n.replace(".", "__")].flatten()
            kl = kl + kl_diag_gaussians(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar))
        return kl
        # END SOLUTION
