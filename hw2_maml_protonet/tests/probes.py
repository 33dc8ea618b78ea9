"""Probes: the code the autograder runs beside your protonet.py and maml.py, in the sandboxed process
that runs your code, when a check needs more than one call (a seeded model, a backward pass, an
optimiser step, vmap, a training run).

Each probe takes ``code`` first (your homework's modules: ``code.protonet``, ``code.maml``,
``code.train``) and returns data (tensors, numbers, strings, lists, dicts). The same probe run on the
reference solution gives what a hidden check compares with. Nothing here is secret: it ships with
the tests.

Models are float64 (so that comparisons can be tight without depending on summation order) and
their initial weights are drawn after ``torch.manual_seed(seed)``.
"""

import contextlib
import tempfile
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from cs330.models import Conv4

D = 3  # input size of the linear-regression model of the meta-gradient checks


def conv4(seed=0, n_way=5, hidden=8):
    """A float64 ``Conv4(n_way, hidden=hidden)``, its weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return Conv4(n_way, hidden=hidden).double()


def rates(params, learned, lr=0.4, seed=0):
    """Inner learning rates for every name of ``params``: ``lr``, or (learned) a seeded tensor per
    parameter with elements in [0.1, ~1] (Meta-SGD)."""
    if not learned:
        return {n: lr for n in params}
    g = torch.Generator().manual_seed(seed)
    return {n: 0.1 + 0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype).abs() for n, p in params.items()}


def _detached(out):
    """``inner_loop``'s result as data: {name: detached tensor}, or a string saying what it was instead."""
    if not isinstance(out, dict) or not all(isinstance(v, torch.Tensor) for v in out.values()):
        return f"a {type(out).__name__}, not a dict of tensors"
    return {n: v.detach() for n, v in out.items()}


# --- ProtoNet ------------------------------------------------------------------------------------

def loss_and_grad(code, logits, y):
    """``protonet.loss_and_accuracy(logits, y)`` and, after ``loss.backward()``, the gradient w.r.t. ``logits``."""
    logits = logits.detach().clone().requires_grad_(True)
    loss, acc = code.protonet.loss_and_accuracy(logits, y)
    if not (isinstance(loss, torch.Tensor) and loss.requires_grad):
        return {"loss": loss, "acc": acc, "grad": None}
    loss.backward()
    return {"loss": loss.detach(), "acc": acc, "grad": logits.grad}


# --- MAML: the inner loop ------------------------------------------------------------------------

def inner_loop(code, support_x, support_y, steps, learned_rates=False, adapt=None, train=False, seed=0):
    """``maml.inner_loop`` on a seeded Conv4 (``rates(learned_rates)``), called outside vmap and with
    gradients enabled: the adapted parameters, detached (or a string saying what came back)."""
    model = conv4(seed)
    params = dict(model.named_parameters())
    lrs = rates(params if adapt is None else {n: params[n] for n in adapt}, learned_rates, seed=seed + 1)
    out = code.maml.inner_loop(model, params, lrs, support_x, support_y, steps=steps, train=train, adapt=adapt)
    return _detached(out)


def inner_loop_head_rates(code, support_x, support_y, steps, head, seed=0):
    """``maml.inner_loop`` on every name with rate 0.4 for the names in ``head`` and 0 for the others (no
    ``adapt=``): what your own update rule makes of ANIL (the others stay theta - 0 * g)."""
    model = conv4(seed)
    params = dict(model.named_parameters())
    lrs = {n: 0.4 if n in head else 0.0 for n in params}
    return _detached(code.maml.inner_loop(model, params, lrs, support_x, support_y, steps=steps, train=False))


