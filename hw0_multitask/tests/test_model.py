"""HW0 tests: the model's parts (questions 1-4), a short training run (5) and your results (6).

Run them with ``pytest tests`` (or ``cs330 test hw0 1a-0-basic``). Hidden tests run here too, but
their checks only run on the autograder: locally they report "skipped" when your code ran.

``student`` is your code: in the autograder it runs in a separate sandboxed process, and what
comes back from it is data (tensors, numbers) or a stand-in for one of your objects (a model).
Checks that need several steps in your process (seeding, setting weights, a backward pass) run
the probes of ``probes.py`` there; ``reference`` (hidden checks only) runs the same probes on the
reference solution.
"""

import math

import torch

import probes
from cs330.grading import drawn_seed, expect_tensor, graded
from probes import DIM, N_ITEMS, N_USERS, batch


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def drawn_weights(student, arch, label):
    """N(0, 0.5^2) values, drawn here from this grading's secret, for every parameter of your model (your names
    and shapes): the weights a test sets, so that it knows them."""
    named = dict(iter(student.probe(probes.make, arch).named_parameters()))
    shapes = {k: tuple(expect_tensor(v, k).shape) for k, v in named.items()}
    g = torch.Generator().manual_seed(drawn_seed(f"{label} {arch} weights"))
    return {k: 0.5 * torch.randn(shape, generator=g) for k, shape in shapes.items()}


def tables_read(p, q, weights, users, items, what):
    """Fail unless p and q are rows of one of the user and item tables of ``weights`` (the weights the test set):
    a model that ignores its weights (constant or zero embeddings) agrees with itself, so it proves nothing here.
    Which table each task reads is 1a-1's."""
    def read(t, side, index):
        tables = [v for k, v in sorted(weights.items()) if k.startswith(f"{side}_emb.") and k.endswith(".weight")]
        if not any(t.shape == w[index].shape and torch.allclose(t, w[index], atol=1e-6) for w in tables):
            raise AssertionError(
                f"{what}: embed's {side} embeddings are not rows of the {side} tables this test loaded into your "
                f"model (load_state_dict): embed must look up {side}_emb[k].weight[{side}s]")
    read(p, "user", users)
    read(q, "item", items)


# ---------------------------------------------------------------------------------------------
# 1a: embeddings, shared or separate


@graded("1a-0-basic", points=2)
def test_embedding_tables(student):
    """Shared: one user and one item table; separate: two of each; embed gives (B, dim) rows of the tables."""
    mt = student.model
    users, items, _, _ = batch()
    for arch, n_tables in (("shared", 1), ("separate", 2)):
        net = student.probe(probes.make, arch)
        assert len(net.user_emb) == n_tables and len(net.item_emb) == n_tables, (
            f"{arch}: expected {n_tables} table(s) each"
        )
        for table in net.user_emb:
            assert tuple(table.weight.shape) == (N_USERS, DIM), f"user table shape {tuple(table.weight.shape)}"
        for table in net.item_emb:
            assert tuple(table.weight.shape) == (N_ITEMS, DIM), f"item table shape {tuple(table.weight.shape)}"
        weights = {k: expect_tensor(v, k) for k, v in net.state_dict().items()}
        for task in (mt.RANK, mt.RATE):
            p, q = net.embed(users, items, task)
            assert p.shape == (9, DIM) and q.shape == (9, DIM), (
                f"embed must return two (B, dim) tensors, got {p.shape}, {q.shape}"
            )
            tables_read(p, q, weights, users, items, f"{arch}, task {task}")


@graded("1a-2-basic", points=1)
def test_embedding_depends_on_the_task(student):
    """With separate tables the two tasks get different embeddings (``task`` picks the table); shared, the same."""
    mt = student.model
    users, items, _, _ = batch()
    for arch in ("shared", "separate"):
        net = student.probe(probes.randomized, arch)
        (p_rank, q_rank), (p_rate, q_rate) = net.embed(users, items, mt.RANK), net.embed(users, items, mt.RATE)
        same = torch.equal(p_rank, p_rate) and torch.equal(q_rank, q_rate)
        if arch == "separate":
            assert not same, ("separate: the ranking and the rating task get the same embeddings: embed must read "
                              "table `task` (user_emb[task], item_emb[task]), not table 0 for both")
        else:
            assert same, "shared: both tasks must read the one table (index 0), whatever `task` is"


