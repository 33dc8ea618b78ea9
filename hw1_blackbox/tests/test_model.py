"""Question 2: the memory-augmented black-box learner (model.MANN) and its loss (model.loss_function).

``student`` is your code: in the autograder it runs in a separate sandboxed process, and what comes
back from it is data (tensors, numbers) or a stand-in for one of your models. Seeded models, runs
without gradients, loading weights and backward passes happen there, in the probes of ``probes.py``;
``reference`` (hidden checks only) runs the same probes on the reference solution.
"""

import math

import torch
import torch.nn.functional as F

import probes
from cs330.grading import drawn_seed, expect_tensor, graded


def batch(B=4, K=2, N=3, seed=0):
    """A random (images, one-hot labels) batch in the sampler's layout: support rows in label order, query shuffled
    (set ``seed`` of this grading's draws: drawn_seed, unknown to your code)."""
    g = torch.Generator().manual_seed(drawn_seed(f"2 batch {seed}"))
    x = torch.rand(B, K + 1, N, 784, generator=g)
    y = torch.eye(N).repeat(B, K + 1, 1, 1)
    for b in range(B):
        y[b, -1] = y[b, -1][torch.randperm(N, generator=g)]
    return x, y


def make(student, N=3, K=2, model="lstm", seed=0):
    """Your MANN(N, K + 1, model=model) after torch.manual_seed(seed), living in your code's process."""
    return student.probe(probes.make, N, K, model, seed)


@graded("2a-0-basic", points=2, timeout=20)
def test_forward_shape(student):
    """MANN.forward maps (B, K+1, N, 784) images and (B, K+1, N, N) labels to (B, K+1, N, N) logits."""
    x, y = batch(B=4, K=2, N=3)
    model = make(student, N=3, K=2)
    out = expect_tensor(model(x, y), "MANN.forward", (4, 3, 3, 3))
    assert torch.isfinite(out).all(), "non-finite outputs"
    reads_the_images(model, x, y, out)


def reads_the_images(model, x, y, out):
    """The query predictions change with the query images (a model's logits, not a tensor of the right shape)."""
    other = expect_tensor(model(batch(x.shape[0], x.shape[1] - 1, x.shape[2], seed=99)[0], y), "MANN.forward",
                          tuple(out.shape))
    assert not torch.allclose(out[:, -1], other[:, -1]), (
        "the query predictions are the same for other images: run the encoder and the sequence model on the "
        "images and labels (not zeros or the labels themselves)")


@graded("2a-1-hidden", points=1, timeout=20)
def test_forward_shape_variants(student):
    """The same forward serves the conv encoder and the transformer variants (other B, K, N)."""
    x, y = batch(B=2, K=1, N=4, seed=1)
    shapes = {}
    for m in ("conv_lstm", "transformer"):
        model = make(student, N=4, K=1, model=m)
        out = expect_tensor(model(x, y), f"MANN.forward ({m})")
        shapes[m] = tuple(out.shape)
        reads_the_images(model, x, y, out)
    # BEGIN HIDDEN
    for m, shape in shapes.items():
        assert shape == (2, 2, 4, 4), f"{m}: expected (2, 2, 4, 4), got {shape}"
    # END HIDDEN


@graded("2b-0-basic", points=2, timeout=20)
def test_query_labels_are_hidden(student):
    """Changing the query row's labels does not change any output (the model must not see them)."""
    x, y = batch(seed=2)
    y2 = y.clone()
    y2[:, -1] = y2[:, -1].roll(1, dims=-1)
    outputs = student.probe(probes.outputs, x, [y, y2])  # one model, no gradients
    a, b = (expect_tensor(out, "MANN.forward") for out in outputs)
    assert torch.equal(a, b), "the output depends on the query labels: zero them before the model sees them"


@graded("2b-1-hidden", points=1, timeout=20)
def test_support_labels_are_used(student):
    """Changing the support labels changes the query predictions (labels are concatenated to the images)."""
    x, y = batch(seed=3)
    y2 = y.clone()
    y2[:, :-1] = y2[:, :-1].roll(1, dims=-1)
    outs = {}
    for m in ("lstm", "transformer"):
        a, b = (expect_tensor(out, f"MANN.forward ({m})") for out in student.probe(probes.outputs, x, [y, y2], model=m))
        outs[m] = (a[:, -1], b[:, -1])
    # BEGIN HIDDEN
    for m, (a, b) in outs.items():
        assert not torch.allclose(a, b), f"{m}: the query predictions ignore the support labels"
    # END HIDDEN


