"""Question 2: MAML (maml.py): the inner loop, the task loss and the outer step."""

import torch
from torch import nn
from torch.nn import functional as F

from cs330.grading import graded, reference_module, student_module
from cs330.models import Conv4


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def episode(B=2, N=5, K=1, Q=2, seed=0):
    """A random (B tasks, N-way K-shot, Q queries per class) float64 meta-batch of 28x28 images."""
    labels = lambda M: torch.arange(N).repeat_interleave(M).repeat(B, 1)  # noqa: E731
    return seeded(B, N * K, 1, 28, 28, seed=seed), labels(K), seeded(B, N * Q, 1, 28, 28, seed=seed + 1), labels(Q)


def conv4(seed=0, hidden=8):
    torch.manual_seed(seed)
    return Conv4(5, hidden=hidden).double()


# --- a tiny model with a closed form: linear regression, f(x) = x @ w, squared error --------------
D = 3


def regression_task(seed=0, n=6):
    xs, xq = seeded(n, D, seed=seed), seeded(n, D, seed=seed + 1)
    return xs, seeded(n, 1, seed=seed + 2), xq, seeded(n, 1, seed=seed + 3)


def linear(seed=0):
    model = nn.Linear(D, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(seeded(1, D, seed=seed + 10))
    return model


def closed_form(w, xs, ys, xq, yq, alpha, first_order):
    """One inner step on L_s(w) = mean (xs w - ys)^2: w' = w - alpha (2/n) xs^T (xs w - ys) = (I - alpha A) w + alpha b,
    A = (2/n) xs^T xs. Meta-gradient of L_q(w'): (I - alpha A) grad L_q(w') (A symmetric); first order: grad L_q(w')."""
    n = xs.shape[0]
    A = 2 / n * xs.T @ xs
    w_adapted = w - alpha * 2 / n * xs.T @ (xs @ w - ys)
    g_query = 2 / xq.shape[0] * xq.T @ (xq @ w_adapted - yq)
    return g_query if first_order else (torch.eye(D, dtype=w.dtype) - alpha * A) @ g_query


def meta_gradient(maml_module, model, task, alpha, first_order):
    params = dict(model.named_parameters())
    loss, _ = maml_module.task_loss(model, params, {"weight": alpha}, *task, steps=1, train=True,
                                    first_order=first_order, loss_fn=F.mse_loss)
    return torch.autograd.grad(loss, params["weight"])[0].T  # (D, 1)


@graded("2a-0-basic", points=1)
def test_inner_loop_keys_shapes_and_zero_steps():
    """inner_loop returns every parameter with its shape; 0 steps changes nothing; 1 step changes the adapted ones."""
    maml = student_module("maml")
    model = conv4()
    params = dict(model.named_parameters())
    sx, sy, _, _ = episode(B=1)
    lrs = {n: 0.4 for n in params}
    same = maml.inner_loop(model, params, lrs, sx[0], sy[0], steps=0, train=False)
    assert same is not None and set(same) == set(params), "inner_loop must return a dict with every parameter name"
    assert all(torch.equal(same[n], params[n]) for n in params), "0 inner steps must return theta unchanged"
    adapted = maml.inner_loop(model, params, lrs, sx[0], sy[0], steps=1, train=False)
    assert all(adapted[n].shape == p.shape for n, p in params.items()), "adapted parameters keep their shapes"
    assert not torch.equal(adapted["head.weight"], params["head.weight"]), "one step must change the head"
    anil = maml.inner_loop(model, params, {"head.weight": 0.4, "head.bias": 0.4}, sx[0], sy[0], steps=1, train=False,
                           adapt=["head.weight", "head.bias"])
    assert torch.equal(anil["blocks.0.conv.weight"], params["blocks.0.conv.weight"]), "adapt= lists what changes (ANIL)"
    assert torch.allclose(anil["head.weight"], adapted["head.weight"]), "the first step's head update does not depend on adapt="


@graded("2a-1-hidden", points=2)
def test_inner_loop_matches_reference():
    """inner_loop (3 steps, per-element learned rates, ANIL too) matches the reference."""
    maml = student_module("maml")
    model = conv4(seed=1)
    params = dict(model.named_parameters())
    lrs = {n: 0.1 + 0.3 * seeded(*p.shape, seed=i).abs() for i, (n, p) in enumerate(params.items())}
    sx, sy, _, _ = episode(B=1, K=2, seed=3)
    out = maml.inner_loop(model, params, lrs, sx[0], sy[0], steps=3, train=False)
    head = ["head.weight", "head.bias"]
    out_anil = maml.inner_loop(model, params, lrs, sx[0], sy[0], steps=3, train=False, adapt=head)
    # BEGIN HIDDEN
    ref = reference_module("maml")
    expected = ref.inner_loop(model, params, lrs, sx[0], sy[0], steps=3, train=False)
    expected_anil = ref.inner_loop(model, params, lrs, sx[0], sy[0], steps=3, train=False, adapt=head)
    for n in params:
        assert torch.allclose(out[n], expected[n], rtol=1e-9, atol=1e-12), f"adapted {n} differs from the reference"
        assert torch.allclose(out_anil[n], expected_anil[n], rtol=1e-9, atol=1e-12), f"ANIL: adapted {n} differs"
    # END HIDDEN


@graded("2a-2-hidden", points=1)
def test_inner_loop_keeps_graph_only_when_training():
    """train=True: adapted parameters depend on theta; train=False: they carry no graph."""
    maml = student_module("maml")
    model = conv4()
    params = dict(model.named_parameters())
    sx, sy, _, _ = episode(B=1)
    lrs = {n: 0.4 for n in params}
    trained = maml.inner_loop(model, params, lrs, sx[0], sy[0], steps=2, train=True)
    evaluated = maml.inner_loop(model, params, lrs, sx[0], sy[0], steps=2, train=False)
    # BEGIN HIDDEN
    assert all(t.requires_grad for t in trained.values()), "with train=True the adapted parameters must carry the graph"
    assert not any(t.requires_grad for t in evaluated.values()), "with train=False no graph may be kept (evaluation)"
    # END HIDDEN


@graded("2b-0-basic", points=2)
def test_second_order_meta_gradient_closed_form():
    """Linear regression, one inner step: the meta-gradient equals (I - alpha A) grad L_q(w')."""
    maml = student_module("maml")
    model, task = linear(), regression_task()
    got = meta_gradient(maml, model, task, alpha=0.1, first_order=False)
    expected = closed_form(model.weight.detach().T, *task, alpha=0.1, first_order=False)
    assert torch.allclose(got, expected, rtol=1e-10), f"second-order meta-gradient {got.flatten()} != {expected.flatten()}"


@graded("2b-1-hidden", points=2)
def test_first_order_meta_gradient_closed_form():
    """First-order: the meta-gradient is grad L_q(w'), which differs from the second-order one."""
    maml = student_module("maml")
    model, task = linear(seed=4), regression_task(seed=4)
    first = meta_gradient(maml, model, task, alpha=0.2, first_order=True)
    second = meta_gradient(maml, model, task, alpha=0.2, first_order=False)
    # BEGIN HIDDEN
    w = model.weight.detach().T
    assert torch.allclose(first, closed_form(w, *task, alpha=0.2, first_order=True), rtol=1e-10), "first-order meta-gradient is wrong"
    assert torch.allclose(second, closed_form(w, *task, alpha=0.2, first_order=False), rtol=1e-10), "second-order meta-gradient is wrong"
    assert (first - second).norm() > 1e-3 * second.norm(), "first- and second-order meta-gradients should differ"
    # END HIDDEN


@graded("2b-2-hidden", points=2)
def test_vmap_equals_loop():
    """Conv4, 2 inner steps, learned rates: vmap over tasks equals the per-task loop (float64), loss and meta-gradients."""
    maml = student_module("maml")
    batch = episode(B=3, seed=5)
    results = []
    for vectorize in (True, False):
        m = maml.MAML(conv4(seed=2), inner_steps=2, inner_lr=0.3, learn_inner_lr=True, vectorize=vectorize)
        losses, accs = m.meta_loss(*batch, train=True)
        grads = torch.autograd.grad(losses.mean(), list(m.parameters()))
        results.append((losses.detach(), torch.cat([g.flatten() for g in grads])))
    # BEGIN HIDDEN
    (lv, gv), (ll, gl) = results
    assert torch.allclose(lv, ll, rtol=1e-10), "per-task losses differ between vmap and the loop"
    assert (gv - gl).norm() <= 1e-10 * gl.norm(), f"meta-gradients differ: relative {float((gv - gl).norm() / gl.norm()):.2e}"
    # END HIDDEN


@graded("2c-0-basic", points=1)
def test_outer_step_updates_meta_parameters():
    """outer_step changes the meta-parameters (and learned rates) and reports finite loss and accuracy."""
    maml = student_module("maml")
    m = maml.MAML(conv4(), inner_steps=1, inner_lr=0.4, learn_inner_lr=True)
    before = [p.detach().clone() for p in m.parameters()]
    out = m.outer_step(episode(B=2, seed=6), torch.optim.SGD(m.parameters(), lr=0.1))
    assert set(out) >= {"loss", "acc"} and torch.isfinite(torch.tensor(out["loss"])), f"bad metrics {out}"
    changed = [not torch.equal(b, p) for b, p in zip(before, m.parameters())]
    assert all(changed), f"{changed.count(False)} meta-parameter tensors did not change"


@graded("2c-1-hidden", points=2)
def test_outer_step_matches_reference():
    """One outer SGD step (2 tasks, 2 inner steps, second order) gives the reference's meta-parameters."""
    maml = student_module("maml")
    m = maml.MAML(conv4(seed=3), inner_steps=2, inner_lr=0.4)
    out = m.outer_step(episode(B=2, seed=7), torch.optim.SGD(m.parameters(), lr=0.1))
    # BEGIN HIDDEN
    ref = reference_module("maml").MAML(conv4(seed=3), inner_steps=2, inner_lr=0.4)
    ref_out = ref.outer_step(episode(B=2, seed=7), torch.optim.SGD(ref.parameters(), lr=0.1))
    assert abs(out["loss"] - ref_out["loss"]) < 1e-9 * abs(ref_out["loss"]), "meta-loss differs from the reference"
    for (n, p), r in zip(m.named_parameters(), ref.parameters()):
        assert torch.allclose(p, r, rtol=1e-8, atol=1e-12), f"{n} after the step differs from the reference"
    # END HIDDEN
