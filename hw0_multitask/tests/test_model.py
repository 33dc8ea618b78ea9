"""HW0 tests: the model's parts (questions 1-4), a short training run (5) and your results (6).

Run them with ``pytest tests`` (or ``cs330 test hw0 1a-0-basic``). Hidden tests run here too, but
their checks only run on the autograder: locally they report "skipped" when your code ran.
"""

import torch

from cs330.grading import graded, reference_module, student_module

N_USERS, N_ITEMS, DIM, HIDDEN = 7, 11, 4, 5


def make(mt, arch="shared", seed=0, **kw):
    """A small seeded model."""
    torch.manual_seed(seed)
    return mt.MultiTaskRecommender(N_USERS, N_ITEMS, dim=DIM, hidden=HIDDEN, arch=arch, **kw)


def batch(n=9, seed=1):
    """Seeded (users, items, other items, ratings), each (n,)."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(N_USERS, (n,), generator=g)
    items, others = torch.randint(N_ITEMS, (2, n), generator=g)
    ratings = torch.randint(1, 6, (n,), generator=g).float()
    return users, items, others, ratings


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def randomize(net, seed=2):
    """Give every parameter seeded N(0, 0.5^2) values (so that no test depends on the init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return net


# ---------------------------------------------------------------------------------------------
# 1a: embeddings, shared or separate


@graded("1a-0-basic", points=2)
def test_embedding_tables():
    """Shared: one user and one item table; separate: two of each; embed gives (B, dim)."""
    mt = student_module("model")
    users, items, _, _ = batch()
    for arch, n_tables in (("shared", 1), ("separate", 2)):
        net = make(mt, arch)
        assert len(net.user_emb) == n_tables and len(net.item_emb) == n_tables, f"{arch}: expected {n_tables} table(s) each"
        for table in net.user_emb:
            assert tuple(table.weight.shape) == (N_USERS, DIM), f"user table shape {tuple(table.weight.shape)}"
        for table in net.item_emb:
            assert tuple(table.weight.shape) == (N_ITEMS, DIM), f"item table shape {tuple(table.weight.shape)}"
        for task in (mt.RANK, mt.RATE):
            p, q = net.embed(users, items, task)
            assert p.shape == (9, DIM) and q.shape == (9, DIM), f"embed must return two (B, dim) tensors, got {p.shape}, {q.shape}"


@graded("1a-1-hidden", points=3)
def test_embedding_tables_hidden():
    """embed reads the right table for each task; tables start as N(0, init_std^2)."""
    mt = student_module("model")
    users, items, _, _ = batch()
    for arch in ("shared", "separate"):
        net = randomize(make(mt, arch))
        rank, rate = net.embed(users, items, mt.RANK), net.embed(users, items, mt.RATE)
        # BEGIN HIDDEN
        k_rate = 0 if arch == "shared" else 1
        assert torch.equal(rank[0], net.user_emb[0].weight[users]) and torch.equal(rank[1], net.item_emb[0].weight[items]), \
            f"{arch}: the ranking task must read table 0"
        assert torch.equal(rate[0], net.user_emb[k_rate].weight[users]) and torch.equal(rate[1], net.item_emb[k_rate].weight[items]), \
            f"{arch}: the rating task must read table {k_rate}"
        # END HIDDEN
    big = mt.MultiTaskRecommender(500, 600, dim=32, arch="separate", init_std=0.1)
    stds = [float(t.weight.detach().std()) for t in [*big.user_emb, *big.item_emb]]
    # BEGIN HIDDEN
    assert all(0.095 < s < 0.105 for s in stds), f"embedding stds {stds}: expected N(0, init_std^2) with init_std=0.1"
    assert not torch.equal(big.user_emb[0].weight[:10, :4], big.user_emb[1].weight[:10, :4]), "separate tables must differ"
    # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 1b: item bias and the rating MLP


def expected_params(n_users, n_items, dim, hidden, n_tables):
    return n_tables * (n_users + n_items) * dim + n_items + (3 * dim * hidden + hidden) + (hidden + 1)


@graded("1b-0-basic", points=2)
def test_bias_and_mlp_shapes():
    """item_bias is (n_items, 1) and zero; the MLP maps 3*dim -> hidden -> 1; total parameter counts."""
    mt = student_module("model")
    for arch, n_tables in (("shared", 1), ("separate", 2)):
        net = make(mt, arch)
        assert tuple(net.item_bias.weight.shape) == (N_ITEMS, 1), "item_bias must be nn.Embedding(n_items, 1)"
        assert torch.all(net.item_bias.weight == 0), "item_bias must start at zero"
        out = net.mlp(torch.zeros(3, 3 * DIM))
        assert out.shape == (3, 1), f"mlp must map (B, 3*dim) to (B, 1), got {tuple(out.shape)}"
        want = expected_params(N_USERS, N_ITEMS, DIM, HIDDEN, n_tables)
        assert n_params(net) == want, f"{arch}: {n_params(net)} parameters, expected {want}"


@graded("1b-1-hidden", points=3)
def test_bias_and_mlp_hidden():
    """Parameter counts at the real sizes (943 users, 1682 items, dim 32); the MLP's layers and dropout."""
    mt = student_module("model")
    counts = {arch: n_params(mt.MultiTaskRecommender(943, 1682, dim=32, hidden=64, arch=arch)) for arch in ("shared", "separate")}
    mlp = make(mt, "shared", dropout=0.25).mlp
    out = mlp(torch.zeros(2, 3 * DIM))
    # BEGIN HIDDEN
    assert out.shape == (2, 1), f"mlp output shape {tuple(out.shape)}, expected (2, 1)"
    assert counts == {"shared": expected_params(943, 1682, 32, 64, 1), "separate": expected_params(943, 1682, 32, 64, 2)}, counts
    ref_mlp = make(reference_module("model"), "shared", dropout=0.25).mlp
    assert [type(m).__name__ for m in mlp] == [type(m).__name__ for m in ref_mlp], f"mlp layers {mlp}, expected {ref_mlp}"
    assert mlp[2].p == 0.25, "dropout probability must be the `dropout` argument"
    # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 2a: ranking score, 2b: rating prediction


@graded("2a-0-basic", points=2)
def test_score():
    """score is (B,) and equals <p_u, q_i> + b_i on hand-set weights."""
    mt = student_module("model")
    net = make(mt, "shared")
    with torch.no_grad():
        net.user_emb[0].weight.copy_(torch.arange(N_USERS * DIM, dtype=torch.float).view(N_USERS, DIM) / 10)
        net.item_emb[0].weight.fill_(1.0)
        net.item_bias.weight.copy_(torch.arange(N_ITEMS, dtype=torch.float)[:, None])
    users, items = torch.tensor([0, 1, 6]), torch.tensor([0, 3, 10])
    out = net.score(users, items)
    assert out.shape == (3,), f"score must return (B,), got {tuple(out.shape)}"
    expected = torch.tensor([0.6, 2.2 + 3, 10.2 + 10])
    assert torch.allclose(out, expected, atol=1e-5), f"score {out.tolist()}, expected {expected.tolist()}"


@graded("2a-1-hidden", points=3)
def test_score_hidden():
    """score matches the reference (shared and separate, random weights): ranking uses its own tables."""
    mt = student_module("model")
    users, items, _, _ = batch(20)
    for arch in ("shared", "separate"):
        net = randomize(make(mt, arch))
        out = net.score(users, items)
        # BEGIN HIDDEN
        ref = make(reference_module("model"), arch)
        ref.load_state_dict(net.state_dict())
        assert torch.allclose(out, ref.score(users, items), atol=1e-5), f"{arch}: score differs from the reference"
        # END HIDDEN


@graded("2b-0-basic", points=2)
def test_predict_rating():
    """predict_rating is (B,); with a zeroed MLP it predicts rating_mean."""
    mt = student_module("model")
    net = make(mt, "separate", rating_mean=3.25)
    users, items, _, _ = batch()
    out = net.predict_rating(users, items)
    assert out.shape == (9,), f"predict_rating must return (B,), got {tuple(out.shape)}"
    with torch.no_grad():
        for p in net.mlp.parameters():
            p.zero_()
    assert torch.allclose(net.predict_rating(users, items), torch.full((9,), 3.25)), "with a zero MLP, predictions must equal rating_mean"


@graded("2b-1-hidden", points=3)
def test_predict_rating_hidden():
    """predict_rating matches the reference (eval mode, random weights), reading the rating tables."""
    mt = student_module("model")
    users, items, _, _ = batch(20)
    for arch in ("shared", "separate"):
        net = randomize(make(mt, arch)).eval()
        out = net.predict_rating(users, items)
        # BEGIN HIDDEN
        ref = make(reference_module("model"), arch).eval()
        ref.load_state_dict(net.state_dict())
        assert torch.allclose(out, ref.predict_rating(users, items), atol=1e-5), f"{arch}: predict_rating differs from the reference"
        # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 3a: BPR loss, 3b: task losses and the fixed weighting


@graded("3a-0-basic", points=1)
def test_bpr_loss_basic():
    """bpr_loss is a scalar, log 2 when positives and negatives score the same."""
    mt = student_module("model")
    out = mt.bpr_loss(torch.ones(5), torch.ones(5))
    assert out.dim() == 0, "bpr_loss must return a scalar"
    assert abs(float(out) - 0.693147) < 1e-5, f"expected log 2, got {float(out)}"


@graded("3a-1-hidden", points=2)
def test_bpr_loss_hidden():
    """bpr_loss matches the reference, and stays finite for large score gaps."""
    mt = student_module("model")
    g = torch.Generator().manual_seed(3)
    pos, neg = torch.randn(50, generator=g), torch.randn(50, generator=g)
    out, extreme = mt.bpr_loss(pos, neg), mt.bpr_loss(torch.tensor([-100.0, 100.0]), torch.tensor([100.0, -100.0]))
    # BEGIN HIDDEN
    assert torch.allclose(out, reference_module("model").bpr_loss(pos, neg), atol=1e-6), "bpr_loss differs from the reference"
    assert torch.isfinite(extreme) and abs(float(extreme) - 100.0) < 1e-3, f"bpr_loss overflows: {float(extreme)} (use logsigmoid)"
    # END HIDDEN


@graded("3b-0-basic", points=2)
def test_task_losses_and_weighting():
    """task_losses gives (2,) = [L_rank, L_rate] >= 0; weighted_loss is lam * L_rank + (1 - lam) * L_rate."""
    mt = student_module("model")
    net = make(mt, "shared")
    users, items, others, ratings = batch()
    losses = mt.task_losses(net, (users, items, others), (users, items, ratings))
    assert losses.shape == (2,), f"task_losses must return shape (2,), got {tuple(losses.shape)}"
    losses = losses.detach()
    assert torch.all(losses >= 0), f"losses must be non-negative, got {losses.tolist()}"
    assert abs(float(losses[0]) - 0.693) < 0.05, "with a fresh model, the BPR loss should be close to log 2"
    fixed = torch.tensor([2.0, 6.0])
    assert abs(float(mt.weighted_loss(fixed, 0.25)) - 5.0) < 1e-6, "weighted_loss([2, 6], 0.25) must be 0.25*2 + 0.75*6 = 5"
    assert abs(float(mt.weighted_loss(fixed, 1.0)) - 2.0) < 1e-6, "lam = 1 is the ranking loss alone"


@graded("3b-1-hidden", points=3)
def test_task_losses_hidden():
    """task_losses matches the reference on random weights (both archs), and has gradients."""
    mt = student_module("model")
    users, items, others, ratings = batch(30)
    for arch in ("shared", "separate"):
        net = randomize(make(mt, arch)).eval()
        losses = mt.task_losses(net, (users, items, others), (users, others, ratings))
        total = mt.weighted_loss(losses, 0.3)
        total.backward()
        # BEGIN HIDDEN
        ref_mt = reference_module("model")
        ref = make(ref_mt, arch).eval()
        ref.load_state_dict(net.state_dict())
        expected = ref_mt.task_losses(ref, (users, items, others), (users, others, ratings))
        assert torch.allclose(losses, expected, atol=1e-5), f"{arch}: task_losses {losses.tolist()}, expected {expected.tolist()}"
        assert torch.allclose(total, ref_mt.weighted_loss(expected, 0.3), atol=1e-5), "weighted_loss differs from the reference"
        assert net.item_bias.weight.grad is not None and net.mlp[0].weight.grad is not None, "losses must reach item_bias and the MLP"
        # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 4a: uncertainty weighting, 4b: PCGrad


@graded("4a-0-basic", points=1)
def test_uncertainty_weighting_basic():
    """log_vars is a (2,) zero parameter; with s = 0 the loss is L_rank + L_rate."""
    mt = student_module("model")
    weigher = mt.UncertaintyWeighting(2)
    assert tuple(weigher.log_vars.shape) == (2,) and torch.all(weigher.log_vars == 0)
    out = weigher(torch.tensor([0.5, 1.5])).detach()
    assert out.dim() == 0 and abs(float(out) - 2.0) < 1e-6, f"expected 2.0, got {out}"


@graded("4a-1-hidden", points=2)
def test_uncertainty_weighting_hidden():
    """exp(-s_i) L_i + s_i summed, with gradients to s matching the reference."""
    mt = student_module("model")
    weigher = mt.UncertaintyWeighting(2)
    with torch.no_grad():
        weigher.log_vars.copy_(torch.tensor([0.5, -1.0]))
    losses = torch.tensor([0.4, 2.0])
    out = weigher(losses)
    out.backward()
    # BEGIN HIDDEN
    ref = reference_module("model").UncertaintyWeighting(2)
    ref.log_vars.data = torch.tensor([0.5, -1.0])
    expected = ref(losses)
    expected.backward()
    assert torch.allclose(out, expected, atol=1e-6), f"got {out.item()}, expected {expected.item()}"
    assert torch.allclose(weigher.log_vars.grad, ref.log_vars.grad, atol=1e-6), "gradient with respect to log_vars is wrong"
    # END HIDDEN


@graded("4b-0-basic", points=1)
def test_pcgrad_basic():
    """Gradients that do not conflict are simply added."""
    mt = student_module("model")
    g1, g2 = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.5, 0.0, 3.0])
    assert torch.allclose(mt.pcgrad(g1, g2), g1 + g2), "non-conflicting gradients must be summed unchanged"


