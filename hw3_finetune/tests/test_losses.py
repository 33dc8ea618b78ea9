"""Question 2: losses and accuracies, and tokenising prompt/target pairs (finetune.py).

The loss functions run beside your code through ``probes.loss_and_grad`` (which also runs the
backward pass); the expected values are computed here from the formulas in the handout.
"""

import torch

import probes
from cs330.grading import expect_tensor, graded

IGNORE = -100


def run(student, function, logits, labels):
    got = student.probe(probes.loss_and_grad, function, logits, labels)
    expect_tensor(got["loss"], f"{function} (loss)", ())
    expect_tensor(got["accuracy"], f"{function} (accuracy)", ())
    return got


def close(value, want, tol=1e-5):
    return abs(float(value) - float(want)) <= tol * (1 + abs(float(want)))


# ----------------------------------------------------------------------------------------------
# 2a: classification


def classification_case(seed=0, B=10, C=5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, C, generator=g), torch.randint(0, C, (B,), generator=g)


@graded("2a-0-basic", points=1, timeout=30)
def test_classification_loss(student):
    """The loss is the mean cross-entropy over the batch, -mean_b log softmax(logits[b])[labels[b]]."""
    logits, labels = classification_case()
    got = run(student, "classification_loss_and_accuracy", logits, labels)
    want = -torch.log_softmax(logits.double(), -1)[torch.arange(len(labels)), labels].mean()
    assert close(got["loss"], want), f"loss {float(got['loss']):.5f}, expected the mean cross-entropy {float(want):.5f}"


@graded("2a-1-basic", points=1, timeout=30)
def test_classification_accuracy(student):
    """The accuracy is the fraction of rows whose argmax is the label (no ties here)."""
    logits, labels = classification_case(seed=1, B=12)
    labels[:6] = logits[:6].argmax(-1)  # half right for sure, the rest at chance
    got = run(student, "classification_loss_and_accuracy", logits, labels)
    want = (logits.argmax(-1) == labels).double().mean()
    assert close(got["accuracy"], want), f"accuracy {float(got['accuracy']):.4f}, expected {float(want):.4f}"


@graded("2a-2-basic", points=1, timeout=30)
def test_classification_loss_is_differentiable(student):
    """The loss has a gradient: d loss / d logits = (softmax(logits) - onehot(labels)) / B."""
    logits, labels = classification_case(seed=2)
    got = run(student, "classification_loss_and_accuracy", logits, labels)
    assert got["loss_requires_grad"] and got["grad"] is not None, \
        "the loss has no gradient: keep it a tensor computed from the logits (no .item(), .detach() or argmax)"
    want = (torch.softmax(logits, -1) - torch.nn.functional.one_hot(labels, logits.shape[1])) / len(labels)
    assert torch.allclose(expect_tensor(got["grad"], "logits.grad", tuple(logits.shape)), want, atol=1e-6), \
        "the gradient of the loss is not the one of the mean cross-entropy"


@graded("2a-3-hidden", points=1, timeout=30)
def test_accuracy_has_no_gradient(student):
    """Both results are 0-dim tensors and the accuracy carries no gradient."""
    logits, labels = classification_case(seed=3)
    got = run(student, "classification_loss_and_accuracy", logits, labels)
    # BEGIN HIDDEN
    assert not got["accuracy_requires_grad"], "the accuracy must carry no gradient (.detach() it)"
    # END HIDDEN


# ----------------------------------------------------------------------------------------------
# 2b: the language-model loss. Each test checks one property; where the property does not depend on
# the one-token shift, the loss is accepted with or without it (2b-0 alone checks the shift).


def token_logp(logits, labels, shift):
    """(B, T') log-probabilities of the targets and (B, T') mask of the labelled ones, with or without the shift."""
    logp = torch.log_softmax(logits.double(), -1)
    if shift:
        logp, labels = logp[:, :-1], labels[:, 1:]
    mask = labels != IGNORE
    return logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1), mask


def lm_loss(logits, labels, shift=True):
    lp, mask = token_logp(logits, labels, shift)
    return -(lp[mask]).mean()


def lm_accuracy(logits, labels, shift=True):
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    mask = labels != IGNORE
    return (logits.argmax(-1) == labels)[mask].double().mean()


