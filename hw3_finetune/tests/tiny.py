"""Tiny random transformers and a word-level tokenizer for fast, exact tests (no downloads)."""

import torch


def tiny_bert(num_labels=3, layers=3, hidden=16, seed=0):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=32, num_labels=num_labels)
    return BertForSequenceClassification(config).eval()


def tiny_llama(layers=2, hidden=16, vocab=64, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                         tie_word_embeddings=False)
    return LlamaForCausalLM(config).eval()


class WordTokenizer:
    """Splits on spaces; each new word gets the next id. eos = 1, pad = 0 (like a real tokenizer's fields)."""

    eos_token_id, pad_token_id = 1, 0

    def __init__(self):
        self.vocab = {}

    def __call__(self, text, add_special_tokens=True):
        ids = [self.vocab.setdefault(w, len(self.vocab) + 2) for w in text.split()]
        return {"input_ids": ids}
