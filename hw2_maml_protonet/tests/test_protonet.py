"""Question 1: prototypical networks (protonet.py).

``student`` is your code: in the autograder it runs in a separate sandboxed process and what comes
back is data. Support sets here are label-major (grouped by label, as ``cs330.data.EpisodeSampler``
makes them) except in the one test of order independence (1a-2-basic). Inputs are float64; values
are compared with tolerances that any float32-accurate formula meets.
"""

import torch
from torch.nn import functional as F

import probes
from cs330.grading import expect_tensor, graded


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def grouped_labels(B, N, K):
    """(B, N*K) label-major labels: K zeros, K ones, ..."""
    return torch.arange(N).repeat_interleave(K).repeat(B, 1)


def depend_on_the_embeddings(prototypes, what):
    """Fail unless, in every task of ``prototypes`` (B, N, D), the classes' rows differ: random embeddings have
    distinct class means, and a constant, zero or label-blind answer agrees with itself in any order and in any
    batch, so it proves nothing there."""
    spread = (prototypes - prototypes[..., :1, :]).abs().amax(dim=(-2, -1))
    assert (spread > 1e-6).all(), (
        f"{what}: your prototypes are the same for every class of a task (a constant, zeros, or a mean that ignores "
        "the labels?): row n must be the mean of the embeddings labelled n (1a-0)")


@graded("1a-0-basic", points=2)
def test_prototypes_small_example(student):
    """prototypes: (N*K, D) embeddings -> (N, D) class means, on a worked example (no task dim, N = 2, K = 2, D = 3)."""
    z = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 2.0], [2.0, 4.0, 6.0], [3.0, 5.0, 8.0]])
    y = torch.tensor([0, 0, 1, 1])
    out = expect_tensor(student.protonet.prototypes(z, y, 2), "prototypes", (2, 3))
    assert torch.allclose(out, torch.tensor([[0.5, 0.5, 1.0], [2.5, 4.5, 7.0]])), (
        f"wrong class means {out.tolist()}, expected [[0.5, 0.5, 1.0], [2.5, 4.5, 7.0]]: "
        "row n is the MEAN of the embeddings labelled n"
    )


@graded("1a-1-hidden", points=1)
def test_prototypes_batched(student):
    """prototypes with a leading task dim: a batch of 3 tasks (5-way 3-shot, D = 8) gives, task by task, what each
    task gives alone (the values themselves are 1a-0's)."""
    z, y = seeded(3, 15, 8, seed=1), grouped_labels(3, 5, 3)
    batched = expect_tensor(student.protonet.prototypes(z, y, 5), "prototypes", (3, 5, 8))
    alone = [expect_tensor(student.protonet.prototypes(z[b], y[b], 5), "prototypes", (5, 8)) for b in range(3)]
    # BEGIN HIDDEN
    depend_on_the_embeddings(torch.stack(alone), "prototypes of 3 random tasks")
    for b in range(3):
        assert torch.allclose(batched[b], alone[b], rtol=1e-5, atol=1e-6), \
            f"task {b} of a batch gets other prototypes than alone: reduce over the examples dim (-2), not dim 0"
    # END HIDDEN


@graded("1a-2-basic", points=1)
def test_prototypes_any_label_order(student):
    """prototypes does not assume the support set is grouped by label: the same rows shuffled (labels with them)
    give the same prototypes."""
    g = torch.Generator().manual_seed(2)
    z, y = seeded(2, 12, 4, seed=2), grouped_labels(2, 4, 3)
    order = torch.stack([torch.randperm(12, generator=g) for _ in range(2)])
    z_shuffled, y_shuffled = z.gather(1, order[..., None].expand(-1, -1, 4)), y.gather(1, order)
    grouped = expect_tensor(student.protonet.prototypes(z, y, 4), "prototypes", (2, 4, 4))
    shuffled = expect_tensor(student.protonet.prototypes(z_shuffled, y_shuffled, 4), "prototypes", (2, 4, 4))
    depend_on_the_embeddings(grouped, "prototypes of 2 random tasks")
    assert torch.allclose(shuffled, grouped, rtol=1e-5, atol=1e-6), (
        "prototypes must not assume the support set is grouped by label: with the same support rows in another "
        "order (labels shuffled with them) the prototypes changed. Select each class's rows by its label "
        "(a mask y == n, one_hot, scatter/index_add), not by position (view(N, K, D) or slices of K rows).")