def lm_case(seed=0, B=1, T=6, V=7, ignore=None):
    """Seeded logits (B, T, V) and labels (B, T); ``ignore``: a (B, T) bool mask of positions labelled -100."""
    g = torch.Generator().manual_seed(seed)
    logits, labels = torch.randn(B, T, V, generator=g) * 2, torch.randint(0, V, (B, T), generator=g)
    if ignore is not None:
        labels[ignore] = IGNORE
    return logits, labels


@graded("2b-0-basic", points=1, timeout=30)
def test_lm_loss_shifts_by_one(student):
    """Position t's logits are scored against labels[:, t+1] (no ignored labels here)."""
    logits, labels = lm_case(seed=0, B=2, T=6)
    got = run(student, "lm_loss_and_accuracy", logits, labels)["loss"]
    if close(got, lm_loss(logits, labels, shift=False)):
        raise AssertionError("the loss scores logits[:, t] against labels[:, t]: logits[:, t] predicts the NEXT token, "
                             "so score logits[:, :-1] against labels[:, 1:]")
    assert close(got, lm_loss(logits, labels)), (
        f"loss {float(got):.5f}, expected {float(lm_loss(logits, labels)):.5f} "
        "(the mean of -log p(labels[:, t+1]) under logits[:, t])"
    )


@graded("2b-1-basic", points=2, timeout=30)
def test_lm_loss_averages_the_labelled_tokens(student):
    """Targets labelled -100 (prompt, padding) get no loss, and the loss is the mean over all labelled
    targets of the batch (rows with 1 and 4 of them here: not a mean of per-row means)."""
    ignore = torch.tensor([[1, 1, 1, 1, 0, 1, 1], [1, 1, 0, 0, 0, 0, 1]], dtype=torch.bool)
    logits, labels = lm_case(seed=1, B=2, T=7, ignore=ignore)
    got = run(student, "lm_loss_and_accuracy", logits, labels)["loss"]
    if any(close(got, lm_loss(logits, labels, shift)) for shift in (True, False)):
        return
    lp, mask = token_logp(logits, labels, shift=True)
    if close(got, -(lp * mask).sum(1).div(mask.sum(1)).mean()):
        raise AssertionError(
            "the loss is a mean of per-sequence means: average over all labelled tokens of the batch instead"
        )
    raise AssertionError(f"loss {float(got):.5f}, expected {float(lm_loss(logits, labels)):.5f}: "
                         "the targets labelled -100 (prompt and padding) must get no loss and not count in the mean")


@graded("2b-2-basic", points=1, timeout=30)
def test_lm_accuracy_counts_the_labelled_tokens(student):
    """The accuracy is the fraction of labelled targets whose argmax is right; -100 targets do not count."""
    ignore = torch.tensor([[1, 1, 1, 0, 0, 0, 1, 1]], dtype=torch.bool)
    logits, labels = lm_case(seed=2, B=1, T=8, ignore=ignore)
    labels[0, 4] = int(logits[0, 3].argmax())  # one right target with the shift, one without
    labels[0, 3] = int(logits[0, 3].argmax())
    got = run(student, "lm_loss_and_accuracy", logits, labels)["accuracy"]
    assert any(close(got, lm_accuracy(logits, labels, shift)) for shift in (True, False)), (
        f"accuracy {float(got):.4f}, expected {float(lm_accuracy(logits, labels)):.4f}: "
        "count only the targets that are not -100 (the prompt and padding are not predictions)")


@graded("2b-3-hidden", points=1, timeout=30)
def test_lm_loss_is_differentiable(student):
    """The loss has the cross-entropy's gradient with respect to the logits (nothing detached)."""
    logits, labels = lm_case(seed=3, B=2, T=5)
    got = run(student, "lm_loss_and_accuracy", logits, labels)
    # BEGIN HIDDEN
    assert got["loss_requires_grad"] and got["grad"] is not None, (
        "the loss has no gradient: keep it a tensor computed from the logits"
    )
    grad = expect_tensor(got["grad"], "logits.grad", tuple(logits.shape))
    wants = []
    for shift in (True, False):
        x = logits.clone().requires_grad_(True)
        lm_loss(x, labels, shift).backward()
        wants.append(x.grad.float())
    assert any(torch.allclose(grad, w, atol=1e-6) for w in wants), (
        "the gradient is not the one of the mean cross-entropy"
    )
    # END HIDDEN


