"""HW0 tests: the model's parts (questions 1-4), a short training run (5) and your results (6).

Run them with ``pytest tests`` (or ``cs330 test hw0 1a-0-basic``). Hidden tests run here too, but
their checks only run on the autograder: locally they report "skipped" when your code ran.

``student`` is your code: in the autograder it runs in a separate sandboxed process, and what
comes back from it is data (tensors, numbers) or a stand-in for one of your objects (a model).
Checks that need several steps in your process (seeding, setting weights, a backward pass) run
the probes of ``probes.py`` there; ``reference`` (hidden checks only) runs the same probes on the
reference solution.
"""

import pytest
import torch

import probes
from cs330.grading import expect_tensor, graded
from probes import DIM, N_ITEMS, N_USERS, batch


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def load_into(net, state, what):
    """Load the student's weights into a reference model, saying clearly when they do not fit."""
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        pytest.fail(f"{what}: your model's parameters (names and shapes) do not match the ones the handout asks for:\n{e}", pytrace=False)
    return net


# ---------------------------------------------------------------------------------------------
# 1a: embeddings, shared or separate


@graded("1a-0-basic", points=2)
def test_embedding_tables(student):
    """Shared: one user and one item table; separate: two of each; embed gives (B, dim)."""
    mt = student.model
    users, items, _, _ = batch()
    for arch, n_tables in (("shared", 1), ("separate", 2)):
        net = student.probe(probes.make, arch)
        assert len(net.user_emb) == n_tables and len(net.item_emb) == n_tables, f"{arch}: expected {n_tables} table(s) each"
        for table in net.user_emb:
            assert tuple(table.weight.shape) == (N_USERS, DIM), f"user table shape {tuple(table.weight.shape)}"
        for table in net.item_emb:
            assert tuple(table.weight.shape) == (N_ITEMS, DIM), f"item table shape {tuple(table.weight.shape)}"
        for task in (mt.RANK, mt.RATE):
            p, q = net.embed(users, items, task)
            assert p.shape == (9, DIM) and q.shape == (9, DIM), f"embed must return two (B, dim) tensors, got {p.shape}, {q.shape}"


@graded("1a-1-hidden", points=3)
def test_embedding_tables_hidden(student):
    """embed reads the right table for each task; tables start as N(0, init_std^2)."""
    mt = student.model
    users, items, _, _ = batch()
    for arch in ("shared", "separate"):
        net = student.probe(probes.randomized, arch)
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
def test_bias_and_mlp_shapes(student):
    """item_bias is (n_items, 1) and zero; the MLP maps 3*dim -> hidden -> 1; total parameter counts."""
    for arch, n_tables in (("shared", 1), ("separate", 2)):
        net = student.probe(probes.make, arch)
        assert tuple(net.item_bias.weight.shape) == (N_ITEMS, 1), "item_bias must be nn.Embedding(n_items, 1)"
        assert torch.all(net.item_bias.weight == 0), "item_bias must start at zero"
        expect_tensor(net.mlp(torch.zeros(3, 3 * DIM)), "mlp on (B, 3*dim)", (3, 1))
        want = expected_params(N_USERS, N_ITEMS, DIM, probes.HIDDEN, n_tables)
        assert n_params(net) == want, f"{arch}: {n_params(net)} parameters, expected {want}"


@graded("1b-1-hidden", points=3)
def test_bias_and_mlp_hidden(student, reference):
    """Parameter counts at the real sizes (943 users, 1682 items, dim 32); the MLP's layers and dropout."""
    mt = student.model
    counts = {arch: n_params(mt.MultiTaskRecommender(943, 1682, dim=32, hidden=64, arch=arch)) for arch in ("shared", "separate")}
    out = expect_tensor(student.probe(probes.make, "shared", dropout=0.25).mlp(torch.zeros(2, 3 * DIM)), "mlp")
    layers, dropouts = student.probe(probes.mlp_layers, 0.25)
    # BEGIN HIDDEN
    assert out.shape == (2, 1), f"mlp output shape {tuple(out.shape)}, expected (2, 1)"
    assert counts == {"shared": expected_params(943, 1682, 32, 64, 1), "separate": expected_params(943, 1682, 32, 64, 2)}, counts
    ref_layers, _ = reference.probe(probes.mlp_layers, 0.25)
    assert layers == ref_layers, f"mlp layers {layers}, expected {ref_layers}"
    assert dropouts == [0.25], "dropout probability must be the `dropout` argument"
    # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 2a: ranking score, 2b: rating prediction


