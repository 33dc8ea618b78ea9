"""Diagonal Gaussians: sampling with the reparameterisation trick, KL divergences, likelihoods.

Every distribution here is a diagonal Gaussian N(mu, diag(exp(logvar))) given by two tensors of the
same shape; the last dim is the event dim (summed over by ``kl_diag_gaussians``), leading dims are
batch dims. Predictive distributions of regression models are Gaussians per query point, or uniform
mixtures of S Gaussians (S posterior samples) stacked along a leading dim.
"""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def sample_gaussian(mu: torch.Tensor, logvar: torch.Tensor, n_samples: int | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised samples z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) drawn with ``generator``.

    Args:
        mu, logvar: (...,) the same shape.
        n_samples: S; None draws one sample with the shape of mu.
    Returns:
        (S, ...) (or (...) when n_samples is None), differentiable w.r.t. mu and logvar.
    """
    shape = mu.shape if n_samples is None else (n_samples, *mu.shape)
    eps = torch.randn(shape, generator=generator, dtype=mu.dtype, device=mu.device)
    # BEGIN SOLUTION hint="z = mu + sigma * eps with sigma = exp(logvar / 2); broadcasting handles the S dim"
    return mu + torch.exp(0.5 * logvar) * eps
    # END SOLUTION


def kl_diag_gaussians(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                      logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) between diagonal Gaussians, summed over the last dim.

        KL = 1/2 sum_d [ logvar_p - logvar_q + (exp(logvar_q) + (mu_q - mu_p)^2) / exp(logvar_p) - 1 ]

    Args: (..., D) tensors (broadcastable: a prior N(0, I) can be ``zeros(D)``). Returns (...,), >= 0.
    """
    # BEGIN SOLUTION hint="the formula above, elementwise, then .sum(-1)"
    var_ratio = torch.exp(logvar_q - logvar_p)
    mean_term = (mu_q - mu_p) ** 2 * torch.exp(-logvar_p)
    return 0.5 * (var_ratio + mean_term - 1 - (logvar_q - logvar_p)).sum(-1)
    # END SOLUTION


def gaussian_nll(y: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise negative log-density of y under N(mu, exp(logvar)):
    1/2 [log 2 pi + logvar + (y - mu)^2 / exp(logvar)]."""
    return 0.5 * (LOG_2PI + logvar + (y - mu) ** 2 * torch.exp(-logvar))  # SOLUTION


def mixture_nll(y: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Negative log-density of y under the uniform mixture of S Gaussians, elementwise.

        -log p(y) = -log (1/S) sum_s N(y; mu_s, exp(logvar_s)) = log S - logsumexp_s(-nll_s)

    Args:
        y: (...); mu, logvar: (S, ...), the S components (e.g. S posterior samples).
    Returns:
        (...). With S = 1 it equals ``gaussian_nll``. Compute it with ``torch.logsumexp`` (stable).
    """
    # BEGIN SOLUTION hint="log S - logsumexp over dim 0 of -gaussian_nll(y, mu, logvar)"
    return math.log(mu.shape[0]) - torch.logsumexp(-gaussian_nll(y, mu, logvar), dim=0)
    # END SOLUTION


def mixture_moments(mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the uniform mixture of the S Gaussians (S, ...):
    mean = E_s[mu_s], var = E_s[exp(logvar_s)] + Var_s[mu_s] (law of total variance). Returns two (...)."""
    mean = mu.mean(0)
    return mean, torch.exp(logvar).mean(0) + ((mu - mean) ** 2).mean(0)


def interval_coverage(y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, level: float = 0.95) -> torch.Tensor:
    """Fraction of y inside the central ``level`` interval mean +- z sqrt(var) of N(mean, var) (a 0-dim tensor).
    A calibrated model covers ``level`` of the points; less means over-confident."""
    z = math.sqrt(2) * torch.erfinv(torch.tensor(level, dtype=torch.float64)).item()
    return ((y - mean).abs() <= z * var.sqrt()).to(mean.dtype).mean()
