"""Few-shot fine-tuning of pre-trained transformers: what to train, the losses, and the training loop.

Two kinds of model:
- an encoder classifier (all-MiniLM-L6-v2 + a new linear head): logits (B, C) for a review's star rating;
- a causal language model (SmolLM2-135M): logits (B, T, V); fine-tuned on prompt + target strings,
  with the loss on the target tokens only.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn
from torch.nn import functional as F

from cs330.models.pretrained import output_head, transformer_blocks
from lora import add_lora

# How much of the model to fine-tune. "loraR" adds rank-R adapters to the attention projections.
MODES = ("head", "first", "middle", "last", "all", "lora4", "lora16")
IGNORE_INDEX = -100  # label of a token that gets no loss (prompt and padding), as in F.cross_entropy


def parameters_to_finetune(model: nn.Module, mode: str, seed: int = 0) -> list[nn.Parameter]:
    """Freeze the model except the part ``mode`` names, and return that part's parameters.

    Modes: "all"; "head" (the output layer); "first" / "middle" / "last" (transformer block 0,
    n_blocks // 2, or n_blocks - 1); "loraR" (``add_lora(model, R, seed=seed)``: only the adapters).
    A classifier's head (``model.classifier``) is new and random, so it is trained in every mode.
    Use ``cs330.models.pretrained.transformer_blocks`` and ``output_head``.

    Returns the trainable parameters (no duplicates); every other parameter has requires_grad=False.
    """
    if mode not in MODES and not (mode.startswith("lora") and mode[4:].isdigit()):
        raise ValueError(f"unknown fine-tuning mode {mode!r}; choose one of {MODES} (or loraR for any rank R)")
    # BEGIN SOLUTION hint="freeze everything; pick the modules for the mode (LoRA: add_lora returns the new layers, \
    #     train only lora_A/lora_B); unfreeze and return their parameters"
    model.requires_grad_(False)
    blocks = transformer_blocks(model)
    if mode == "all":
        chosen = [model]
    elif mode == "head":
        chosen = [output_head(model)]
    elif mode in ("first", "middle", "last"):
        chosen = [blocks[{"first": 0, "middle": len(blocks) // 2, "last": len(blocks) - 1}[mode]]]
    else:
        chosen = [nn.ParameterList([layer.lora_A, layer.lora_B]) for layer in add_lora(model, int(mode[4:]), seed=seed)]
    if hasattr(model, "classifier"):
        chosen.append(model.classifier)
    params = list({id(p): p for m in chosen for p in m.parameters()}.values())
    for p in params:
        p.requires_grad_(True)
    return params
    # END SOLUTION


def count_parameters(params) -> int:
    return sum(p.numel() for p in params)


def classification_loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, C), labels (B,) int64 -> (loss, accuracy), both 0-dim tensors.

    loss = -mean_b log softmax(logits[b])[labels[b]] (differentiable); accuracy = the fraction of rows whose
    argmax is the label, without gradient.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (B, C) and labels (B,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    # BEGIN SOLUTION
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(-1) == labels).float().mean().detach()
    # END SOLUTION
    return loss, accuracy


def lm_loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token loss of a causal LM on the labelled tokens.

    logits: (B, T, V), where logits[:, t] predicts token t+1. labels: (B, T) token ids, IGNORE_INDEX
    where there is no target (prompt, padding). Position t's logits are scored against labels[:, t+1]:

        loss = mean over {(b, t): labels[b, t+1] != IGNORE_INDEX} of -log softmax(logits[b, t])[labels[b, t+1]]

    The mean is over all labelled targets of the batch (not per sequence). Returns (loss, accuracy) as
    0-dim tensors; the loss is differentiable; accuracy is the fraction of those targets whose argmax
    is right, without gradient.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError("expected logits (B, T, V) and labels (B, T), "
                         f"got {tuple(logits.shape)} and {tuple(labels.shape)}")
    # BEGIN SOLUTION hint="shift: logits[:, :-1] against labels[:, 1:]; mask the ignored targets in both loss and \
    #     accuracy"
    logits, targets = logits[:, :-1], labels[:, 1:]
    mask = targets != IGNORE_INDEX
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX)
    accuracy = (logits.argmax(-1) == targets)[mask].float().mean().detach()
    # END SOLUTION
    return loss, accuracy


def tokenize_prompt_target(tokenizer, prompts: list[str], targets: list[str], max_length: int | None = None) -> dict:
    """Token ids for causal-LM fine-tuning on ``prompt + target`` with the loss on the target only.

    Each prompt and target is tokenized separately, without special tokens, and the tokenizer's EOS
    id is appended to the target (the model learns to stop). Sequences are right-padded with
    ``tokenizer.pad_token_id`` to the longest one. With ``max_length``, the prompt loses tokens from its
    start (the end of a prompt, next to the target, matters most).

    Returns dict of (B, T) int64 tensors: ``input_ids``; ``attention_mask`` (1 on real tokens, 0 on
    padding); ``labels`` (IGNORE_INDEX on prompt and padding, the token id on target tokens and EOS; not
    shifted: ``lm_loss_and_accuracy`` shifts). With ``max_length`` each row keeps its whole target and EOS
    and the last ``max_length - len(target + EOS)`` tokens of its prompt.
    """
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    # BEGIN SOLUTION
    rows = []
    for prompt, target in zip(prompts, targets):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        t = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        if max_length is not None:
            p = p[max(0, len(p) + len(t) - max_length):]
        rows.append((p + t, [IGNORE_INDEX] * len(p) + t))
    length = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), length), tokenizer.pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, (ids, lab) in enumerate(rows):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, :len(lab)] = torch.tensor(lab)
        attention_mask[i, :len(ids)] = 1
    # END SOLUTION
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


# ----------------------------------------------------------------------------------------------
# Training loops (given)


def finetune(model: nn.Module, params: list[nn.Parameter], batches, steps: int, lr: float,
             loss_fn, device="cpu", log_every: int = 0) -> list[float]:
    """AdamW on ``params`` for ``steps`` steps; ``batches()`` yields dicts of tensors for the model, with ``labels``.

    ``loss_fn(outputs.logits, labels) -> (loss, accuracy)``. Returns the training losses. Dropout is
    off (model.eval()): with a handful of examples its noise only slows fitting.
    """
    model.to(device).eval()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses, start, stream = [], time.time(), batches()
    for step in range(steps):
        batch = {k: v.to(device) for k, v in next(stream).items()}
        labels = batch.pop("labels")
        loss, acc = loss_fn(model(**batch).logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f"  step {step + 1}/{steps}  loss {loss.item():.3f}  acc {acc.item():.2f}  "
                  f"{time.time() - start:.0f}s", flush=True)
    return losses


def epoch_batches(n: int, batch_size: int, make_batch, seed: int = 0):
    """An endless stream of batches over n examples, reshuffled each epoch: ``make_batch(index_list) -> dict``."""
    def stream():
        g = torch.Generator().manual_seed(seed)
        while True:
            order = torch.randperm(n, generator=g).tolist()
            for i in range(0, n, batch_size):
                yield make_batch(order[i:i + batch_size])
    return stream


def steps_for(n_examples: int, batch_size: int, epochs: float, min_steps: int = 30, max_steps: int = 200) -> int:
    """Training steps: ``epochs`` passes over the data, clipped to [min_steps, max_steps]."""
    return int(min(max_steps, max(min_steps, math.ceil(epochs * n_examples / batch_size))))
