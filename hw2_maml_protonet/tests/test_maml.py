"""Question 2: MAML (maml.py): the inner loop, the task loss and the outer step.

``student`` is your code: in the autograder it runs in a separate sandboxed process. Seeded models,
backward passes, vmap and optimiser steps happen there, in the probes of ``probes.py``; ``reference``
(hidden checks only) runs the same probes on the reference solution. Models and inputs are float64;
tolerances are loose enough for any correct formula. Only the vmap test (2b-2-basic) runs your inner
loop inside ``torch.func.vmap``; the others call it in a plain loop, with gradients enabled.
"""

import torch
from torch.func import functional_call
from torch.nn import functional as F

import probes
from cs330.grading import expect_tensor, graded

D = probes.D


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def episode(B=2, N=5, K=1, Q=2, seed=0):
    """A random (B tasks, N-way K-shot, Q queries per class) float64 meta-batch of 28x28 images, label-major."""
    labels = lambda M: torch.arange(N).repeat_interleave(M).repeat(B, 1)  # noqa: E731
    return seeded(B, N * K, 1, 28, 28, seed=seed), labels(K), seeded(B, N * Q, 1, 28, 28, seed=seed + 1), labels(Q)


def adapted(out, what):
    """Check that an inner_loop result came back as {name: tensor} with Conv4's names and shapes."""
    assert not isinstance(out, str), f"{what}: inner_loop must return a dict {{name: tensor}}, got {out}"
    model = probes.conv4()
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    assert set(out) == set(shapes), (
        f"{what}: inner_loop must return every parameter name; "
        f"missing {sorted(set(shapes) - set(out))}, extra {sorted(set(out) - set(shapes))}"
    )
    for n, shape in shapes.items():
        expect_tensor(out[n], f"inner_loop ({what}) for {n}", shape)
    return out


def theta(seed=0):
    return {n: p.detach() for n, p in probes.conv4(seed).named_parameters()}


def moved(out, start, what, names=("head.weight", "head.bias")):
    """Fail unless the adapted ``out`` differs from ``start`` (theta) in each of ``names``: an inner loop that
    returns theta unchanged leaves its inputs alone, agrees with itself and has J = I, so the tests of those
    properties credit only steps that move theta (2a-0 says what a step must do)."""
    still = [n for n in names if torch.equal(out[n], start[n])]
    assert not still, (
        f"inner_loop ({what}) returned theta unchanged for {still}: each step must update the adapted parameters, "
        "theta_k+1 = theta_k - alpha * grad L_support(theta_k) (2a-0)")


@graded("2a-0-basic", points=1)
def test_inner_loop_zero_and_one_step(student):
    """inner_loop returns every parameter with its shape; 0 steps returns theta; 1 step changes the parameters."""
    sx, sy, _, _ = episode(B=1)
    same = adapted(student.probe(probes.inner_loop, sx[0], sy[0], steps=0), "0 steps")
    start = theta()
    changed = [n for n in start if not torch.equal(same[n], start[n])]
    assert not changed, f"0 inner steps must return theta unchanged; changed: {changed}"
    one = adapted(student.probe(probes.inner_loop, sx[0], sy[0], steps=1), "1 step")
    assert all(not torch.equal(one[n], start[n]) for n in ("head.weight", "head.bias")), (
        "one inner step must change the head"
    )


@graded("2a-1-hidden", points=1)
def test_inner_loop_values(student, reference):
    """inner_loop, 3 steps with per-element learned rates (Meta-SGD), 5-way 2-shot, gives the reference's theta_3."""
    sx, sy, _, _ = episode(B=1, K=2, seed=3)
    out = adapted(student.probe(probes.inner_loop, sx[0], sy[0], steps=3, learned_rates=True, seed=1), "3 steps")
    # BEGIN HIDDEN
    expected = reference.probe(probes.inner_loop, sx[0], sy[0], steps=3, learned_rates=True, seed=1)
    for n, e in expected.items():
        assert torch.allclose(out[n], e, rtol=1e-6, atol=1e-9), (
            f"adapted {n} differs from theta_3 = theta_2 - alpha * grad L_support(theta_2) "
            f"(max |diff| {float((out[n] - e).abs().max()):.2e})"
        )
    # END HIDDEN


