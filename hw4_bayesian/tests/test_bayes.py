"""Question 3 (Part B): the latent neural process's ELBO, the MAML ensemble's loss, a short training run.

``student`` is your code: in the autograder it runs in a separate sandboxed process. Seeded models, backward
passes and the training run happen there, in ``probes.py``; what comes back is data.
"""


import torch

import probes
import slopes
import stated
from stated import STATED
from cs330.data import sample_regression_tasks
from cs330.grading import drawn_seed, expect_tensor, graded


def tasks(B=3, k=4, q=6, seed=0):
    """Sinusoid tasks, set ``seed`` of this grading's draws (drawn_seed: unknown to your code)."""
    g = torch.Generator().manual_seed(drawn_seed(f"3 tasks {seed}"))
    t = sample_regression_tasks("sinusoid", B, k, q, generator=g)
    return t.x_support, t.y_support, t.x_query, t.y_query


def elbo_terms(student, B, seed):
    got = student.probe(probes.np_elbo, tasks(B=B, seed=seed), seed, seed + 4, stated=STATED)
    assert "kl" in got, "elbo returns (elbo, log_lik, kl)"
    for name in ("elbo", "log_lik", "kl"):
        expect_tensor(got[name], f"elbo ({name})", (B,))
    return got


def diag_kl(q, p):
    """KL(N(q) || N(p)) of (mu, logvar) pairs, summed over the last dim."""
    return stated.kl_diag_gaussians(*q, *p)


@graded("3a-0-basic", points=2)
def test_elbo_kl_term(student):
    """elbo returns three (B,) tensors, elbo = log_lik - kl, and kl = KL(q(z | support u query) || q(z | support))
    of the model's encoder (posterior first, conditional prior second; summed over z's dims)."""
    got = elbo_terms(student, 3, 0)
    assert torch.allclose(got["elbo"], got["log_lik"] - got["kl"], atol=1e-4), "elbo must be log_lik - kl"
    kl, post, prior = got["kl"], got["post"], got["prior"]
    assert not torch.allclose(kl, diag_kl(prior, post), rtol=1e-3), \
        "the KL is reversed: KL(q(z | support u query) || q(z | support)), the posterior first"
    assert not torch.allclose(kl, diag_kl(post, (torch.zeros_like(post[0]), torch.zeros_like(post[1]))), rtol=1e-3), \
        "the KL is to N(0, I): use the conditional prior q(z | support), encode(support_x, support_y)"
    assert torch.allclose(kl, diag_kl(post, prior), rtol=1e-4, atol=1e-6), \
        "the KL is not KL(q(z | support u query) || q(z | support)): encode support and query together (cat on dim 1)"


@graded("3a-1-hidden", points=1)
def test_elbo_log_likelihood(student, reference):
    """log_lik sums log N(y | decoder(x, z)) over a task's query points, at one z per task drawn from the posterior
    q(z | support u query) with ``sample_gaussian(mu, logvar, generator=generator)``."""
    got = elbo_terms(student, 4, 1)
    log_lik = got["log_lik"]
    # the same model, another generator seed
    other = student.probe(probes.np_elbo, tasks(B=4, seed=1), 1, 6, stated=STATED)["log_lik"]
    assert not torch.equal(log_lik, other), (
        "another generator seed gives the same log_lik: draw z with sample_gaussian(..., generator=generator)"
    )
    # BEGIN HIDDEN
    want = reference.probe(probes.np_elbo, tasks(B=4, seed=1), 1, 5, stated=STATED)
    if torch.allclose(log_lik * 6, want["log_lik"], rtol=1e-4):
        raise AssertionError("log_lik is a mean over the query points: sum it (the ELBO of the whole query set)")
    assert torch.allclose(log_lik, want["log_lik"], rtol=1e-4, atol=1e-4), (
        "log-likelihood differs from the reference: z from the posterior (support u query), one sample per task "
        "with the given generator, decoded at the query x, summed over query points")
    # END HIDDEN


@graded("3a-2-basic", points=1)
def test_elbo_is_reparameterised(student):
    """The log-likelihood term is differentiable in the encoder through z (z = mu + sigma * eps, not detached)."""
    got = elbo_terms(student, 3, 2)
    assert got["lik_grads"] is not None and all(g.abs().sum() > 0 for g in got["lik_grads"]), (
        "no gradient reaches the encoder through log_lik: sample z with sample_gaussian (reparameterised), "
        "not under torch.no_grad() or from detached (mu, logvar)")
    # the same in float64, against the differences of log_lik.sum() itself along a random direction
    t, h = tuple(x.double() for x in tasks(B=3, seed=2)), 1e-6
    grads = student.probe(probes.np_elbo, t, 2, 6, stated=STATED).get("lik_grads")
    assert grads is not None, "in float64 log_lik carries no gradient"
    grads = dict(zip(("weight", "bias"), grads))
    v = slopes.direction(grads, "3a-2 direction")
    moved = [student.probe(probes.np_elbo, t, 2, 6, moved=([v["weight"], v["bias"]], s * h), stated=STATED)
             for s in (1, -1)]
    plus, minus = (expect_tensor(m.get("log_lik"), "elbo (log_lik)", (3,)).sum() for m in moved)
    slopes.assert_slope(grads, v, plus, minus, h, "log_lik.sum()")


