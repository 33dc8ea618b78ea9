"""Question 2 (Part A): label shuffling, support sensitivity, and the two meta-regularisers."""

import torch
from torch.distributions import Normal, kl_divergence

from cs330.grading import graded, reference_module, student_module
from cs330.models import Conv4

N = 5


def fixed_labels(B, K):
    """Label-major labels of B non-mutually-exclusive tasks: label j at positions j*K .. j*K + K - 1 in every task."""
    return torch.arange(N).repeat_interleave(K).repeat(B, 1)


@graded("2a-0-basic", points=2)
def test_shuffle_labels_is_a_permutation_per_task():
    """shuffle_labels: same shapes, a bijection per task, the same relabelling for support and query."""
    mem = student_module("memorization")
    sy, qy = fixed_labels(64, 2), fixed_labels(64, 3)
    new_s, new_q = mem.shuffle_labels(sy, qy, N, torch.Generator().manual_seed(0))
    assert new_s.shape == sy.shape and new_q.shape == qy.shape, "shapes must not change"
    for b in range(64):
        perm_s = new_s[b].view(N, 2)[:, 0]
        assert sorted(perm_s.tolist()) == list(range(N)), f"task {b}: support labels are not a permutation of 0..{N - 1}"
        assert (new_s[b].view(N, 2) == perm_s[:, None]).all(), f"task {b}: one class must keep one label"
        assert torch.equal(new_q[b].view(N, 3)[:, 0], perm_s), f"task {b}: query relabelled differently from support"
    assert len({tuple(new_s[b].tolist()) for b in range(64)}) > 20, "tasks must get different permutations"


@graded("2a-1-hidden", points=2)
def test_shuffled_labels_are_uniform_across_tasks():
    """After shuffling fixed-label tasks, the label of each class position is uniform over 0..N-1 across tasks."""
    mem = student_module("memorization")
    B = 5000
    new_s, _ = mem.shuffle_labels(fixed_labels(B, 1), fixed_labels(B, 1), N, torch.Generator().manual_seed(1))
    # BEGIN HIDDEN
    counts = torch.stack([torch.bincount(new_s[:, j], minlength=N) for j in range(N)]).float() / B  # (position, label)
    assert (counts - 1 / N).abs().max() < 0.03, f"label frequencies per class position are not uniform:\n{counts}"
    # END HIDDEN


def nearest_support_predictor(support_x, support_y, query_x):
    """Logits: one-hot of the label of the nearest support example (a learner that reads the support)."""
    d = torch.cdist(query_x, support_x)  # (B, M, NK)
    return torch.nn.functional.one_hot(support_y.gather(1, d.argmin(-1)), N).float()


def memoriser(support_x, support_y, query_x):
    """Logits from the query alone (ignores the support)."""
    return torch.nn.functional.one_hot(query_x[..., 0].long() % N, N).float()


def episode(B=4, K=1, Q=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = 10 * torch.randn(B, N, 1, 4, generator=g)
    sx = (centres + 0.1 * torch.randn(B, N, K, 4, generator=g)).flatten(1, 2)
    qx = (centres + 0.1 * torch.randn(B, N, Q, 4, generator=g)).flatten(1, 2)
    return sx, fixed_labels(B, K), qx


@graded("2b-0-basic", points=2)
def test_support_sensitivity_extremes():
    """support_sensitivity: 0 for a predictor that ignores the support, 1 for one that follows the support labels."""
    mem = student_module("memorization")
    sx, sy, qx = episode()
    ignore = mem.support_sensitivity(memoriser, sx, sy, qx, N, torch.Generator().manual_seed(0))
    follow = mem.support_sensitivity(nearest_support_predictor, sx, sy, qx, N, torch.Generator().manual_seed(0))
    assert ignore is not None and ignore.shape == (4,), f"expected one value per task, (4,), got {getattr(ignore, 'shape', None)}"
    assert torch.equal(ignore, torch.zeros(4)), f"a memoriser must score 0, got {ignore}"
    assert torch.equal(follow, torch.ones(4)), f"a learner following the support labels must score 1, got {follow}"


@graded("2b-1-hidden", points=1)
def test_support_sensitivity_per_task():
    """A predictor that reads the support in even tasks only scores [1, 0, 1, 0, ...]."""
    mem = student_module("memorization")

    def half(sx, sy, qx):
        out = nearest_support_predictor(sx, sy, qx)
        out[1::2] = memoriser(sx, sy, qx)[1::2]
        return out

    sx, sy, qx = episode(B=6, seed=1)
    got = mem.support_sensitivity(half, sx, sy, qx, N, torch.Generator().manual_seed(2))
    # BEGIN HIDDEN
    assert torch.equal(got, torch.tensor([1.0, 0.0] * 3)), f"expected [1, 0, 1, 0, 1, 0], got {got}"
    # END HIDDEN


def tiny_images(B=2, K=1, Q=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(B, N * K, 1, 28, 28, generator=g), fixed_labels(B, K), torch.rand(B, N * Q, 1, 28, 28, generator=g),
            fixed_labels(B, Q))


@graded("2c-0-basic", points=2)
def test_activation_bottleneck_kl_and_gradient():
    """Black-box learner with a stochastic query code: the KL term is KL(N(mu, sigma^2) || N(0, I)) of the query
    codes (mean over queries), and beta * KL sends a non-zero gradient to the encoder."""
    blackbox = student_module("blackbox")
    torch.manual_seed(0)
    model = blackbox.BlackBoxClassifier(N, hidden=8, stochastic=True)
    sx, sy, qx, qy = tiny_images()
    total, ce, kl, acc = model.loss(sx, sy, qx, qy, beta=0.5, generator=torch.Generator().manual_seed(0))
    _, (mu, logvar) = model.encode(qx)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1).mean()
    assert torch.allclose(kl, expected, rtol=1e-5), f"KL term {float(kl):.5f}, expected {float(expected):.5f}"
    assert torch.allclose(total, ce + 0.5 * kl, rtol=1e-6), "total must be CE + beta * KL"
    grads = torch.autograd.grad(0.5 * kl, [model.to_logvar.weight, model.encoder.blocks[0].conv.weight])
    assert all(g.abs().sum() > 0 for g in grads), "the regulariser's gradient must reach the encoder"