@graded("2a-2-basic", points=1)
def test_inner_loop_leaves_its_inputs(student):
    """inner_loop builds new tensors: the params dict it is given and the model's weights stay as they were."""
    sx, sy, _, _ = episode(B=1, seed=4)
    for train in (True, False):
        after = student.probe(probes.inner_loop_inputs_after, sx[0], sy[0], train=train)
        moved(adapted(after["adapted"], f"2 steps, train={train}"), theta(), "2 steps")
        assert after["same_names"] and after["same_tensors"], (
            f"inner_loop (train={train}) changed the params dict it was given (theta, shared by every task of the "
            "meta-batch and by the optimiser): start from a new dict (fast = dict(params) or a dict comprehension) "
            "and assign the adapted tensors there")
        assert after["same_values"], (
            f"inner_loop (train={train}) changed the model's weights in place: theta_k - alpha * g must be a new "
            "tensor (no -=, sub_ or .data on the parameters)")


@graded("2a-3-hidden", points=1)
def test_inner_loop_anil(student, reference):
    """adapt= lists the names to adapt (ANIL: the head): those equal the reference's, every other name stays theta."""
    sx, sy, _, _ = episode(B=1, K=2, seed=5)
    head = ["head.weight", "head.bias"]
    out = adapted(student.probe(probes.inner_loop, sx[0], sy[0], steps=2, adapt=head, seed=1), "ANIL")
    # BEGIN HIDDEN
    start = theta(seed=1)
    others = [n for n in start if n not in head and not torch.equal(out[n], start[n])]
    assert not others, f"adapt={head}: the other parameters must stay theta; changed: {others}"
    moved(out, start, f"adapt={head}", head)
    expected = reference.probe(probes.inner_loop, sx[0], sy[0], steps=2, adapt=head, seed=1)
    if all(torch.allclose(out[n], expected[n], rtol=1e-6, atol=1e-9) for n in head):
        return
    # your update's values differ from the reference's (2a-1 charges that): ANIL must then be your own inner loop run
    # on every name with rate 0 outside the head
    own = adapted(student.probe(probes.inner_loop_head_rates, sx[0], sy[0], steps=2, head=head, seed=1),
                  "rates 0 but the head's")
    kept = [n for n in start if n not in head and not torch.equal(own[n], start[n])]
    assert not kept, (
        f"ANIL: adapted head differs from the reference, and your inner_loop with rate 0 outside the head moves "
        f"{kept[:3]}: theta - 0 * g must stay theta (each step is theta_k - lrs[n] * grad, 2a-1)")
    for n in head:
        assert torch.allclose(out[n], own[n], rtol=1e-6, atol=1e-9), (
            f"ANIL: adapted {n} differs from the reference, "
            "and from your inner_loop on every name with rate 0 outside the head"
        )
    # END HIDDEN


# --- meta-gradients on a model with a closed form: linear regression, f(x) = x @ w, squared error ---

def regression_task(seed=0, n=6):
    xs, xq = seeded(n, D, seed=seed), seeded(n, D, seed=seed + 1)
    return xs, seeded(n, 1, seed=seed + 2), xq, seeded(n, 1, seed=seed + 3)


def closed_form(w, xs, ys, xq, yq, alpha, first_order):
    """One inner step on L_s(w) = mean (xs w - ys)^2: w' = w - alpha (2/n) xs^T (xs w - ys) = (I - alpha A) w + alpha b,
    A = (2/n) xs^T xs. Meta-gradient of L_q(w'): (I - alpha A) grad L_q(w') (A symmetric); first order: grad L_q(w')."""
    n = xs.shape[0]
    A = 2 / n * xs.T @ xs
    w_adapted = w - alpha * 2 / n * xs.T @ (xs @ w - ys)
    g_query = 2 / xq.shape[0] * xq.T @ (xq @ w_adapted - yq)
    return g_query if first_order else (torch.eye(D, dtype=w.dtype) - alpha * A) @ g_query


