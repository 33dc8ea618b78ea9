"""cs330.training: atomic checkpoints and exact resume, the results schema, the loop's cadence, time
limit and Ctrl-C, the shared options, and the Omniglot-or-glyphs decision (fast, CPU, no data needed)."""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
import torch

from cs330.data import DataNotFoundError
from cs330.training import (ConfigMismatchError, ResultsError, RunState, add_common_args, config_from_args,
                            environment, load_checkpoint, load_results, make_results, merge, omniglot_or_glyphs,
                            plot_curves, save_checkpoint, save_results, setup, train_loop)
from cs330.training import data as training_data

CONFIG = {"n_way": 5, "k_shot": 1, "lr": 1e-3}


def small_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3)


# ---------------------------------------------------------------------------------------------
# checkpoints


def test_a_kill_during_save_leaves_the_previous_checkpoint(tmp_path):
    """A process killed (SIGKILL) in the middle of writing step 2's checkpoint: step 1's file still loads.

    The child replaces torch.save by one that writes half of the bytes and then waits to be killed,
    so the kill lands mid-write every time; the half-written temporary file is left behind as a
    crash would leave it, and is not loadable (the test would fail if the checkpoint were written in place)."""
    path = tmp_path / "ckpt.pt"
    child = textwrap.dedent(f"""
        import io, sys, time, torch
        from cs330.training import save_checkpoint
        model = torch.nn.Linear(64, 64)
        save_checkpoint({str(path)!r}, config={CONFIG!r}, step=1, model=model)
        real_save = torch.save
        def half_save(obj, f):
            buf = io.BytesIO(); real_save(obj, buf); data = buf.getvalue()
            with open(f, "wb") as out:
                out.write(data[: len(data) // 2]); out.flush()
            print("writing", flush=True); time.sleep(60)
        torch.save = half_save
        with torch.no_grad():
            model.weight.add_(1.0)
        save_checkpoint({str(path)!r}, config={CONFIG!r}, step=2, model=model)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing", "the child did not reach the second save"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    leftovers = [p for p in tmp_path.iterdir() if p.name != "ckpt.pt"]
    assert len(leftovers) == 1, f"expected the half-written temporary file, found {leftovers}"
    with pytest.raises(Exception):
        torch.load(leftovers[0], weights_only=False)
    model = torch.nn.Linear(64, 64)
    state = load_checkpoint(path, config=CONFIG, model=model)
    assert state["step"] == 1


def test_resume_with_another_config_is_refused_naming_the_keys(tmp_path):
    save_checkpoint(tmp_path / "c.pt", config=CONFIG, step=3, model=small_model())
    other = {**CONFIG, "k_shot": 5, "hidden": 32}
    with pytest.raises(ConfigMismatchError) as e:
        load_checkpoint(tmp_path / "c.pt", config=other, model=small_model())
    message = str(e.value)
    assert "k_shot: 1 -> 5" in message and "hidden: (absent) -> 32" in message
    assert "n_way" not in message and "lr" not in message  # only the differing keys


def test_checkpoint_restores_model_optimizer_and_every_rng(tmp_path):
    setup(seed=3)
    model = small_model()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    g = torch.Generator().manual_seed(11)
    torch.rand(3, generator=g)
    save_checkpoint(tmp_path / "c.pt", config=CONFIG, step=1, model=model, optimizer=opt, generators=[g],
                    history=[{"step": 1}])

    def draws():
        return (torch.rand(3).tolist(), random.random(), np.random.rand(2).tolist(),
                torch.rand(3, generator=g).tolist())

    expected = draws()
    weights = [p.detach().clone() for p in model.parameters()]
    opt_state = opt.state_dict()
    # a fresh process would start from other weights and other RNG states
    setup(seed=99)
    g.manual_seed(0)
    model2 = small_model(seed=5)
    opt2 = torch.optim.Adam(model2.parameters(), lr=0.1)
    state = load_checkpoint(tmp_path / "c.pt", config=CONFIG, model=model2, optimizer=opt2, generators=[g])
    assert state["step"] == 1 and state["history"] == [{"step": 1}]
    assert draws() == expected
    for a, b in zip(weights, model2.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt_state["state"][0]["exp_avg"])


def test_setup_seeds_and_sets_threads_and_determinism():
    before = torch.get_num_threads()
    try:
        device = setup(seed=7, device="cpu", threads=1, deterministic=True)
        a = (torch.rand(2).tolist(), random.random())
        assert device == torch.device("cpu") and torch.get_num_threads() == 1
        assert torch.are_deterministic_algorithms_enabled()
        setup(seed=7, device="cpu")
        assert (torch.rand(2).tolist(), random.random()) == a
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------
# results


def a_run(name="lstm-k1-n2"):
    return make_results(name, CONFIG, environment("cpu", "abc"), [{"step": 10, "test_acc": 0.5},
                                                                   {"step": 20, "test_acc": 0.75}], {"test_acc": 0.75})


def test_results_round_trip(tmp_path):
    run = a_run()
    assert set(run["env"]) == {"versions", "device", "data_fingerprint"} and run["env"]["data_fingerprint"] == "abc"
    save_results(tmp_path / "r.json", run)
    assert load_results(tmp_path / "r.json") == run
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


@pytest.mark.parametrize("content, problem", [
    ('{"name": "x", "config": {}', "not valid JSON"),
    ('[1, 2]', "expected a JSON object"),
    ('{"name": "x", "config": {}, "env": {}, "history": []}', "missing key 'final'"),
    ('{"name": "x", "config": {}, "env": {"versions": {}, "device": "cpu", "data_fingerprint": null},'
     ' "history": [{"step": 2}, {"step": 1}], "final": {}}', "steps do not increase"),
    ('{"name": "x", "config": {}, "env": {"versions": {}, "device": "cpu", "data_fingerprint": null},'
     ' "history": [{"iteration": 2}], "final": {}}', "history[0] has no integer 'step'"),
])
def test_a_bad_results_file_is_an_error_naming_it(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ResultsError) as e:
        load_results(path)
    assert str(path) in str(e.value) and problem in str(e.value)


def test_missing_results_file_and_saving_off_schema(tmp_path):
    with pytest.raises(ResultsError, match="no such results file"):
        load_results(tmp_path / "none.json")
    with pytest.raises(ResultsError, match="missing key 'env'"):
        save_results(tmp_path / "r.json", {"name": "x", "config": {}, "history": [], "final": {}})
    assert not (tmp_path / "r.json").exists()


def test_merge_adds_and_replaces_entries(tmp_path):
    path = tmp_path / "metrics.json"
    merge(path, {"b": {"acc": 0.5}})
    table = merge(path, {"a": {"acc": 0.9}, "b": {"acc": 0.6}})
    assert table == {"a": {"acc": 0.9}, "b": {"acc": 0.6}} == json.loads(path.read_text())
    path.write_text("[]")
    with pytest.raises(ResultsError, match="not a table"):
        merge(path, {"c": {}})
    assert path.read_text() == "[]"


def test_plot_curves_writes_a_png(tmp_path):
    path = plot_curves([a_run("one"), a_run("two")], tmp_path / "c.png", ["test_acc"], chance=0.5)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------------------
# the loop


def test_loop_evaluates_every_n_and_at_the_end_and_resumes(tmp_path):
    calls, saved = [], []
    state = RunState()
    train_loop(lambda step: calls.append(step) or 2.0, lambda step: {"val_acc": step / 100}, state, steps=10,
               eval_every=4, save=lambda s: saved.append(s.step), progress=False, log=None)
    assert calls == list(range(10))
    assert [r["step"] for r in state.history] == [4, 8, 10] and saved == [4, 8, 10]
    assert all(r["train_loss"] == pytest.approx(2.0) for r in state.history)  # bias-corrected average of 2.0
    assert state.history[-1]["val_acc"] == 0.1
    state.history[-1]["time_s"] = state.time_s = 100.0  # resume: steps and time continue
    train_loop(lambda step: calls.append(step) or {"loss": 1.0, "acc": 0.5}, lambda step: {}, state, steps=14,
               eval_every=4, progress=False, log=None)
    assert calls[10:] == [10, 11, 12, 13]
    assert [r["step"] for r in state.history] == [4, 8, 10, 12, 14] and state.history[-1]["time_s"] >= 100
    assert state.history[-1]["train_acc"] == pytest.approx(0.5)


def test_running_loss_is_one_smoothed_average():
    state = train_loop(lambda step: float(step), lambda step: {}, RunState(), steps=3, eval_every=3, smoothing=0.5,
                       progress=False, log=None)
    # ema after 0, 1, 2 with factor 0.5: 0.5 * (0.5 * (0.5 * 0 + 0) + 0.5) + 1 = 1.25; bias 1 - 0.5^3 = 0.875
    assert state.history[0]["train_loss"] == pytest.approx(1.25 / 0.875)


def test_loop_stops_at_the_time_limit_after_an_evaluation():
    lines = []
    state = train_loop(lambda step: time.sleep(0.03) or 1.0, lambda step: {"val_acc": 1.0}, RunState(), steps=1000,
                       eval_every=500, time_limit=0.2, progress=False, log=lines.append)
    assert 5 <= state.step < 100
    assert state.history[-1]["step"] == state.step and len(state.history) == 1
    assert "time limit of 0.2 s reached: stopping at step" in lines[-1]


def test_ctrl_c_finishes_the_step_saves_and_exits():
    saved = []

    def step_fn(step):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if Ctrl-C were pressed during step 3
            time.sleep(0.05)
        return 1.0

    with pytest.raises(SystemExit) as e:
        train_loop(step_fn, lambda step: {}, RunState(), steps=100, eval_every=50, save=lambda s: saved.append(s.step),
                   progress=False, log=None)
    assert saved == [3] and "interrupted at step 3 of 100; checkpoint saved" in str(e.value)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


# ---------------------------------------------------------------------------------------------
# options


def test_common_options_one_spelling_and_config():
    p = add_common_args(argparse.ArgumentParser(), "n_way", "k_shot", "time_limit", "device", "resume", n_way=20)
    args = p.parse_args(["--k-shot", "5", "--time-limit", "90", "--resume"])
    assert (args.n_way, args.k_shot, args.time_limit, args.device, args.resume) == (20, 5, 90.0, "auto", True)
    assert config_from_args(args) == {"n_way": 20, "k_shot": 5}
    with pytest.raises(SystemExit):
        p.parse_args(["--n_way", "3"])
    with pytest.raises(ValueError, match="unknown common options"):
        add_common_args(argparse.ArgumentParser(), "nway")


# ---------------------------------------------------------------------------------------------
# the data helper


def omniglot_root(tmp_path, parts=("images_background", "images_evaluation"), corrupt=False):
    folder = tmp_path / "omniglot" / "omniglot-py"
    folder.mkdir(parents=True)
    for part in parts:
        if corrupt:
            (folder / f"{part}.zip").write_bytes(b"PK\x03\x04 truncated download")
        else:
            with zipfile.ZipFile(folder / f"{part}.zip", "w") as z:
                z.writestr(f"{part}/Alphabet/character01/0001_01.png", b"")
    return tmp_path


def test_data_present_uses_omniglot(tmp_path, monkeypatch):
    root = omniglot_root(tmp_path)
    loaded = []

    class FakeOmniglot:  # the real loader needs all 32,460 images; here only the decision is tested
        def __init__(self, root, split):
            loaded.append((root, split))
            self.images = torch.zeros(3, 20, 1, 28, 28, dtype=torch.uint8)

    monkeypatch.setattr(training_data, "Omniglot", FakeOmniglot)
    images, source = omniglot_or_glyphs("omniglot", root, splits=("train", "test"), log=None)
    assert source == "omniglot" and loaded == [(root, "train"), (root, "test")] and images["test"].shape[0] == 3


def test_data_absent_gives_the_glyphs_and_says_so(tmp_path):
    lines = []
    images, source = omniglot_or_glyphs("omniglot", tmp_path, log=lines.append)
    assert source == "glyphs" and "using the synthetic glyphs" in lines[0]
    assert {s: t.shape[0] for s, t in images.items()} == {"train": 600, "val": 100, "test": 300}
    assert images["train"].dtype == torch.uint8 and int(images["train"].max()) == 1


def test_data_corrupt_or_incomplete_is_an_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CS330_CACHE", str(tmp_path / "cache"))
    root = omniglot_root(tmp_path / "a", corrupt=True)
    with pytest.raises(ValueError, match=r"images_background\.zip is not a valid zip file"):
        omniglot_or_glyphs("omniglot", root, log=None)
    root = omniglot_root(tmp_path / "b", parts=("images_background",))
    with pytest.raises(DataNotFoundError, match=r"images_evaluation\.zip"):
        omniglot_or_glyphs("omniglot", root, log=None)


def test_determinism_warns_instead_of_stopping_a_run():
    """An operation without a deterministic version (on CUDA, say) warns: hw0's old setting."""
    try:
        setup(seed=0, device="cpu", deterministic=True)
        assert torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        setup(seed=0, device="cpu", deterministic=False)
