"""MAML (Finn et al., 2017), with Meta-SGD learned inner rates and ANIL, written with ``torch.func``.

A task gives a support set (x_s, y_s) and a query set (x_q, y_q). With meta-parameters theta,

    inner loop (adaptation), K steps:   theta_0 = theta,  theta_{k+1} = theta_k - alpha * grad L(theta_k; x_s, y_s)
    task loss:                           L(theta_K; x_q, y_q)
    outer step:                          theta <- theta - beta * grad_theta mean_tasks L(theta_K(theta); x_q, y_q)

The meta-gradient flows *through* the inner loop: d theta_K / d theta involves the Hessian of the
support loss (second order). First-order MAML treats the inner gradients as constants
(d theta_K / d theta = I). alpha is a float, or (Meta-SGD, Li et al. 2017) a learned tensor per
parameter, same shape, element-wise. ANIL (Raghu et al. 2020) adapts only the head (``head.*``).

Parameters are a dict ``{name: tensor}`` run with ``torch.func.functional_call(model, params, (x,))``.
Inner gradients use ``torch.func.grad``, which works inside ``torch.func.vmap`` (all tasks of a
meta-batch in one batched call) and composes with ordinary autograd for the outer ``backward``.

HW4 is given this file, solved, once HW2 is past due (``hw4_bayesian/hw2_maml.py`` links here): its
MAML, MR-MAML, MAML ensemble and meta-gradient benchmark use ``inner_loop`` and ``MAML``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad
from torch.nn import functional as F

from cs330.models import map_tasks

Params = dict[str, torch.Tensor]


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of argmax(logits) == y (a 0-dim tensor); 0 for regression targets."""
    if y.is_floating_point():
        return logits.new_zeros(())
    return (logits.argmax(-1) == y).to(logits.dtype).mean()


def inner_loop(model: nn.Module, params: Params, lrs, support_x: torch.Tensor, support_y: torch.Tensor,
               steps: int, train: bool, first_order: bool = False, adapt: list[str] | None = None,
               loss_fn=F.cross_entropy) -> Params:
    """Adapt ``params`` to one task: ``steps`` steps of SGD on its support set.

    Args:
        model: the network, run as ``functional_call(model, params, (x,))``.
        params: {name: tensor}, the meta-parameters theta.
        lrs: {name: alpha} for every adapted name; alpha a float or a tensor broadcastable to the parameter.
        support_x: (N*K, C, H, W); support_y: (N*K,) labels (or regression targets for ``loss_fn``).
        steps: K >= 0 inner steps.
        train: meta-training: the result must stay differentiable w.r.t. theta (and learned alpha), so
            that the meta-gradient flows back through the inner loop. With train=False (evaluation)
            only the values count: whether the result still carries a graph is up to you (the
            reference detaches theta first, which saves memory; ``MAML.evaluate`` detaches its output).
        first_order: when training, treat the inner gradients as constants (first-order MAML): detach
            the gradient g, not theta, so that d theta_K / d theta = I still reaches theta.
        adapt: names of the parameters to adapt (all when None; the head only for ANIL). Others stay theta.
        loss_fn: loss_fn(logits, y) -> scalar, the support loss.

    Returns:
        {name: tensor}, every name of ``params``: theta_K for adapted names, theta for the others.
        theta_{k+1}[n] = theta_k[n] - lrs[n] * dL_support/dtheta_k[n]

    Take the gradient with ``torch.func.grad``, not ``torch.autograd.grad``: ``MAML.meta_loss`` runs the
    tasks of a meta-batch under ``torch.func.vmap`` (``vectorize=True``), where ``autograd.grad`` fails
    ("element 0 of tensors does not require grad"); ``torch.func.grad`` works inside vmap, outside it
    and under ``torch.no_grad``. ``.detach()`` the gradient when it must not be differentiated through.
    Leave the inputs as they are: theta is shared by every task and by the optimiser, so build new
    dicts (never assign into ``params``) and new tensors (no ``-=``, ``sub_`` or ``.data``).
    """
    names = list(params) if adapt is None else list(adapt)

    def support_loss(fast: Params, frozen: Params) -> torch.Tensor:
        return loss_fn(functional_call(model, {**frozen, **fast}, (support_x,)), support_y)

    # BEGIN SOLUTION hint="without train, start from detached params; then `steps` times: torch.func.grad of \
    #     support_loss w.r.t. the adapted dict (detached unless training second order), one SGD step per adapted name"
    if not train:
        params = {n: p.detach() for n, p in params.items()}
    fast = {n: params[n] for n in names}
    frozen = {n: p for n, p in params.items() if n not in fast}
    for _ in range(steps):
        grads = grad(support_loss)(fast, frozen)
        if first_order or not train:
            grads = {n: g.detach() for n, g in grads.items()}
        fast = {n: fast[n] - lrs[n] * grads[n] for n in names}
    return {**frozen, **fast}
    # END SOLUTION