def meta_gradient(student, seed, alpha, first_order):
    """Your task_loss's meta-gradient (D, 1) and the closed form's, for a seeded weight and task."""
    weight, task = seeded(1, D, seed=seed + 10), regression_task(seed)
    out = student.probe(probes.meta_gradient, weight, task, alpha, first_order)
    mode = "first-order" if first_order else "second-order"
    assert "error" not in out, f"{mode} MAML: {out['error']}: with train=True the query loss must depend on theta"
    assert out["grad"] is not None, (
        f"{mode} MAML: the query loss does not depend on theta. theta_K = theta - alpha * g must keep theta in the "
        "graph even in first-order mode: detach the inner GRADIENT g, not theta")
    got = expect_tensor(out["grad"], f"{mode} meta-gradient", (D, 1))
    return got, closed_form(weight.T, *task, alpha=alpha, first_order=first_order)


def own_meta_gradients(student, seed, alpha, h=1e-4):
    """The (first-order, second-order) meta-gradients that YOUR inner step implies, for an inner step whose values
    are not theta - alpha * g (2a-1 charges that, not the tests of the meta-gradient): J^T grad L_q(w') and
    grad L_q(w'), with w' your inner_loop's adapted weight and J = d w' / d w from your inner_loop at w +- h along each
    axis (central differences: exact for a step affine in w). The query loss's gradient is computed here."""
    weight, (xs, ys, xq, yq) = seeded(1, D, seed=seed + 10), regression_task(seed)
    out = student.probe(probes.inner_map, weight, (xs, ys), alpha, h)
    at = expect_tensor(out["at"], "inner_loop's adapted weight", (1, D)).T  # (D, 1)
    plus = [expect_tensor(t, "inner_loop's adapted weight", (1, D)) for t in out["plus"]]
    minus = [expect_tensor(t, "inner_loop's adapted weight", (1, D)) for t in out["minus"]]
    jacobian = torch.stack([(p - m).flatten() / (2 * h) for p, m in zip(plus, minus)], 1)  # [j, i] = d w'_j / d w_i
    # with J = I (theta unchanged, or moved by a constant) first and second order coincide: nothing to compare with
    assert (jacobian - torch.eye(D, dtype=jacobian.dtype)).abs().max() > 1e-6, (
        "the meta-gradient differs from the closed form, and your inner_loop's adapted weight does not depend on the "
        "support loss's gradient (d theta_K / d theta = I: theta returned unchanged, or moved by a constant): "
        "theta_1 = theta - alpha * grad L_support(theta) (2a-0)")
    g_query = 2 / xq.shape[0] * xq.T @ (xq @ at - yq)
    return g_query, jacobian.T @ g_query


def close(got, want):
    return torch.allclose(got, want, rtol=1e-6, atol=1e-9)


@graded("2b-0-basic", points=2)
def test_second_order_meta_gradient(student):
    """Linear regression, one inner step: the meta-gradient equals (I - alpha A) grad L_q(w') (through the inner step;
    with an inner step of other values, J^T grad L_q(w') with J your step's Jacobian: 2a-1 charges the step)."""
    got, expected = meta_gradient(student, seed=0, alpha=0.1, first_order=False)
    if close(got, expected):
        return
    own_first, own_second = own_meta_gradients(student, seed=0, alpha=0.1)
    if close(got, own_second):
        return
    first = closed_form(seeded(1, D, seed=10).T, *regression_task(0), alpha=0.1, first_order=True)
    assert not (close(got, first) or close(got, own_first)), (
        "second-order mode gives the first-order meta-gradient: keep the inner gradient in the graph "
        "(torch.func.grad, no detach) when training second order"
    )
    raise AssertionError(f"second-order meta-gradient {got.flatten().tolist()} != {expected.flatten().tolist()} "
                         "(I - alpha A) grad L_q(w')")