@graded("2a-0-basic", points=2)
def test_score(student):
    """score is (B,) and equals <p_u, q_i> + b_i on hand-set weights."""
    weights = {"user_emb.0.weight": torch.arange(N_USERS * DIM, dtype=torch.float).view(N_USERS, DIM) / 10,
               "item_emb.0.weight": torch.ones(N_ITEMS, DIM), "item_bias.weight": torch.arange(N_ITEMS, dtype=torch.float)[:, None]}
    net = student.probe(probes.with_weights, "shared", weights)
    users, items = torch.tensor([0, 1, 6]), torch.tensor([0, 3, 10])
    out = expect_tensor(net.score(users, items), "score", (3,))
    expected = torch.tensor([0.6, 2.2 + 3, 10.2 + 10])
    assert torch.allclose(out, expected, atol=1e-5), f"score {out.tolist()}, expected {expected.tolist()}"


@graded("2a-1-hidden", points=3)
def test_score_hidden(student, reference):
    """score matches the reference (shared and separate, random weights): ranking uses its own tables."""
    users, items, _, _ = batch(20)
    for arch in ("shared", "separate"):
        net = student.probe(probes.randomized, arch)
        out = expect_tensor(net.score(users, items), "score")
        # BEGIN HIDDEN
        ref = load_into(reference.probe(probes.make, arch), net.state_dict(), arch)
        assert torch.allclose(out, ref.score(users, items), atol=1e-5), f"{arch}: score differs from the reference"
        # END HIDDEN


@graded("2b-0-basic", points=2)
def test_predict_rating(student):
    """predict_rating is (B,); with a zeroed MLP it predicts rating_mean."""
    net = student.probe(probes.make, "separate", rating_mean=3.25)
    users, items, _, _ = batch()
    expect_tensor(net.predict_rating(users, items), "predict_rating", (9,))
    net = student.probe(probes.zero_mlp, net)
    out = expect_tensor(net.predict_rating(users, items), "predict_rating")
    assert torch.allclose(out, torch.full((9,), 3.25)), "with a zero MLP, predictions must equal rating_mean"


@graded("2b-1-hidden", points=3)
def test_predict_rating_hidden(student, reference):
    """predict_rating matches the reference (eval mode, random weights), reading the rating tables."""
    users, items, _, _ = batch(20)
    for arch in ("shared", "separate"):
        net = student.probe(probes.randomized, arch).eval()
        out = expect_tensor(net.predict_rating(users, items), "predict_rating")
        # BEGIN HIDDEN
        ref = load_into(reference.probe(probes.make, arch).eval(), net.state_dict(), arch)
        assert torch.allclose(out, ref.predict_rating(users, items), atol=1e-5), f"{arch}: predict_rating differs from the reference"
        # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 3a: BPR loss, 3b: task losses and the fixed weighting


@graded("3a-0-basic", points=1)
def test_bpr_loss_basic(student):
    """bpr_loss is a scalar, log 2 when positives and negatives score the same."""
    out = expect_tensor(student.model.bpr_loss(torch.ones(5), torch.ones(5)), "bpr_loss")
    assert out.dim() == 0, "bpr_loss must return a scalar"
    assert abs(float(out) - 0.693147) < 1e-5, f"expected log 2, got {float(out)}"


@graded("3a-1-hidden", points=2)
def test_bpr_loss_hidden(student, reference):
    """bpr_loss matches the reference, and stays finite for large score gaps."""
    mt = student.model
    g = torch.Generator().manual_seed(3)
    pos, neg = torch.randn(50, generator=g), torch.randn(50, generator=g)
    out = expect_tensor(mt.bpr_loss(pos, neg), "bpr_loss")
    extreme = expect_tensor(mt.bpr_loss(torch.tensor([-100.0, 100.0]), torch.tensor([100.0, -100.0])), "bpr_loss")
    # BEGIN HIDDEN
    assert torch.allclose(out, reference.model.bpr_loss(pos, neg), atol=1e-6), "bpr_loss differs from the reference"
    assert torch.isfinite(extreme) and abs(float(extreme) - 100.0) < 1e-3, f"bpr_loss overflows: {float(extreme)} (use logsigmoid)"
    # END HIDDEN


@graded("3b-0-basic", points=2)
def test_task_losses_and_weighting(student):
    """task_losses gives (2,) = [L_rank, L_rate] >= 0; weighted_loss is lam * L_rank + (1 - lam) * L_rate."""
    mt = student.model
    net = student.probe(probes.make, "shared")
    users, items, others, ratings = batch()
    losses = expect_tensor(mt.task_losses(net, (users, items, others), (users, items, ratings)), "task_losses", (2,))
    assert torch.all(losses >= 0), f"losses must be non-negative, got {losses.tolist()}"
    assert abs(float(losses[0]) - 0.693) < 0.05, "with a fresh model, the BPR loss should be close to log 2"
    fixed = torch.tensor([2.0, 6.0])
    assert abs(float(expect_tensor(mt.weighted_loss(fixed, 0.25), "weighted_loss")) - 5.0) < 1e-6, \
        "weighted_loss([2, 6], 0.25) must be 0.25*2 + 0.75*6 = 5"
    assert abs(float(expect_tensor(mt.weighted_loss(fixed, 1.0), "weighted_loss")) - 2.0) < 1e-6, "lam = 1 is the ranking loss alone"