def inner_loop_inputs_after(code, support_x, support_y, train, seed=0):
    """Call ``maml.inner_loop`` (2 steps) and report what became of its inputs: whether the ``params``
    dict it was given still holds the same tensors (names and objects) and whether the model's
    weights kept their values."""
    model = conv4(seed)
    params = dict(model.named_parameters())
    given = dict(params)
    values = {n: p.detach().clone() for n, p in params.items()}
    out = code.maml.inner_loop(model, params, rates(params, False), support_x, support_y, steps=2, train=train)
    return {"adapted": _detached(out), "same_names": set(params) == set(given),
            "same_tensors": set(params) == set(given) and all(params[n] is given[n] for n in given),
            "same_values": all(torch.equal(p.detach(), values[n]) for n, p in model.named_parameters())}


# --- MAML: meta-gradients -----------------------------------------------------------------------

def linear(weight):
    """``nn.Linear(D, 1, bias=False)`` in float64 with the given (1, D) weight."""
    model = nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(weight)
    return model


def meta_gradient(code, weight, task, alpha, first_order, steps=1):
    """Linear regression f(x) = x @ w with squared error: ``maml.task_loss`` (``steps`` inner steps,
    rate ``alpha``, train=True) and the gradient of its query loss w.r.t. the weight, (D, 1).

    Returns {"loss", "grad"}; "grad" is None when the loss does not depend on the weight, and "error"
    says why when the loss carries no graph at all."""
    model = linear(weight)
    params = dict(model.named_parameters())
    theta = model.weight  # differentiated below: not params["weight"], which an inner loop may overwrite (2a-2's)
    out = code.maml.task_loss(model, params, {"weight": alpha}, *task, steps=steps, train=True,
                              first_order=first_order, loss_fn=F.mse_loss)
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[0], torch.Tensor)):
        return {"error": f"task_loss returned {type(out).__name__}, not (loss, accuracy)"}
    loss = out[0]
    if not loss.requires_grad:
        return {"error": "the query loss carries no graph (does not require grad)", "loss": loss.detach()}
    g = torch.autograd.grad(loss, theta, allow_unused=True)[0]
    return {"loss": loss.detach(), "grad": None if g is None else g.T.detach()}


def inner_map(code, weight, task, alpha, h=1e-4):
    """Your ``maml.inner_loop`` (one step, rate ``alpha``, train=False) on the linear-regression model of
    ``meta_gradient`` at the weight and at the weight +- h along each axis: {"at": w', "plus": [...],
    "minus": [...]}, each a (1, D) tensor (from these the test builds d w' / d w, the inner step's Jacobian)."""
    xs, ys = task[0], task[1]

    def adapted(w):
        model = linear(w)
        out = code.maml.inner_loop(model, dict(model.named_parameters()), {"weight": alpha}, xs, ys, steps=1,
                                   train=False, loss_fn=F.mse_loss)
        return out["weight"].detach()

    axes = torch.eye(D, dtype=weight.dtype)
    return {"at": adapted(weight), "plus": [adapted(weight + h * e) for e in axes],
            "minus": [adapted(weight - h * e) for e in axes]}


def adapted_per_task(code, episode, seed=2, steps=2, lr=0.3):
    """The MAML of ``meta_loss_and_gradient`` (learned rates, at their initial value): your ``inner_loop``
    (train=False) on each task's support set, {name: tensor} per task (the test runs the query set itself)."""
    m = code.maml.MAML(conv4(seed), inner_steps=steps, inner_lr=lr, learn_inner_lr=True, vectorize=False)
    return [_detached(code.maml.inner_loop(m.model, m.params(), m.lrs(), sx, sy, steps, train=False))
            for sx, sy in zip(episode[0], episode[1])]


