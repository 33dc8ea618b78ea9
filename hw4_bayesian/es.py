"""Part C: an evolution-strategies (ES) estimator of the MAML meta-gradient.

Second-order MAML backpropagates through the K inner steps: it keeps every step's activations and
adapted parameters for the backward pass (memory and time grow with K) and needs Hessian-vector
products. ES needs only evaluations of the meta-objective F(theta) (each one an inner loop whose
gradients are never differentiated), at the price of variance. With eps_i ~ N(0, I), i = 1..P,
antithetic pairs estimate the gradient of the Gaussian-smoothed objective F_sigma(theta) = E F(theta + sigma eps):

    g = 1 / (2 sigma P) * sum_i [ F(theta + sigma eps_i) - F(theta - sigma eps_i) ] eps_i

E[g] = grad F_sigma(theta) (Stein's lemma), which equals grad F(theta) for a quadratic F and tends to
it as sigma -> 0 for a smooth F. Its variance shrinks as 1/P and grows with the dimension D.
"""

from __future__ import annotations

from typing import Callable

import torch


def es_gradient(f: Callable[[torch.Tensor], torch.Tensor], theta: torch.Tensor, sigma: float, population: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Antithetic ES estimate of grad f at theta.

    Args:
        f: maps a flat parameter vector (D,) to a 0-dim tensor (no gradient is taken through it).
        theta: (D,). sigma: perturbation scale. population: P, the number of antithetic pairs.
        generator: draw all perturbations at once as ``eps = torch.randn(P, D, generator=generator,
            dtype=theta.dtype)``, row i the i-th direction (the tests rely on this order).
    Returns:
        (D,) the estimate g above.
    """
    eps = torch.randn(population, theta.numel(), generator=generator, dtype=theta.dtype).to(theta.device)
    # BEGIN SOLUTION hint="for each row eps_i: f(theta + sigma eps_i) - f(theta - sigma eps_i); weight eps_i by it; \
    #     sum; divide by 2 sigma P"
    with torch.no_grad():
        diffs = torch.stack([f(theta + sigma * e) - f(theta - sigma * e) for e in eps])  # (P,)
    return (diffs[:, None] * eps).sum(0) / (2 * sigma * population)
    # END SOLUTION


def flatten(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """{name: tensor} -> one (D,) vector (in dict order)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten(flat: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(D,) vector -> {name: tensor} with the names and shapes of ``like`` (views of ``flat``)."""
    out, i = {}, 0
    for n, p in like.items():
        out[n] = flat[i:i + p.numel()].view_as(p)
        i += p.numel()
    return out
