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
    if mode.startswith("lora"):
        add_lora(model, int(mode[4:]), seed=seed)
    blocks = transformer_blocks(model)
    index = {"first": 0, "middle": len(blocks) // 2, "last": len(blocks) - 1}
    if mode == "all":
        keep = {id(p) for p in model.parameters()}
    elif mode == "head":
        keep = {id(p) for p in output_head(model).parameters()}
    elif mode in index:
        keep = {id(p) for p in blocks[index[mode]].parameters()}
    else:
        keep = {id(p) for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] in ("lora_A", "lora_B")}
    if isinstance(getattr(model, "classifier", None), nn.Module):
        keep |= {id(p) for p in model.classifier.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if p.requires_grad]


def count_parameters(params) -> int:
    return sum(p.numel() for p in params)


def classification_loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """logits (B, C), labels (B,) int64 -> (loss, accuracy), both 0-dim tensors.

    loss = -mean_b log softmax(logits[b])[labels[b]] (differentiable); accuracy = the fraction of rows whose
    argmax is the label, without gradient.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"expected logits (B, C) and labels (B,), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    loss = F.nll_loss(F.log_softmax(logits, dim=1), labels)
    accuracy = torch.eq(logits.argmax(dim=1), labels).float().mean().detach()
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
        raise ValueError(f"expected logits (B, T, V) and labels (B, T), got {tuple(logits.shape)} and {tuple(labels.shape)}")
    targets = labels[:, 1:]
    # cross_entropy on the (B, V, T-1) layout: classes in dim 1
    loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE_INDEX)
    keep = targets.ne(IGNORE_INDEX)
    predicted = logits[:, :-1].argmax(dim=-1)
    accuracy = predicted.masked_select(keep).eq(targets.masked_select(keep)).float().mean()
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
    ids, labs = [], []
    for prompt, target in zip(prompts, targets):
        p = tokenizer.encode(prompt, add_special_tokens=False)
        t = tokenizer.encode(target, add_special_tokens=False) + [tokenizer.eos_token_id]
        if max_length is not None:
            keep = max(0, max_length - len(t))
            p = p[len(p) - keep:] if len(p) > keep else p
        ids.append(p + t)
        labs.append([IGNORE_INDEX] * len(p) + t)
    width = max(map(len, ids))
    input_ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids], dtype=torch.long)
    labels = torch.tensor([row + [IGNORE_INDEX] * (width - len(row)) for row in labs], dtype=torch.long)
    attention_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids], dtype=torch.long)
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
            print(f"  step {step + 1}/{steps}  loss {loss.item():.3f}  acc {acc.item():.2f}  {time.time() - start:.0f}s", flush=True)
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
