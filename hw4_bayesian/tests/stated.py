"""Question 1's functions, and ``support_neg_elbo``, as their docstrings state them: the test process's own.

Questions 2-3 are graded on top of gaussian.py's functions *as stated* (written here with
torch.distributions), put in place of yours while a probe of questions 2-3 runs, so that a mistake
in gaussian.py costs question 1's tests only; likewise 3d-3 and 3d-4 adapt with the stated
``support_neg_elbo``, so that 3d-0 to 3d-2 charge its mistakes. The tests compute their expected
values with these same functions.

They are the public tests' oracle, so they ship with the tests (written with torch.distributions, not
as the reference is). In the autograder they run here, in the test process: the probes get them as ``code.Trusted``
handles (``STATED``, ``NEG_ELBO``), whose calls (and gradients, to any order) are computed here and answered to
your code's process. Nothing of them is importable there. In your own ``pytest`` run they are
plain functions.
"""

import math

from torch.distributions import Normal, kl_divergence

from cs330.grading import Trusted


def _normal(mu, logvar):
    return Normal(mu, (0.5 * logvar).exp(), validate_args=False)  # no value checks: they fail under vmap


def reparameterize(mu, logvar, eps):
    """``sample_gaussian``'s value for its drawn noise ``eps`` (the draw itself is given in gaussian.py)."""
    return mu + (0.5 * logvar).exp() * eps


def kl_diag_gaussians(mu_q, logvar_q, mu_p, logvar_p):
    return kl_divergence(_normal(mu_q, logvar_q), _normal(mu_p, logvar_p)).sum(-1)


def gaussian_nll(y, mu, logvar):
    return -_normal(mu, logvar).log_prob(y)


def mixture_nll(y, mu, logvar):
    return math.log(mu.shape[0]) - _normal(mu, logvar).log_prob(y).logsumexp(dim=0)


def support_neg_elbo(mu, rho, prior_mu, prior_rho, obs_logvar, feats, y, eps, kl_weight):
    """``GaussianHeadMAML.support_neg_elbo`` as its docstring states it, with ``kl_weight`` last."""
    w = mu + rho.exp() * eps  # (S, D)
    nll = -_normal(feats @ w.T, obs_logvar).log_prob(y).mean()
    return nll + kl_weight * kl_diag_gaussians(mu, 2 * rho, prior_mu, 2 * prior_rho) / feats.shape[0]


# What a test passes to a probe, each only where the probe needs it (your code could call whatever it gets):
STATED = {f.__name__: Trusted(f) for f in (reparameterize, kl_diag_gaussians, gaussian_nll, mixture_nll)}
NEG_ELBO = Trusted(support_neg_elbo)  # for 3d-3 and 3d-4 only
