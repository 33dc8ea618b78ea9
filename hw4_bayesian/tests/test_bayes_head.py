"""Question 3d (Part B): a Gaussian over MAML's adapted head weights (bayes_head_maml.py).

``student`` is your code: in the autograder it runs in a separate sandboxed process. Seeded float64 models and
backward passes happen there, in ``probes.py``; what comes back is data.
"""

import math

import torch

import probes
import slopes
import stated
from stated import NEG_ELBO, STATED
from cs330.data import sample_regression_tasks
from cs330.grading import drawn_seed, expect_tensor, graded


def tasks(B=3, k=4, q=6, seed=0):
    """Sinusoid tasks (float64), set ``seed`` of this grading's draws (drawn_seed: unknown to your code)."""
    g = torch.Generator().manual_seed(drawn_seed(f"3d tasks {seed}"))
    t = sample_regression_tasks("sinusoid", B, k, q, generator=g)
    return tuple(v.double() for v in (t.x_support, t.y_support, t.x_query, t.y_query))


def seeded(*shape, seed=0):
    """Standard-normal float64 inputs, set ``seed`` of this grading's draws."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(drawn_seed(f"3d inputs {seed}")),
                       dtype=torch.float64)


def elbo_inputs(seed=0, M=5, D=17, S=3):
    """(mu, rho, mu0, rho0, obs_logvar, feats, y, eps) of one task, float64."""
    mu0, rho0 = seeded(D, seed=seed), -1.0 + 0.3 * seeded(D, seed=seed + 1)
    mu, rho = mu0 + 0.5 * seeded(D, seed=seed + 2), rho0 + 0.2 * seeded(D, seed=seed + 3)
    feats, y, eps = seeded(M, D, seed=seed + 4), seeded(M, 1, seed=seed + 5), seeded(S, D, seed=seed + 6)
    return mu, rho, mu0, rho0, torch.tensor(math.log(0.3), dtype=torch.float64), feats, y, eps


def neg_elbo(student, inputs, kl_weight=1.0):
    got = student.probe(probes.head_neg_elbo, inputs, kl_weight, stated=STATED)
    return expect_tensor(got["value"], "support_neg_elbo", ()), got["grads"]


@graded("3d-0-basic", points=1)
def test_support_neg_elbo_likelihood_term(student):
    """With kl_weight = 0 (and q == p) the negative ELBO is the mean over the S samples and the M support points of
    gaussian_nll(y_i, h_i^T w_s, obs_logvar), w_s = mu + exp(rho) * eps_s. The KL term is 3d-1's."""
    mu, rho, mu0, rho0, *rest = elbo_inputs()
    value, _ = neg_elbo(student, (mu0, rho0, mu0, rho0, *rest), kl_weight=0.0)
    expected = stated.support_neg_elbo(mu0, rho0, mu0, rho0, *rest, kl_weight=0.0)  # the docstring's formula
    feats = rest[1]
    assert not torch.allclose(value, expected * feats.shape[0], rtol=1e-5), (
        "the NLL is summed over the support points: take the mean"
    )
    assert torch.allclose(value, expected, rtol=1e-5), (
        f"kl_weight 0: {float(value):.6f}, expected {float(expected):.6f} (mean NLL over samples and points; "
        "w = mu + exp(rho) * eps: rho is a log-std)")


@graded("3d-1-basic", points=1)
def test_support_neg_elbo_kl_term(student):
    """Otherwise it adds kl_weight * KL(q || p) / M to its value at kl_weight 0, with KL(q || p) of the log-std
    parameterisation (rho = log sigma, so log-variance 2 rho), q = N(mu, exp(2 rho)) first."""
    inputs = elbo_inputs(seed=1)
    mu, rho, mu0, rho0, _, feats = inputs[:6]
    kl = stated.kl_diag_gaussians(mu, 2 * rho, mu0, 2 * rho0) / feats.shape[0]  # log-variances 2 rho
    likelihood, _ = neg_elbo(student, inputs, 0.0)  # the likelihood term alone: its value is 3d-0's
    for weight in (1.0, 2.5):
        value, _ = neg_elbo(student, inputs, weight)
        term = value - likelihood
        assert torch.allclose(term, weight * kl, rtol=1e-5), (
            f"kl_weight {weight}: the KL term (your value minus your value at kl_weight 0) is {float(term):.6f}, "
            f"expected {float(weight * kl):.6f} (KL(q || p) / M times kl_weight; "
            "kl_diag_gaussians takes log-variances: 2 * rho)")


def own_gradients(student, inputs, kl_weight, h=1e-6):
    """The derivatives of YOUR support_neg_elbo in mu and rho, by central differences of its values (computed here)."""
    out = student.probe(probes.head_neg_elbo_steps, inputs, kl_weight, h, stated=STATED)
    return [torch.tensor([(float(p) - float(m)) / (2 * h) for p, m in zip(out[name]["plus"], out[name]["minus"])],
                         dtype=torch.float64) for name in ("mu", "rho")]