@graded("2b-1-basic", points=2)
def test_first_order_meta_gradient(student):
    """First order: the meta-gradient is grad L_q(w'), the inner gradient treated as a constant (w' your inner step's
    adapted weight: 2a-1 charges its values)."""
    got, expected = meta_gradient(student, seed=4, alpha=0.2, first_order=True)
    if close(got, expected):
        return
    own_first, own_second = own_meta_gradients(student, seed=4, alpha=0.2)
    if close(got, own_first):
        return
    second = closed_form(seeded(1, D, seed=14).T, *regression_task(4), alpha=0.2, first_order=False)
    assert not (close(got, second) or close(got, own_second)), \
        "first_order=True gives the second-order meta-gradient: detach the inner gradient in first-order mode"
    raise AssertionError(f"first-order meta-gradient {got.flatten().tolist()} != {expected.flatten().tolist()} "
                         "= grad L_q(w')")


@graded("2b-2-basic", points=2)
def test_vmap_equals_loop(student):
    """Conv4, 2 inner steps, learned rates: running the tasks with vmap equals the per-task loop
    (losses and meta-gradients)."""
    batch = episode(B=3, seed=5)
    loop = student.probe(probes.meta_loss_and_gradient, batch, vectorize=False)
    assert "error" not in loop, f"MAML.meta_loss (tasks in a loop) failed: {loop.get('error')}"
    vmap = student.probe(probes.meta_loss_and_gradient, batch, vectorize=True)
    assert "error" not in vmap, (
        f"MAML.meta_loss with vectorize=True (torch.func.vmap over the tasks) failed: {vmap['error']}. "
        "Take the inner gradient with torch.func.grad(support_loss)(fast, ...), not torch.autograd.grad: "
        "autograd.grad cannot differentiate inside vmap (the official course's code uses it; this homework runs "
        "the tasks of a meta-batch with vmap). See the README, 'MAML here and in the course'.")
    lv, ll = expect_tensor(vmap["losses"], "losses (vmap)", (3,)), expect_tensor(loop["losses"], "losses (loop)", (3,))
    own_adapted(student, batch)  # vmap and the loop agree trivially on an inner loop that skips the work
    gv, gl = expect_tensor(vmap["grad"], "meta-gradient (vmap)"), expect_tensor(loop["grad"], "meta-gradient (loop)")
    assert torch.allclose(lv, ll, rtol=1e-6), "per-task losses differ between vmap and the loop"
    assert (gv - gl).norm() <= 1e-6 * gl.norm(), (
        f"meta-gradients differ between vmap and the loop: relative {float((gv - gl).norm() / gl.norm()):.2e}"
    )


def own_adapted(student, batch):
    """YOUR inner_loop's adapted parameters on each task of ``batch`` (probes.adapted_per_task); each must have moved
    from theta, and differently for tasks with different support sets (a step that ignores the support loss, such
    as a constant shift, agrees with itself everywhere)."""
    tasks = [adapted(task, "2 steps, learned rates") for task in student.probe(probes.adapted_per_task, batch)]
    for task in tasks:
        moved(task, theta(seed=2), "2 steps, learned rates")
    assert not torch.equal(tasks[0]["head.weight"], tasks[1]["head.weight"]), (
        "inner_loop adapts the head the same way for tasks with different support sets: each step must follow that "
        "task's support loss, theta_k+1 = theta_k - alpha * grad L_support(theta_k) (2a-0)")
    return tasks


def own_query_losses(student, batch):
    """The per-task query cross-entropy of YOUR inner_loop's adapted parameters (``own_adapted``), run here on the
    given Conv4 of ``meta_loss_and_gradient``."""
    model = probes.conv4(2)
    return torch.stack([F.cross_entropy(functional_call(model, params, (qx,)), qy)
                        for params, qx, qy in zip(own_adapted(student, batch), batch[2], batch[3])]).detach()


