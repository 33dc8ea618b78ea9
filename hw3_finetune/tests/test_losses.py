"""Question 2: losses and accuracies, and tokenising prompt/target pairs (finetune.py)."""

import math

import torch
from torch.nn import functional as F

from cs330.grading import graded, reference_module, student_module
from tiny import WordTokenizer


@graded("2a-0-basic", points=1)
def test_classification_loss_and_accuracy():
    """classification_loss_and_accuracy: mean cross-entropy and accuracy on a worked example."""
    finetune = student_module("finetune")
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 3.0, 2.0]], requires_grad=True)
    labels = torch.tensor([0, 2, 1, 1])
    loss, acc = finetune.classification_loss_and_accuracy(logits, labels)
    assert loss.dim() == 0 and acc.dim() == 0, "both results are 0-dim tensors"
    expected = F.cross_entropy(logits, labels)
    assert torch.isclose(loss, expected), f"loss {loss.item():.4f}, expected the mean cross-entropy {expected.item():.4f}"
    # argmax: 0 (right), 1 (wrong), 0 (first of a tie: wrong), 1 (right)
    assert math.isclose(acc.item(), 0.5), f"accuracy {acc.item()}, expected 0.5"
    loss.backward()
    assert logits.grad is not None, "the loss must be differentiable"



@graded("2a-1-hidden", points=1)
def test_classification_loss_matches_reference():
    """classification_loss_and_accuracy on random logits matches the reference."""
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(0, 5, (12,), generator=g)
    loss, acc = student_module("finetune").classification_loss_and_accuracy(logits, labels)
    # BEGIN HIDDEN
    ref_loss, ref_acc = reference_module("finetune").classification_loss_and_accuracy(logits, labels)
    assert torch.allclose(loss, ref_loss), f"loss {loss.item():.6f}, reference {ref_loss.item():.6f}"
    assert torch.allclose(acc, ref_acc.to(acc.dtype)), f"accuracy {acc.item():.4f}, reference {ref_acc.item():.4f}"
    # END HIDDEN

def lm_example():
    # vocabulary of 4; sequence of 5 tokens; the prompt (first 2 tokens) and padding (last) are ignored
    logits = torch.log_softmax(torch.tensor([[[2.0, 1.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 0.0, 4.0],
                                              [1.0, 1.0, 1.0, 1.0], [5.0, 0.0, 0.0, 0.0]]]), -1)
    labels = torch.tensor([[-100, -100, 1, 2, -100]])
    return logits, labels


@graded("2b-0-basic", points=2)
def test_lm_loss_shifts_and_masks():
    """lm_loss_and_accuracy: logits[:, t] is scored against labels[:, t+1]; ignored positions (-100) get no loss."""
    finetune = student_module("finetune")
    logits, labels = lm_example()
    loss, acc = finetune.lm_loss_and_accuracy(logits, labels)
    # targets: position 1 predicts label[2] = 1 (logp of 1 under [0,3,0,0]); position 2 predicts label[3] = 2
    expected = -(logits[0, 1, 1] + logits[0, 2, 2]) / 2
    assert torch.isclose(loss, expected), (
        f"loss {loss.item():.4f}, expected {expected.item():.4f}: did you shift by one token and ignore the -100 labels?")
    assert math.isclose(acc.item(), 0.5), f"accuracy {acc.item()}, expected 0.5 (one of the two target tokens right)"


@graded("2b-1-hidden", points=1)
def test_lm_loss_matches_reference():
    """lm_loss_and_accuracy on a random padded batch matches the reference."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 9, 11, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 9), generator=g)
    labels[0, :4] = labels[1, :2] = labels[2, 6:] = -100
    loss, acc = student_module("finetune").lm_loss_and_accuracy(logits, labels)
    # BEGIN HIDDEN
    ref_loss, ref_acc = reference_module("finetune").lm_loss_and_accuracy(logits, labels)
    assert torch.allclose(loss, ref_loss), f"loss {loss.item():.6f}, reference {ref_loss.item():.6f}"
    assert torch.allclose(acc, ref_acc.to(acc.dtype)), f"accuracy {acc.item():.4f}, reference {ref_acc.item():.4f}"
    # END HIDDEN


@graded("2c-0-basic", points=2)
def test_tokenize_prompt_target():
    """tokenize_prompt_target: prompt + target + EOS, labels -100 on the prompt and padding, right padding."""
    finetune = student_module("finetune")
    tok = WordTokenizer()  # ids: the=2, cat=3, sat=4, dog=5, ran=6, far=7; eos 1, pad 0
    out = finetune.tokenize_prompt_target(tok, ["the cat", "the dog ran"], ["sat", "far away"])
    assert set(out) >= {"input_ids", "attention_mask", "labels"}, f"missing keys: got {sorted(out)}"
    assert out["input_ids"].tolist() == [[2, 3, 4, 1, 0, 0], [2, 5, 6, 7, 8, 1]], f"input_ids: {out['input_ids'].tolist()}"
    assert out["labels"].tolist() == [[-100, -100, 4, 1, -100, -100], [-100, -100, -100, 7, 8, 1]], \
        f"labels: {out['labels'].tolist()} (the prompt and padding are -100; target tokens and EOS keep their ids)"
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], \
        f"attention_mask: {out['attention_mask'].tolist()}"
    assert out["input_ids"].dtype == torch.long


@graded("2c-1-hidden", points=1)
def test_tokenize_truncates_the_prompt_start():
    """With max_length, the prompt loses tokens from its start; matches the reference."""
    prompts, targets = ["a b c d e f g", "h i", "j"], ["x y", "z", "w v u"]
    out = student_module("finetune").tokenize_prompt_target(WordTokenizer(), prompts, targets, max_length=5)
    # BEGIN HIDDEN
    ref = reference_module("finetune").tokenize_prompt_target(WordTokenizer(), prompts, targets, max_length=5)
    for key in ("input_ids", "attention_mask", "labels"):
        assert out[key].tolist() == ref[key].tolist(), f"{key} differs from the reference: {out[key].tolist()}"
    # END HIDDEN
