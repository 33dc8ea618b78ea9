"""Question 3d (Part B): a Gaussian over MAML's adapted head weights (bayes_head_maml.py)."""

import math

import torch

from cs330.data import sample_regression_tasks
from cs330.grading import graded, reference_module, student_module


def tasks(B=3, k=4, q=6, seed=0, dtype=torch.float64):
    t = sample_regression_tasks("sinusoid", B, k, q, generator=torch.Generator().manual_seed(seed))
    return tuple(v.to(dtype) for v in (t.x_support, t.y_support, t.x_query, t.y_query))


def model(seed=0, module=None, **kwargs):
    torch.manual_seed(seed)
    kwargs = {"hidden": (16, 16), "inner_steps": 3, "inner_lr": 0.02, "inner_samples": 4, "n_samples": 5, **kwargs}
    return (module or student_module("bayes_head_maml")).GaussianHeadMAML(**kwargs).double()


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def hand_neg_elbo(mu, rho, mu0, rho0, obs_logvar, feats, y, eps, kl_weight=1.0):
    """The docstring's formula written out: mean Gaussian NLL over samples and points + weight * KL / M."""
    w = mu + rho.exp() * eps  # (S, D)
    pred = feats @ w.T  # (M, S)
    nll = 0.5 * (math.log(2 * math.pi) + obs_logvar + (y - pred) ** 2 / obs_logvar.exp())
    d = torch.distributions
    kl = d.kl_divergence(d.Normal(mu, rho.exp()), d.Normal(mu0, rho0.exp())).sum()
    return nll.mean() + kl_weight * kl / feats.shape[0]


def elbo_inputs(seed=0, M=5, D=9, S=3):
    mu0, rho0 = seeded(D, seed=seed), -1.0 + 0.3 * seeded(D, seed=seed + 1)
    mu, rho = mu0 + 0.5 * seeded(D, seed=seed + 2), rho0 + 0.2 * seeded(D, seed=seed + 3)
    feats, y, eps = seeded(M, D, seed=seed + 4), seeded(M, 1, seed=seed + 5), seeded(S, D, seed=seed + 6)
    return mu, rho, mu0, rho0, torch.tensor(math.log(0.3), dtype=torch.float64), feats, y, eps


@graded("3d-0-basic", points=2)
def test_predict_shapes_and_inner_loop_fits_the_support():
    """predict gives (S, B, Q, 1) components without a graph; the inner loop lowers the support negative ELBO
    (estimated with many fresh samples) and moves the head's mean prediction h(x)^T mu towards the support y."""
    m = model(inner_lr=0.05, inner_steps=5)
    sx, sy, qx, _ = tasks()
    mu, logvar = m.predict(sx, sy, qx, n_samples=7, generator=torch.Generator().manual_seed(0))
    assert mu.shape == logvar.shape == (7, 3, 6, 1), f"expected (7, 3, 6, 1) each, got {mu.shape}, {logvar.shape}"
    assert torch.isfinite(mu).all() and torch.isfinite(logvar).all()
    assert mu.grad_fn is None and logvar.grad_fn is None, "predict must not build a graph"
    assert mu.std(0).mean() > 0, "the components must differ: they are samples of the adapted q(w)"
    big = seeded(2000, m.dim, seed=9)
    for b in range(3):
        feats, y = m.features(sx[b]).detach(), sy[b]
        prior = (m.prior_mu.detach(), m.prior_rho.detach(), m.obs_logvar().detach())
        eps = seeded(m.inner_steps, m.inner_samples, m.dim, seed=10 + b)
        q_mu, q_rho = m.adapt(*prior, feats, y, eps, second_order=False)
        before = float(m.support_neg_elbo(prior[0], prior[1], *prior, feats, y, big))
        after = float(m.support_neg_elbo(q_mu.detach(), q_rho.detach(), *prior, feats, y, big))
        assert after < before - 1e-3, f"task {b}: the support negative ELBO went from {before:.4f} to {after:.4f}"
        err_before = float(((feats @ prior[0] - y[:, 0]) ** 2).mean())
        err_after = float(((feats @ q_mu.detach() - y[:, 0]) ** 2).mean())
        assert err_after < err_before, f"task {b}: the mean head moved away from the support ({err_before:.3f} -> {err_after:.3f})"


@graded("3d-1-basic", points=1)
def test_support_neg_elbo_kl_term():
    """With q == p the negative ELBO is the sampled mean NLL alone (KL = 0); otherwise it adds
    kl_weight * KL(q || p) / M, with KL(q || p) of the log-std parameterisation (rho = log sigma)."""
    m = model()
    mu, rho, mu0, rho0, obs_logvar, feats, y, eps = elbo_inputs()
    at_prior = m.support_neg_elbo(mu0, rho0, mu0, rho0, obs_logvar, feats, y, eps)
    assert at_prior is not None and at_prior.shape == (), f"expected a 0-dim tensor, got {at_prior}"
    expected = hand_neg_elbo(mu0, rho0, mu0, rho0, obs_logvar, feats, y, eps)
    assert torch.allclose(at_prior, expected, rtol=1e-10), f"q == p: {float(at_prior):.6f}, expected {float(expected):.6f}"
    for weight in (1.0, 2.5):
        m.kl_weight = weight
        value = m.support_neg_elbo(mu, rho, mu0, rho0, obs_logvar, feats, y, eps)
        expected = hand_neg_elbo(mu, rho, mu0, rho0, obs_logvar, feats, y, eps, kl_weight=weight)
        assert torch.allclose(value, expected, rtol=1e-10), (
            f"kl_weight {weight}: {float(value):.6f}, expected {float(expected):.6f} (KL(q || p) / M, rho a log-std?)")


