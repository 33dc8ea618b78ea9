"""Tiny random transformers and a word-level tokenizer for fast, exact tests (no downloads).

Used by the tests and by ``probes.py`` (so the same seeded model is built beside your code and in the
grader's own process). ``tiny_llama`` is a Hugging Face model; ``fake_bert`` and ``fake_lm`` are
plain PyTorch stand-ins with the same module names and interface (a classifier's
parameter layout; a causal LM's ``model(input_ids=..., use_cache=..., cache=...)`` returning ``.logits``
and ``.cache``), which build without importing transformers (seconds per test in the autograder).
"""

import math
import re
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F


def tiny_llama(layers=2, hidden=16, vocab=64, seed=0):
    """A Llama causal LM (``model.layers.{i}``, head ``lm_head``), weights drawn after ``torch.manual_seed(seed)``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


def _module(**children) -> nn.Module:
    m = nn.Module()
    for name, child in children.items():
        m.add_module(name, child)
    return m


class FakeBertClassifier(nn.Module):
    """The parameters and module names of ``BertForSequenceClassification`` (``bert.encoder.layer.{i}``
    blocks with ``attention.self.query`` / ``key`` / ``value``, a ``classifier`` head), without a forward."""

    def __init__(self, num_labels=3, layers=3, hidden=16, vocab=50, positions=32):
        super().__init__()
        h, i = hidden, 2 * hidden
        self.config = SimpleNamespace(num_hidden_layers=layers, hidden_size=h, intermediate_size=i,
                                      num_labels=num_labels)

        def block():
            return _module(
                attention=_module(self=_module(query=nn.Linear(h, h), key=nn.Linear(h, h), value=nn.Linear(h, h)),
                                  output=_module(dense=nn.Linear(h, h), LayerNorm=nn.LayerNorm(h))),
                intermediate=_module(dense=nn.Linear(h, i)),
                output=_module(dense=nn.Linear(i, h), LayerNorm=nn.LayerNorm(h)))

        self.bert = _module(
            embeddings=_module(word_embeddings=nn.Embedding(vocab, h), position_embeddings=nn.Embedding(positions, h),
                               token_type_embeddings=nn.Embedding(2, h), LayerNorm=nn.LayerNorm(h)),
            encoder=_module(layer=nn.ModuleList([block() for _ in range(layers)])),
            pooler=_module(dense=nn.Linear(h, h)))
        self.classifier = nn.Linear(h, num_labels)

    def get_output_embeddings(self):
        return None


def fake_bert(num_labels=3, layers=3, hidden=16, seed=0):
    """``FakeBertClassifier``, weights drawn after ``torch.manual_seed(seed)``: the parameter names and sizes of a
    3-block, hidden-16 ``BertForSequenceClassification``."""
    torch.manual_seed(seed)
    return FakeBertClassifier(num_labels, layers, hidden).eval()


class CausalLMOutput:
    """``out.logits`` (1, T, V) and the new cache (``out.cache``, also ``out.past_key_values``);
    ``out[0]`` is the logits."""

    def __init__(self, logits, cache):
        self.logits, self.cache, self.past_key_values = logits, cache, cache

    def __getitem__(self, i):
        return (self.logits, self.cache)[i] if isinstance(i, int) else getattr(self, i)


class FakeCausalLM(nn.Module):
    """A small causal transformer with a key/value cache and Llama's module names
    (``model.layers.{i}.self_attn.q_proj``..., ``lm_head``), learned positions instead of rotary ones.
    ``cache``: one (keys, values) pair per block, each (1, t, H)."""

    def __init__(self, layers=2, hidden=16, vocab=64, positions=128):
        super().__init__()
        h = hidden
        self.config = SimpleNamespace(num_hidden_layers=layers, hidden_size=h, vocab_size=vocab)
        def block():
            return _module(
                self_attn=_module(q_proj=nn.Linear(h, h, bias=False), k_proj=nn.Linear(h, h, bias=False),
                                  v_proj=nn.Linear(h, h, bias=False), o_proj=nn.Linear(h, h, bias=False)),
                mlp=_module(up_proj=nn.Linear(h, 2 * h, bias=False), down_proj=nn.Linear(2 * h, h, bias=False)),
                input_layernorm=nn.LayerNorm(h), post_attention_layernorm=nn.LayerNorm(h))

        self.model = _module(embed_tokens=nn.Embedding(vocab, h), embed_positions=nn.Embedding(positions, h),
                             layers=nn.ModuleList([block() for _ in range(layers)]), norm=nn.LayerNorm(h))
        self.lm_head = nn.Linear(h, vocab, bias=False)

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, cache=None, past_key_values=None, use_cache=None, **_):
        cache = cache if cache is not None else past_key_values
        start = 0 if not cache else cache[0][0].shape[1]
        T = input_ids.shape[1]
        x = self.model.embed_tokens(input_ids) + self.model.embed_positions(torch.arange(start, start + T))
        new_cache = []
        for i, block in enumerate(self.model.layers):
            attn, h = block.self_attn, block.input_layernorm(x)
            q, k, v = attn.q_proj(h), attn.k_proj(h), attn.v_proj(h)
            if cache:
                k, v = torch.cat([cache[i][0], k], 1), torch.cat([cache[i][1], v], 1)
            new_cache.append((k, v))
            scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (1, T, start + T)
            future = torch.arange(start + T)[None, :] > torch.arange(start, start + T)[:, None]
            x = x + attn.o_proj(scores.masked_fill(future, float("-inf")).softmax(-1) @ v)
            x = x + block.mlp.down_proj(F.gelu(block.mlp.up_proj(block.post_attention_layernorm(x))))
        logits = self.lm_head(self.model.norm(x))
        return CausalLMOutput(logits, tuple(new_cache) if use_cache else None)


def fake_lm(layers=2, hidden=16, vocab=64, seed=0):
    """``FakeCausalLM``, weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return FakeCausalLM(layers, hidden, vocab).eval()


