"""Question 1: prototypical networks (protonet.py)."""

import torch
from torch.nn import functional as F

from cs330.grading import graded, reference_module, student_module


def seeded(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def shuffled_labels(B, N, K, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.arange(N).repeat_interleave(K)[torch.randperm(N * K, generator=g)] for _ in range(B)])


@graded("1a-0-basic", points=1)
def test_prototypes_small_example():
    """prototypes: (N*K, D) embeddings -> (N, D) class means, on a worked example."""
    protonet = student_module("protonet")
    z = torch.tensor([[0.0, 0.0], [2.0, 4.0], [1.0, 1.0], [3.0, 5.0]])
    y = torch.tensor([0, 1, 0, 1])
    out = protonet.prototypes(z, y, 2)
    assert out is not None and out.shape == (2, 2), f"expected shape (2, 2), got {getattr(out, 'shape', None)}"
    assert torch.allclose(out, torch.tensor([[0.5, 0.5], [2.5, 4.5]])), f"wrong class means: {out}"


@graded("1a-1-hidden", points=2)
def test_prototypes_batched_match_reference():
    """prototypes on a batch of tasks with shuffled labels matches the reference."""
    z, y = seeded(3, 15, 8, seed=1), shuffled_labels(3, 5, 3, seed=1)
    out = student_module("protonet").prototypes(z, y, 5)
    # BEGIN HIDDEN
    expected = reference_module("protonet").prototypes(z, y, 5)
    assert out.shape == expected.shape, f"expected shape {tuple(expected.shape)}, got {tuple(out.shape)}"
    assert torch.allclose(out, expected, atol=1e-10), "prototypes differ from the reference"
    # END HIDDEN


@graded("1b-0-basic", points=1)
def test_squared_distances_and_logits():
    """squared_distances equals cdist**2; protonet_logits has shape (B, N*Q, N)."""
    protonet = student_module("protonet")
    q, c = seeded(2, 6, 4, seed=2), seeded(2, 3, 4, seed=3)
    d = protonet.squared_distances(q, c)
    assert d.shape == (2, 6, 3), f"expected shape (2, 6, 3), got {tuple(d.shape)}"
    assert torch.allclose(d, torch.cdist(q, c) ** 2, atol=1e-10), "not the squared Euclidean distances"
    logits = protonet.protonet_logits(seeded(2, 5, 4, seed=4), shuffled_labels(2, 5, 1), q, 5)
    assert logits is not None and logits.shape == (2, 6, 5), f"expected logits (2, 6, 5), got {getattr(logits, 'shape', None)}"
    assert (logits <= 0).all(), "logits are negative squared distances, so never positive"


@graded("1b-1-hidden", points=2)
def test_logits_match_reference():
    """protonet_logits matches the reference (2-shot, shuffled labels)."""
    zs, ys, zq = seeded(4, 10, 6, seed=5), shuffled_labels(4, 5, 2, seed=5), seeded(4, 7, 6, seed=6)
    out = student_module("protonet").protonet_logits(zs, ys, zq, 5)
    # BEGIN HIDDEN
    expected = reference_module("protonet").protonet_logits(zs, ys, zq, 5)
    assert torch.allclose(out, expected, atol=1e-10), "logits differ from the reference"
    # END HIDDEN


@graded("1c-0-basic", points=1)
def test_loss_and_accuracy_basic():
    """loss_and_accuracy: cross-entropy and accuracy on a batch of tasks."""
    logits, y = seeded(2, 6, 5, seed=7), torch.randint(0, 5, (2, 6), generator=torch.Generator().manual_seed(7))
    loss, acc = student_module("protonet").loss_and_accuracy(logits, y)
    assert torch.allclose(loss, F.cross_entropy(logits.flatten(0, 1), y.flatten())), "loss is not the mean cross-entropy"
    assert abs(float(acc) - float((logits.argmax(-1) == y).double().mean())) < 1e-6, "wrong accuracy"


@graded("1c-1-hidden", points=2)
def test_protonet_forward_matches_reference():
    """A ProtoNet meta-batch (Conv4 encoder): loss, accuracy and encoder gradients match the reference."""
    from cs330.models import Conv4

    torch.manual_seed(0)
    encoder = Conv4(None, hidden=8).double()
    sx, qx = seeded(2, 5, 1, 28, 28, seed=8), seeded(2, 10, 1, 28, 28, seed=9)
    sy, qy = shuffled_labels(2, 5, 1, seed=8), shuffled_labels(2, 5, 2, seed=9)
    loss, acc = student_module("protonet").ProtoNet(encoder)(sx, sy, qx, qy, n_way=5)
    grads = torch.autograd.grad(loss, list(encoder.parameters()))
    # BEGIN HIDDEN
    ref_loss, ref_acc = reference_module("protonet").ProtoNet(encoder)(sx, sy, qx, qy, n_way=5)
    ref_grads = torch.autograd.grad(ref_loss, list(encoder.parameters()))
    assert torch.allclose(loss, ref_loss, rtol=1e-9), f"loss {float(loss)} != reference {float(ref_loss)}"
    assert abs(float(acc) - float(ref_acc)) < 1e-9, "accuracy differs from the reference"
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, rtol=1e-7, atol=1e-10), "encoder gradients differ from the reference"
    # END HIDDEN
