"""Question 1: Gaussian tools (gaussian.py): reparameterised sampling, KL, likelihoods."""

import math

import torch
from torch.distributions import Normal, kl_divergence

from cs330.grading import graded, reference_module, student_module


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@graded("1a-0-basic", points=1)
def test_sample_gaussian_shapes_statistics_gradient():
    """sample_gaussian: (S, ...) samples with the right mean and spread, reproducible, differentiable."""
    gaussian = student_module("gaussian")
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor([0.0, math.log(4.0)], dtype=torch.float64, requires_grad=True)
    z = gaussian.sample_gaussian(mu, logvar, 20000, generator=torch.Generator().manual_seed(0))
    assert z is not None and z.shape == (20000, 2), f"expected (20000, 2), got {getattr(z, 'shape', None)}"
    assert torch.allclose(z.mean(0), mu.detach(), atol=0.05), f"sample means {z.mean(0)} != {mu.detach()}"
    assert torch.allclose(z.std(0), torch.tensor([1.0, 2.0], dtype=torch.float64), atol=0.05), f"sample std {z.std(0)}"
    again = gaussian.sample_gaussian(mu, logvar, 20000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z, again), "the same seeded generator must give the same samples"
    z.sum().backward()
    assert mu.grad is not None and logvar.grad is not None and logvar.grad.abs().sum() > 0, "no gradient reaches mu / logvar"
    one = gaussian.sample_gaussian(mu, logvar, generator=torch.Generator().manual_seed(1))
    assert one.shape == (2,), "n_samples=None draws one sample with mu's shape"


@graded("1a-1-hidden", points=1)
def test_sample_gaussian_matches_reference():
    """Seeded samples equal mu + exp(logvar / 2) * eps with eps drawn as the docstring says."""
    mu, logvar = seeded(3, 4, seed=1), seeded(3, 4, seed=2)
    z = student_module("gaussian").sample_gaussian(mu, logvar, 5, generator=torch.Generator().manual_seed(3))
    # BEGIN HIDDEN
    ref = reference_module("gaussian").sample_gaussian(mu, logvar, 5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(z, ref, rtol=1e-12), "samples differ from mu + exp(logvar / 2) * eps"
    # END HIDDEN


@graded("1b-0-basic", points=2)
def test_kl_known_gaussians():
    """KL on Gaussians with known values: 0 for equal ones, 1/2 for a unit mean shift, the closed form otherwise."""
    kl = student_module("gaussian").kl_diag_gaussians
    z, o = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    same = kl(z, z, z, z)
    assert same is not None and same.shape == () and abs(float(same)) < 1e-12, f"KL(p || p) must be 0, got {same}"
    assert abs(float(kl(o, z, z, z)) - 0.5) < 1e-12, "KL(N(1, 1) || N(0, 1)) = 1/2"
    # KL(N(1, 2^2) || N(0, 1)) = log(1/2) + (4 + 1) / 2 - 1/2
    value = float(kl(o, torch.full((1,), math.log(4.0), dtype=torch.float64), z, z))
    assert abs(value - (math.log(0.5) + 2.0)) < 1e-12, f"KL(N(1, 4) || N(0, 1)) = {math.log(0.5) + 2:.6f}, got {value:.6f}"
    two = kl(torch.tensor([1.0, 0.0]), torch.zeros(2), torch.zeros(2), torch.zeros(2))
    assert abs(float(two) - 0.5) < 1e-6, "the KL sums over the last dim"


@graded("1b-1-hidden", points=2)
def test_kl_matches_torch_distributions():
    """Batched KL between random diagonal Gaussians equals torch.distributions' (summed over dims), prior broadcast."""
    kl = student_module("gaussian").kl_diag_gaussians
    mq, lq, mp, lp = (seeded(4, 3, 6, seed=s) for s in range(4))
    out = kl(mq, lq, mp, lp)
    out_prior = kl(mq, lq, torch.zeros(6, dtype=torch.float64), torch.zeros(6, dtype=torch.float64))
    # BEGIN HIDDEN
    expected = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum(-1)
    assert out.shape == (4, 3) and torch.allclose(out, expected, rtol=1e-10), "KL differs from the closed form"
    prior = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(out_prior, prior, rtol=1e-10), "KL to a broadcast N(0, I) prior is wrong"
    # END HIDDEN


@graded("1c-0-basic", points=1)
def test_gaussian_nll_and_single_component_mixture():
    """gaussian_nll is -log N(y; mu, exp(logvar)); a mixture of one component is the same."""
    g = student_module("gaussian")
    y, mu, logvar = seeded(5, seed=4), seeded(5, seed=5), seeded(5, seed=6)
    nll = g.gaussian_nll(y, mu, logvar)
    assert torch.allclose(nll, -Normal(mu, (0.5 * logvar).exp()).log_prob(y), rtol=1e-10), "wrong Gaussian NLL"
    assert torch.allclose(g.mixture_nll(y, mu[None], logvar[None]), nll, rtol=1e-10), "S = 1 must give gaussian_nll"


@graded("1c-1-hidden", points=2)
def test_mixture_nll_value_and_stability():
    """mixture_nll equals -log mean_s N(y; mu_s, var_s) and stays finite far in the tails."""
    g = student_module("gaussian")
    y, mu, logvar = seeded(3, 2, seed=7), seeded(7, 3, 2, seed=8), seeded(7, 3, 2, seed=9)
    out = g.mixture_nll(y, mu, logvar)
    far = g.mixture_nll(torch.tensor([1e3], dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64),
                        torch.full((4, 1), -6.0, dtype=torch.float64))
    # BEGIN HIDDEN
    dens = Normal(mu, (0.5 * logvar).exp()).log_prob(y).exp().mean(0)
    assert torch.allclose(out, -dens.log(), rtol=1e-9), "mixture NLL differs from -log mean density"
    assert torch.isfinite(far).all() and float(far) > 1e8, "use logsumexp: the tail NLL must be large and finite"
    # END HIDDEN
