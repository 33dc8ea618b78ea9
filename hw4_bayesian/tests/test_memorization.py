"""Question 2 (Part A): label shuffling, support sensitivity, and the two meta-regularisers.

``student`` is your code: in the autograder it runs in a separate sandboxed process. Seeded models,
backward passes and the predictors handed to ``support_sensitivity`` run there, in ``probes.py``.
"""

import torch
from torch.distributions import Normal, kl_divergence

import probes
import slopes
from stated import STATED
from cs330.grading import drawn_seed, expect_tensor, graded

N = probes.N_WAY


def fixed_labels(B, K):
    """Label-major labels of B non-mutually-exclusive tasks: label j at positions j*K .. j*K + K - 1 in every task."""
    return torch.arange(N).repeat_interleave(K).repeat(B, 1)


def shuffled(student, B, K, Q, seed):
    out = student.probe(probes.shuffle, fixed_labels(B, K), fixed_labels(B, Q), seed)
    assert isinstance(out, (tuple, list)) and len(out) == 2, "shuffle_labels returns (support_y', query_y')"
    return (expect_tensor(out[0], "shuffle_labels (support)", (B, N * K)),
            expect_tensor(out[1], "shuffle_labels (query)", (B, N * Q)))


@graded("2a-0-basic", points=2)
def test_shuffle_labels_is_one_permutation_per_task(student):
    """shuffle_labels: in every task, a bijection of 0..N-1 (one class keeps one label), the same for its
    support and its query set."""
    new_s, new_q = shuffled(student, 64, 2, 3, seed=0)
    for b in range(64):
        perm_s = new_s[b].view(N, 2)[:, 0]
        assert sorted(perm_s.tolist()) == list(range(N)), (
            f"task {b}: support labels are not a permutation of 0..{N - 1}"
        )
        assert (new_s[b].view(N, 2) == perm_s[:, None]).all(), (
            f"task {b}: two examples of one class got different labels"
        )
        assert torch.equal(new_q[b].view(N, 3)[:, 0], perm_s) and (new_q[b].view(N, 3) == perm_s[:, None]).all(), (
            f"task {b}: the query set is relabelled differently from the support set; a task's support and query "
            "must share one permutation, else the support no longer tells the query's labels")


@graded("2a-1-hidden", points=2)
def test_shuffled_labels_differ_across_tasks(student):
    """Every task draws its own permutation: tasks get different relabellings, and across many tasks the label of
    each class is uniform over 0..N-1 (so the query alone says nothing about its label)."""
    new_s, _ = shuffled(student, 64, 2, 3, seed=0)
    distinct = len({tuple(new_s[b].tolist()) for b in range(64)})
    assert distinct > 20, (f"only {distinct} different relabellings in 64 tasks: draw one permutation per task "
                           "(shape (B, N)), not one for the whole meta-batch")
    B = 5000
    big, _ = shuffled(student, B, 1, 1, seed=1)
    # BEGIN HIDDEN
    # (position, label)
    counts = torch.stack([torch.bincount(big[:, j].long(), minlength=N)[:N] for j in range(N)]).float() / B
    assert (counts - 1 / N).abs().max() < 0.03, f"label frequencies per class position are not uniform:\n{counts}"
    # END HIDDEN


def episode(B=4, K=1, Q=3, seed=0):
    """Well-separated classes, set ``seed`` of this grading's draws (drawn_seed: unknown to your code)."""
    g = torch.Generator().manual_seed(drawn_seed(f"2b episode {seed}"))
    centres = 10 * torch.randn(B, N, 1, 4, generator=g)
    sx = (centres + 0.1 * torch.randn(B, N, K, 4, generator=g)).flatten(1, 2)
    qx = (centres + 0.1 * torch.randn(B, N, Q, 4, generator=g)).flatten(1, 2)
    return sx, fixed_labels(B, K), qx


@graded("2b-0-basic", points=2)
def test_support_sensitivity_extremes(student):
    """support_sensitivity: one value per task, 0 for a predictor that ignores the support, 1 for one that follows
    the support labels (its argmax changes with every relabelled support)."""
    sx, sy, qx = episode(B=32)  # 32 tasks: every shift value is drawn
    ignore = expect_tensor(student.probe(probes.sensitivity, "memoriser", sx, sy, qx, seed=0),
                           "support_sensitivity", (32,))
    follow = expect_tensor(student.probe(probes.sensitivity, "follower", sx, sy, qx, seed=0),
                           "support_sensitivity", (32,))
    assert torch.allclose(ignore.double(), torch.zeros(32, dtype=torch.float64)), (
        f"a memoriser must score 0, got {ignore.tolist()}"
    )
    assert torch.allclose(follow.double(), torch.ones(32, dtype=torch.float64)), (
        f"a learner following the support labels must score 1, got {follow.tolist()}: relabel the support with "
        "cyclic_relabel (no label keeps its value) and compare the argmax predictions")