@graded("3d-2-basic", points=1)
def test_support_neg_elbo_gradients(student):
    """The negative ELBO is differentiable in mu and rho: with kl_weight = 0 its gradients are the formula's
    (reparameterised samples w = mu + exp(rho) * eps, not detached), and with kl_weight = 1 the KL term adds a gradient
    in rho (the KL is not detached). The KL's value is 3d-1's, so its formula is not checked here."""
    inputs = elbo_inputs(seed=7, M=4, S=6)
    _, grads = neg_elbo(student, inputs, kl_weight=0.0)
    assert grads is not None, "support_neg_elbo carries no gradient in (mu, rho)"
    h_mu, h_rho = inputs[0].clone().requires_grad_(), inputs[1].clone().requires_grad_()
    h_g = torch.autograd.grad(stated.support_neg_elbo(h_mu, h_rho, *inputs[2:], kl_weight=0.0), (h_mu, h_rho))
    if not all(torch.allclose(g, h, rtol=1e-4, atol=1e-8) for g, h in zip(grads, h_g)):
        # your value differs from the formula's (3d-0 charges that): the gradients must be your value's own derivatives
        own = own_gradients(student, inputs, kl_weight=0.0)
        assert torch.allclose(grads[0], own[0], rtol=1e-4, atol=1e-6), \
            "kl_weight 0: the gradient in mu is not the derivative of your value (the mean NLL's; detached?)"
        assert torch.allclose(grads[1], own[1], rtol=1e-4, atol=1e-6), \
            "kl_weight 0: the gradient in rho is not the derivative of your value (w = mu + exp(rho) * eps, " \
            "not detached?)"
    _, with_kl = neg_elbo(student, inputs, kl_weight=1.0)
    assert with_kl is not None and (with_kl[1] - grads[1]).abs().max() > 1e-6, \
        "the KL term adds no gradient in rho: compute it from mu and rho without detaching"


def meta_loss(code, *args, **kwargs):
    """``probes.head_meta_loss`` on ``code`` (the student's or the reference), adapting with the stated functions."""
    return code.probe(probes.head_meta_loss, *args, stated=STATED, neg_elbo=NEG_ELBO, **kwargs)


@graded("3d-3-hidden", points=1)
def test_meta_loss_value(student, reference):
    """loss: the query mixture NLL (mixture_nll over ``self.n_samples`` sampled heads of the adapted q), mean over
    query points and tasks, with all noise drawn by one ``self.draw_noise(support_x, self.n_samples, generator)``."""
    t = tasks(B=4, k=3, seed=5)
    got = meta_loss(student, t, 3, 11)
    loss = expect_tensor(got["loss"], "GaussianHeadMAML.loss", ())
    other = expect_tensor(meta_loss(student, t, 3, 12)["loss"], "loss", ())
    assert not torch.equal(loss, other), (
        "another generator seed gives the same loss: draw the noise with self.draw_noise(..., generator)"
    )
    # BEGIN HIDDEN
    want = meta_loss(reference, t, 3, 11)
    assert torch.allclose(loss, want["loss"], rtol=1e-6), (
        f"loss {float(loss):.8f} != reference {float(want['loss']):.8f}"
    )
    # END HIDDEN


def directional_derivative_matches(student, t, grads, h=1e-5):
    """Fail unless the meta-gradient along a random direction is the central difference of your loss (float64,
    head_meta_loss's seeds; slopes.py): a gradient your code cannot forge without computing it."""
    v = slopes.direction(grads, "3d-4 direction")
    losses = student.probe(probes.head_meta_loss_along, t, 2, 1, v, [h, -h], stated=STATED, neg_elbo=NEG_ELBO)
    plus, minus = (expect_tensor(x, "loss", ()) for x in losses)
    slopes.assert_slope(grads, v, plus, minus, h, "the meta-gradient (second order through the inner loop, "
                        "train=True)")


@graded("3d-4-hidden", points=2)
def test_meta_gradient_is_second_order(student, reference):
    """The meta-gradient of loss reaches the body, mu0, rho0 and the noise level through the K inner steps: second
    order when ``first_order`` is False (components(..., train=True)), equal to the reference's up to a positive factor
    (the loss's scale, mean or sum, is 3d-3's)."""
    t = tasks(seed=3)
    got = meta_loss(student, t, 2, 1)
    assert got["grads"] is not None, "the loss carries no gradient: use components(..., train=True)"
    for n, g in got["grads"].items():
        assert g.abs().sum() > 0, f"no meta-gradient reaches {n}"
    # the probe seeds the global RNG before building the model: only another generator seed tells if the noise uses it
    uses_generator = not torch.equal(got["loss"], meta_loss(student, t, 2, 2)["loss"])
    # BEGIN HIDDEN
    if not uses_generator:
        # noise not from the generator (3d-3 deducts for that), so no reference to compare with: the loss must still
        # be a loss of the tasks, and the meta-gradient the derivative of YOUR loss, checked here by central differences
        elsewhere = meta_loss(student, tasks(seed=4), 2, 1)["loss"]
        assert not torch.equal(got["loss"], elsewhere), (
            "the loss is the same on other tasks: it must be the query mixture NLL of the adapted heads")
        directional_derivative_matches(student, t, got["grads"])
        return
    want = meta_loss(reference, t, 2, 1)
    first = meta_loss(reference, t, 2, 1, first_order=True)
    names = list(want["grads"])
    g = torch.cat([got["grads"][n].flatten() for n in names])
    scale = float(g @ torch.cat([want["grads"][n].flatten() for n in names]) / (g @ g))  # the loss's scale is 3d-3's
    for n, r in want["grads"].items():
        if n in ("prior_mu", "prior_rho") and torch.allclose(scale * got["grads"][n], first["grads"][n], rtol=1e-6):
            raise AssertionError(f"{n}: the meta-gradient is first order; "
                                 "differentiate through the inner loop (train=True)")
        assert scale > 0 and torch.allclose(scale * got["grads"][n], r, rtol=1e-5, atol=1e-9), \
            f"meta-gradient of {n} differs from the reference"
    # END HIDDEN