def meta_loss_and_gradient(code, episode, vectorize, seed=2, steps=2, lr=0.3, first_order=False):
    """``MAML(conv4(seed), steps, lr, learn_inner_lr=True, vectorize=..., first_order=...)``: the per-task query losses
    of ``meta_loss(train=True)`` and the gradient of their mean w.r.t. every meta-parameter
    (flattened, in ``parameters()`` order). An exception becomes {"error": its type and message}."""
    m = code.maml.MAML(conv4(seed), inner_steps=steps, inner_lr=lr, learn_inner_lr=True, vectorize=vectorize,
                       first_order=first_order)
    try:
        losses, _ = m.meta_loss(*episode, train=True)
        params = list(m.parameters())
        grads = torch.autograd.grad(losses.mean(), params, allow_unused=True)
    except RuntimeError as e:
        return {"error": f"{type(e).__name__}: {e}"}
    # a meta-parameter the losses do not reach gets a zero gradient (an inner loop that ignores the rates
    # is 2a-1's mistake; here it is only a gradient that differs)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
    return {"losses": losses.detach(), "grad": torch.cat([g.flatten() for g in grads])}


def _zero_steps(model, params, lrs, support_x, support_y, steps, train, first_order=False, adapt=None, loss_fn=None):
    """``inner_loop`` with 0 steps, as its contract states it: theta itself (2a-0 grades yours)."""
    assert steps == 0, "the stated inner loop is for 0 steps only"
    return dict(params)


def outer_steps(code, episodes, seed=3, steps=2, learn_inner_lr=False, lr=0.1):
    """``MAML.outer_step`` on each of ``episodes`` in turn (tasks in a loop, second order), one SGD(lr)
    optimiser for all: the metrics of the last step and every meta-parameter before and after, by name.
    With ``steps=0`` your ``inner_loop`` is replaced by the stated 0-step one (theta itself) meanwhile, so
    that only ``outer_step`` and ``task_loss`` count."""
    with code.stand_ins("maml", {"inner_loop": _zero_steps}) if steps == 0 else contextlib.nullcontext():
        m = code.maml.MAML(conv4(seed), inner_steps=steps, inner_lr=0.4, learn_inner_lr=learn_inner_lr, vectorize=False)
        before = {n: p.detach().clone() for n, p in m.named_parameters()}
        optimizer = torch.optim.SGD(m.parameters(), lr=lr)
        for episode in episodes:
            metrics = m.outer_step(episode, optimizer)
    return {"metrics": metrics, "before": before, "after": {n: p.detach().clone() for n, p in m.named_parameters()}}


# --- short training runs ------------------------------------------------------------------------

def short_run(code, algorithm, steps, seed, support_x, support_y, query_x):
    """Meta-train with ``train.fit`` (your protonet.py / maml.py) on synthetic glyphs for ``steps``
    steps (Conv4 with 16 channels, 4 tasks of 5-way 1-shot, 5 queries per class, Adam 3e-3), and return
    what the test needs to measure the trained model itself, in its own process: ProtoNet's trained
    encoder weights, or MAML's adapted parameters on each held-out task (``inner_loop`` on its support set,
    train=False). The held-out queries' labels never come here.

    Returns {"history": fit's history, "encoder": {name: tensor}} (ProtoNet) or {"history", "adapted":
    [{name: tensor} per task]} (MAML)."""
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        a = code.train.options(algorithm=algorithm, data="glyphs", hidden=16, meta_batch_size=4, n_query=5,
                               steps=steps, eval_every=steps, val_tasks=4, lr=3e-3, seed=seed, device="cpu",
                               tasks="loop", checkpoint_dir=folder, results_dir=folder, no_progress=True)
        history = code.train.fit(a, progress=False)
        model = code.train.build(a)
        saved = torch.load(Path(folder) / code.train.run_name(a) / "checkpoint.pt", weights_only=False)
        model.load_state_dict(saved["model"])
    if algorithm == "protonet":
        return {"history": history, "encoder": {n: p.detach() for n, p in model.encoder.state_dict().items()}}
    params, lrs = model.params(), model.lrs()
    adapted = [_detached(code.maml.inner_loop(model.model, params, lrs, sx, sy, model.inner_steps, train=False))
               for sx, sy in zip(support_x, support_y)]
    return {"history": history, "adapted": adapted}