@graded("2c-0-basic", points=2, timeout=20)
def test_loss_uses_only_the_query_row(student):
    """loss_function is a scalar that ignores the support rows' predictions; uniform logits give ln N."""
    model = student.model
    x, y = batch(B=5, K=2, N=4, seed=4)
    preds = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(5))
    loss = expect_tensor(model.loss_function(preds, y), "loss_function")
    assert loss.dim() == 0, "the loss must be a scalar tensor"
    changed = preds.clone()
    changed[:, :-1] = 100 * torch.randn(5, 2, 4, 4)
    assert torch.allclose(expect_tensor(model.loss_function(changed, y), "loss_function"), loss), \
        "the loss changes with the support predictions: use the query row only"
    uniform = expect_tensor(model.loss_function(torch.zeros(5, 3, 4, 4), y), "loss_function")
    assert abs(float(uniform) - math.log(4)) < 1e-5, (
        f"uniform logits should give ln 4 = {math.log(4):.4f}, got {float(uniform):.4f}"
    )


@graded("2c-1-hidden", points=1, timeout=20)
def test_loss_value(student):
    """loss_function equals the mean cross-entropy of the query row."""
    x, y = batch(B=6, K=2, N=5, seed=6)  # K = 2: the query row (-1) is not row 1
    preds = torch.randn(6, 3, 5, 5, generator=torch.Generator().manual_seed(7))
    # loss_function(preds, y), then loss.backward(), in your process
    got = student.probe(probes.loss_and_grad, preds, y)
    loss = expect_tensor(got["loss"], "loss_function")
    grad = expect_tensor(got["grad"], "the gradient of loss_function with respect to preds", tuple(preds.shape))
    # BEGIN HIDDEN
    expected = -(F.log_softmax(preds[:, -1], -1) * y[:, -1]).sum(-1).mean()
    assert torch.allclose(loss, expected, atol=1e-5), (
        f"loss {float(loss):.6f}, expected {float(expected):.6f}: the cross-entropy of a softmax over the last "
        "dimension (the N classes), averaged over the B*N queries of the query row "
        "(not summed, not over the support rows)"
    )
    assert grad[:, :-1].abs().sum() == 0, (
        "gradient flows into the support predictions: compute the loss from preds[:, -1] only"
    )
    # END HIDDEN


@graded("2d-0-hidden", points=2, timeout=30)
def test_forward_matches_reference(student, reference):
    """With the reference's weights, MANN.forward equals the reference on seeded inputs. The model is the
    "transformer" variant, whose sequence model is given, so only forward's own steps count here (zeroed
    query labels, concatenation, the order of the steps, the reshape); 2d-1 checks your LSTM part."""
    x, y = batch(B=3, K=2, N=3, seed=8)
    net = make(student, N=3, K=2, model="transformer", seed=9)
    # BEGIN HIDDEN
    ref_net = reference.probe(probes.make, 3, 2, "transformer", seed=10).eval()
    expected = ref_net(x, y).detach()
    # your model gets the reference's weights and runs in eval mode, in your process
    state = ref_net.state_dict()
    out = expect_tensor(student.probe(probes.run_with_state, net, state, x, y), "MANN.forward", (3, 3, 3, 3)).detach()
    assert torch.allclose(out, expected, atol=1e-5), (
        f"outputs differ from the reference (max |diff| {float((out - expected).abs().max()):.2e}): the sequence is "
        "every support example row by row (row 0: labels 0..N-1, row 1, ...), then the query row, "
        "each step [features, label]"
    )
    # END HIDDEN


@graded("2d-1-hidden", points=1, timeout=30)
def test_lstm_sequence_model_matches_reference(student, reference):
    """With the reference's weights, the LSTM's sequence_model maps a (B, T, 784 + N) sequence
    to the reference's (B, T, N)."""
    sequence = torch.randn(3, 9, 784 + 3, generator=torch.Generator().manual_seed(11))
    net = make(student, N=3, K=2, model="lstm", seed=9)
    # BEGIN HIDDEN
    ref_lstm = reference.probe(probes.make, 3, 2, "lstm", seed=10).eval()
    want = ref_lstm.sequence_model(sequence).detach()
    got = expect_tensor(student.probe(probes.sequence_with_state, net, ref_lstm.state_dict(), sequence),
                        "MANN.sequence_model", (3, 9, 3))
    assert torch.allclose(got.detach(), want, atol=1e-5), (
        f"sequence_model differs from the reference (max |diff| {float((got - want).abs().max()):.2e}): "
        "run self.layer1 over the whole sequence, then self.layer2 over its outputs, and return layer2's outputs")
    # END HIDDEN
