"""Question 2: the memory-augmented black-box learner (model.MANN) and its loss (model.loss_function)."""

import math

import torch
import torch.nn.functional as F

from cs330.grading import graded, reference_module, student_module


def batch(B=4, K=2, N=3, seed=0):
    """A random (images, one-hot labels) batch in the sampler's layout: support rows in label order, query shuffled."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, K + 1, N, 784, generator=g)
    y = torch.eye(N).repeat(B, K + 1, 1, 1)
    for b in range(B):
        y[b, -1] = y[b, -1][torch.randperm(N, generator=g)]
    return x, y


def make(N=3, K=2, model="lstm", seed=0):
    torch.manual_seed(seed)
    return student_module("model").MANN(N, K + 1, model=model)


@graded("2a-0-basic", points=2, timeout=20)
def test_forward_shape():
    """MANN.forward maps (B, K+1, N, 784) images and (B, K+1, N, N) labels to (B, K+1, N, N) logits."""
    x, y = batch(B=4, K=2, N=3)
    out = make(N=3, K=2)(x, y)
    assert out is not None and tuple(out.shape) == (4, 3, 3, 3), f"expected (4, 3, 3, 3), got {None if out is None else tuple(out.shape)}"
    assert torch.isfinite(out).all(), "non-finite outputs"


@graded("2a-1-hidden", points=1, timeout=20)
def test_forward_shape_variants():
    """The same forward serves the conv encoder and the transformer variants (other B, K, N)."""
    x, y = batch(B=2, K=1, N=4, seed=1)
    shapes = {m: tuple(make(N=4, K=1, model=m)(x, y).shape) for m in ("conv_lstm", "transformer")}
    # BEGIN HIDDEN
    for m, shape in shapes.items():
        assert shape == (2, 2, 4, 4), f"{m}: expected (2, 2, 4, 4), got {shape}"
    # END HIDDEN


@graded("2b-0-basic", points=2, timeout=20)
def test_query_labels_are_hidden():
    """Changing the query row's labels does not change any output (the model must not see them)."""
    net = make()
    x, y = batch(seed=2)
    y2 = y.clone()
    y2[:, -1] = y2[:, -1].roll(1, dims=-1)
    with torch.no_grad():
        a, b = net(x, y), net(x, y2)
    assert torch.equal(a, b), "the output depends on the query labels: zero them before the model sees them"


@graded("2b-1-hidden", points=1, timeout=20)
def test_support_labels_are_used():
    """Changing the support labels changes the query predictions (labels are concatenated to the images)."""
    x, y = batch(seed=3)
    y2 = y.clone()
    y2[:, :-1] = y2[:, :-1].roll(1, dims=-1)
    with torch.no_grad():
        outs = {m: (net(x, y)[:, -1], net(x, y2)[:, -1]) for m in ("lstm", "transformer") for net in [make(model=m)]}
    # BEGIN HIDDEN
    for m, (a, b) in outs.items():
        assert not torch.allclose(a, b), f"{m}: the query predictions ignore the support labels"
    # END HIDDEN


@graded("2c-0-basic", points=2, timeout=20)
def test_loss_uses_only_the_query_row():
    """loss_function is a scalar that ignores the support rows' predictions; uniform logits give ln N."""
    model = student_module("model")
    x, y = batch(B=5, K=2, N=4, seed=4)
    preds = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    loss = model.loss_function(preds, y)
    assert loss is not None and loss.dim() == 0, "the loss must be a scalar tensor"
    changed = preds.clone()
    changed[:, :-1] = 100 * torch.randn(5, 2, 4, 4)
    assert torch.allclose(model.loss_function(changed, y), loss), "the loss changes with the support predictions: use the query row only"
    uniform = model.loss_function(torch.zeros(5, 3, 4, 4), y)
    assert abs(float(uniform) - math.log(4)) < 1e-5, f"uniform logits should give ln 4 = {math.log(4):.4f}, got {float(uniform):.4f}"


@graded("2c-1-hidden", points=1, timeout=20)
def test_loss_value():
    """loss_function equals the mean cross-entropy of the query row."""
    x, y = batch(B=6, K=1, N=5, seed=6)
    preds = torch.randn(6, 2, 5, 5, generator=torch.Generator().manual_seed(7), requires_grad=True)
    loss = student_module("model").loss_function(preds, y)
    # BEGIN HIDDEN
    expected = -(F.log_softmax(preds[:, -1], -1) * y[:, -1]).sum(-1).mean()
    assert torch.allclose(loss, expected, atol=1e-6), f"loss {float(loss):.6f}, expected {float(expected):.6f}"
    loss.backward()
    assert preds.grad[:, :-1].abs().sum() == 0, "gradient flows into the support predictions"
    # END HIDDEN


@graded("2d-0-hidden", points=3, timeout=30)
def test_forward_matches_reference():
    """With the reference's weights, MANN.forward equals the reference on seeded inputs (LSTM, conv encoder, transformer)."""
    x, y = batch(B=3, K=2, N=3, seed=8)
    nets = {m: make(N=3, K=2, model=m, seed=9) for m in ("lstm", "conv_lstm", "transformer")}
    # BEGIN HIDDEN
    ref = reference_module("model")
    for m, net in nets.items():
        torch.manual_seed(10)
        ref_net = ref.MANN(3, 3, model=m).eval()
        net.load_state_dict(ref_net.state_dict())
        net.eval()
        expected, out = ref_net(x, y).detach(), net(x, y).detach()
        assert torch.allclose(out, expected, atol=1e-5), f"{m}: outputs differ from the reference (max |diff| {float((out - expected).abs().max()):.2e})"
    # END HIDDEN