@graded("1a-1-hidden", points=2)
def test_embedding_tables_hidden(student):
    """embed reads the right table for each task; tables start as N(0, init_std^2)."""
    mt = student.model
    users, items, _, _ = batch()
    for arch in ("shared", "separate"):
        net = student.probe(probes.randomized, arch)
        rank, rate = net.embed(users, items, mt.RANK), net.embed(users, items, mt.RATE)
        # BEGIN HIDDEN
        k_rate = 0 if arch == "shared" else 1
        assert (torch.equal(rank[0], net.user_emb[0].weight[users])
                and torch.equal(rank[1], net.item_emb[0].weight[items])), f"{arch}: the ranking task must read table 0"
        assert (torch.equal(rate[0], net.user_emb[k_rate].weight[users])
                and torch.equal(rate[1], net.item_emb[k_rate].weight[items])), \
            f"{arch}: the rating task must read table {k_rate}"
        # END HIDDEN
    big = mt.MultiTaskRecommender(500, 600, dim=32, arch="separate", init_std=0.1)
    stds = [float(t.weight.detach().std()) for t in [*big.user_emb, *big.item_emb]]
    # BEGIN HIDDEN
    assert all(0.095 < s < 0.105 for s in stds), f"embedding stds {stds}: expected N(0, init_std^2) with init_std=0.1"
    assert not torch.equal(big.user_emb[0].weight[:10, :4], big.user_emb[1].weight[:10, :4]), (
        "separate tables must differ"
    )
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


@graded("1b-1-hidden", points=2)
def test_bias_and_mlp_hidden(student):
    """Parameter counts at the real sizes (943 users, 1682 items, dim 32, hidden 64);
    the MLP maps (B, 3*dim) to (B, 1)."""
    mt = student.model
    counts = {arch: n_params(mt.MultiTaskRecommender(943, 1682, dim=32, hidden=64, arch=arch))
              for arch in ("shared", "separate")}
    out = expect_tensor(student.probe(probes.make, "shared", dropout=0.25).mlp(torch.zeros(2, 3 * DIM)), "mlp")
    # BEGIN HIDDEN
    assert tuple(out.shape) == (2, 1), f"mlp output shape {tuple(out.shape)}, expected (2, 1)"
    want = {"shared": expected_params(943, 1682, 32, 64, 1), "separate": expected_params(943, 1682, 32, 64, 2)}
    assert counts == want, (
        f"parameter counts {counts}, expected {want}: check the tables, item_bias and the MLP's sizes"
    )
    # END HIDDEN


@graded("1b-2-hidden", points=1)
def test_mlp_dropout(student):
    """The MLP drops hidden units with probability `dropout` in training mode (nn.Dropout after the ReLU)
    and none in eval mode."""
    got = student.probe(probes.dropout_outputs, 0.25)
    train_out = expect_tensor(got["train"], "mlp (training mode)", (4000, 1))
    eval_out = expect_tensor(got["eval"], "mlp (eval mode)", (4000, 1))
    # BEGIN HIDDEN
    assert torch.allclose(eval_out, torch.ones_like(eval_out)), (
        "in eval mode nothing may be dropped: use nn.Dropout (it follows model.eval())"
    )
    dropped = float((train_out == 0).float().mean())
    assert abs(dropped - 0.25) < 0.04, (
        f"{dropped:.1%} of hidden units dropped in training mode with dropout=0.25: pass `dropout` to nn.Dropout"
    )
    kept = train_out[train_out != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75), atol=1e-5), (
        "kept units must be scaled by 1 / (1 - dropout), as nn.Dropout does"
    )
    # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 2a: ranking score, 2b: rating prediction