@graded("1b-0-basic", points=1)
def test_squared_distances(student):
    """squared_distances(q (B, M, D), c (B, N, D)) -> (B, M, N) equals ||q_m - c_n||^2."""
    q, c = seeded(2, 6, 4, seed=3), seeded(2, 3, 4, seed=4)
    d = expect_tensor(student.protonet.squared_distances(q, c), "squared_distances", (2, 6, 3))
    expected = ((q[:, :, None, :] - c[:, None, :, :]) ** 2).sum(-1)
    assert torch.allclose(d, expected, rtol=1e-5, atol=1e-6), (
        "not the squared Euclidean distances: entry [m, n] is sum_d (q_m,d - c_n,d)^2"
        + (" (you return the distances, not their squares)" if torch.allclose(d, expected.sqrt(), rtol=1e-5) else ""))


@graded("1b-1-basic", points=1)
def test_logits(student):
    """protonet_logits, 1-shot (each prototype is its support embedding): (B, N*Q, N), minus the squared distances.

    A mistake in squared_distances or prototypes is charged to their own tests: logits equal to minus your
    squared_distances to your prototypes pass here too."""
    zs, ys, zq = seeded(2, 5, 4, seed=5), grouped_labels(2, 5, 1), seeded(2, 7, 4, seed=6)
    logits = expect_tensor(student.protonet.protonet_logits(zs, ys, zq, 5), "protonet_logits", (2, 7, 5))
    expected = -((zq[:, :, None, :] - zs[:, None, :, :]) ** 2).sum(-1)
    if torch.allclose(logits, expected, rtol=1e-5, atol=1e-6):
        return
    yours = student.protonet.squared_distances(zq, student.protonet.prototypes(zs, ys, 5))
    if (isinstance(yours, torch.Tensor) and yours.shape == logits.shape
            and torch.allclose(logits, -yours, rtol=1e-5, atol=1e-6)):
        # consistent with your own (wrong) distances or prototypes: 1b-0 / 1a-0 say what is wrong there, but only
        # where they tell the classes apart (distinct random prototypes are at distinct distances from a query)
        assert (yours.std(-1) > 1e-6).all(), (
            "your logits equal minus your squared_distances to your prototypes, but those are the same for every "
            "class (constant or zero prototypes or distances?): logits[m, n] = -||z_query_m - c_n||^2")
        return
    assert not torch.allclose(logits, -expected, rtol=1e-5), (
        "logits are the NEGATIVE squared distances (closer = larger)"
    )
    raise AssertionError("logits[m, n] must be -||z_query_m - c_n||^2 (minus squared_distances to the prototypes)")


@graded("1c-0-basic", points=1)
def test_loss(student):
    """loss_and_accuracy: the loss is the mean cross-entropy over all queries of all tasks (a 0-dim tensor)."""
    logits = seeded(2, 6, 5, seed=7)
    y = torch.randint(0, 5, (2, 6), generator=torch.Generator().manual_seed(7))
    out = student.protonet.loss_and_accuracy(logits, y)
    assert isinstance(out, (tuple, list)) and len(out) == 2, "loss_and_accuracy must return (loss, accuracy)"
    loss = expect_tensor(out[0], "loss_and_accuracy's loss", ())
    expected = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert torch.allclose(loss, expected, rtol=1e-5), (
        f"loss {float(loss):.6f}, expected the mean cross-entropy {float(expected):.6f}: softmax over the classes "
        "(the last dim), averaged over every query of every task")


@graded("1c-1-hidden", points=1)
def test_accuracy(student):
    """loss_and_accuracy: the accuracy is the fraction of queries whose largest logit is their label."""
    logits = seeded(3, 10, 5, seed=8)
    y = torch.randint(0, 5, (3, 10), generator=torch.Generator().manual_seed(8))
    out = student.protonet.loss_and_accuracy(logits, y)
    acc = float(expect_tensor(out[1], "loss_and_accuracy's accuracy"))
    # BEGIN HIDDEN
    expected = float((logits.argmax(-1) == y).double().mean())
    assert abs(acc - expected) < 1e-6, f"accuracy {acc:.4f}, expected {expected:.4f}"
    # END HIDDEN


@graded("1c-2-hidden", points=1)
def test_loss_gradient(student):
    """The loss is differentiable w.r.t. the logits: its gradient is (softmax - one_hot) / (number of queries)."""
    logits = seeded(2, 5, 4, seed=9)
    y = torch.randint(0, 4, (2, 5), generator=torch.Generator().manual_seed(9))
    out = student.probe(probes.loss_and_grad, logits, y)
    assert out["grad"] is not None, "the loss carries no graph: do not detach it or build it from Python numbers"
    grad = expect_tensor(out["grad"], "the gradient of the loss w.r.t. the logits", (2, 5, 4))
    # BEGIN HIDDEN
    expected = (logits.softmax(-1) - F.one_hot(y, 4)) / y.numel()
    assert torch.allclose(grad, expected, rtol=1e-5, atol=1e-7), (
        "the loss's gradient w.r.t. the logits is not the mean cross-entropy's"
    )
    # END HIDDEN
