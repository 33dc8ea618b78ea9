"""Part B: amortised (black-box) learners for regression: a latent-variable neural process and a
conditional neural process (CNP).

Latent NP (Garnelo et al., 2018b), the amortised Bayesian black-box learner. A task has a latent
z ~ N(0, I)-like code; given z, the outputs are independent Gaussians from a decoder:

    encoder:  s = (1/n) sum_i h([x_i, y_i]),  q(z | D) = N(mu_z(s), diag exp(logvar_z(s)))
    decoder:  p(y* | x*, z) = N(mu_y([x*, z]), exp(logvar_y([x*, z])))

Training maximises, per task with context C (the support set) and targets T (the query set), the
ELBO with the conditional prior q(z | C) in place of p(z | C):

    ELBO = E_{z ~ q(z | C u T)} [ sum_{(x, y) in T} log p(y | x, z) ]  -  KL( q(z | C u T) || q(z | C) )

with z = mu + sigma * eps (reparameterisation). At test time z ~ q(z | C): each z is one function,
and the predictive distribution is the mixture over sampled z.

CNP (Garnelo et al., 2018a), the comparison: no latent; r = (1/n) sum_i h([x_i, y_i]) goes straight
into the decoder, trained by the Gaussian negative log-likelihood of the targets.

Shapes: x (B, n, 1), y (B, n, 1); a task has n >= 1 context points.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gaussian import gaussian_nll, kl_diag_gaussians, sample_gaussian


def mlp(*sizes: int) -> nn.Sequential:
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class NeuralProcess(nn.Module):
    """latent=True: the latent NP; False: a CNP. width: hidden units; z_dim: size of z (or of r)."""

    def __init__(self, latent: bool = True, x_dim: int = 1, y_dim: int = 1, width: int = 128, z_dim: int = 64):
        super().__init__()
        self.latent, self.z_dim = latent, z_dim
        self.encoder = mlp(x_dim + y_dim, width, width, width)
        self.to_z = nn.Linear(width, 2 * z_dim if latent else z_dim)
        self.decoder = mlp(x_dim + z_dim, width, width, width, 2 * y_dim)

    def encode(self, x: torch.Tensor, y: torch.Tensor):
        """Context (B, n, 1), (B, n, 1) -> latent: (mu_z, logvar_z), each (B, z_dim); CNP: r (B, z_dim)."""
        s = self.encoder(torch.cat([x, y], -1)).mean(1)  # (B, width): permutation-invariant summary
        if not self.latent:
            return self.to_z(s)
        mu, raw = self.to_z(s).chunk(2, -1)
        return mu, 2 * torch.log(0.01 + 0.99 * torch.sigmoid(raw))  # sigma_z in (0.01, 1)

    def decode(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (..., B, m, 1), z (..., B, z_dim) -> (mu_y, logvar_y), each (..., B, m, 1); sigma_y >= 0.01."""
        z = z.unsqueeze(-2)  # (..., B, 1, z_dim)
        lead = torch.broadcast_shapes(x.shape[:-1], z.shape[:-1])
        x, z = x.expand(*lead, x.shape[-1]), z.expand(*lead, z.shape[-1])
        mu, raw = self.decoder(torch.cat([x, z], -1)).chunk(2, -1)
        return mu, 2 * torch.log(0.01 + F.softplus(raw))

    def elbo(self, support_x, support_y, query_x, query_y, generator: torch.Generator | None = None):
        """Per-task ELBO terms of the latent NP, one z sample per task.

        Returns (elbo, log_lik, kl), each (B,): log_lik = sum over the query points of log p(y | x, z)
        at z ~ q(z | support u query); kl = KL(q(z | support u query) || q(z | support)); elbo = log_lik - kl.
        Draw z with one ``sample_gaussian(mu, logvar, generator=generator)`` (n_samples None: one z per task,
        (B, z_dim)), so that log_lik is differentiable in the encoder through z (reparameterised).
        """
        # BEGIN SOLUTION hint="posterior: encode the support and query points together (cat along dim 1); prior: \
        #     encode the support; z = sample_gaussian(posterior); decode the query; log_lik = -gaussian_nll summed \
        #     over points; kl = kl_diag_gaussians(posterior, prior)"
        mu_post, logvar_post = self.encode(torch.cat([support_x, query_x], 1), torch.cat([support_y, query_y], 1))
        mu_prior, logvar_prior = self.encode(support_x, support_y)
        z = sample_gaussian(mu_post, logvar_post, generator=generator)
        mu_y, logvar_y = self.decode(query_x, z)
        log_lik = -gaussian_nll(query_y, mu_y, logvar_y).sum((-2, -1))
        kl = kl_diag_gaussians(mu_post, logvar_post, mu_prior, logvar_prior)
        return log_lik - kl, log_lik, kl
        # END SOLUTION

    def loss(self, support_x, support_y, query_x, query_y, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training loss, per query point: -ELBO / m (latent NP) or the mean Gaussian NLL (CNP)."""
        if self.latent:
            return -self.elbo(support_x, support_y, query_x, query_y, generator)[0].mean() / query_x.shape[1]
        mu, logvar = self.decode(query_x, self.encode(support_x, support_y))
        return gaussian_nll(query_y, mu, logvar).mean()

    @torch.no_grad()
    def predict(self, support_x, support_y, query_x, n_samples: int = 32, generator: torch.Generator | None = None):
        """Predictive components (mu_y, logvar_y), each (S, B, m, 1): one per z ~ q(z | support)
        (S = n_samples; the CNP has S = 1)."""
        if not self.latent:
            mu, logvar = self.decode(query_x, self.encode(support_x, support_y))
            return mu[None], logvar[None]
        mu_z, logvar_z = self.encode(support_x, support_y)
        z = sample_gaussian(mu_z, logvar_z, n_samples, generator=generator)  # (S, B, z_dim)
        return self.decode(query_x, z)
