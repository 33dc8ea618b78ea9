"""hw2_maml_protonet/train.py's run options: the Adam halving schedule across a resume, and ProtoNet
trained on wide tasks and tested on narrow ones (tiny runs on synthetic glyphs, CPU)."""

import json
from pathlib import Path

import pytest
import torch
from conftest import imported_from

HW2 = Path(__file__).resolve().parents[1] / "hw2_maml_protonet"


@pytest.fixture(scope="module")
def train():
    with imported_from(HW2, "train") as module:
        yield module


def args(train, tmp_path, **settings):
    return train.options(data="glyphs", hidden=8, meta_batch_size=2, n_query=2, val_tasks=8, device="cpu",
                         no_progress=True, checkpoint_dir=str(tmp_path / "runs"), results_dir=str(tmp_path / "results"),
                         **settings)


def test_lr_halving_continues_across_a_resume(train, tmp_path):
    a = args(train, tmp_path, lr_halve_every=2, steps=5, eval_every=5)
    assert train.run_name(a) == "protonet_5w1s_lrh2_glyphs"
    train.fit(a, progress=False)
    state = torch.load(tmp_path / "runs" / train.run_name(a) / "checkpoint.pt", weights_only=False)
    assert state["step"] == 5
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 4)  # iteration index 4: 4 // 2 halvings
    a.steps, a.resume = 8, True
    train.fit(a, progress=False)  # resumes at 5
    state = torch.load(tmp_path / "runs" / train.run_name(a) / "checkpoint.pt", weights_only=False)
    assert state["step"] == 8
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 8)


def test_protonet_trained_wide_tested_narrow(train, tmp_path):
    a = args(train, tmp_path, n_way=10, rotations=True, test_n_way=3, test_n_query=4, steps=3, eval_every=3)
    assert train.run_name(a) == "protonet_10w1s_rot_glyphs"
    history = train.fit(a, progress=False)
    assert len(history) == 1 and 0 <= history[0]["val_acc"] <= 1
    a.test, a.test_tasks = True, 10
    result = train.test(a)
    metrics = json.loads((tmp_path / "results" / "metrics.json").read_text())
    entry = metrics["protonet_10w1s_rot_glyphs_test3way"]  # a results-schema entry; its numbers under "final"
    assert entry["final"] == result and entry["history"][-1]["step"] == result["iterations"]
    assert (entry["config"]["n_way"], entry["config"]["test_n_way"]) == (10, 3)
    assert (result["n_way"], result["n_query"], result["train_n_way"], result["n_tasks"]) == (3, 4, 10, 10)
    correct = result["test_acc"] * 10 * 3 * 4  # 10 tasks of 3 x 4 queries: a whole number of correct answers
    assert abs(correct - round(correct)) < 1e-3


def test_maml_cannot_change_way_at_test(train, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--algorithm", "maml", "--n-way", "5", "--test-n-way", "20"])
    assert "MAML's head has --n-way 5 outputs" in capsys.readouterr().err
    with pytest.raises(ValueError, match="MAML's head has --n-way 5 outputs"):
        train.options(algorithm="maml", n_way=5, test_n_way=20)


def test_compiled_maml_step_has_the_eager_meta_gradient(train):
    """train.py --compile: torch.compile through vmap, the inner torch.func.grad and the second-order
    outer backward gives the eager meta-gradient (a small MLP, so that compiling takes seconds)."""
    import maml as maml_lib  # hw2's, on the path while the train fixture is active

    from cs330.models import MLP

    torch.manual_seed(0)
    model = maml_lib.MAML(MLP(4, 3, hidden=(16,)), inner_steps=2, inner_lr=0.3, vectorize=True)
    g = torch.Generator().manual_seed(1)
    episode = (torch.randn(3, 6, 4, generator=g), torch.randint(0, 3, (3, 6), generator=g),
               torch.randn(3, 9, 4, generator=g), torch.randint(0, 3, (3, 9), generator=g))

    def meta_gradient(meta_loss):
        model.zero_grad(set_to_none=True)
        meta_loss(*episode)[0].mean().backward()
        return [p.grad.clone() for p in model.parameters()]

    eager = meta_gradient(model.meta_loss)
    fast = meta_gradient(train.compile_step(model, "cpu").meta_loss)
    for e, f in zip(eager, fast):
        torch.testing.assert_close(f, e, rtol=1e-4, atol=1e-6)
    first_order = maml_lib.MAML(model.model, inner_steps=2, inner_lr=0.3, first_order=True)
    assert not all(torch.allclose(e, f, rtol=1e-3) for e, f in zip(eager, meta_gradient(first_order.meta_loss)))


def test_ctrl_c_then_resume_gives_the_uninterrupted_weights(train, tmp_path, monkeypatch):
    """ProtoNet stopped by Ctrl-C during step 4 (between evaluations at 3 and 6), then resumed with --resume,
    ends with the weights of the uninterrupted run; resuming with another --hidden is refused."""
    import signal

    from cs330.training import ConfigMismatchError

    torch.set_num_threads(1)
    straight = args(train, tmp_path / "straight", steps=6, eval_every=3, seed=2)
    train.fit(straight, progress=False)
    checkpoint = tmp_path / "straight" / "runs" / train.run_name(straight) / "checkpoint.pt"
    expected = torch.load(checkpoint, weights_only=False)
    real_step, calls = torch.optim.Adam.step, []

    def step_then_ctrl_c(self, *a, **kw):
        calls.append(1)
        if len(calls) == 4:
            signal.raise_signal(signal.SIGINT)
        return real_step(self, *a, **kw)

    a = args(train, tmp_path, steps=6, eval_every=3, seed=2)
    monkeypatch.setattr(torch.optim.Adam, "step", step_then_ctrl_c)
    with pytest.raises(SystemExit, match="interrupted at step 4 of 6"):
        train.fit(a, progress=False)
    monkeypatch.undo()
    a.resume = True
    history = train.fit(a, progress=False)
    got = torch.load(tmp_path / "runs" / train.run_name(a) / "checkpoint.pt", weights_only=False)
    assert got["step"] == expected["step"] == 6
    for key, value in expected["model"].items():
        assert torch.equal(got["model"][key], value), f"{key} differs from the uninterrupted run"
    assert [r["val_acc"] for r in history] == [r["val_acc"] for r in expected["history"]]
    a.hidden = 16
    with pytest.raises(ConfigMismatchError, match="hidden: 8 -> 16"):
        train.fit(a, progress=False)
