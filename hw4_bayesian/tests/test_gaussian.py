"""Question 1: Gaussian tools (gaussian.py): reparameterised sampling, KL, likelihoods.

``student`` is your code: in the autograder it runs in a separate sandboxed process and what comes back
is data. Gradients are taken there, in ``probes.py``. Inputs are float64; tolerances allow float32 maths.
"""

import math

import torch
from torch.distributions import Normal, kl_divergence

import probes
import slopes
from stated import STATED
from cs330.grading import drawn_seed, expect_tensor, graded


def seeded(*shape, seed=0):
    """Standard-normal float64 inputs, set ``seed`` of this grading's draws (drawn_seed: unknown to your code)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(drawn_seed(f"1 inputs {seed}")),
                       dtype=torch.float64)


MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
LOGVAR = torch.tensor([0.0, math.log(4.0)], dtype=torch.float64)  # sigma = (1, 2)


@graded("1a-0-basic", points=1)
def test_sample_gaussian_shape_mean_and_generator(student):
    """sample_gaussian: (S, ...) samples (mu's shape when n_samples is None) centred on mu, drawn with the
    generator (the same seed gives the same samples, another seed others)."""

    def sample(mu, logvar, n_samples, seed):  # sample_gaussian with torch.Generator().manual_seed(seed)
        return student.probe(probes.sample, mu, logvar, n_samples, seed)

    z = expect_tensor(sample(MU, LOGVAR, 20000, 0), "sample_gaussian", (20000, 2))
    spread = z.std(0)
    assert (spread > 0).all(), (
        f"the samples do not vary (standard deviations {spread.tolist()}): z = mu + exp(logvar / 2) * eps, with eps "
        "drawn from N(0, 1) by the generator")
    # in standard errors of the sample mean, whatever the spread
    error = (z.mean(0) - MU).abs() / (spread / 20000**0.5)
    assert (error < 5).all(), f"sample means {z.mean(0).tolist()}, expected mu = {MU.tolist()}"
    again = expect_tensor(sample(MU, LOGVAR, 20000, 0), "sample_gaussian")
    other = expect_tensor(sample(MU, LOGVAR, 20000, 1), "sample_gaussian")
    assert torch.equal(z, again) and not torch.equal(z, other), \
        "samples must come from the given generator (the same seed gives the same samples): pass generator=generator"
    expect_tensor(sample(MU, LOGVAR, None, 1), "sample_gaussian(n_samples=None)", (2,))


@graded("1a-1-basic", points=1)
def test_sample_gaussian_is_reparameterised(student):
    """Samples are differentiable in mu and logvar (z = mu + sigma * eps): d sum(z) / d mu = S for every entry,
    and the gradient in logvar is not zero."""
    got = student.probe(probes.sample_grads, MU, LOGVAR, 50, seed=2)
    expect_tensor(got["z"], "sample_gaussian", (50, 2))
    assert got["d_mu"] is not None, (
        "the samples carry no gradient: build them as mu + sigma * eps from the tensors you are given "
        "(no torch.no_grad, .detach(), .item() or Normal(...).sample(); rsample is the reparameterised one)")
    assert torch.allclose(got["d_mu"], torch.full((2,), 50.0, dtype=torch.float64)), \
        f"d sum(z) / d mu should be S = 50 per entry, got {got['d_mu'].tolist()}"
    assert got["d_logvar"].abs().min() > 0, "no gradient reaches logvar: sigma = exp(logvar / 2) must stay in the graph"
    v, h = slopes.direction({"mu": MU, "logvar": LOGVAR}, "1a-1 direction"), 1e-5
    moved = (student.probe(probes.sample, MU + s * h * v["mu"], LOGVAR + s * h * v["logvar"], 50, 2) for s in (1, -1))
    plus, minus = (expect_tensor(z, "sample_gaussian", (50, 2)).sum() for z in moved)
    slopes.assert_slope({"mu": got["d_mu"], "logvar": got["d_logvar"]}, v, plus, minus, h, "sum(z)")


@graded("1a-2-hidden", points=1)
def test_sample_gaussian_spread_and_values(student, reference):
    """The spread is sigma = exp(logvar / 2) (logvar is a log-variance), and seeded samples equal
    mu + exp(logvar / 2) * eps with the eps the given line draws."""
    z = expect_tensor(student.probe(probes.sample, MU, LOGVAR, 20000, 0),
                      "sample_gaussian", (20000, 2))
    std = z.std(0)
    assert torch.allclose(std, torch.tensor([1.0, 2.0], dtype=torch.float64), atol=0.05), (
        f"sample std {std.tolist()}, expected (1, 2) for logvar = (0, log 4): sigma = exp(logvar / 2), "
        "not exp(logvar) (the variance) or logvar itself")
    mu, logvar = seeded(3, 4, seed=1), seeded(3, 4, seed=2)
    z = expect_tensor(student.probe(probes.sample, mu, logvar, 5, 3), "sample_gaussian", (5, 3, 4))
    again = expect_tensor(student.probe(probes.sample, mu, logvar, 5, 3), "sample_gaussian", (5, 3, 4))
    # BEGIN HIDDEN
    # samples not drawn from the generator lose 1a-0's point only: then the spread decides here
    if torch.equal(z, again):
        ref = reference.gaussian.sample_gaussian(mu, logvar, 5, generator=torch.Generator().manual_seed(3))
        assert torch.allclose(z, ref, rtol=1e-5, atol=1e-6), "seeded samples differ from mu + exp(logvar / 2) * eps"
    # END HIDDEN


@graded("1b-0-hidden", points=2)
def test_kl_values(student, reference):
    """KL(q || p) per dimension: 0 for equal Gaussians, 1/2 for a unit mean shift, the closed form (in the
    direction q to p) for random ones."""
    kl = student.gaussian.kl_diag_gaussians
    z, o = torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    same = expect_tensor(kl(z, z, z, z), "kl_diag_gaussians", ())
    assert abs(float(same)) < 1e-6, f"KL(p || p) must be 0, got {float(same)}"
    shift = float(expect_tensor(kl(o, z, z, z), "kl_diag_gaussians", ()))
    assert abs(shift - 0.5) < 1e-6, f"KL(N(1, 1) || N(0, 1)) = 1/2, got {shift:.6f}"
    # KL(N(1, 2^2) || N(0, 1)) = log(1/2) + (4 + 1) / 2 - 1/2; the other direction is log 2 + 2 / 8 - 1/2
    value = float(expect_tensor(kl(o, torch.full((1,), math.log(4.0), dtype=torch.float64), z, z), "kl_diag_gaussians"))
    forward, backward = math.log(0.5) + 2.0, math.log(2.0) + 0.25 - 0.5
    assert abs(value - backward) > 1e-3, "this is KL(p || q): the first Gaussian (mu_q, logvar_q) is q, the second p"
    assert abs(value - forward) < 1e-6, (
        f"KL(N(1, 4) || N(0, 1)) = {forward:.6f}, got {value:.6f} (logvar is the log-variance: var = exp(logvar))")
    mq, lq, mp, lp = (seeded(20, 1, seed=s) for s in range(4))
    out = expect_tensor(kl(mq, lq, mp, lp), "kl_diag_gaussians", (20,))
    # BEGIN HIDDEN
    expected = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum(-1)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-7), "KL differs from the closed form on random Gaussians"
    # END HIDDEN


@graded("1b-1-basic", points=1)
def test_kl_sums_over_the_last_dim_and_broadcasts(student):
    """The KL of (..., D) Gaussians is the sum over the last dim of the per-dimension KLs (shape (...)), and a
    prior given as zeros(D) broadcasts against a batch."""
    kl = student.gaussian.kl_diag_gaussians
    mq, lq, mp, lp = (seeded(4, 3, 6, seed=s) for s in range(4))
    out = expect_tensor(kl(mq, lq, mp, lp), "kl_diag_gaussians on (4, 3, 6) inputs", (4, 3))
    per_dim = torch.stack([expect_tensor(kl(mq[..., d:d + 1], lq[..., d:d + 1], mp[..., d:d + 1], lp[..., d:d + 1]),
                                         "kl_diag_gaussians on (4, 3, 1) inputs", (4, 3)) for d in range(6)], -1)
    assert torch.allclose(out, per_dim.sum(-1), rtol=1e-5), (
        "the KL of a D-dimensional diagonal Gaussian is the sum of the D per-dimension KLs: .sum(-1), not a mean")
    zeros = torch.zeros(6, dtype=torch.float64)
    broadcast = expect_tensor(kl(mq, lq, zeros, zeros), "kl_diag_gaussians with a zeros(D) prior", (4, 3))
    explicit = expect_tensor(kl(mq, lq, torch.zeros_like(mq), torch.zeros_like(lq)), "kl_diag_gaussians", (4, 3))
    assert torch.allclose(broadcast, explicit, rtol=1e-6), "a prior given as zeros(D) must broadcast against (..., D)"


@graded("1c-0-basic", points=1)
def test_gaussian_nll(student):
    """gaussian_nll is -log N(y; mu, exp(logvar)), elementwise."""
    y, mu, logvar = seeded(5, seed=4), seeded(5, seed=5), seeded(5, seed=6)
    nll = expect_tensor(student.gaussian.gaussian_nll(y, mu, logvar), "gaussian_nll", (5,))
    expected = -Normal(mu, (0.5 * logvar).exp()).log_prob(y)
    assert torch.allclose(nll, expected, rtol=1e-5), f"gaussian_nll {nll.tolist()}, expected {expected.tolist()}"


def mixture(student, y, mu, logvar):
    """``probes.mixture``: your mixture_nll on the stated gaussian_nll."""
    return student.probe(probes.mixture, y, mu, logvar, gaussian_nll=STATED["gaussian_nll"])


@graded("1c-1-hidden", points=1)
def test_mixture_nll_value(student):
    """mixture_nll is -log (1/S) sum_s N(y; mu_s, exp(logvar_s)) elementwise (the mean of the densities, so
    one component gives gaussian_nll). 1c-1 and 1c-2 run it with the stated gaussian_nll in place of yours
    (probes.mixture): 1c-0 alone grades gaussian_nll."""
    y, mu, logvar = seeded(3, 2, seed=7), seeded(7, 3, 2, seed=8), seeded(7, 3, 2, seed=9)
    one = expect_tensor(mixture(student, y, mu[:1], logvar[:1]),
                        "mixture_nll with S = 1", (3, 2))
    single = -Normal(mu[0], (0.5 * logvar[0]).exp()).log_prob(y)
    assert torch.allclose(one, single, rtol=1e-5), "with one component the mixture NLL is the Gaussian NLL"
    out = expect_tensor(mixture(student, y, mu, logvar), "mixture_nll", (3, 2))
    # BEGIN HIDDEN
    expected = -Normal(mu, (0.5 * logvar).exp()).log_prob(y).exp().mean(0).log()
    summed = expected - math.log(7)
    assert not torch.allclose(out, summed, rtol=1e-5), (
        "the mixture is uniform: average the densities (log S), do not sum them"
    )
    assert torch.allclose(out, expected, rtol=1e-5), "mixture NLL differs from -log mean_s N(y; mu_s, var_s)"
    # END HIDDEN


@graded("1c-2-basic", points=1)
def test_mixture_nll_is_stable_in_the_tails(student):
    """mixture_nll stays finite where every density underflows (y far in the tails): compute it in log space."""
    far = mixture(student, torch.tensor([1e3], dtype=torch.float64), torch.zeros(4, 1, dtype=torch.float64),
                  torch.full((4, 1), -6.0, dtype=torch.float64))
    far = expect_tensor(far, "mixture_nll", (1,))
    expected = 0.5 * (math.log(2 * math.pi) - 6.0 + 1e6 * math.exp(6.0))  # four equal components: one Gaussian's NLL
    assert torch.isfinite(far).all() and abs(float(far) / expected - 1) < 1e-5, (
        f"far in the tails: got {float(far)}, expected {expected:.6g}; exp(-nll) underflows to 0 there, "
        "use torch.logsumexp over the components")