# Word ids are fixed (2 + position here), so they do not depend on the order your code tokenizes in.
WORDS = "the cat sat dog ran far away a b c d e f g h i j k x y z w v u".split()


class Encoding(dict):
    """What the tokenizer returns: ``enc["input_ids"]`` or ``enc.input_ids``, like a Hugging Face BatchEncoding."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class WordTokenizer:
    """A stand-in for a Hugging Face tokenizer: one token per whitespace-separated word (``WORDS``), and the
    EOS text "</s>" is a token of its own. pad = 0, eos = 1. Call it on a string or a list of strings
    (``tok(text, add_special_tokens=False)["input_ids"]``), or use ``tok.encode(text, add_special_tokens=False)``.
    With ``add_bos=True`` it starts every text with BOS (id 99) unless ``add_special_tokens=False``, as
    Llama's tokenizer does; otherwise it adds no special tokens either way."""

    pad_token, eos_token, bos_token = "<pad>", "</s>", "<s>"
    pad_token_id, eos_token_id, bos_token_id = 0, 1, 99

    def __init__(self, words=WORDS, add_bos=False):
        self.vocab = {self.pad_token: 0, self.eos_token: 1, **{w: i + 2 for i, w in enumerate(words)}}
        self.add_bos = add_bos

    def encode(self, text, add_special_tokens=True, **_):
        pieces = re.findall(r"</s>|<pad>|(?:(?!</s>|<pad>)\S)+", text)
        unknown = [p for p in pieces if p not in self.vocab]
        if unknown:
            raise KeyError(f"WordTokenizer: unknown words {unknown}")
        return [self.bos_token_id] * (self.add_bos and add_special_tokens) + [self.vocab[p] for p in pieces]

    def __call__(self, text, add_special_tokens=True, **_):
        if isinstance(text, (list, tuple)):
            return Encoding(input_ids=[self.encode(t, add_special_tokens) for t in text])
        return Encoding(input_ids=self.encode(text, add_special_tokens))
