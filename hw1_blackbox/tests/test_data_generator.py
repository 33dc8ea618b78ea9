"""Question 1: sampling meta-batches (data_generator.sample_batch).

``student`` is your code: in the autograder it runs in a separate sandboxed process, and what comes
back from it is data (tensors, numbers). A seeded ``torch.Generator`` cannot cross to that process,
so batches are sampled by the probe ``probes.sample``, which seeds one there.
"""

import torch

import probes
from cs330.grading import drawn_seed, expect_tensor, graded

C, D, P = 40, 20, 784  # characters, drawers, pixels


def tagged_images(C=C, D=D):
    """float (C, D, 784) images whose first two pixels name them: [c, d, 0] = c, [c, d, 1] = d."""
    x = torch.rand(C, D, P, generator=torch.Generator().manual_seed(drawn_seed("1 images")))
    x[:, :, 0] = torch.arange(C, dtype=torch.float32)[:, None]
    x[:, :, 1] = torch.arange(D, dtype=torch.float32)[None, :]
    return x


def sample(student, n_way=5, k_shot=2, batch_size=16, seed=0, images=None):
    """Your sampler on ``images`` with a generator seeded by set ``seed`` of this grading's draws (drawn_seed)."""
    images = tagged_images() if images is None else images
    out = student.probe(probes.sample, images, n_way, k_shot, batch_size, drawn_seed(f"1 sampler {seed}"))
    assert isinstance(out, tuple) and len(out) == 2, "sample_batch must return (images, labels)"
    x, y = expect_tensor(out[0], "sample_batch (images)"), expect_tensor(out[1], "sample_batch (labels)")
    return images, x, y


def identities(x):
    """(B, K+1, N, 784) sampled images -> (character, drawer) int tensors (B, K+1, N) each."""
    return x[..., 0].round().long(), x[..., 1].round().long()


@graded("1a-0-basic", points=2, timeout=20)
def test_shapes_and_one_hot(student):
    """Images (B, K+1, N, 784) float, labels (B, K+1, N, N) one-hot; every row holds each label once."""
    _, x, y = sample(student, n_way=5, k_shot=2, batch_size=16)
    assert tuple(x.shape) == (16, 3, 5, P), f"images: expected (16, 3, 5, 784), got {tuple(x.shape)}"
    assert tuple(y.shape) == (16, 3, 5, 5), f"labels: expected (16, 3, 5, 5), got {tuple(y.shape)}"
    assert x.is_floating_point() and y.is_floating_point(), "images and labels must be float tensors"
    assert torch.all((y == 0) | (y == 1)) and torch.all(y.sum(-1) == 1), "labels must be one-hot"
    per_row = y.sum(dim=2)  # (B, K+1, N): how often each label appears in a row
    assert torch.all(per_row == 1), "each row (K support rows and the query row) must hold every label exactly once"


@graded("1a-1-hidden", points=2, timeout=20)
def test_images_come_from_the_data_and_labels_match_characters(student):
    """Every image is one of the given images; a task has N distinct characters
    and label n means the same character in every row."""
    images, x, y = sample(student, n_way=4, k_shot=3, batch_size=32, seed=1)
    chars, drawers = identities(x)
    # BEGIN HIDDEN
    assert torch.equal(x, images[chars, drawers]), (
        "sampled images must be copies of the given images (no other processing)"
    )
    label = y.argmax(-1)  # (B, K+1, N)
    for b in range(x.shape[0]):
        char_of_label = {}
        for k in range(x.shape[1]):
            for n in range(x.shape[2]):
                c, lab = int(chars[b, k, n]), int(label[b, k, n])
                assert char_of_label.setdefault(lab, c) == c, \
                    f"task {b}: label {lab} is given to two different characters"
        assert len(set(char_of_label.values())) == 4, f"task {b}: the 4 labels must be 4 distinct characters"
    # END HIDDEN


@graded("1b-0-hidden", points=2, timeout=20)
def test_support_and_query_are_different_drawings(student):
    """The K+1 drawings of a character in a task are K+1 different drawers (query never repeats a support image)."""
    images, x, y = sample(student, n_way=3, k_shot=4, batch_size=32, seed=2)
    chars, drawers = identities(x)
    # BEGIN HIDDEN
    pairs = chars * 1000 + drawers  # (B, K+1, N) unique id of each image
    for b in range(x.shape[0]):
        ids = pairs[b].flatten().tolist()
        assert len(set(ids)) == len(ids), (
            f"task {b}: an image appears twice (support and query must be different drawings)"
        )
    # END HIDDEN


@graded("1c-0-basic", points=1, timeout=20)
def test_query_row_is_shuffled(student):
    """The query row is in a random order (not always labels 0..N-1); the support rows are in label order."""
    _, x, y = sample(student, n_way=5, k_shot=1, batch_size=64, seed=3)
    label = y.argmax(-1)
    in_order = (label[:, -1] == torch.arange(5)).all(dim=1).float().mean().item()
    assert in_order < 0.2, f"{in_order:.0%} of the query rows are in label order 0..N-1: shuffle the query row"
    assert torch.all(label[:, :-1] == torch.arange(5)), "support row k, column n must have label n"


@graded("1c-1-hidden", points=1, timeout=20)
def test_labels_are_assigned_at_random(student):
    """Which character gets label 0 is random per task (not, say, the lowest character index),
    and every character is used."""
    images, x, y = sample(student, n_way=3, k_shot=1, batch_size=256, seed=4)
    chars, _ = identities(x)
    # BEGIN HIDDEN
    support = chars[:, 0]  # (B, N): character of label n
    frac = (support[:, 0] < support[:, 1]).float().mean().item()
    assert 0.35 < frac < 0.65, f"label 0's character is below label 1's in {frac:.0%} of tasks: assign labels at random"
    assert len(set(support.flatten().tolist())) == C, "some characters are never sampled"
    # END HIDDEN


@graded("1d-0-basic", points=1, timeout=20)
def test_determinism_under_a_seed(student):
    """The same seeded generator gives the same batch; another seed gives another batch."""
    _, x1, y1 = sample(student, seed=7)
    _, x2, y2 = sample(student, seed=7)
    _, x3, _ = sample(student, seed=8)
    assert torch.equal(x1, x2) and torch.equal(y1, y2), (
        "same seed, different batches: draw all randomness from `generator`"
    )
    assert not torch.equal(x1, x3), "different seeds gave the same batch"


@graded("1d-1-hidden", points=1, timeout=20)
def test_real_sized_batch_on_glyphs(student):
    """A 128-task 4-way 1-shot batch from uint8 glyphs (through prepare_images) has the right shapes
    and stays in [0, 1]."""
    from cs330.data import make_glyphs

    glyphs = make_glyphs(n_alphabets=4, chars_per_alphabet=10, n_drawers=20, seed=0).images
    images = expect_tensor(student.data_generator.prepare_images(glyphs), "prepare_images")
    _, x, y = sample(student, n_way=4, k_shot=1, batch_size=128, seed=0, images=images)
    # BEGIN HIDDEN
    assert tuple(x.shape) == (128, 2, 4, 784) and tuple(y.shape) == (128, 2, 4, 4), "wrong shapes for B=128, K=1, N=4"
    assert float(x.min()) >= 0 and float(x.max()) <= 1 and float(x.max()) > 0, "images must stay in [0, 1]"
    # END HIDDEN