@graded("2a-0-basic", points=2)
def test_score(student):
    """score is (B,) and equals <p_u, q_i> + b_i on hand-set weights."""
    weights = {
        "user_emb.0.weight": torch.arange(N_USERS * DIM, dtype=torch.float).view(N_USERS, DIM) / 10,
        "item_emb.0.weight": torch.ones(N_ITEMS, DIM),
        "item_bias.weight": torch.arange(N_ITEMS, dtype=torch.float)[:, None],
    }
    net = student.probe(probes.with_weights, "shared", weights)
    users, items = torch.tensor([0, 1, 6]), torch.tensor([0, 3, 10])
    out = expect_tensor(net.score(users, items), "score", (3,))
    expected = torch.tensor([0.6, 2.2 + 3, 10.2 + 10])
    assert torch.allclose(out, expected, atol=1e-5), f"score {out.tolist()}, expected {expected.tolist()}"


@graded("2a-1-hidden", points=3)
def test_score_hidden(student):
    """score is <p_u, q_i> + b_i with p, q what your embed gives the ranking task, on weights this test draws and
    sets (shared and separate); a mistake in which table embed reads is 1a-1's, not this test's."""
    mt = student.model
    users, items, _, _ = batch(20, seed=drawn_seed("2a-1 batch") % 2**31)
    for arch in ("shared", "separate"):
        weights = drawn_weights(student, arch, "2a-1")
        net = student.probe(probes.with_weights, arch, weights)
        out = expect_tensor(net.score(users, items), "score", (20,))
        p, q = (expect_tensor(t, "embed", (20, DIM)) for t in net.embed(users, items, mt.RANK))
        # BEGIN HIDDEN
        tables_read(p, q, weights, users, items, arch)
        want = (p * q).sum(dim=1) + weights["item_bias.weight"][items, 0]
        assert torch.allclose(out, want, atol=1e-5), (
            f"{arch}: score is not <p_u, q_i> + b_i of the ranking embeddings "
            f"(max |diff| {float((out - want).abs().max()):.2e})"
        )
        # END HIDDEN


@graded("2b-0-basic", points=2)
def test_predict_rating(student):
    """predict_rating is (B,), not rating_mean alone on a fresh model; with a zeroed MLP it predicts rating_mean."""
    net = student.probe(probes.make, "separate", rating_mean=3.25)
    users, items, _, _ = batch()
    fresh = expect_tensor(net.eval().predict_rating(users, items), "predict_rating", (9,))
    assert not torch.allclose(fresh, torch.full((9,), 3.25)), (
        "a fresh model (random MLP) predicts rating_mean for every pair: predict_rating must add the MLP's output")
    net = student.probe(probes.zero_mlp, net)
    out = expect_tensor(net.predict_rating(users, items), "predict_rating")
    assert torch.allclose(out, torch.full((9,), 3.25)), "with a zero MLP, predictions must equal rating_mean"


def mlp_eval(state, h):
    """The handout's MLP, Linear(3*dim, hidden) -> ReLU -> Linear(hidden, 1) (dropout is off in eval mode),
    computed here from the weights in ``state``: h (B, 3*dim) -> (B,)."""
    hidden = torch.relu(h @ state["mlp.0.weight"].T + state["mlp.0.bias"])
    return (hidden @ state["mlp.3.weight"].T + state["mlp.3.bias"])[:, 0]