def ensemble_expected(outputs, qy):
    """Mean over members of the mean query Gaussian NLL, from each member's (mu, logvar)."""
    return sum(stated.gaussian_nll(qy, mu, lv).mean() for mu, lv in outputs) / len(outputs)


def rescaling(grads, want):
    """The positive factor that best maps the gradients ``grads`` onto ``want`` (lists of tensors), 1 if none."""
    g, r = torch.cat([x.flatten() for x in grads]).double(), torch.cat([x.flatten() for x in want]).double()
    c = float(g @ r / (g @ g)) if float(g @ g) > 0 else 1.0
    return c if c > 0 else 1.0


@graded("3b-0-basic", points=2)
def test_ensemble_loss_is_mean_member_nll(student):
    """EnsembleMAML.loss (0-dim) is the mean over members of each member's mean query Gaussian NLL, with each member
    adapted for training (``member_outputs(..., train=True)``)."""
    t = tasks(seed=2)
    got = student.probe(probes.ensemble_loss, t, 0, stated=STATED)
    loss = expect_tensor(got["loss"], "EnsembleMAML.loss", ())
    expected = ensemble_expected(got["outputs"], t[3])
    assert torch.isfinite(loss) and torch.allclose(loss, expected, rtol=1e-4), (
        f"loss {float(loss):.5f}, expected {float(expected):.5f}: the mean over members of gaussian_nll(query_y, mu, "
        "logvar).mean() (a mean over tasks and points, not a sum; not the NLL of the mixture)")


@graded("3b-1-hidden", points=1)
def test_ensemble_meta_gradient(student, reference):
    """The loss's meta-gradient reaches every member, second order through its 2 inner steps (train=True); hidden:
    equal to the reference's up to a positive factor (the loss's scale is 3b-0's)."""
    t = tasks(seed=4)
    got = student.probe(probes.ensemble_loss, t, 4, stated=STATED)
    assert got["grads"] is not None, "the loss carries no gradient: adapt with train=True (second order)"
    heads = [g for n, g in zip(got["names"], got["grads"]) if n.endswith("head.weight")]
    assert all(g.abs().sum() > 0 for g in heads), "every member must get a meta-gradient"
    # BEGIN HIDDEN
    want = reference.probe(probes.ensemble_loss, t, 4, stated=STATED)
    scale = rescaling(got["grads"], want["grads"])  # the loss's scale (mean or sum) is 3b-0's
    for n, g, r in zip(want["names"], got["grads"], want["grads"]):
        assert torch.allclose(scale * g, r, rtol=1e-3, atol=1e-5), f"meta-gradient of {n} differs from the reference"
    # END HIDDEN


@graded("3c-0-basic", points=2, timeout=60)
def test_latent_np_short_training_run(student):
    """800 steps of the latent NP on sinusoids (train_regression.train, your ELBO): on 100 new 10-shot tasks the
    predictive mean's MSE is below 0.5 x that of predicting zero. The tasks and the training seed are drawn per
    grading (your process cannot rebuild the query targets); over 40 draws the reference's ratio was 0.10-0.26
    (`cs330 draws hw4 --id 3c-0-basic`: 30 of 30 passed). After 400 steps some draws were still at 0.79."""
    g = torch.Generator().manual_seed(drawn_seed("3c-0 tasks"))
    t = sample_regression_tasks("sinusoid", 100, 10, 20, generator=g)
    got = student.probe(probes.np_short_run, t.x_support, t.y_support, t.x_query, steps=800,
                        seed=drawn_seed("3c-0 init") % 2**31, stated=STATED)
    mean = expect_tensor(got["mean"], "the trained model's predictive mean", (100, 20, 1))
    assert torch.isfinite(mean).all(), "non-finite predictions after training"
    mse, zero = float(((mean - t.y_query) ** 2).mean()), float((t.y_query**2).mean())
    assert mse < 0.5 * zero, (
        f"10-shot MSE {mse:.2f} after 800 steps; predicting 0 gives {zero:.2f}: the ELBO does not train"
    )
