"""hw4_bayesian/tests/probes.py grades questions 2-3 on question 1's functions as their docstrings state
them, and 3d-3/3d-4 on the stated ``support_neg_elbo``: a wrong helper costs its own tests only.

In process, on a copy of hw4 whose ``kl_diag_gaussians`` has a wrong sign and whose ``support_neg_elbo``
ignores ``kl_weight``: the probes of the later questions give the reference's values, the helpers'
own probes still see the mistakes, and the student's functions are back in place afterwards."""

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch
from conftest import imported_from

from cs330.data import sample_regression_tasks
from cs330.grading.code import Code

HW4 = Path(__file__).resolve().parents[1] / "hw4_bayesian"
MISTAKES = {
    "gaussian.py": ("- 1 - (logvar_q - logvar_p)).sum(-1)", "- 1 + (logvar_q - logvar_p)).sum(-1)"),
    "bayes_head_maml.py": ("return nll + self.kl_weight * kl / feats.shape[0]", "return nll + kl"),
}


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"hw4_{name}_under_test", HW4 / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def probes():
    return _load("probes")


@pytest.fixture(scope="module")
def stated():
    return _load("stated")


@pytest.fixture
def broken(tmp_path):
    """hw4's modules with the two mistakes of MISTAKES."""
    dest = tmp_path / "hw4"
    shutil.copytree(HW4, dest, ignore=shutil.ignore_patterns("results", "tests", "__pycache__", "*.md", "*.sh"))
    for name, (right, wrong) in MISTAKES.items():
        text = (dest / name).read_text()
        assert text.count(right) == 1, f"{name} changed: update MISTAKES"
        (dest / name).write_text(text.replace(right, wrong))
    return dest


def regression_tasks(seed=0, dtype=torch.float32):
    t = sample_regression_tasks("sinusoid", 3, 4, 6, generator=torch.Generator().manual_seed(seed))
    return tuple(v.to(dtype) for v in (t.x_support, t.y_support, t.x_query, t.y_query))


def run(folder, fn, *args, **kwargs):
    """The probe ``fn`` on the modules of ``folder``, and the functions left in them afterwards."""
    with imported_from(folder, "gaussian") as gaussian:
        out = Code(folder).probe(fn, *args, **kwargs)  # in one process: the Trusted stand-ins are the functions
        left = {name: getattr(sys.modules[name], attr)
                for name, attr in [("gaussian", "kl_diag_gaussians"), ("neural_process", "kl_diag_gaussians"),
                                   ("bayes_head_maml", "kl_diag_gaussians")] if name in sys.modules}
        return out, left, gaussian.kl_diag_gaussians


def test_later_questions_run_on_the_stated_helpers(probes, stated, broken):
    tasks = regression_tasks()
    want, _, _ = run(HW4, probes.np_elbo, tasks, 0, 4, stated=stated.STATED)
    got, left, own_kl = run(broken, probes.np_elbo, tasks, 0, 4, stated=stated.STATED)
    assert torch.allclose(got["kl"], want["kl"], rtol=1e-5) and torch.allclose(got["elbo"], want["elbo"], rtol=1e-5)
    assert left and all(fn is own_kl for fn in left.values()), "the student's own helpers must be back after the probe"
    # the mistake is real: the broken helper itself gives other values
    mu, logvar = torch.zeros(4), torch.full((4,), 0.5)
    assert not torch.allclose(own_kl(mu, logvar, mu, torch.zeros(4)),
                              stated.kl_diag_gaussians(mu, logvar, mu, torch.zeros(4)))


def test_meta_loss_runs_on_the_stated_support_neg_elbo(probes, stated, broken):
    tasks = regression_tasks(seed=3, dtype=torch.float64)
    want, _, _ = run(HW4, probes.head_meta_loss, tasks, 2, 1, stated=stated.STATED, neg_elbo=stated.NEG_ELBO)
    got, _, _ = run(broken, probes.head_meta_loss, tasks, 2, 1, stated=stated.STATED, neg_elbo=stated.NEG_ELBO)
    assert torch.allclose(got["loss"], want["loss"], rtol=1e-9)
    for name, g in want["grads"].items():
        assert torch.allclose(got["grads"][name], g, rtol=1e-7, atol=1e-12), name
    # 3d-0..3d-2's probe still grades the student's own support_neg_elbo (on the stated helpers)
    inputs = (
        torch.zeros(3, dtype=torch.float64),
        torch.full((3,), -1.0, dtype=torch.float64),
        torch.ones(3, dtype=torch.float64),
        torch.zeros(3, dtype=torch.float64),
        torch.tensor(0.0, dtype=torch.float64),
        torch.ones(2, 3, dtype=torch.float64),
        torch.zeros(2, 1, dtype=torch.float64),
        torch.zeros(4, 3, dtype=torch.float64),
    )
    want, _, _ = run(HW4, probes.head_neg_elbo, inputs, kl_weight=3.0, stated=stated.STATED)
    own, _, _ = run(broken, probes.head_neg_elbo, inputs, kl_weight=3.0, stated=stated.STATED)
    assert not torch.allclose(own["value"], want["value"])


def test_stated_helpers_are_the_docstrings_formulas(probes, stated):
    """The stand-ins equal the reference's gaussian.py (so a correct solution is graded the same)."""
    with imported_from(HW4, "gaussian") as gaussian:
        g = torch.Generator().manual_seed(0)
        mu, lv, mu2, lv2, y = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(5))
        assert torch.allclose(stated.kl_diag_gaussians(mu, lv, mu2, lv2), gaussian.kl_diag_gaussians(mu, lv, mu2, lv2))
        assert torch.allclose(stated.gaussian_nll(y, mu, lv), gaussian.gaussian_nll(y, mu, lv))
        assert torch.allclose(stated.mixture_nll(y[0], mu, lv), gaussian.mixture_nll(y[0], mu, lv))
    with imported_from(HW4, "bayes_head_maml") as bayes_head_maml:
        model = bayes_head_maml.GaussianHeadMAML(hidden=(4,), kl_weight=0.7).double()
        head = tuple(torch.randn(3, generator=g, dtype=torch.float64) for _ in range(4))  # mu, rho, prior_mu, prior_rho
        feats, y, eps = (torch.randn(*shape, generator=g, dtype=torch.float64) for shape in [(6, 3), (6, 1), (4, 3)])
        rest = (torch.tensor(-0.5, dtype=torch.float64), feats, y, eps)
        want = model.support_neg_elbo(*head, *rest)
        assert torch.allclose(stated.support_neg_elbo(*head, *rest, kl_weight=0.7), want, rtol=1e-12)
    with imported_from(HW4, "gaussian") as gaussian:
        sample = probes._drawing(stated.reparameterize)
        assert torch.equal(sample(mu, lv, 4, torch.Generator().manual_seed(1)),
                           gaussian.sample_gaussian(mu, lv, 4, generator=torch.Generator().manual_seed(1)))