@graded("2b-1-hidden", points=3)
def test_predict_rating_hidden(student):
    """predict_rating is mu + MLP([p, q, p * q]) with p, q what your embed gives the rating task (eval mode, on
    weights this test draws and sets, shared and separate)."""
    mt = student.model
    users, items, _, _ = batch(20, seed=drawn_seed("2b-1 batch") % 2**31)
    for arch in ("shared", "separate"):
        weights = drawn_weights(student, arch, "2b-1")
        net = student.probe(probes.with_weights, arch, weights, rating_mean=3.5).eval()
        out = expect_tensor(net.predict_rating(users, items), "predict_rating", (20,))
        p, q = (expect_tensor(t, "embed", (20, DIM)) for t in net.embed(users, items, mt.RATE))
        # BEGIN HIDDEN
        missing = {"mlp.0.weight", "mlp.0.bias", "mlp.3.weight", "mlp.3.bias"} - set(weights)
        assert not missing, (
            f"{arch}: the MLP lacks {sorted(missing)}: build it as nn.Sequential(Linear, ReLU, Dropout, Linear)"
        )
        tables_read(p, q, weights, users, items, arch)
        want = 3.5 + mlp_eval(weights, torch.cat([p, q, p * q], dim=1))
        assert torch.allclose(out, want, atol=1e-5), (
            f"{arch}: predict_rating is not rating_mean + mlp([p, q, p * q]) of the rating embeddings "
            f"(max |diff| {float((out - want).abs().max()):.2e}): check the order of the concatenation and the offset")
        # END HIDDEN


# ---------------------------------------------------------------------------------------------
# 3a: BPR loss, 3b: task losses and the fixed weighting


@graded("3a-0-basic", points=1)
def test_bpr_loss_basic(student):
    """bpr_loss is a scalar, log 2 when positives and negatives score the same."""
    out = expect_tensor(student.model.bpr_loss(torch.ones(5), torch.ones(5)), "bpr_loss")
    assert out.dim() == 0, "bpr_loss must return a scalar"
    assert abs(float(out) - 0.693147) < 1e-5, f"expected log 2, got {float(out)}"


@graded("3a-1-hidden", points=1)
def test_bpr_loss_hidden(student, reference):
    """bpr_loss matches the reference on random scores."""
    mt = student.model
    g = torch.Generator().manual_seed(drawn_seed("3a-1 scores"))
    pos, neg = torch.randn(50, generator=g), torch.randn(50, generator=g)
    out = expect_tensor(mt.bpr_loss(pos, neg), "bpr_loss")
    # BEGIN HIDDEN
    assert torch.allclose(out, reference.model.bpr_loss(pos, neg), atol=1e-5), "bpr_loss differs from the reference"
    # END HIDDEN


@graded("3a-2-basic", points=1)
def test_bpr_loss_sign_and_stability(student):
    """bpr_loss = -mean log sigmoid(s+ - s-): small when positives outscore negatives, and finite (the gap itself)
    for a gap of 200, where sigmoid underflows to 0 in float32."""
    mt = student.model
    ahead = float(expect_tensor(mt.bpr_loss(torch.tensor([3.0]), torch.tensor([0.0])), "bpr_loss"))
    assert abs(ahead - 0.048587) < 1e-4, (
        f"bpr_loss(s+ = 3, s- = 0) = {ahead:.4f}, expected -log sigmoid(3) = 0.0486"
        + (": the sign is flipped, it must be sigmoid(s+ - s-), not sigmoid(s- - s+)" if abs(ahead - 3.0486) < 1e-3
           else ""))
    extreme = float(expect_tensor(mt.bpr_loss(torch.tensor([-100.0]), torch.tensor([100.0])), "bpr_loss"))
    assert abs(extreme - 200.0) < 1e-3, (
        f"bpr_loss(s+ = -100, s- = 100) = {extreme}, expected 200: log(sigmoid(x)) overflows for large gaps, "
        "use F.logsigmoid(x)")


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
    assert abs(float(expect_tensor(mt.weighted_loss(fixed, 0.25), "weighted_loss")) - 5.0) < 1e-5, (
        "weighted_loss([2, 6], 0.25) must be 0.25*2 + 0.75*6 = 5: lam weights the ranking loss (index RANK = 0), "
        "1 - lam the rating loss"
    )
    assert abs(float(expect_tensor(mt.weighted_loss(fixed, 1.0), "weighted_loss")) - 2.0) < 1e-5, (
        "lam = 1 is the ranking loss alone"
    )


