"""Question 4 (Part C): the evolution-strategies meta-gradient estimator."""

import torch

from cs330.grading import graded, reference_module, student_module

D = 4
A = torch.tensor([[3.0, 0.5, 0.0, 0.0], [0.5, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.2], [0.0, 0.0, 0.2, 0.5]],
                 dtype=torch.float64)
b = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=torch.float64)


def quadratic(theta):
    return 0.5 * theta @ A @ theta + b @ theta


@graded("4a-0-basic", points=2)
def test_es_unbiased_on_a_quadratic():
    """On a quadratic, the mean of many ES estimates is the true gradient A theta + b (unbiased), for any sigma."""
    es = student_module("es")
    theta = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)
    true = A @ theta + b
    for sigma in (0.01, 1.0):
        g = es.es_gradient(quadratic, theta, sigma, 20000, generator=torch.Generator().manual_seed(0))
        assert g is not None and g.shape == (D,), f"expected shape ({D},), got {getattr(g, 'shape', None)}"
        # each antithetic term is eps (eps . true): sd per coordinate <= sqrt(2) |true|, so 20000 samples give < 0.04 |true|
        assert (g - true).norm() < 0.06 * true.norm(), f"sigma={sigma}: ES mean {g} far from the gradient {true}"


@graded("4a-1-hidden", points=2)
def test_es_estimate_exact_form():
    """With eps drawn as documented, the estimate on a quadratic is exactly (1/P) sum_i eps_i eps_i^T grad, and
    on a non-quadratic function it equals the reference's."""
    es = student_module("es")
    theta = torch.tensor([0.3, -0.2, 1.0, 0.0], dtype=torch.float64)
    g = es.es_gradient(quadratic, theta, 0.1, 7, generator=torch.Generator().manual_seed(3))
    wavy = lambda t: torch.sin(t).sum() + (t**4).sum()  # noqa: E731
    g2 = es.es_gradient(wavy, theta, 0.05, 9, generator=torch.Generator().manual_seed(4))
    # BEGIN HIDDEN
    eps = torch.randn(7, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = eps.T @ (eps @ (A @ theta + b)) / 7
    assert torch.allclose(g, expected, rtol=1e-8), f"estimate {g} != (1/P) sum eps eps^T grad = {expected}"
    ref = reference_module("es").es_gradient(wavy, theta, 0.05, 9, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(g2, ref, rtol=1e-8), "estimate on a non-quadratic differs from the reference"
    # END HIDDEN
