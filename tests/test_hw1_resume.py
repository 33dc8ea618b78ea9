"""hw1_blackbox/train.py resumes exactly: a run stopped by Ctrl-C, or killed while writing a checkpoint,
then resumed, ends with the weights of the uninterrupted run; resuming other settings is refused.
(Tiny runs on synthetic glyphs, CPU, one thread.)"""

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import imported_from

from cs330.training import ConfigMismatchError

HW1 = Path(__file__).resolve().parents[1] / "hw1_blackbox"
RUN = dict(n_way=2, k_shot=1, meta_batch_size=4, steps=12, hidden_dim=16, seed=3, eval_every=4, eval_batches=2,
           device="cpu", progress=False, log=None)


@pytest.fixture(scope="module")
def train():
    with imported_from(HW1, "train") as module:
        yield module


@pytest.fixture(scope="module")
def images():
    from cs330.data import make_glyphs

    glyphs = make_glyphs(n_alphabets=4, chars_per_alphabet=10, n_drawers=20, seed=0).images
    return {"train_images": glyphs[:30], "test_images": glyphs[30:]}


def final_weights(path):
    return torch.load(path, weights_only=False)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs from the uninterrupted run"


@pytest.fixture(scope="module")
def uninterrupted(train, images, tmp_path_factory):
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("hw1") / "straight.pt"
    result = train.train(**RUN, **images, checkpoint=path)
    return final_weights(path), result


def test_ctrl_c_then_resume_gives_the_uninterrupted_weights(train, images, uninterrupted, tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    real_step, calls = torch.optim.Adam.step, []

    def step_then_ctrl_c(self, *args, **kwargs):  # Ctrl-C during optimizer step 6, between two evaluations
        calls.append(1)
        if len(calls) == 6:
            signal.raise_signal(signal.SIGINT)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_then_ctrl_c)
    with pytest.raises(SystemExit, match="interrupted at step 6 of 12"):
        train.train(**RUN, **images, checkpoint=path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["step"] == 6
    result = train.train(**RUN, **images, checkpoint=path, resume=True)
    assert_same_weights(final_weights(path), uninterrupted[0])
    assert [r["step"] for r in result["history"]] == [4, 8, 12]
    for a, b in zip(result["history"], uninterrupted[1]["history"]):
        assert (a["test_acc"], a["test_loss"]) == (b["test_acc"], b["test_loss"])


def test_a_kill_mid_checkpoint_then_resume_gives_the_uninterrupted_weights(train, images, uninterrupted, tmp_path):
    """A separate process is killed (SIGKILL) while writing the step-8 checkpoint; resuming from the step-4
    checkpoint it left reaches the uninterrupted run's weights."""
    path, data = tmp_path / "ckpt.pt", tmp_path / "images.pt"
    torch.save(images, data)
    child = textwrap.dedent(f"""
        import sys, time, torch
        sys.path.insert(0, {str(HW1)!r})
        import train
        torch.set_num_threads(1)
        real_save, saves = torch.save, []
        def save_then_hang(obj, f):
            saves.append(1)
            if len(saves) == 2:  # the second checkpoint (step 8): write part of it, then wait for the kill
                open(f, "wb").write(b"partial")
                print("writing", flush=True)
                time.sleep(60)
            real_save(obj, f)
        torch.save = save_then_hang
        train.train(**{RUN!r}, **torch.load({str(data)!r}), checkpoint={str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing", "the child did not reach its second checkpoint"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert torch.load(path, weights_only=False)["step"] == 4
    train.train(**RUN, **images, checkpoint=path, resume=True)
    assert_same_weights(final_weights(path), uninterrupted[0])


def test_resuming_other_settings_is_refused(train, images, uninterrupted, tmp_path):
    path = tmp_path / "ckpt.pt"
    train.train(**{**RUN, "steps": 4}, **images, checkpoint=path)
    with pytest.raises(ConfigMismatchError, match=r"lr: 0\.001 -> 0\.002"):
        train.train(**{**RUN, "lr": 2e-3}, **images, checkpoint=path, resume=True)
