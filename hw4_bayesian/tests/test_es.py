"""Question 4 (Part C): the evolution-strategies meta-gradient estimator.

``student`` is your code: in the autograder it runs in a separate sandboxed process. The objectives handed to
``es_gradient`` are defined there, in ``probes.py`` (a quadratic 1/2 t^T A t + b^T t and a non-quadratic one).
"""

import torch

import probes
from cs330.grading import expect_tensor, graded

D = 4
A = torch.tensor([[3.0, 0.5, 0.0, 0.0], [0.5, 2.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.2], [0.0, 0.0, 0.2, 0.5]],
                 dtype=torch.float64)
b = torch.tensor([1.0, -1.0, 0.5, 2.0], dtype=torch.float64)


def estimate(student, objective, theta, sigma, population, seed):
    g = student.probe(probes.es_estimate, objective, theta, sigma, population, seed, A=A, b=b)
    return expect_tensor(g, "es_gradient", (D,))


@graded("4a-0-basic", points=2)
def test_es_unbiased_on_a_quadratic(student):
    """On a quadratic, the estimate over many pairs is the true gradient A theta + b, for any sigma: the
    normalisation is 1 / (2 sigma P)."""
    theta = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=torch.float64)
    true = A @ theta + b
    for sigma in (0.01, 1.0):
        g = estimate(student, "quadratic", theta, sigma, 2000, seed=0)
        # each antithetic term is eps (eps . true): sd per coordinate <= sqrt(2) |true|; these 2000 pairs (the given
        # draw) land 0.036 |true| away, and a wrong factor (2, 1/2, sigma) lands >= 0.5 |true| away
        ratio = float(g @ true / (true @ true))
        assert (g - true).norm() < 0.15 * true.norm(), (
            f"sigma={sigma}: the estimate {g.tolist()} is not the gradient {true.tolist()} "
            f"(it is ~{ratio:.2f} times it along the gradient): divide the sum by 2 sigma P, "
            "the 2 because each pair spans 2 sigma eps")


@graded("4a-1-hidden", points=2)
def test_es_antithetic_form(student, reference):
    """With eps drawn as the given line does (row i the i-th direction), the estimate is along
    sum_i [f(theta + sigma eps_i) - f(theta - sigma eps_i)] eps_i: on a quadratic that is sum_i eps_i eps_i^T grad,
    and on a non-quadratic it is along the reference's. (The scale is question 4a-0's.)"""
    theta = torch.tensor([0.3, -0.2, 1.0, 0.0], dtype=torch.float64)
    g = estimate(student, "quadratic", theta, 0.1, 7, seed=3)
    eps = torch.randn(7, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    expected = eps.T @ (eps @ (A @ theta + b)) / 7

    def along(g, e):  # g rescaled onto e's length, when it points the same way
        return g * (e @ e) / (g @ e) if float(g @ e) > 0 else -g

    assert torch.allclose(along(g, expected), expected, rtol=1e-6), (
        f"on a quadratic the antithetic estimate is along (1/P) sum eps_i eps_i^T grad = {expected.tolist()}, got "
        f"{g.tolist()}: evaluate f(theta + sigma eps_i) - f(theta - sigma eps_i) for each row eps_i of the given eps")
    g2 = estimate(student, "wavy", theta, 0.05, 9, seed=4)
    # BEGIN HIDDEN
    ref = reference.probe(probes.es_estimate, "wavy", theta, 0.05, 9, 4, A=A, b=b)
    assert torch.allclose(along(g2, ref), ref, rtol=1e-6), (
        "the estimate on a non-quadratic is not along the reference's"
    )
    # END HIDDEN