@graded("3d-2-hidden", points=2)
def test_support_neg_elbo_and_loss_match_reference():
    """Seeded float64 negative ELBO and its gradients in (mu, rho) (reparameterised samples) against the formula;
    the meta-loss and its meta-gradients against the reference's."""
    m = model(seed=3)
    inputs = elbo_inputs(seed=7, M=4, D=m.dim, S=6)
    mu, rho = inputs[0].clone().requires_grad_(), inputs[1].clone().requires_grad_()
    value = m.support_neg_elbo(mu, rho, *inputs[2:])
    g = torch.autograd.grad(value, (mu, rho))
    sx, sy, qx, qy = tasks(B=4, k=3, seed=5)
    loss = m.loss(sx, sy, qx, qy, generator=torch.Generator().manual_seed(11))
    grads = torch.autograd.grad(loss, list(m.parameters()))
    # BEGIN HIDDEN
    h_mu, h_rho = inputs[0].clone().requires_grad_(), inputs[1].clone().requires_grad_()
    expected = hand_neg_elbo(h_mu, h_rho, *inputs[2:])
    h_g = torch.autograd.grad(expected, (h_mu, h_rho))
    assert torch.allclose(value, expected, rtol=1e-10), f"negative ELBO {float(value):.8f} != {float(expected):.8f}"
    assert torch.allclose(g[0], h_g[0], rtol=1e-8, atol=1e-12), "gradient in mu differs from the formula's"
    assert torch.allclose(g[1], h_g[1], rtol=1e-8, atol=1e-12), "gradient in rho differs (w = mu + exp(rho) * eps?)"
    ref = model(seed=3, module=reference_module("bayes_head_maml"))
    ref.load_state_dict(m.state_dict())
    r_loss = ref.loss(sx, sy, qx, qy, generator=torch.Generator().manual_seed(11))
    r_grads = torch.autograd.grad(r_loss, list(ref.parameters()))
    assert torch.allclose(loss, r_loss, rtol=1e-10), f"loss {float(loss):.8f} != reference {float(r_loss):.8f}"
    for (n, _), a, b in zip(ref.named_parameters(), grads, r_grads):
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-10), f"meta-gradient of {n} differs from the reference"
    # END HIDDEN


@graded("3d-3-hidden", points=1)
def test_meta_gradient_second_order_and_first_order():
    """The meta-gradient reaches mu0, rho0, the noise and the body, through the inner loop (second order differs
    from first order); a first-order inner loop has d mu_K / d mu0 = I; predict builds no graph."""
    m = model(seed=2)
    sx, sy, qx, qy = tasks(seed=3)
    second = torch.autograd.grad(m.loss(sx, sy, qx, qy, generator=torch.Generator().manual_seed(1)), list(m.parameters()))
    m.first_order = True
    first = torch.autograd.grad(m.loss(sx, sy, qx, qy, generator=torch.Generator().manual_seed(1)), list(m.parameters()))
    # BEGIN HIDDEN
    names = [n for n, _ in m.named_parameters()]
    for n, g in zip(names, second):
        assert g.abs().sum() > 0, f"no meta-gradient reaches {n}"
    for n in ("prior_mu", "prior_rho"):
        i = names.index(n)
        assert not torch.allclose(second[i], first[i], rtol=1e-6), f"{n}: second order equals first order"
    mu0 = m.prior_mu.detach().clone().requires_grad_()
    feats = m.features(sx[0]).detach()
    eps = seeded(m.inner_steps, m.inner_samples, m.dim, seed=4)
    q_mu, _ = m.adapt(mu0, m.prior_rho.detach(), m.obs_logvar().detach(), feats, sy[0], eps, second_order=False)
    jac = torch.autograd.functional.jacobian(
        lambda p: m.adapt(p, m.prior_rho.detach(), m.obs_logvar().detach(), feats, sy[0], eps, False)[0], mu0)
    assert torch.allclose(jac, torch.eye(m.dim, dtype=jac.dtype)), "first order: d mu_K / d mu0 must be I"
    q_mu2, _ = m.adapt(mu0, m.prior_rho.detach(), m.obs_logvar().detach(), feats, sy[0], eps, second_order=True)
    jac2 = torch.autograd.functional.jacobian(
        lambda p: m.adapt(p, m.prior_rho.detach(), m.obs_logvar().detach(), feats, sy[0], eps, True)[0], mu0)
    assert not torch.allclose(jac2, torch.eye(m.dim, dtype=jac2.dtype)), "second order: d mu_K / d mu0 is not I"
    assert torch.allclose(q_mu, q_mu2), "first and second order take the same inner steps"
    mu, logvar = m.predict(sx, sy, qx, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert mu.grad_fn is None and logvar.grad_fn is None and not mu.requires_grad, "predict must not build a graph"
    # END HIDDEN