def task_loss(model: nn.Module, params: Params, lrs, support_x, support_y, query_x, query_y, steps: int,
              train: bool, first_order: bool = False, adapt: list[str] | None = None, loss_fn=F.cross_entropy):
    """Adapt on one task's support set, then evaluate on its query set.

    Shapes as in ``inner_loop``; query_x (N*Q, C, H, W), query_y (N*Q,).
    Returns (loss, acc): 0-dim tensors, the query loss L(theta_K; x_q, y_q) (differentiable w.r.t.
    theta when ``train``) and the query accuracy (use ``accuracy``).
    """
    # BEGIN SOLUTION hint="inner_loop, then the adapted network on the query set: loss_fn and accuracy"
    adapted = inner_loop(model, params, lrs, support_x, support_y, steps, train, first_order, adapt, loss_fn)
    logits = functional_call(model, adapted, (query_x,))
    return loss_fn(logits, query_y), accuracy(logits, query_y)
    # END SOLUTION


class MAML(nn.Module):
    """MAML on a model, with options. Its parameters are the meta-parameters: the model's, and the
    inner learning rates when they are learned (Meta-SGD).

    Args:
        model: e.g. ``Conv4(n_way)``; ANIL adapts its ``head.*`` parameters.
        inner_steps, inner_lr: K and alpha (alpha's initial value when learned).
        learn_inner_lr: learn one rate per parameter element (Meta-SGD).
        first_order: first-order MAML.
        anil: adapt the head only.
        vectorize: run the tasks of a meta-batch with ``vmap`` (True) or a Python loop (False).
        loss_fn: support and query loss (cross-entropy; MSE for regression).
    """

    def __init__(self, model: nn.Module, inner_steps: int = 1, inner_lr: float = 0.4, learn_inner_lr: bool = False,
                 first_order: bool = False, anil: bool = False, vectorize: bool = True, loss_fn=F.cross_entropy):
        super().__init__()
        self.model = model
        self.inner_steps, self.inner_lr, self.first_order, self.anil = inner_steps, inner_lr, first_order, anil
        self.vectorize, self.loss_fn = vectorize, loss_fn
        names = [n for n, _ in model.named_parameters()]
        self.adapt = [n for n in names if n.startswith("head.")] if anil else names
        if anil and not self.adapt:
            raise ValueError("anil=True needs a model with head.* parameters")
        self.learn_inner_lr = learn_inner_lr
        if learn_inner_lr:  # ParameterDict keys cannot hold dots
            self.inner_lrs = nn.ParameterDict({n.replace(".", "__"): nn.Parameter(torch.full_like(p, inner_lr))
                                               for n, p in model.named_parameters() if n in self.adapt})

    def params(self) -> Params:
        return dict(self.model.named_parameters())

    def lrs(self):
        if self.learn_inner_lr:
            return {n: self.inner_lrs[n.replace(".", "__")] for n in self.adapt}
        return {n: self.inner_lr for n in self.adapt}

    def meta_loss(self, support_x, support_y, query_x, query_y, train: bool = True, steps: int | None = None):
        """Per-task query losses and accuracies of a meta-batch: inputs (B, ...), returns two (B,) tensors."""
        params, lrs = self.params(), self.lrs()
        steps = self.inner_steps if steps is None else steps

        def one_task(sx, sy, qx, qy):
            return task_loss(self.model, params, lrs, sx, sy, qx, qy, steps, train, self.first_order, self.adapt,
                             self.loss_fn)

        return map_tasks(one_task, support_x, support_y, query_x, query_y, vectorize=self.vectorize)

    def outer_step(self, episode, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """One meta-training step on a meta-batch ``episode`` (support_x, support_y, query_x, query_y with a
        leading task dim B): the mean query loss over the B tasks, its gradient w.r.t. the meta-parameters
        (``self.parameters()``), one ``optimizer`` step. Returns {"loss": mean loss, "acc": mean accuracy}.
        """
        # BEGIN SOLUTION hint="zero the gradients; the mean over tasks of self.meta_loss(..., train=True); backward; \
        #     step"
        optimizer.zero_grad(set_to_none=True)
        losses, accs = self.meta_loss(*episode, train=True)
        loss = losses.mean()
        loss.backward()
        optimizer.step()
        # END SOLUTION
        return {"loss": float(loss.detach()), "acc": float(accs.mean())}

    def evaluate(self, episode, steps: int | None = None) -> torch.Tensor:
        """Query accuracy of every task of ``episode`` after adaptation (no meta-graph), detached: (B,).

        Not under ``torch.no_grad``: the inner loop differentiates the support loss, and an inner loop
        written with ``torch.autograd.grad`` (outside vmap) needs gradients enabled for that."""
        return self.meta_loss(*episode, train=False, steps=steps)[1].detach()