@graded("2c-1-hidden", points=1)
def test_activation_bottleneck_matches_reference():
    """The stochastic black-box learner's loss terms (beta = 0.1, seeded sampling) equal the reference's."""
    torch.manual_seed(1)
    model = student_module("blackbox").BlackBoxClassifier(N, hidden=8, stochastic=True)
    sx, sy, qx, qy = tiny_images(seed=1)
    got = model.loss(sx, sy, qx, qy, beta=0.1, generator=torch.Generator().manual_seed(3))
    # BEGIN HIDDEN
    ref = reference_module("blackbox").BlackBoxClassifier(N, hidden=8, stochastic=True)
    ref.load_state_dict(model.state_dict())
    want = ref.loss(sx, sy, qx, qy, beta=0.1, generator=torch.Generator().manual_seed(3))
    for name, a, b in zip(("total", "cross-entropy", "KL"), got[:3], want[:3]):
        assert torch.allclose(a, b, rtol=1e-5), f"{name} {float(a):.5f}, reference {float(b):.5f}"
    # END HIDDEN

def mr_maml(seed=0):
    maml = student_module("maml")
    torch.manual_seed(seed)
    return maml.MRMAML(Conv4(N, hidden=8), init_log_sigma=-2.0, inner_steps=1, inner_lr=0.4, vectorize=False)


@graded("2d-0-basic", points=2)
def test_weight_bottleneck_samples_kl_and_gradient():
    """MR-MAML: meta_params samples the body (the head stays), the KL equals the closed form, and the
    regulariser's gradient reaches the means and the log-sigmas."""
    model = mr_maml()
    a = model.meta_params(torch.Generator().manual_seed(0))
    b = model.meta_params(torch.Generator().manual_seed(1))
    mu = dict(model.model.named_parameters())
    body = "blocks.0.conv.weight"
    assert not torch.equal(a[body], mu[body]) and not torch.equal(a[body], b[body]), "body weights must be sampled"
    assert torch.equal(a["head.weight"], mu["head.weight"]), "the head (adapted by the inner loop) is not sampled"
    noise = (a[body] - mu[body]).detach().std()
    assert 0.08 < float(noise) < 0.2, f"sample noise sd {float(noise):.3f}, expected exp(-2) = 0.135"
    kl = model.regularizer()
    sig = torch.exp(torch.tensor(-2.0))
    expected = sum(0.5 * (sig**2 + mu[n].detach() ** 2 - 1 - 2 * torch.log(sig)).sum() for n in model.stochastic)
    assert torch.allclose(kl, expected, rtol=1e-5), f"KL {float(kl):.3f}, expected {float(expected):.3f}"
    kl.backward()
    assert model.log_sigma[body.replace(".", "__")].grad.abs().sum() > 0, "no gradient to log_sigma"
    assert mu[body].grad.abs().sum() > 0, "no gradient to the weight means"


@graded("2d-1-hidden", points=1)
def test_weight_bottleneck_matches_reference():
    """A seeded MR-MAML meta-loss (sampled weights, inner loop on the head, KL) equals the reference's."""
    model = mr_maml(seed=3)
    sx, sy, qx, qy = tiny_images(seed=3)
    total, task, reg, _ = model.loss(sx, sy, qx, qy, beta=1e-3, generator=torch.Generator().manual_seed(4))
    # BEGIN HIDDEN
    ref_maml = reference_module("maml")
    torch.manual_seed(3)
    ref = ref_maml.MRMAML(Conv4(N, hidden=8), init_log_sigma=-2.0, inner_steps=1, inner_lr=0.4, vectorize=False)
    r_total, r_task, r_reg, _ = ref.loss(sx, sy, qx, qy, beta=1e-3, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(reg, r_reg, rtol=1e-6), f"KL {float(reg)} != reference {float(r_reg)}"
    assert torch.allclose(task, r_task, rtol=1e-5), f"task loss {float(task)} != reference {float(r_task)}"
    assert torch.allclose(total, r_total, rtol=1e-5), "total meta-loss differs from the reference"
    # END HIDDEN
