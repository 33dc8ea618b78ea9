"""MAML (Finn et al., 2017) for classification and regression, and MR-MAML with stochastic weights.

Why this file is not an import from hw2: the ``cs330`` package ships to every student release, so
it must hold no homework's solution; HW2's inner loop is student work there. HW4 comes after HW2's
due date, so a plain MAML is *given* here (not graded), in HW2's ``torch.func`` style.

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
from torch.func import functional_call, grad
from torch.nn import functional as F

from cs330.models import map_tasks
from gaussian import kl_diag_gaussians, sample_gaussian

Params = dict[str, torch.Tensor]


def inner_loop(model: nn.Module, params: Params, support_x: torch.Tensor, support_y: torch.Tensor, steps: int,
               lr: float, loss_fn, second_order: bool, adapt: list[str] | None = None) -> Params:
    """``steps`` SGD steps of ``loss_fn(model(support_x), support_y)`` on the ``adapt`` names (all if None).

    One task: support_x (M, ...), support_y (M, ...). Returns every name of ``params``, adapted ones
    phi_K. With second_order=False the inner gradients are constants (first order / evaluation).
    Works inside ``torch.func.vmap`` (``map_tasks``)."""
    names = list(params) if adapt is None else list(adapt)
    fast = {n: params[n] for n in names}
    frozen = {n: p for n, p in params.items() if n not in fast}

    def support_loss(f: Params) -> torch.Tensor:
        return loss_fn(functional_call(model, {**frozen, **f}, (support_x,)), support_y)

    for _ in range(steps):
        g = grad(support_loss)(fast)
        if not second_order:
            g = {n: t.detach() for n, t in g.items()}
        fast = {n: fast[n] - lr * g[n] for n in names}
    return {**frozen, **fast}


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (out.argmax(-1) == y).to(out.dtype).mean() if not y.is_floating_point() else out.new_zeros(())


class MAML(nn.Module):
    """MAML around ``model``. adapt="all" or "head" (``head.*`` names); loss_fn: cross-entropy or MSE;
    vectorize: tasks with ``vmap`` (True) or a Python loop (False, faster for Conv4 on a CPU)."""

    def __init__(self, model: nn.Module, inner_steps: int = 1, inner_lr: float = 0.4, first_order: bool = False,
                 adapt: str = "all", loss_fn=F.cross_entropy, vectorize: bool = True):
        super().__init__()
        self.model, self.inner_steps, self.inner_lr, self.first_order = model, inner_steps, inner_lr, first_order
        self.loss_fn, self.vectorize = loss_fn, vectorize
        names = [n for n, _ in model.named_parameters()]
        self.adapt = names if adapt == "all" else [n for n in names if n.startswith("head.")]

    def meta_params(self, generator: torch.Generator | None = None) -> Params:
        """theta used for this meta-batch (MR-MAML: a sample)."""
        return dict(self.model.named_parameters())

    def regularizer(self) -> torch.Tensor:
        return torch.zeros(())

    def per_task(self, params: Params, support_x, support_y, query_x, query_y, train: bool, steps: int | None = None):
        """Per-task query losses (B,), accuracies (B,) and query outputs (B, M, out)."""
        steps = self.inner_steps if steps is None else steps
        second = train and not self.first_order
        if not train:
            params = {n: p.detach() for n, p in params.items()}

        def one(sx, sy, qx, qy):
            adapted = inner_loop(self.model, params, sx, sy, steps, self.inner_lr, self.loss_fn, second, self.adapt)
            out = functional_call(self.model, adapted, (qx,))
            return self.loss_fn(out, qy), accuracy(out, qy), out

        return map_tasks(one, support_x, support_y, query_x, query_y, vectorize=self.vectorize)

    def loss(self, support_x, support_y, query_x, query_y, beta: float = 0.0, generator=None):
        """(total, task loss, regulariser, accuracy): total = mean query loss + beta * regulariser."""
        losses, accs, _ = self.per_task(self.meta_params(generator), support_x, support_y, query_x, query_y, True)
        reg = self.regularizer()
        return losses.mean() + beta * reg, losses.mean(), reg, accs.mean()

    def predict(self, support_x, support_y, query_x, steps: int | None = None) -> torch.Tensor:
        """Adapted outputs on the queries (B, M, out), no meta-graph, mean weights."""
        if support_y.is_floating_point():  # query targets are not needed: zeros of the right shape
            dummy = support_y.new_zeros(*query_x.shape[:2], support_y.shape[-1])
        else:
            dummy = support_y.new_zeros(query_x.shape[:2])
        return self.per_task(dict(self.model.named_parameters()), support_x, support_y, query_x, dummy, False,
                             steps)[2].detach()


class MRMAML(MAML):
    """MR-MAML(W): stochastic body weights N(theta_mu, exp(2 rho)), KL to N(0, I); only the head adapts.
    ``init_log_sigma``: rho's initial value (small noise at first)."""

    def __init__(self, model: nn.Module, init_log_sigma: float = -6.0, **kwargs):
        super().__init__(model, adapt="head", **kwargs)
        self.stochastic = [n for n, _ in model.named_parameters() if not n.startswith("head.")]
        self.log_sigma = nn.ParameterDict({n.replace(".", "__"): nn.Parameter(torch.full_like(p, init_log_sigma))
                                           for n, p in model.named_parameters() if n in self.stochastic})

    def meta_params(self, generator: torch.Generator | None = None) -> Params:
        """theta ~ q: every stochastic name a reparameterised sample mu + sigma * eps, the head as it is."""
        params = dict(self.model.named_parameters())
        # BEGIN SOLUTION hint="for each name in self.stochastic: sample_gaussian(mu, 2 * log_sigma, generator=generator); log_sigma is self.log_sigma[name with '.' -> '__']"
        for n in self.stochastic:
            params[n] = sample_gaussian(params[n], 2 * self.log_sigma[n.replace(".", "__")], generator=generator)
        # END SOLUTION
        return params

    def regularizer(self) -> torch.Tensor:
        """KL(q(theta) || N(0, I)) summed over every stochastic weight (a 0-dim tensor)."""
        params = dict(self.model.named_parameters())
        # BEGIN SOLUTION hint="sum over self.stochastic of kl_diag_gaussians on the flattened mu and logvar = 2 * log_sigma, against zeros"
        kl = 0.0
        for n in self.stochastic:
            mu, logvar = params[n].flatten(), 2 * self.log_sigma[n.replace(".", "__")].flatten()
            kl = kl + kl_diag_gaussians(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar))
        return kl
        # END SOLUTION
