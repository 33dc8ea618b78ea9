"""Gradients checked here, in the test's process: the gradient your code's process reports, along a random
direction drawn from this grading's secret, must equal the central difference of the values your functions
return on either side, (L(theta + h v) - L(theta - h v)) / 2h. A gradient computed in your code's process
alone proves nothing (anything there can be rebound); this one it cannot forge without the derivative of
what it computes, and a detached term shows: its values move, its reported gradient does not."""

import torch

from cs330.grading import drawn_seed


def direction(like: dict, label: str) -> dict:
    """A unit direction {name: float64 tensor} with the shapes of ``like``, drawn for ``label``."""
    g = torch.Generator().manual_seed(drawn_seed(label))
    v = {n: torch.randn(x.shape, generator=g, dtype=torch.float64) for n, x in like.items()}
    norm = torch.sqrt(sum((x**2).sum() for x in v.values()))
    return {n: x / norm for n, x in v.items()}


def assert_slope(grads: dict, v: dict, plus, minus, h: float, what: str, rtol: float = 1e-4) -> None:
    """Fail unless <grads, v> equals (plus - minus) / 2h within ``rtol`` (relative to max(1, |slope|))."""
    slope = float((plus.detach().double() - minus.detach().double()) / (2 * h))
    claimed = float(sum((grads[n].double() * v[n]).sum() for n in v))
    assert abs(claimed - slope) <= rtol * max(1.0, abs(slope)), (
        f"{what}: its gradient along a random direction is {claimed:.6g}, but its value changes at the rate "
        f"{slope:.6g} there: the gradient must be the derivative of the value (is a term detached, or computed "
        "from copies that do not carry the gradient?)")