@graded("2b-3-hidden", points=1)
def test_meta_gradient_matches_reference(student, reference):
    """Conv4, 2 inner steps, learned rates (Meta-SGD), tasks in a loop: the per-task losses and the meta-gradient
    w.r.t. theta and the rates equal the reference's. Mistakes charged elsewhere are not charged again: with an inner
    step of other values (2a-1) the losses must be your own adapted parameters' query losses and the gradient is not
    compared; a first-order gradient in second-order mode (2b-0) is compared with the reference's first-order one."""
    batch = episode(B=2, seed=8)
    out = student.probe(probes.meta_loss_and_gradient, batch, vectorize=False)
    assert "error" not in out, f"MAML.meta_loss (tasks in a loop) failed: {out.get('error')}"
    losses, g = expect_tensor(out["losses"], "per-task losses", (2,)), expect_tensor(out["grad"], "meta-gradient")
    # BEGIN HIDDEN
    ref = reference.probe(probes.meta_loss_and_gradient, batch, vectorize=False)
    if not torch.allclose(losses, ref["losses"], rtol=1e-6):
        # your inner loop's values differ from the reference's (2a-1 charges that): the losses must then be the query
        # losses of your own adapted parameters, and the meta-gradient is not compared
        own = own_query_losses(student, batch)
        assert torch.allclose(losses, own, rtol=1e-6), (
            "per-task query losses differ from the reference, "
            "and from the query loss of your own inner_loop's adapted parameters"
        )
        return
    assert g.shape == ref["grad"].shape, (
        f"the meta-gradient has {g.numel()} elements, the reference's {ref['grad'].numel()}"
    )
    if (g - ref["grad"]).norm() <= 1e-6 * ref["grad"].norm():
        return
    first = reference.probe(probes.meta_loss_and_gradient, batch, vectorize=False, first_order=True)["grad"]
    if (g - first).norm() <= 1e-6 * first.norm():
        return  # first order where second order is asked: 2b-0 charges that, not this test
    raise AssertionError("the meta-gradient (theta and the learned rates, 2 inner steps) differs from the reference")
    # END HIDDEN


@graded("2c-0-basic", points=1)
def test_outer_step_updates_meta_parameters(student):
    """outer_step changes every meta-parameter (learned rates too) and reports finite loss and accuracy."""
    out = student.probe(probes.outer_steps, [episode(B=2, seed=6)], seed=0, steps=1, learn_inner_lr=True)
    metrics = out["metrics"]
    assert isinstance(metrics, dict) and {"loss", "acc"} <= set(metrics), (
        f"outer_step must return {{'loss', 'acc'}}, got {metrics}"
    )
    assert torch.isfinite(torch.tensor(float(metrics["loss"]))), f"non-finite loss {metrics['loss']}"
    unchanged = [n for n, b in out["before"].items() if torch.equal(b, out["after"][n])]
    assert not unchanged, (
        f"outer_step did not change {unchanged}: the mean query loss over the tasks must reach every meta-parameter"
    )


@graded("2c-1-hidden", points=2)
def test_outer_step_matches_reference(student, reference):
    """Two consecutive outer SGD steps (2 tasks each) give the reference's loss, accuracy and meta-parameters: the mean
    over tasks, fresh gradients at each step. With 0 inner steps and the stated 0-step inner loop (theta itself) in
    place of yours, so that an inner-loop mistake is not charged here."""
    batches = [episode(B=2, seed=7), episode(B=2, seed=9)]
    out = student.probe(probes.outer_steps, batches, seed=3, steps=0)
    # BEGIN HIDDEN
    ref = reference.probe(probes.outer_steps, batches, seed=3, steps=0)
    loss, ref_loss = float(out["metrics"]["loss"]), ref["metrics"]["loss"]
    assert abs(loss - ref_loss) <= 1e-6 * abs(ref_loss), (
        f"meta-loss {loss:.8f} differs from the reference's {ref_loss:.8f} (the mean over tasks?)"
    )
    assert abs(float(out["metrics"]["acc"]) - ref["metrics"]["acc"]) < 1e-6, (
        "the mean query accuracy differs from the reference's"
    )
    for n, r in ref["after"].items():
        p = expect_tensor(out["after"].get(n), f"meta-parameter {n}", tuple(r.shape))
        assert torch.allclose(p, r, rtol=1e-6, atol=1e-9), (
            f"{n} after two steps differs from the reference (max |diff| {float((p - r).abs().max()):.2e}; "
            "are the gradients zeroed before each backward?)"
        )
    # END HIDDEN