@graded("4b-1-hidden", points=3)
def test_pcgrad_hidden():
    """Conflicting gradients are projected (both ways, with the original gradients); pcgrad_backward on a model."""
    mt = student_module("model")
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    out = mt.pcgrad(g1, g2)
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(100, generator=g), torch.randn(100, generator=g)
    b = b - 2 * (a @ b).abs() / (a @ a) * a  # make them conflict
    rand_out = mt.pcgrad(a, b)
    net = randomize(make(mt, "shared"))
    users, items, others, ratings = batch(30)
    mt.pcgrad_backward(net, mt.task_losses(net, (users, items, others), (users, others, ratings)))
    grads = {name: p.grad.clone() for name, p in net.named_parameters()}
    # BEGIN HIDDEN
    # g1' = g1 - (g1.g2)/|g2|^2 g2 = (0.5, 0.5); g2' = g2 - (g2.g1)/|g1|^2 g1 = (0, 1)
    assert torch.allclose(out, torch.tensor([0.5, 1.5]), atol=1e-6), f"pcgrad([1, 0], [-1, 1]) = {out.tolist()}, expected [0.5, 1.5]"
    ref_mt = reference_module("model")
    assert torch.allclose(rand_out, ref_mt.pcgrad(a, b), atol=1e-5), "pcgrad differs from the reference on conflicting gradients"
    ref = make(ref_mt, "shared")
    ref.load_state_dict(net.state_dict())
    ref_mt.pcgrad_backward(ref, ref_mt.task_losses(ref, (users, items, others), (users, others, ratings)))
    for name, p in ref.named_parameters():
        assert torch.allclose(grads[name], p.grad, atol=1e-5), f"pcgrad_backward: the gradient of {name} differs from the reference"
    # END HIDDEN
