"""Question 1: LoRA (lora.py) and choosing what to fine-tune (finetune.parameters_to_finetune)."""

import torch
from torch import nn

from cs330.grading import graded, reference_module, student_module
from tiny import tiny_bert, tiny_llama


def seeded_linear(d_in=6, d_out=4, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(d_in, d_out).double()


@graded("1a-0-basic", points=1)
def test_lora_starts_as_the_base_layer():
    """LoRALinear: A (r, d_in), B (d_out, r) zeros, base frozen, output equal to the base layer at init."""
    lora = student_module("lora")
    base = seeded_linear()
    layer = lora.LoRALinear(base, rank=3, generator=torch.Generator().manual_seed(0))
    assert tuple(layer.lora_A.shape) == (3, 6), f"lora_A should be (rank, d_in) = (3, 6), got {tuple(layer.lora_A.shape)}"
    assert tuple(layer.lora_B.shape) == (4, 3), f"lora_B should be (d_out, rank) = (4, 3), got {tuple(layer.lora_B.shape)}"
    assert torch.count_nonzero(layer.lora_B) == 0, "lora_B must start at zero so the model starts as the pre-trained one"
    assert torch.count_nonzero(layer.lora_A) > 0, "lora_A must start random (otherwise B gets no gradient)"
    assert not any(p.requires_grad for p in base.parameters()), "the base layer's weight and bias must be frozen"
    assert layer.lora_A.requires_grad and layer.lora_B.requires_grad, "A and B are the trainable parameters"
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    out = layer(x)
    assert out.shape == (2, 5, 4), f"expected output shape (2, 5, 4), got {tuple(out.shape)}"
    assert torch.allclose(out, base(x)), "at initialisation the output must equal the base layer's"


@graded("1a-1-basic", points=2)
def test_lora_equals_merged_weight():
    """With non-zero A and B, LoRALinear(x) = x (W + (alpha/r) B A)^T + b."""
    lora = student_module("lora")
    base = seeded_linear(seed=1)
    layer = lora.LoRALinear(base, rank=2, alpha=5.0)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        layer.lora_A.copy_(torch.randn(2, 6, generator=g, dtype=torch.float64))
        layer.lora_B.copy_(torch.randn(4, 2, generator=g, dtype=torch.float64))
    x = torch.randn(7, 6, generator=g, dtype=torch.float64)
    weight = base.weight + (5.0 / 2) * layer.lora_B @ layer.lora_A
    expected = x @ weight.T + base.bias
    assert torch.allclose(layer(x), expected, atol=1e-12), "output is not x (W + alpha/r * B A)^T + b"
    layer(x).sum().backward()
    assert layer.lora_A.grad is not None and layer.lora_B.grad is not None, "A and B must receive gradients"


@graded("1a-2-hidden", points=1)
def test_lora_init_matches_reference():
    """A's initialisation (std 1/sqrt(d_in), drawn with the generator) matches the reference."""
    layer = student_module("lora").LoRALinear(seeded_linear(d_in=40, d_out=8), 4, generator=torch.Generator().manual_seed(3))
    # BEGIN HIDDEN
    ref = reference_module("lora").LoRALinear(seeded_linear(d_in=40, d_out=8), 4, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(layer.lora_A, ref.lora_A), "lora_A differs from the reference initialisation"
    # END HIDDEN


def bert_counts(hidden=16, layers=3, labels=3):
    """Parameter counts of tiny_bert from the architecture's formulas."""
    h, i = hidden, 2 * hidden
    block = 4 * (h * h + h) + 2 * (2 * h) + (h * i + i) + (i * h + h)  # q, k, v, o; two LayerNorms; FFN
    head = h * labels + labels
    return block, head


@graded("1b-0-basic", points=2)
def test_parameter_counts_per_mode_on_tiny_bert():
    """parameters_to_finetune on a tiny BERT classifier: trainable counts per mode (head always trained)."""
    finetune = student_module("finetune")
    block, head = bert_counts()
    lora4 = 3 * 2 * 4 * (16 + 16)  # 3 layers x (query, value) x r (d_in + d_out)
    expected = {"head": head, "first": block + head, "middle": block + head, "last": block + head, "lora4": lora4 + head}
    for mode, count in expected.items():
        model = tiny_bert()
        params = finetune.parameters_to_finetune(model, mode)
        got = sum(p.numel() for p in params)
        assert got == count, f"mode {mode!r}: expected {count} trainable parameters, got {got}"
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert trainable == count, f"mode {mode!r}: {trainable} parameters have requires_grad=True, expected {count}"
    model = tiny_bert()
    total = sum(p.numel() for p in model.parameters())
    assert sum(p.numel() for p in finetune.parameters_to_finetune(model, "all")) == total, "mode 'all' trains everything"


@graded("1b-1-basic", points=1)
def test_blocks_are_the_right_ones():
    """first / middle / last pick transformer blocks 0, n//2 and n-1 (checked on a 3-layer BERT and a 2-layer Llama)."""
    finetune = student_module("finetune")
    for mode, index in (("first", 0), ("middle", 1), ("last", 2)):
        model = tiny_bert()
        finetune.parameters_to_finetune(model, mode)
        trained = {n.split(".")[3] for n, p in model.named_parameters() if p.requires_grad and ".layer." in n}
        assert trained == {str(index)}, f"mode {mode!r} should train block {index} of 3, trained blocks {sorted(trained)}"
    model = tiny_llama()
    finetune.parameters_to_finetune(model, "last")
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith("model.layers.1.") for n in trained), \
        f"on a causal LM (no classifier head) 'last' trains only the last block; trained {sorted(trained)[:4]}..."


@graded("1b-2-hidden", points=2)
def test_modes_match_reference():
    """The trainable parameter names for every mode match the reference (BERT and Llama)."""
    finetune = student_module("finetune")
    # BEGIN HIDDEN
    ref = reference_module("finetune")
    for make in (tiny_bert, tiny_llama):
        for mode in ("head", "first", "middle", "last", "all", "lora4", "lora16"):
            a, b = make(), make()
            finetune.parameters_to_finetune(a, mode)
            ref.parameters_to_finetune(b, mode)
            names_a = sorted(n for n, p in a.named_parameters() if p.requires_grad)
            names_b = sorted(n for n, p in b.named_parameters() if p.requires_grad)
            assert names_a == names_b, f"{make.__name__}, mode {mode!r}: trainable parameters differ from the reference"
    # END HIDDEN


@graded("1b-3-basic", points=1, timeout=90)
def test_counts_on_real_minilm():
    """On the real all-MiniLM-L6-v2 (22.7M parameters with a 5-way head), head-only trains 1,925 and LoRA-4 39k parameters."""
    from cs330.models.pretrained import load_classifier

    finetune = student_module("finetune")
    _, model = load_classifier("all-minilm-l6-v2", num_labels=5)
    assert sum(p.numel() for p in model.parameters()) == 22_715_141
    assert sum(p.numel() for p in finetune.parameters_to_finetune(model, "head")) == 384 * 5 + 5
    _, model = load_classifier("all-minilm-l6-v2", num_labels=5)
    assert sum(p.numel() for p in finetune.parameters_to_finetune(model, "lora4")) == 6 * 2 * 4 * (384 + 384) + 1925