@graded("3b-1-hidden", points=3)
def test_task_losses_hidden(student, reference):
    """task_losses matches the reference on random weights (both archs), and has gradients."""
    for arch in ("shared", "separate"):
        state = student.probe(probes.randomized, arch).state_dict()
        got = student.probe(probes.losses_and_grads, arch, state, lam=0.3)
        losses, total = expect_tensor(got["losses"], "task_losses"), expect_tensor(got["total"], "weighted_loss")
        # BEGIN HIDDEN
        load_into(reference.probe(probes.make, arch), state, arch)
        expected = reference.probe(probes.losses_and_grads, arch, state, lam=0.3)
        assert torch.allclose(losses, expected["losses"], atol=1e-5), f"{arch}: task_losses {losses.tolist()}, expected {expected['losses'].tolist()}"
        assert torch.allclose(total, expected["total"], atol=1e-5), "weighted_loss differs from the reference"
        assert got["grads"].get("item_bias.weight") is not None and got["grads"].get("mlp.0.weight") is not None, \
            "losses must reach item_bias and the MLP"
        # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 4a: uncertainty weighting, 4b: PCGrad


@graded("4a-0-basic", points=1)
def test_uncertainty_weighting_basic(student):
    """log_vars is a (2,) zero parameter; with s = 0 the loss is L_rank + L_rate."""
    weigher = student.model.UncertaintyWeighting(2)
    log_vars = expect_tensor(weigher.log_vars, "UncertaintyWeighting.log_vars", (2,))
    assert torch.all(log_vars == 0), "log_vars must start at zero"
    out = expect_tensor(weigher(torch.tensor([0.5, 1.5])), "UncertaintyWeighting").detach()
    assert out.dim() == 0 and abs(float(out) - 2.0) < 1e-6, f"expected 2.0, got {out}"


@graded("4a-1-hidden", points=2)
def test_uncertainty_weighting_hidden(student, reference):
    """exp(-s_i) L_i + s_i summed, with gradients to s matching the reference."""
    log_vars, losses = torch.tensor([0.5, -1.0]), torch.tensor([0.4, 2.0])
    got = student.probe(probes.uncertainty, log_vars, losses)
    out, grad = expect_tensor(got["out"], "UncertaintyWeighting"), got["grad"]
    # BEGIN HIDDEN
    expected = reference.probe(probes.uncertainty, log_vars, losses)
    assert torch.allclose(out, expected["out"], atol=1e-6), f"got {out.item()}, expected {expected['out'].item()}"
    assert grad is not None and torch.allclose(grad, expected["grad"], atol=1e-6), "gradient with respect to log_vars is wrong"
    # END HIDDEN


@graded("4b-0-basic", points=1)
def test_pcgrad_basic(student):
    """Gradients that do not conflict are simply added."""
    g1, g2 = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.5, 0.0, 3.0])
    out = expect_tensor(student.model.pcgrad(g1, g2), "pcgrad", (3,))
    assert torch.allclose(out, g1 + g2), "non-conflicting gradients must be summed unchanged"


@graded("4b-1-hidden", points=3)
def test_pcgrad_hidden(student, reference):
    """Conflicting gradients are projected (both ways, with the original gradients); pcgrad_backward on a model."""
    mt = student.model
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    out = expect_tensor(mt.pcgrad(g1, g2), "pcgrad")
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(100, generator=g), torch.randn(100, generator=g)
    b = b - 2 * (a @ b).abs() / (a @ a) * a  # make them conflict
    rand_out = expect_tensor(mt.pcgrad(a, b), "pcgrad")
    state = student.probe(probes.randomized, "shared").state_dict()
    grads = student.probe(probes.pcgrad_grads, "shared", state)
    # BEGIN HIDDEN
    # g1' = g1 - (g1.g2)/|g2|^2 g2 = (0.5, 0.5); g2' = g2 - (g2.g1)/|g1|^2 g1 = (0, 1)
    assert torch.allclose(out, torch.tensor([0.5, 1.5]), atol=1e-6), f"pcgrad([1, 0], [-1, 1]) = {out.tolist()}, expected [0.5, 1.5]"
    assert torch.allclose(rand_out, reference.model.pcgrad(a, b), atol=1e-5), "pcgrad differs from the reference on conflicting gradients"
    load_into(reference.probe(probes.make, "shared"), state, "shared")
    for name, want in reference.probe(probes.pcgrad_grads, "shared", state).items():
        got = grads.get(name)
        assert got is not None and torch.allclose(got, want, atol=1e-5), f"pcgrad_backward: the gradient of {name} differs from the reference"
    # END HIDDEN
