"""In-context learning: few-shot prompts for bAbI and XSum, and greedy decoding with a KV cache.

A k-shot prompt is k solved examples followed by the unsolved query; the model's continuation is
its answer. Nothing is trained: the examples only condition the model.

Prompt formats (``FORMATS``), shown for one bAbI example (story, question, answer):

    none:        Mary moved to the bathroom. John went to the hallway. Where is Mary? bathroom
    instruction: <task instruction>, blank line, then per example
                 Story: Mary moved to the bathroom. John went to the hallway.
                 Question: Where is Mary?
                 Answer: bathroom
    custom:      the story as numbered facts, then Q: / A: lines (see ``babi_prompt``)

Examples are separated by a blank line ("\\n\\n"). The query is formatted the same way with the
answer left out and no space after the final ":" or question mark, so the model writes " bathroom".
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from cs330.data.text import BabiExample, SummaryExample

FORMATS = ("none", "instruction", "custom")
BABI_INSTRUCTION = "Read each story and answer the question with a single word."
XSUM_INSTRUCTION = "Summarize each article in one sentence."
SEPARATOR = "\n\n"


def babi_prompt(support: list[BabiExample], query: BabiExample, style: str = "instruction") -> str:
    """A k-shot bAbI prompt (k = len(support)) in format ``style``; ends where the query's answer goes.

    none:        "{story} {question} {answer}" with the story's sentences joined by single spaces
    instruction: BABI_INSTRUCTION + SEPARATOR, then "Story: {story}\\nQuestion: {question}\\nAnswer: {answer}"
    custom:      "1. {fact}\\n2. {fact}\\n...\\nQ: {question}\\nA: {answer}" (facts numbered from 1)
    Examples are joined by SEPARATOR; the query ends after "{question}", "Answer:" or "A:" respectively.
    """
    if style not in FORMATS:
        raise ValueError(f"unknown prompt format {style!r}; choose one of {FORMATS}")
    # BEGIN SOLUTION
    def one(ex: BabiExample, answer: bool) -> str:
        story = " ".join(ex.story)
        a = f" {ex.answer}" if answer else ""
        if style == "none":
            return f"{story} {ex.question}{a}"
        if style == "instruction":
            return f"Story: {story}\nQuestion: {ex.question}\nAnswer:{a}"
        facts = "\n".join(f"{i}. {fact}" for i, fact in enumerate(ex.story, 1))
        return f"{facts}\nQ: {ex.question}\nA:{a}"

    parts = [one(ex, True) for ex in support] + [one(query, False)]
    head = BABI_INSTRUCTION + SEPARATOR if style == "instruction" else ""
    return head + SEPARATOR.join(parts)
    # END SOLUTION


def xsum_prompt(support: list[SummaryExample], query: SummaryExample, style: str = "instruction",
                max_words: int = 200) -> str:
    """A k-shot XSum prompt; every document is cut to its first ``max_words`` words (split on whitespace,
    joined by single spaces) to bound the prompt length.

    none:        "{document}\\n{summary}"
    instruction: XSUM_INSTRUCTION + SEPARATOR, then "Article: {document}\\nSummary: {summary}"
    custom:      "{document}\\nTL;DR: {summary}"
    Examples are joined by SEPARATOR; the query ends after "{document}\\n", "Summary:" or "TL;DR:".
    """
    if style not in FORMATS:
        raise ValueError(f"unknown prompt format {style!r}; choose one of {FORMATS}")
    # BEGIN SOLUTION
    def one(ex: SummaryExample, answer: bool) -> str:
        doc = " ".join(ex.document.split()[:max_words])
        if style == "none":
            return f"{doc}\n{ex.summary if answer else ''}"
        label = "Summary:" if style == "instruction" else "TL;DR:"
        body = f"Article: {doc}" if style == "instruction" else doc
        return f"{body}\n{label}{' ' + ex.summary if answer else ''}"

    parts = [one(ex, True) for ex in support] + [one(query, False)]
    head = XSUM_INSTRUCTION + SEPARATOR if style == "instruction" else ""
    return head + SEPARATOR.join(parts)
    # END SOLUTION


def forward_with_cache(model: nn.Module, input_ids: torch.Tensor, cache=None):
    """One forward pass that reuses and returns the KV cache: (logits (1, T, V), new cache).

    ``cache`` is None for the first call (the whole prompt), then what the previous call returned;
    ``input_ids`` are then only the tokens not yet seen. (Given: transformers renamed the argument
    ``past_key_values`` to ``cache`` in version 5, and this works with both.)
    """
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    out = model(input_ids=input_ids, use_cache=True, **{name: cache})
    return out.logits, getattr(out, name)


@torch.no_grad()
def greedy_decode(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int,
                  stop_ids: set[int] | frozenset[int] = frozenset(), use_cache: bool = True) -> torch.Tensor:
    """Greedy continuation of one prompt: (1, T) ids -> (1, n) int64 ids of the new tokens only, n <= max_new_tokens.

    At each step the next token is the argmax of the last position's logits. With ``use_cache`` the
    prompt is run once through ``forward_with_cache`` and every later step feeds only the newest token
    with the cache from the step before; without it, the whole sequence so far is re-run each step
    (``model(input_ids=...).logits``: the same tokens, at quadratic cost; call i gets T + i tokens).
    Decoding stops after a token in ``stop_ids`` is produced (it is included in the output) or after
    ``max_new_tokens`` tokens.
    """
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError(f"expected input_ids of shape (1, T), got {tuple(input_ids.shape)}")
    # BEGIN SOLUTION hint="loop: get the logits (cached: feed only the new token; uncached: the whole sequence), take \
    #     the argmax of the last position, append, stop on a stop id"
    generated, cache, feed = [], None, input_ids
    for _ in range(max_new_tokens):
        if use_cache:
            logits, cache = forward_with_cache(model, feed, cache)
        else:
            logits = model(input_ids=torch.cat([input_ids, input_ids.new_tensor([generated])], 1)).logits
        token = int(logits[0, -1].argmax())
        generated.append(token)
        if token in stop_ids:
            break
        feed = input_ids.new_tensor([[token]])
    # END SOLUTION
    return input_ids.new_tensor([generated])


def stop_ids_for(tokenizer, texts=("\n",)) -> frozenset[int]:
    """Ids of tokens that end an answer: EOS and any token whose text contains one of ``texts``."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    vocab = tokenizer.get_vocab()
    for token, i in vocab.items():
        text = tokenizer.convert_tokens_to_string([token])
        if any(t in text for t in texts):
            ids.add(i)
    return frozenset(ids)


def babi_correct(generated: str, answer: str) -> bool:
    """The first word of the model's answer, without punctuation and case, equals the true answer."""
    words = generated.strip().split()
    return bool(words) and words[0].strip(".,!?;:'\"").lower() == answer.lower()