# ----------------------------------------------------------------------------------------------
# 2c: tokenising prompt + target (tiny.WordTokenizer: the=2 cat=3 sat=4 dog=5 ran=6 far=7 away=8; pad 0, eos 1)

PROMPTS, TARGETS = ["the cat", "the dog ran"], ["sat", "far away"]


def tokenized(student, prompts=PROMPTS, targets=TARGETS, max_length=None, add_bos=False):
    out = student.probe(probes.tokenize, prompts, targets, max_length, add_bos)
    missing = {"input_ids", "attention_mask", "labels"} - set(out)
    assert not missing, (
        f"tokenize_prompt_target must return input_ids, attention_mask and labels; {sorted(missing)} missing"
    )
    return {k: expect_tensor(out[k], k) for k in ("input_ids", "attention_mask", "labels")}


@graded("2c-0-basic", points=1, timeout=30)
def test_tokenize_input_ids(student):
    """input_ids: prompt tokens, target tokens, EOS, then right-padding with pad_token_id; int64 (B, T)."""
    ids = tokenized(student)["input_ids"]
    assert ids.dtype == torch.int64, f"input_ids must be int64 (torch.long), got {ids.dtype}"
    assert ids.tolist() == [[2, 3, 4, 1, 0, 0], [2, 5, 6, 7, 8, 1]], (
        f"input_ids {ids.tolist()}, expected [[2, 3, 4, 1, 0, 0], [2, 5, 6, 7, 8, 1]] "
        "(prompt, target, eos=1, right padding with pad=0)"
    )


@graded("2c-1-basic", points=1, timeout=30)
def test_tokenize_labels(student):
    """labels: -100 on the prompt and the padding; the token ids on the target and its EOS; int64."""
    labels = tokenized(student)["labels"]
    assert labels.dtype == torch.int64, f"labels must be int64 (torch.long), got {labels.dtype}"
    assert labels.tolist() == [[-100, -100, 4, 1, -100, -100], [-100, -100, -100, 7, 8, 1]], (
        f"labels {labels.tolist()}: the prompt and padding are -100; "
        "the target tokens and EOS keep their ids (unshifted)"
    )


@graded("2c-2-basic", points=1, timeout=30)
def test_tokenize_attention_mask(student):
    """attention_mask: 1 on real tokens (prompt, target, EOS), 0 on padding."""
    mask = tokenized(student)["attention_mask"]
    assert mask.tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], (
        f"attention_mask {mask.tolist()}: 1 on real tokens, 0 on padding"
    )


@graded("2c-3-basic", points=1, timeout=30)
def test_tokenize_without_special_tokens(student):
    """Prompts and targets are tokenized without special tokens (here a tokenizer that, like Llama's, starts every text
    with BOS = 99 unless called with add_special_tokens=False)."""
    ids = tokenized(student, add_bos=True)["input_ids"]
    assert 99 not in ids.tolist()[0] + ids.tolist()[1], (
        f"input_ids {ids.tolist()} hold BOS (99): "
        "call the tokenizer with add_special_tokens=False on the prompt and the target"
    )


@graded("2c-4-hidden", points=1, timeout=30)
def test_tokenize_truncates_the_prompt_start(student):
    """With max_length, each row keeps its target and EOS and the last tokens of its prompt
    (at most max_length in all)."""
    prompts, targets = ["a b c d e f g", "h i", "j"], ["x y", "z", "w v u"]
    out = tokenized(student, prompts, targets, max_length=5)
    # BEGIN HIDDEN
    # ids: a=9 ... g=15, h=16 i=17 j=18, x=20 y=21 z=22 w=23 v=24 u=25 (k=19); eos 1, pad 0
    assert out["input_ids"].tolist() == [[14, 15, 20, 21, 1], [16, 17, 22, 1, 0], [18, 23, 24, 25, 1]], (
        f"input_ids {out['input_ids'].tolist()}: "
        "drop tokens from the START of the prompt so each row has at most max_length"
    )
    assert out["labels"].tolist() == [[-100, -100, 20, 21, 1], [-100, -100, 22, 1, -100], [-100, 23, 24, 25, 1]], \
        f"labels {out['labels'].tolist()} after truncation"
    # END HIDDEN