@graded("3b-1-hidden", points=3)
def test_task_losses_hidden(student):
    """task_losses is [bpr_loss(score(u, i+), score(u, i-)), mean squared error of predict_rating] of your own
    score, predict_rating and bpr_loss (eval mode, weights this test draws and sets, both archs; score and
    predict_rating must depend on them), and its gradients reach item_bias
    and the MLP; weighted_loss of it is lam * L_rank + (1 - lam) * L_rate."""
    mt = student.model
    for arch in ("shared", "separate"):
        got = student.probe(probes.losses_and_grads, arch, drawn_weights(student, arch, "3b-1"), lam=0.3)
        losses = expect_tensor(got["losses"], "task_losses", (2,))
        total = expect_tensor(got["total"], "weighted_loss")
        pos, neg = expect_tensor(got["pos_scores"], "score"), expect_tensor(got["neg_scores"], "score")
        for name, values in (("score", pos), ("predict_rating", expect_tensor(got["predicted"], "predict_rating"))):
            # the weights are random: a model that ignores them (constant outputs) agrees with any composition
            assert values.numel() > 1 and (values - values[0]).abs().max() > 1e-6, (
                f"{arch}: {name} gives the same value for every pair on random weights: it must use the model's "
                "embeddings (2a, 2b)")
        rank_loss = expect_tensor(mt.bpr_loss(pos, neg), "bpr_loss")  # your bpr_loss: its own mistakes are 3a's
        predicted, ratings = expect_tensor(got["predicted"], "predict_rating"), probes.batch(30)[3]
        # BEGIN HIDDEN
        rate_loss = ((predicted - ratings) ** 2).mean()
        assert torch.allclose(losses[0], rank_loss, atol=1e-5), (
            f"{arch}: L_rank = {float(losses[0]):.5f}, "
            f"but bpr_loss(score(u, i+), score(u, i-)) = {float(rank_loss):.5f}"
        )
        assert torch.allclose(losses[1], rate_loss, atol=1e-5), (
            f"{arch}: L_rate = {float(losses[1]):.5f}, "
            f"but the mean squared error of predict_rating is {float(rate_loss):.5f}"
        )
        assert torch.allclose(total, 0.3 * losses[0] + 0.7 * losses[1], atol=1e-5), (
            "weighted_loss(losses, 0.3) is not 0.3 * L_rank + 0.7 * L_rate"
        )
        assert got["grads"].get("item_bias.weight") is not None and got["grads"].get("mlp.0.weight") is not None, (
            "no gradient reaches item_bias or the MLP: keep the losses in the graph "
            "(no .item(), .detach() or torch.tensor(...) of them)"
        )
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
    assert out.dim() == 0 and abs(float(out) - 2.0) < 1e-5, f"expected 2.0, got {out}"


@graded("4a-2-basic", points=1)
def test_uncertainty_weighting_down_weights(student):
    """A larger log-variance s_i weights its loss less: exp(-s_i) L_i + s_i (s = log 2 halves L_i's weight)."""
    got = student.probe(probes.uncertainty, torch.tensor([math.log(2.0), 0.0]), torch.tensor([1.0, 1.0]))
    out = float(expect_tensor(got["out"], "UncertaintyWeighting"))
    want = 0.5 + math.log(2.0) + 1.0
    assert abs(out - want) < 1e-5, (
        f"with s = [log 2, 0] and losses [1, 1] the loss is {out:.4f}, expected exp(-log 2) + log 2 + 1 = {want:.4f}"
        + (": the weight is exp(-s_i), not exp(+s_i) (a larger variance means a smaller weight)"
           if abs(out - (2.0 + math.log(2.0) + 1.0)) < 1e-4 else ""))


@graded("4a-1-hidden", points=1)
def test_uncertainty_weighting_hidden(student, reference):
    """exp(-s_i) L_i + s_i summed, with gradients to s matching the reference."""
    log_vars, losses = torch.tensor([0.5, -1.0]), torch.tensor([0.4, 2.0])
    got = student.probe(probes.uncertainty, log_vars, losses)
    out, grad = expect_tensor(got["out"], "UncertaintyWeighting"), got["grad"]
    # BEGIN HIDDEN
    expected = reference.probe(probes.uncertainty, log_vars, losses)
    assert torch.allclose(out, expected["out"], atol=1e-5), f"got {out.item()}, expected {expected['out'].item()}"
    assert grad is not None and torch.allclose(grad, expected["grad"], atol=1e-5), (
        "gradient with respect to log_vars is wrong"
    )
    # END HIDDEN


