"""Part A: a black-box (amortised) few-shot classifier, with an optional information bottleneck on
the query's activations (MR in the style of Yin et al., 2020, "meta-regularisation on activations").

A conditional neural process for classification (after Garnelo et al., 2018). A Conv4 encoder f
embeds images; the support set is summarised per label, r_j = mean of f(x_i) over the support
examples labelled j; an MLP decoder g maps the query's code and all N summaries, in label order, to
N logits:

    r = [r_0, ..., r_{N-1}]  (N * D)        logits(x*) = g([f(x*), r])

Nothing is adapted by gradient steps: the task enters only through r. g can compare f(x*) with the
r_j (read the support), or ignore r and map x* to a label directly, which is all a non-mutually-
exclusive task distribution asks for. (Other decoders were tried on glyphs while building this
homework, in 200-300-step runs: two scoring each (query, r_j) pair, g([f(x*), r_j, onehot(j)]) with
or without similarity features, read the support even on fixed-label tasks, so they did not
memorise; one with a single mean-pooled r of h([f(x_i), onehot(y_i)]) memorised, but stayed at
chance with shuffled labels too, unable to learn to read the support in that budget.)

Bottleneck (``stochastic=True``, weight beta): the query's code is a reparameterised sample
e* ~ N(mu(x*), diag sigma^2(x*)), and the loss adds beta * KL(N(mu(x*), sigma^2(x*)) || N(0, I)),
averaged over queries. The KL bounds how much the query code carries about x*, so memorising
x* -> label gets expensive; the support codes are the means mu(x_i) (no noise, no penalty), so
what the support tells stays available. At evaluation e* = mu(x*) (no sampling).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from cs330.models import Conv4
from gaussian import kl_diag_gaussians, sample_gaussian


class BlackBoxClassifier(nn.Module):
    """Args: n_way N; hidden: Conv4 channels (the code has ``hidden`` dims); width: hidden units of g;
    stochastic: encode to a Gaussian (the activation bottleneck; its weight beta is given to ``loss``)."""

    def __init__(self, n_way: int, hidden: int = 16, width: int = 64, stochastic: bool = False):
        super().__init__()
        self.n_way, self.stochastic = n_way, stochastic
        self.encoder = Conv4(None, hidden=hidden)
        dim = self.encoder.feature_dim
        self.to_logvar = nn.Linear(dim, dim) if stochastic else None
        self.decoder = nn.Sequential(nn.Linear((n_way + 1) * dim, width), nn.ReLU(), nn.Linear(width, n_way))  # g

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(B, M, C, H, W) -> code (B, M, D), and (mu, logvar) when stochastic (else None).
        The code is a sample from N(mu, exp(logvar)) while training, mu at evaluation."""
        mu = self.encoder(x)
        if not self.stochastic:
            return mu, None
        logvar = self.to_logvar(mu).clamp(-10, 5)
        return (sample_gaussian(mu, logvar, generator=generator) if self.training else mu), (mu, logvar)

    def forward(self, support_x, support_y, query_x, generator: torch.Generator | None = None):
        """Logits (B, M, N) of the queries, and the query codes' (mu, logvar) (None if deterministic)."""
        e_s, stats_s = self.encode(support_x, generator)
        e_s = e_s if stats_s is None else stats_s[0]  # support codes: the means
        e_q, stats = self.encode(query_x, generator)
        onehot = F.one_hot(support_y, self.n_way).to(e_s.dtype)  # (B, NK, N)
        r = onehot.transpose(1, 2) @ e_s / onehot.sum(1)[..., None].clamp(min=1)  # (B, N, D): r_j per label
        r = r.flatten(1)[:, None, :].expand(-1, e_q.shape[1], -1)  # (B, M, N*D), in label order
        return self.decoder(torch.cat([e_q, r], -1)), stats

    def loss(self, support_x, support_y, query_x, query_y, beta: float = 0.0, generator=None):
        """(total loss, cross-entropy, KL, accuracy), 0-dim tensors: total = CE + beta * KL, the KL of the
        query codes to N(0, I) averaged over queries (0 when deterministic)."""
        logits, stats = self(support_x, support_y, query_x, generator)
        ce = F.cross_entropy(logits.flatten(0, 1), query_y.flatten())
        kl = logits.new_zeros(())
        if stats is not None:
            # BEGIN SOLUTION hint="kl_diag_gaussians of the query codes (mu, logvar) against N(0, I) (zeros), mean \
            #     over queries"
            mu, logvar = stats
            kl = kl_diag_gaussians(mu, logvar, torch.zeros_like(mu), torch.zeros_like(logvar)).mean()
            # END SOLUTION
        acc = (logits.argmax(-1) == query_y).float().mean()
        return ce + beta * kl, ce, kl, acc

    @torch.no_grad()
    def predict(self, support_x, support_y, query_x):
        """Evaluation logits (B, M, N): codes are the means."""
        was = self.training
        self.eval()
        logits = self(support_x, support_y, query_x)[0]
        self.train(was)
        return logits
