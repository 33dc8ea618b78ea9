"""Question 3 (Part B): the latent neural process's ELBO, the MAML ensemble's loss, a short training run."""

import math

import torch

from cs330.data import sample_regression_tasks
from cs330.grading import graded, reference_module, student_module


def tasks(B=3, k=4, q=6, seed=0):
    t = sample_regression_tasks("sinusoid", B, k, q, generator=torch.Generator().manual_seed(seed))
    return t.x_support, t.y_support, t.x_query, t.y_query


def np_model(seed=0):
    torch.manual_seed(seed)
    return student_module("neural_process").NeuralProcess(latent=True, width=32, z_dim=8)


@graded("3a-0-basic", points=2)
def test_elbo_shapes_sign_and_decomposition():
    """elbo returns three (B,) tensors with elbo = log_lik - kl, kl >= 0 (so elbo <= log_lik), and the KL is
    KL(q(z | support u query) || q(z | support)) of the model's encoder."""
    model = np_model()
    sx, sy, qx, qy = tasks()
    out = model.elbo(sx, sy, qx, qy, generator=torch.Generator().manual_seed(0))
    assert out is not None and len(out) == 3, "elbo returns (elbo, log_lik, kl)"
    elbo, log_lik, kl = out
    assert elbo.shape == log_lik.shape == kl.shape == (3,), f"expected (3,) each, got {elbo.shape}, {log_lik.shape}, {kl.shape}"
    assert (kl >= 0).all() and (elbo <= log_lik + 1e-6).all(), "KL >= 0, so the ELBO is at most the log-likelihood"
    assert torch.allclose(elbo, log_lik - kl, atol=1e-5), "elbo must be log_lik - kl"
    post = model.encode(torch.cat([sx, qx], 1), torch.cat([sy, qy], 1))
    prior = model.encode(sx, sy)
    d = torch.distributions
    expected = d.kl_divergence(d.Normal(post[0], (0.5 * post[1]).exp()), d.Normal(prior[0], (0.5 * prior[1]).exp())).sum(-1)
    assert torch.allclose(kl, expected, rtol=1e-4, atol=1e-6), "the KL is not KL(q(z | support u query) || q(z | support))"


@graded("3a-1-hidden", points=2)
def test_elbo_value_matches_reference():
    """ELBO terms on a seeded model and seeded tasks (z drawn with the given generator) equal the reference's."""
    model = np_model(seed=1)
    sx, sy, qx, qy = tasks(B=4, seed=1)
    elbo, log_lik, kl = model.elbo(sx, sy, qx, qy, generator=torch.Generator().manual_seed(5))
    grads = torch.autograd.grad(elbo.sum(), list(model.parameters()), allow_unused=True)
    # BEGIN HIDDEN
    ref = reference_module("neural_process").NeuralProcess(latent=True, width=32, z_dim=8)
    ref.load_state_dict(model.state_dict())
    r_elbo, r_ll, r_kl = ref.elbo(sx, sy, qx, qy, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(log_lik, r_ll, rtol=1e-5), f"log-likelihood {log_lik} != reference {r_ll}"
    assert torch.allclose(kl, r_kl, rtol=1e-5, atol=1e-7), f"KL {kl} != reference {r_kl}"
    assert torch.allclose(elbo, r_elbo, rtol=1e-5), "ELBO differs from the reference"
    assert all(g is not None and g.abs().sum() > 0 for g in grads), "the ELBO must reach every parameter (reparameterise)"
    # END HIDDEN


def ensemble(seed=0, members=3):
    torch.manual_seed(seed)
    return student_module("ensemble_maml").EnsembleMAML(members, hidden=(16, 16), inner_steps=2, inner_lr=0.05)


@graded("3b-0-basic", points=2)
def test_ensemble_loss_is_mean_member_nll():
    """EnsembleMAML.loss is the mean over members of their query Gaussian NLL, and reaches every member."""
    model = ensemble()
    sx, sy, qx, qy = tasks(seed=2)
    loss = model.loss(sx, sy, qx, qy)
    assert loss is not None and loss.shape == () and torch.isfinite(loss), f"expected a finite scalar, got {loss}"
    expected = 0.0
    for m in range(3):
        mu, logvar = model.member_outputs(m, sx, sy, qx, train=True)
        expected = expected + 0.5 * (math.log(2 * math.pi) + logvar + (qy - mu) ** 2 / logvar.exp()).mean() / 3
    assert torch.allclose(loss, expected, rtol=1e-5), f"loss {float(loss):.5f}, expected {float(expected):.5f}"
    grads = torch.autograd.grad(loss, [mem.head.weight for mem in model.members])
    assert all(g.abs().sum() > 0 for g in grads), "every member must get a meta-gradient"


@graded("3b-1-hidden", points=1)
def test_ensemble_loss_matches_reference():
    """A seeded ensemble's loss and meta-gradient (second order through 2 inner steps) equal the reference's."""
    model = ensemble(seed=4)
    sx, sy, qx, qy = tasks(seed=4)
    loss = model.loss(sx, sy, qx, qy)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    # BEGIN HIDDEN
    ref = reference_module("ensemble_maml").EnsembleMAML(3, hidden=(16, 16), inner_steps=2, inner_lr=0.05)
    ref.load_state_dict(model.state_dict())
    r_loss = ref.loss(sx, sy, qx, qy)
    r_grads = torch.autograd.grad(r_loss, list(ref.parameters()))
    assert torch.allclose(loss, r_loss, rtol=1e-5), "loss differs from the reference"
    for g, r in zip(grads, r_grads):
        assert torch.allclose(g, r, rtol=1e-4, atol=1e-6), "meta-gradients differ from the reference"
    # END HIDDEN


@graded("3c-0-basic", points=2, timeout=60)
def test_latent_np_short_training_run():
    """400 steps of the latent NP on sinusoids (train_regression.train, your ELBO) beat predicting zero at 10 shots
    and give a finite NLL (the reference: MSE 1.0-1.5 across seeds against ~4.2 for zero, in ~6 s)."""
    result, _ = student_module("train_regression").train(method="np", family="sinusoid", steps=400, lr=3e-3,
                                                         eval_tasks=100, progress=False, log=None)
    m = result["final"]["metrics"]["10"]
    assert math.isfinite(m["nll"]), "non-finite NLL"
    assert m["mse"] < 3.0, f"10-shot MSE {m['mse']:.2f}: no better than a poor baseline (predicting 0 gives ~4.2)"
