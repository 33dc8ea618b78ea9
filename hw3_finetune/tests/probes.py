"""Probes: the code the autograder runs beside your lora.py, finetune.py and icl.py, in the sandboxed
process that runs your code, when a check needs more than one call (a seeded layer or model, a
backward pass, a tokenizer, decoding with a model).

Each probe takes ``code`` first (your homework's modules: ``code.lora``, ``code.finetune``,
``code.icl``) and returns data (tensors, numbers, strings, lists, dicts). The same probe run on the
reference solution gives what a hidden check compares with. Nothing here is secret: it ships with
the tests.
"""

import os

import torch
from torch import nn

import tiny
from cs330.data.text import BabiExample, SummaryExample

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# ----------------------------------------------------------------------------------------------
# Question 1: LoRA and what to fine-tune


def linear(weight, bias):
    """An ``nn.Linear`` holding ``weight`` (d_out, d_in) and ``bias`` (d_out,)."""
    d_out, d_in = weight.shape
    base = nn.Linear(d_in, d_out, dtype=weight.dtype)
    with torch.no_grad():
        base.weight.copy_(weight)
        base.bias.copy_(bias)
    return base


def lora_init(code, weight, bias, rank, alpha, seed, x):
    """``LoRALinear(linear(weight, bias), rank, alpha, generator seeded with seed)`` as built: its parameters
    (name -> tensor), which of them require gradients, its output on ``x`` (no gradient) and the base's."""
    base = linear(weight, bias)
    layer = code.lora.LoRALinear(base, rank, alpha, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        out = layer(x)
    return {"params": {n: p.detach() for n, p in layer.named_parameters()},
            "is_parameter": {n: isinstance(getattr(layer, n, None), nn.Parameter) for n in ("lora_A", "lora_B")},
            "requires_grad": {n: p.requires_grad for n, p in layer.named_parameters()},
            "out": out, "base_out": base(x).detach()}


def lora_A_draws(code, d_in, d_out, rank, seed, global_seed):
    """``lora_A`` of a layer built with a generator seeded with ``seed``, after ``torch.manual_seed(global_seed)``."""
    base = linear(torch.zeros(d_out, d_in), torch.zeros(d_out))
    torch.manual_seed(global_seed)
    return code.lora.LoRALinear(base, rank, generator=torch.Generator().manual_seed(seed)).lora_A.detach()


def lora_forward(code, weight, bias, A, B, alpha, x, grad_out):
    """A LoRALinear with A and B set to the given values: its output on ``x`` and, for the loss
    ``(output * grad_out).sum()``, the gradients of A and B."""
    layer = code.lora.LoRALinear(linear(weight, bias), A.shape[0], alpha, torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
    out = layer(x)
    (out * grad_out).sum().backward()

    def grad(p):
        return None if p.grad is None else p.grad.detach()

    return {"out": out.detach(), "grad_A": grad(layer.lora_A), "grad_B": grad(layer.lora_B)}


def lora_dtype(code, dtype_name):
    """dtypes of A, B and the output of a LoRALinear on a base layer of dtype ``dtype_name``."""
    dtype = getattr(torch, dtype_name)
    layer = code.lora.LoRALinear(nn.Linear(5, 3, dtype=dtype), 2, generator=torch.Generator().manual_seed(0))
    out = layer(torch.ones(2, 5, dtype=dtype))
    return {"A": str(layer.lora_A.dtype), "B": str(layer.lora_B.dtype), "out": str(out.dtype)}


def finetune_selection(code, arch, mode, seed=0):
    """``parameters_to_finetune(model, mode)`` on ``tiny.fake_bert()`` ("bert": BERT's layout) or
    ``tiny.fake_lm()`` ("llama": Llama's layout): the names of
    the returned parameters (in order; "?" for one that is not in the model), the names with
    requires_grad=True, and every parameter's name and size, after the call."""
    model = {"bert": tiny.fake_bert, "llama": tiny.fake_lm}[arch]()
    params = list(code.finetune.parameters_to_finetune(model, mode, seed=seed))
    name_of = {id(p): n for n, p in model.named_parameters()}
    return {"returned": [name_of.get(id(p), "?") for p in params],
            "returned_numel": sum(p.numel() for p in params),
            "requires_grad": sorted(n for n, p in model.named_parameters() if p.requires_grad),
            "sizes": {n: p.numel() for n, p in model.named_parameters()}}


def minilm_counts(code, modes=("head", "lora4")):
    """Trainable-parameter counts that ``parameters_to_finetune`` returns on the real all-MiniLM-L6-v2
    with a 5-way head."""
    torch.set_num_threads(1)
    from cs330.models.pretrained import load_classifier

    counts = {}
    for mode in modes:
        _, model = load_classifier("all-minilm-l6-v2", num_labels=5)
        counts["total"] = sum(p.numel() for p in model.parameters())
        counts[mode] = sum(p.numel() for p in code.finetune.parameters_to_finetune(model, mode))
    return counts


# ----------------------------------------------------------------------------------------------
# Question 2: losses and tokenisation


def loss_and_grad(code, function, logits, labels):
    """``finetune.<function>(logits, labels)`` -> (loss, accuracy); then ``loss.backward()``: the loss, the
    accuracy, whether each requires grad, and the gradient with respect to ``logits``."""
    logits = logits.detach().clone().requires_grad_(True)
    loss, accuracy = getattr(code.finetune, function)(logits, labels)
    out = {"loss": loss.detach(), "accuracy": accuracy.detach(), "loss_requires_grad": loss.requires_grad,
           "accuracy_requires_grad": accuracy.requires_grad, "grad": None}
    if loss.requires_grad:
        loss.backward()
        out["grad"] = None if logits.grad is None else logits.grad.detach()
    return out


def tokenize(code, prompts, targets, max_length=None, add_bos=False):
    """``tokenize_prompt_target`` with ``tiny.WordTokenizer(add_bos=add_bos)`` (pad 0, eos 1, bos 99)."""
    tokenizer = tiny.WordTokenizer(add_bos=add_bos)
    return dict(code.finetune.tokenize_prompt_target(tokenizer, prompts, targets, max_length=max_length))


# ----------------------------------------------------------------------------------------------
# Question 3: prompts and greedy decoding


def babi_prompt(code, support, query, style):
    """``icl.babi_prompt`` on examples given as dicts of BabiExample's fields."""
    return code.icl.babi_prompt([BabiExample(**s) for s in support], BabiExample(**query), style)


def xsum_prompt(code, support, query, style, max_words=200):
    """``icl.xsum_prompt`` on examples given as dicts of SummaryExample's fields."""
    return code.icl.xsum_prompt([SummaryExample(**s) for s in support], SummaryExample(**query), style, max_words)


def causal_lm(kind, layers, seed):
    """``tiny.fake_lm`` ("fake") or the Hugging Face ``tiny.tiny_llama`` ("llama")."""
    return {"fake": tiny.fake_lm, "llama": tiny.tiny_llama}[kind](layers=layers, seed=seed)


def decode(code, prompt, max_new_tokens, stop_ids=(), use_cache=True, layers=2, seed=0, kind="fake"):
    """``greedy_decode`` on ``causal_lm(kind, layers, seed)``: the new tokens, and the number of tokens
    fed to the model at each forward call (its ``input_ids`` length)."""
    model = causal_lm(kind, layers, seed)
    fed = []

    def count(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        fed.append(int(ids.shape[-1]) if ids is not None else -1)

    model.register_forward_pre_hook(count, with_kwargs=True)
    out = code.icl.greedy_decode(model, prompt, max_new_tokens, stop_ids=set(stop_ids), use_cache=use_cache)
    return {"tokens": out, "fed": fed}
