"""Part B: a second probabilistic MAML, a Gaussian over the adapted head weights (ABML-style).

Amortised Bayesian meta-learning (Ravi & Beatson, 2019) keeps MAML's inner loop but makes its
iterate a *distribution*: the meta-learned initialisation is a prior p(w), and a few SGD steps on
the support set's negative ELBO turn it into a task posterior q(w). Here only the linear head is
Bayesian, which keeps the whole thing small enough for a CPU:

    features   h(x) = [body(x), 1]        body: 1 -> 40 -> 40, ReLU (meta-learned, not adapted); D = 41
    likelihood p(y | x, w) = N(y; h(x)^T w, s^2)     s: one meta-learned observation noise level
    prior      p(w) = N(mu0, diag exp(2 rho0))       mu0, rho0 (D,) meta-learned (rho: log-std)
    posterior  q(w) = N(mu, diag exp(2 rho)),        (mu, rho) = K SGD steps from (mu0, rho0) on

        L(mu, rho) = E_{w ~ q} [ 1/M sum_i -log N(y_i; h(x_i)^T w, s^2) ] + beta * KL(q || p) / M

on the M support points (the negative ELBO per support point; beta = ``kl_weight``, 1 for the ELBO).
Dividing the whole ELBO by M keeps its optimum and makes the inner step size independent of k; with
beta = 1 the prior's pull weakens as 1/M against the data, as in exact Bayesian updating.
The expectation is a mean over S reparameterised samples w = mu + exp(rho) * eps, eps ~ N(0, I).
The predictive on a query x* is the uniform mixture over S' samples w_s ~ q of N(h(x*)^T w_s, s^2):
every sample is one function, a Gaussian over the adapted head weights seen through the features.

Why "a Gaussian over adapted head weights": deterministic MAML adapts one head phi_K; here the inner
loop adapts the mean *and* the spread of a Gaussian over heads, so k support points shrink the
spread in the directions of feature space they pin down and leave the rest near the prior.

Meta-training (outer loss): the query negative log-likelihood of the predictive mixture
(``mixture_nll`` over S samples of the adapted q), mean over query points and tasks, differentiated
through the K inner steps (second order) into the body, mu0, rho0 and s. (ABML also adds
KL(q || p) on support u query to the outer loss; we leave it out: the prior is meta-learned by
the predictive likelihood alone.) At evaluation the inner gradients are constants (no graph).

Randomness: the tasks run under ``map_tasks`` (``vmap``, randomness="error"), so every eps is drawn
before it (``draw_noise``) and passed in per task.

Shapes: support_x, support_y (B, M, 1); query_x (B, Q, 1); features (M, D); mu, rho (D,);
inner noise (B, K, S, D); prediction noise (B, S', D); predictive components (S', B, Q, 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.func import grad
from torch.nn import functional as F

from cs330.models import MLP, map_tasks
from gaussian import gaussian_nll, kl_diag_gaussians, mixture_nll


class GaussianHeadMAML(nn.Module):
    """Body MLP 1 -> hidden (ReLU) and a Bayesian linear head adapted by ``inner_steps`` SGD steps
    (rate ``inner_lr``) on the support negative ELBO with ``inner_samples`` samples of w; the outer
    loss uses ``n_samples`` samples of the adapted q. ``first_order``: constant inner gradients."""

    def __init__(self, hidden=(40, 40), inner_steps: int = 5, inner_lr: float = 0.01, inner_samples: int = 4,
                 n_samples: int = 8, kl_weight: float = 1.0, init_log_std: float = math.log(0.1),
                 init_noise_std: float = 0.5, first_order: bool = False):
        super().__init__()
        mlp = MLP(1, 1, hidden)
        self.body = mlp.body  # the deterministic features; the head's default init gives the prior mean
        self.prior_mu = nn.Parameter(torch.cat([mlp.head.weight.detach()[0], mlp.head.bias.detach()]))
        self.prior_rho = nn.Parameter(torch.full((mlp.feature_dim + 1,), float(init_log_std)))
        # s = 0.01 + softplus(raw): the observation noise std, bounded below like the ensemble's
        self.noise_raw = nn.Parameter(torch.tensor(math.log(math.expm1(init_noise_std - 0.01))))
        self.inner_steps, self.inner_lr, self.inner_samples = inner_steps, inner_lr, inner_samples
        self.n_samples, self.kl_weight, self.first_order = n_samples, kl_weight, first_order

    @property
    def dim(self) -> int:
        return self.prior_mu.shape[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """h(x) = [body(x), 1]: (..., N, 1) -> (..., N, D)."""
        f = self.body(x)
        return torch.cat([f, torch.ones_like(f[..., :1])], -1)

    def obs_logvar(self) -> torch.Tensor:
        """log s^2 of the likelihood (0-dim)."""
        return 2 * torch.log(0.01 + F.softplus(self.noise_raw))

    def support_neg_elbo(self, mu, rho, prior_mu, prior_rho, obs_logvar, feats, y, eps) -> torch.Tensor:
        """One task's negative ELBO per support point (0-dim), the inner loop's loss:

            1/S sum_s 1/M sum_i gaussian_nll(y_i, h_i^T w_s, obs_logvar)
              + kl_weight * KL(N(mu, exp(2 rho)) || N(prior_mu, exp(2 prior_rho))) / M,
            w_s = mu + exp(rho) * eps_s   (reparameterised: differentiable in mu and rho)

        Args:
            mu, rho: (D,) the variational posterior q(w) (rho = log-std); prior_mu, prior_rho: (D,) p(w).
            obs_logvar: 0-dim log s^2.   feats: (M, D) support features h(x_i).   y: (M, 1).
            eps: (S, D) standard-normal noise (given: no random numbers here, this runs under vmap).
        """
        # BEGIN SOLUTION hint="w = mu + exp(rho) * eps (S, D); predictions feats @ w.T (M, S) against y (M, 1) with \
        #     gaussian_nll, mean over all; kl_diag_gaussians takes log-variances 2 * rho; divide the KL by M = \
        #     feats.shape[0]"
        w = mu + torch.exp(rho) * eps
        nll = gaussian_nll(y, feats @ w.T, obs_logvar).mean()
        kl = kl_diag_gaussians(mu, 2 * rho, prior_mu, 2 * prior_rho)
        return nll + self.kl_weight * kl / feats.shape[0]
        # END SOLUTION

    def adapt(self, prior_mu, prior_rho, obs_logvar, feats, y, eps, second_order: bool):
        """K SGD steps on ``support_neg_elbo`` from q = p; eps (K, S, D), a fresh draw per step.
        Returns the adapted (mu, rho), each (D,). With second_order=False the inner gradients are constants.
        Plain SGD: the likelihood's curvature grows as |h|^2 / s^2, so a large inner_lr * K diverges
        once meta-training has grown the features or shrunk s (0.01 x 5 steps trains; 0.01 x 10 gives NaN)."""
        mu, rho = prior_mu, prior_rho
        for k in range(eps.shape[0]):
            g_mu, g_rho = grad(self.support_neg_elbo, argnums=(0, 1))(mu, rho, prior_mu, prior_rho, obs_logvar,
                                                                     feats, y, eps[k])
            if not second_order:
                g_mu, g_rho = g_mu.detach(), g_rho.detach()
            mu, rho = mu - self.inner_lr * g_mu, rho - self.inner_lr * g_rho
        return mu, rho

    def draw_noise(self, support_x, n_samples: int, generator=None):
        """eps for the inner loop (B, K, S, D) and for the predictive (B, n_samples, D)."""
        B, kw = support_x.shape[0], dict(generator=generator, dtype=support_x.dtype, device=support_x.device)
        return (torch.randn(B, self.inner_steps, self.inner_samples, self.dim, **kw),
                torch.randn(B, n_samples, self.dim, **kw))

    def components(self, support_x, support_y, query_x, eps_inner, eps_pred, train: bool):
        """Adapt q on every task's support (vmap over tasks) and return the predictive mixture's
        components (mu, logvar) on the queries, each (S', B, Q, 1), S' = eps_pred.shape[1]."""
        params = (self.prior_mu, self.prior_rho, self.obs_logvar())
        if not train:
            params = tuple(p.detach() for p in params)
        second = train and not self.first_order

        def one(sx, sy, qx, ei, ep):
            fs, fq = self.features(sx), self.features(qx)
            if not train:  # the body's weights: constants too
                fs, fq = fs.detach(), fq.detach()
            mu, rho = self.adapt(*params, fs, sy, ei, second)
            w = mu + torch.exp(rho) * ep  # (S', D)
            return (fq @ w.T).T[..., None]  # (S', Q, 1)

        mean = map_tasks(one, support_x, support_y, query_x, eps_inner, eps_pred).transpose(0, 1)
        return mean, params[2].expand_as(mean)

    def loss(self, support_x, support_y, query_x, query_y, generator=None) -> torch.Tensor:
        """Meta-training loss (0-dim): the query mixture NLL over ``self.n_samples`` samples of the adapted q,
        mean over query points and tasks, second order through the inner loop (unless ``first_order``).
        Draw all the noise with one ``self.draw_noise(support_x, self.n_samples, generator)`` (the tests rely on it)."""
        # BEGIN SOLUTION hint="draw the noise with self.draw_noise (self.n_samples samples, the given generator), \
        #     then self.components(..., train=True) gives the (S, B, Q, 1) components; mixture_nll of the query \
        #     targets under them, averaged"
        eps_inner, eps_pred = self.draw_noise(support_x, self.n_samples, generator)
        mu, logvar = self.components(support_x, support_y, query_x, eps_inner, eps_pred, train=True)
        return mixture_nll(query_y, mu, logvar).mean()
        # END SOLUTION

    @torch.no_grad()
    def predict(self, support_x, support_y, query_x, n_samples: int = 32, generator=None):
        """Mixture components (mu, logvar), each (n_samples, B, Q, 1): sampled heads of the adapted q."""
        eps_inner, eps_pred = self.draw_noise(support_x, n_samples, generator)
        with torch.enable_grad():  # the inner loop takes gradients even at evaluation
            return self.components(support_x, support_y, query_x, eps_inner, eps_pred, train=False)