@graded("2b-1-hidden", points=1)
def test_support_sensitivity_per_task(student):
    """A predictor that reads the support in even tasks only scores [1, 0, 1, 0, ...]: a fraction per task, not
    one number for the meta-batch."""
    sx, sy, qx = episode(B=6, seed=1)
    got = expect_tensor(student.probe(probes.sensitivity, "half", sx, sy, qx, seed=2), "support_sensitivity", (6,))
    # BEGIN HIDDEN
    assert torch.allclose(got.double(), torch.tensor([1.0, 0.0] * 3, dtype=torch.float64)), (
        f"expected [1, 0, 1, 0, 1, 0], got {got.tolist()}"
    )
    # END HIDDEN


def tiny_images(B=2, K=1, Q=2, seed=0):
    """Random images of tasks with fixed labels, set ``seed`` of this grading's draws."""
    g = torch.Generator().manual_seed(drawn_seed(f"2c images {seed}"))
    return (torch.rand(B, N * K, 1, 28, 28, generator=g), fixed_labels(B, K),
            torch.rand(B, N * Q, 1, 28, 28, generator=g), fixed_labels(B, Q))


def standard_kl(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last dim."""
    return kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).sum(-1)


@graded("2c-0-hidden", points=2)
def test_activation_bottleneck_kl_value(student, reference):
    """The stochastic black-box learner's KL term is KL(N(mu, sigma^2) || N(0, I)) of each query code, summed over
    the code's dims and averaged over the queries (of every task); total = CE + beta * KL. Hidden: seeded KL terms
    equal the reference's."""
    for seed in (0, 1):
        got = student.probe(probes.blackbox_terms, tiny_images(seed=seed), 0.5, seed, seed, stated=STATED)
        kl = expect_tensor(got["kl"], "BlackBoxClassifier.loss (KL)", ())
        expected = standard_kl(got["mu"], got["logvar"])  # (B, M)
        if torch.allclose(kl, expected.sum(), rtol=1e-4):
            raise AssertionError("the KL is summed over the queries: average it over them (.mean())")
        assert torch.allclose(kl, expected.mean(), rtol=1e-4), (
            f"KL term {float(kl):.5f}, expected {float(expected.mean()):.5f}: the KL of N(mu, exp(logvar)) to N(0, I), "
            "summed over the code's dims and averaged over the queries")
        assert torch.allclose(expect_tensor(got["total"], "loss (total)", ()), got["ce"] + 0.5 * kl, rtol=1e-5)
        # BEGIN HIDDEN
        want = reference.probe(probes.blackbox_terms, tiny_images(seed=seed), 0.5, seed, seed, stated=STATED)
        assert torch.allclose(got["kl"], want["kl"], rtol=1e-4, atol=1e-6), "the KL term differs from the reference"
        # END HIDDEN


@graded("2c-1-basic", points=1)
def test_activation_bottleneck_gradient(student):
    """beta * KL sends a gradient to the encoder (the conv body and the log-variance layer): the KL is computed
    from the query codes' (mu, logvar) in the graph, not from detached copies."""
    got = student.probe(probes.blackbox_terms, tiny_images(), 0.5, 0, 0, stated=STATED)
    assert got.get("grads") is not None, (
        "the KL term carries no gradient: compute it from (mu, logvar) without detaching"
    )
    to_logvar, conv = got["grads"]
    assert to_logvar.abs().sum() > 0 and conv.abs().sum() > 0, \
        "the regulariser's gradient must reach the encoder and to_logvar (are mu or logvar detached?)"
    # the same in float64, against the differences of the KL itself along a random direction
    images, h = tuple(x.double() if x.is_floating_point() else x for x in tiny_images()), 1e-6
    grads = dict(zip(("to_logvar", "conv"), student.probe(probes.blackbox_terms, images, 0.5, 0, 0, stated=STATED)
                     .get("grads") or (None, None)))
    assert grads["conv"] is not None, "in float64 the KL term carries no gradient"
    v = slopes.direction(grads, "2c-1 direction")
    kls = [student.probe(probes.blackbox_terms, images, 0.5, 0, 0, moved=([v["to_logvar"], v["conv"]], s * h),
                         stated=STATED)["kl"] for s in (1, -1)]
    slopes.assert_slope(grads, v, *(expect_tensor(kl, "the KL term", ()) for kl in kls), h, "the KL term")


def log_sigmas(state, seed=5):
    """Random log-sigmas in [-3, -1], one per weight, so that a sigma / variance confusion shows (set ``seed`` of
    this grading's draws)."""
    g = torch.Generator().manual_seed(drawn_seed(f"2d log-sigmas {seed}"))
    return {n: -3.0 + 2.0 * torch.rand(v.shape, generator=g) for n, v in state["log_sigma"].items()}


def key(name):
    return name.replace(".", "__")


@graded("2d-0-basic", points=2)
def test_weight_bottleneck_samples(student):
    """MR-MAML meta_params: every body weight (``stochastic``) is a fresh sample mu + sigma * eps with
    sigma = exp(log_sigma) (one eps per weight, from the generator: the same seed, the same sample); the head
    (adapted by the inner loop) is the mean itself."""
    state = student.probe(probes.mr_maml_state, stated=STATED)
    ls = log_sigmas(state)
    got = student.probe(probes.mr_maml_samples, ls, [0, 0, 1], stated=STATED)
    a, again, other = got["samples"]
    mu = state["mu"]
    assert set(a) == set(mu), f"meta_params must return every parameter name of the model: {sorted(mu)}"
    for n in mu:
        expect_tensor(a[n], f"meta_params()[{n!r}]", tuple(mu[n].shape))
        if n in state["stochastic"]:
            assert torch.equal(a[n], again[n]), (
                f"{n}: the same generator seed must give the same sample (pass generator=)"
            )
            assert not torch.equal(a[n], other[n]), f"{n}: another generator seed must give another sample"
        else:
            assert torch.equal(a[n], mu[n]), f"{n}: the head is adapted by the inner loop and not sampled"
    noise = torch.cat([((a[n] - mu[n]) / ls[key(n)].exp()).flatten() for n in state["stochastic"]])
    assert abs(float(noise.mean())) < 0.15 and 0.85 < float(noise.std()) < 1.15, (
        f"(sample - mu) / exp(log_sigma) should be standard normal, has mean {float(noise.mean()):.3f} and sd "
        f"{float(noise.std()):.3f}: sigma = exp(log_sigma), i.e. logvar = 2 * log_sigma for sample_gaussian")


@graded("2d-1-basic", points=1)
def test_weight_bottleneck_samples_are_reparameterised(student):
    """The sampled body weights are differentiable in the means (d sample / d mu = 1) and in the log-sigmas."""
    state = student.probe(probes.mr_maml_state, stated=STATED)
    got = student.probe(probes.mr_maml_samples, log_sigmas(state), [0], stated=STATED)
    assert got["grads"], "the samples carry no gradient: build them with sample_gaussian from the parameters, no detach"
    for n in state["stochastic"]:
        assert torch.allclose(got["grads"]["mu"][n], torch.ones_like(state["mu"][n])), f"{n}: d sample / d mu must be 1"
        assert got["grads"]["log_sigma"][key(n)].abs().sum() > 0, f"{n}: no gradient reaches its log_sigma"


@graded("2d-2-hidden", points=2)
def test_weight_bottleneck_kl(student):
    """MR-MAML regularizer: KL(N(mu, exp(2 log_sigma)) || N(0, I)) summed over every body weight (a 0-dim tensor),
    with gradients to the means and to the log-sigmas."""
    state = student.probe(probes.mr_maml_state, stated=STATED)
    ls = log_sigmas(state, seed=6)
    got = student.probe(probes.mr_maml_regularizer, ls, stated=STATED)
    kl = expect_tensor(got["kl"], "MRMAML.regularizer", ())
    expected = sum(standard_kl(state["mu"][n].double().flatten(), 2 * ls[key(n)].double().flatten())
                   for n in state["stochastic"])
    assert torch.allclose(kl.double(), expected, rtol=1e-4), (
        f"KL {float(kl):.4f}, expected {float(expected):.4f}: the sum over every body weight (no mean), "
        "with logvar = 2 * log_sigma and the prior N(0, I)")
    # BEGIN HIDDEN
    assert got["grads"] is not None, "the KL carries no gradient"
    for name in state["stochastic"]:
        mu, s = state["mu"][name].double(), ls[key(name)].double()
        assert torch.allclose(got["grads"]["mu"][name].double(), mu, rtol=1e-4, atol=1e-6), (
            f"{name}: d KL / d mu must be mu"
        )
        assert torch.allclose(got["grads"]["log_sigma"][key(name)].double(), (2 * s).exp() - 1, rtol=1e-4, atol=1e-6), \
            f"{name}: d KL / d log_sigma must be sigma^2 - 1"
    # END HIDDEN