@graded("4b-0-basic", points=1)
def test_pcgrad_basic(student):
    """Gradients that do not conflict (dot product >= 0, a zero gradient included) are simply added."""
    g1, g2 = torch.tensor([1.0, 2.0, 0.0]), torch.tensor([0.5, 0.0, 3.0])
    out = expect_tensor(student.model.pcgrad(g1, g2), "pcgrad", (3,))
    assert torch.allclose(out, g1 + g2), (
        "non-conflicting gradients (dot product >= 0) must be summed unchanged: project only when g_rank . g_rate < 0"
    )
    with_zero = expect_tensor(student.model.pcgrad(g1, torch.zeros(3)), "pcgrad", (3,))
    assert torch.allclose(with_zero, g1), (
        f"pcgrad(g, 0) = {with_zero.tolist()}, expected g: a zero gradient conflicts with nothing "
        "(dot = 0 is no conflict; do not divide by |0|^2)"
    )


@graded("4b-2-basic", points=1)
def test_pcgrad_projects_both_ways(student):
    """A conflicting pair (dot product < 0): each gradient is projected onto the normal plane of the other
    *original* one, g_i - (g_i . g_j) / |g_j|^2 g_j, and the two are added."""
    g_rank, g_rate = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 2.0])
    out = expect_tensor(student.model.pcgrad(g_rank, g_rate), "pcgrad", (2,))
    # g_rank' = (2, 0) + 2/5 (-1, 2) = (1.6, 0.8); g_rate' = (-1, 2) + 2/4 (2, 0) = (0, 2)
    causes = {(0.6, 2.8): "only g_rank was projected (or g_rate was projected on the projected g_rank): project "
                          "g_rate too, on the original g_rank",
              (2.0, 2.0): "only g_rate was projected: project g_rank too, on the original g_rate",
              (0.4, 1.2): "the projection's sign is flipped: g_i - (g_i . g_j) / |g_j|^2 g_j, with a minus",
              (2.1056, 3.7889): "divide by the other's squared norm |g_j|^2, not by |g_j|"}
    cause = next((why for v, why in causes.items() if torch.allclose(out, torch.tensor(v), atol=1e-4)), "")
    assert torch.allclose(out, torch.tensor([1.6, 2.8]), atol=1e-5), (
        f"pcgrad([2, 0], [-1, 2]) = {out.tolist()}, expected [1.6, 2.8]" + (f": {cause}" if cause else ""))


@graded("4b-1-hidden", points=2)
def test_pcgrad_hidden(student, reference):
    """Conflicting gradients are projected (both ways, with the original gradients) and added:
    a hand-worked pair and a random one."""
    mt = student.model
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    out = expect_tensor(mt.pcgrad(g1, g2), "pcgrad")
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(100, generator=g), torch.randn(100, generator=g)
    b = b - 2 * (a @ b).abs() / (a @ a) * a  # make them conflict
    rand_out = expect_tensor(mt.pcgrad(a, b), "pcgrad")
    # BEGIN HIDDEN
    # g1' = g1 - (g1.g2)/|g2|^2 g2 = (0.5, 0.5); g2' = g2 - (g2.g1)/|g1|^2 g1 = (0, 1)
    assert torch.allclose(out, torch.tensor([0.5, 1.5]), atol=1e-5), (
        f"pcgrad([1, 0], [-1, 1]) = {out.tolist()}, expected [0.5, 1.5]: when g_rank . g_rate < 0, "
        "project each onto the normal plane of the other *original* gradient, g_i - (g_i . g_j) / |g_j|^2 g_j "
        "(a minus sign; divide by the other's squared norm), both ways, then add"
    )
    assert torch.allclose(rand_out, reference.model.pcgrad(a, b), atol=1e-5), (
        "pcgrad differs from the reference on conflicting gradients"
    )
    # END HIDDEN
