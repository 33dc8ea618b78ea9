"""Question 1: LoRA (lora.py) and choosing what to fine-tune (finetune.parameters_to_finetune).

``student`` is your code: in the autograder it runs in a separate sandboxed process, and what comes
back from it is data (tensors, numbers, names). Layers and models are built there by the probes of
``probes.py``; ``reference`` (hidden checks only) runs the same probes on the reference solution.
"""

import math

import torch

import probes
from cs330.grading import expect_tensor, graded


def base_layer(d_in=6, d_out=4, seed=0):
    """float32 (weight (d_out, d_in), bias (d_out,)) of a seeded linear layer."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(d_out, d_in, generator=g) / math.sqrt(d_in), torch.randn(d_out, generator=g)


def lora_init(student, d_in=6, d_out=4, rank=3, alpha=16.0, seed=0):
    weight, bias = base_layer(d_in, d_out)
    x = torch.randn(2, 5, d_in, generator=torch.Generator().manual_seed(9))
    return student.probe(probes.lora_init, weight, bias, rank, alpha, seed, x)


def parameter(built, name, shape):
    assert name in built["params"], (
        f"LoRALinear has no parameter {name!r}: make lora_A and lora_B nn.Parameter attributes "
        f"(it has {sorted(built['params'])})"
    )
    return expect_tensor(built["params"][name], f"LoRALinear.{name}", shape)


@graded("1a-0-basic", points=1, timeout=30)
def test_lora_parameters(student):
    """lora_A (rank, d_in) and lora_B (d_out, rank) are trainable nn.Parameters of the layer."""
    built = lora_init(student, d_in=6, d_out=4, rank=3)
    parameter(built, "lora_A", (3, 6))
    parameter(built, "lora_B", (4, 3))
    assert all(built["is_parameter"].values()), (
        "lora_A and lora_B must be nn.Parameter (so the optimiser and .parameters() see them)"
    )
    assert built["requires_grad"]["lora_A"] and built["requires_grad"]["lora_B"], (
        "lora_A and lora_B are the trainable parameters (requires_grad=True)"
    )


@graded("1a-1-basic", points=1, timeout=30)
def test_lora_starts_as_the_base_layer(student):
    """B starts at zero, so at initialisation the layer's output equals the base layer's."""
    built = lora_init(student)
    B = parameter(built, "lora_B", (4, 3))
    assert torch.count_nonzero(B) == 0, (
        "lora_B must start at zero, so that the adapted model starts as the pre-trained one"
    )
    out = expect_tensor(built["out"], "LoRALinear.forward", (2, 5, 4))
    assert torch.allclose(out, built["base_out"], atol=1e-6), (
        "at initialisation the output must equal the base layer's output"
    )


@graded("1a-2-basic", points=1, timeout=30)
def test_lora_A_init_scale(student):
    """A starts random with mean 0 and standard deviation 1/sqrt(d_in)."""
    d_in, rank = 256, 16
    built = lora_init(student, d_in=d_in, d_out=8, rank=rank)
    A = parameter(built, "lora_A", (rank, d_in)).double()
    std, mean = A.std().item() * math.sqrt(d_in), A.mean().item() * math.sqrt(d_in)
    assert std > 0, "lora_A must start random: with A = 0, B gets no gradient and the adapter never learns"
    assert 0.9 < std < 1.1, (f"lora_A's standard deviation is {std:.2f}/sqrt(d_in), expected 1/sqrt(d_in) "
                             "(e.g. torch.randn(..., generator=generator) / sqrt(d_in); "
                             "nn.init.kaiming_uniform_(a=sqrt(5)) gives 0.58/sqrt(d_in))")
    assert abs(mean) < 0.1, f"lora_A's mean is {mean:.2f}/sqrt(d_in), expected 0"


@graded("1a-3-basic", points=1, timeout=30)
def test_lora_A_drawn_from_the_generator(student):
    """A is drawn with the ``generator`` argument only: the same seed gives the same A whatever the global seed;
    another seed gives another A."""
    def draw(seed, global_seed):
        return expect_tensor(student.probe(probes.lora_A_draws, 8, 4, 2, seed, global_seed), "lora_A", (2, 8))

    a, b, c = draw(1, 0), draw(1, 5), draw(2, 0)
    assert torch.equal(a, b), (
        "lora_A changed with torch.manual_seed although the generator was seeded the same: "
        "draw A with the `generator` argument (torch.randn(..., generator=generator)), not the global RNG"
    )
    assert not torch.equal(a, c), "two different generator seeds gave the same lora_A"


def scale_hint(ratio, alpha, rank):
    for value, what in ((alpha, "alpha"), (1 / rank, "1/r"), (1.0, "1 (no scale)"), (rank / alpha, "r/alpha"),
                        (alpha * rank, "alpha*r")):
        if math.isclose(ratio, value, rel_tol=1e-3):
            return f"the low-rank update is scaled by {what}, but it must be scaled by alpha / r = {alpha / rank:g}"
    return (f"the low-rank part of the output is {ratio:.4g} times x A^T B^T; "
            f"expected alpha / r = {alpha / rank:g} times")


def forward_case(seed=1, d_in=6, d_out=4, rank=2, alpha=5.0, lead=(7,)):
    g = torch.Generator().manual_seed(seed)
    weight, bias = base_layer(d_in, d_out, seed)
    A, B = torch.randn(rank, d_in, generator=g), torch.randn(d_out, rank, generator=g)
    x, grad_out = torch.randn(*lead, d_in, generator=g), torch.randn(*lead, d_out, generator=g)
    return weight, bias, A, B, alpha, x, grad_out


def check_forward(got, weight, bias, A, B, alpha, x, grad_out):
    rank = A.shape[0]
    out = expect_tensor(got["out"], "LoRALinear.forward", tuple(x.shape[:-1]) + (weight.shape[0],))
    base = (x.double() @ weight.double().T + bias.double())
    update = x.double() @ A.double().T @ B.double().T
    if not torch.allclose(out.double(), base + alpha / rank * update, atol=1e-5, rtol=1e-4):
        delta = out.double() - base
        ratio = float((delta * update).sum() / (update * update).sum())
        raise AssertionError(f"output is not x W^T + b + (alpha/r) x A^T B^T: {scale_hint(ratio, alpha, rank)}")


@graded("1a-4-basic", points=2, timeout=30)
def test_lora_forward(student):
    """With non-zero A and B, LoRALinear(x) = x W^T + b + (alpha/r) x A^T B^T (float32, to 1e-5)."""
    case = forward_case()
    check_forward(student.probe(probes.lora_forward, *case), *case)


@graded("1a-5-basic", points=1, timeout=30)
def test_lora_gradients(student):
    """A and B receive the gradients of the forward formula (nothing detached)."""
    weight, bias, A, B, alpha, x, grad_out = case = forward_case(seed=2)
    got = student.probe(probes.lora_forward, *case)
    scale = alpha / A.shape[0]
    for name, want in (("A", scale * (grad_out @ B).T @ x), ("B", scale * grad_out.T @ (x @ A.T))):
        grad = got[f"grad_{name}"]
        assert grad is not None, f"lora_{name} received no gradient: is it detached, or not used in forward?"
        expect_tensor(grad, f"lora_{name}.grad", tuple(want.shape))
        assert torch.allclose(grad, want, atol=1e-4, rtol=1e-4), (
            f"lora_{name}'s gradient is not the one of (alpha/r) x A^T B^T"
        )


@graded("1a-6-hidden", points=1, timeout=30)
def test_lora_forward_any_leading_dims(student):
    """The formula holds for input of shape (..., d_in) with other sizes and rank
    (here (2, 3, 5, 12), rank 5, alpha 3)."""
    case = forward_case(seed=3, d_in=12, d_out=9, rank=5, alpha=3.0, lead=(2, 3, 5))
    got = student.probe(probes.lora_forward, *case)
    # BEGIN HIDDEN
    check_forward(got, *case)
    # END HIDDEN


@graded("1a-7-hidden", points=0.5, timeout=30)
def test_lora_follows_the_base_dtype(student):
    """A, B and the output take the base layer's dtype (float64 here)."""
    got = student.probe(probes.lora_dtype, "float64")
    # BEGIN HIDDEN
    assert got == {"A": "torch.float64", "B": "torch.float64", "out": "torch.float64"}, \
        f"on a float64 base layer, dtypes are {got}: create A and B with the base weight's dtype (and device)"
    # END HIDDEN


# ----------------------------------------------------------------------------------------------
# 1b: parameters_to_finetune


def selection(student, mode, arch="bert"):
    got = student.probe(probes.finetune_selection, arch, mode)
    assert "?" not in got["returned"], (
        f"mode {mode!r}: parameters_to_finetune returned tensors that are not parameters of the model"
    )
    return got


def block_names(sizes, index):
    return {n for n in sizes if n.startswith(f"bert.encoder.layer.{index}.")}


CLASSIFIER = {"classifier.weight", "classifier.bias"}


@graded("1b-0-basic", points=1, timeout=30)
def test_head_mode(student):
    """Mode "head" returns the output head only (a classifier's ``classifier``)."""
    got = selection(student, "head")
    assert set(got["returned"]) == CLASSIFIER, (
        f"mode 'head' returned {sorted(set(got['returned']))}; expected only the classifier head"
    )


@graded("1b-1-basic", points=1, timeout=30)
def test_block_modes(student):
    """Modes "first" / "middle" / "last" return block 0, n // 2 and n - 1 (all of its parameters; 3 blocks here),
    besides the head."""
    for mode, index in (("first", 0), ("middle", 1), ("last", 2)):
        got = selection(student, mode)
        blocks = sorted({n.split(".")[3] for n in got["returned"] if n.startswith("bert.encoder.layer.")})
        assert blocks == [str(index)], f"mode {mode!r} should train block {index} of 3, it trains blocks {blocks}"
        missing = block_names(got["sizes"], index) - set(got["returned"])
        assert not missing, f"mode {mode!r}: block {index}'s {sorted(missing)[:3]}... are not returned"
        other = set(got["returned"]) - block_names(got["sizes"], index) - CLASSIFIER
        assert not other, f"mode {mode!r} also returns {sorted(other)[:3]}, outside the block"


@graded("1b-2-basic", points=0.5, timeout=30)
def test_all_mode(student):
    """Mode "all" returns every parameter of the model."""
    got = selection(student, "all")
    assert set(got["returned"]) == set(got["sizes"]), "mode 'all' must return every parameter"


@graded("1b-3-basic", points=1, timeout=30)
def test_lora_mode(student):
    """Mode "lora4" returns only the adapters (lora_A, lora_B) on every attention query and value projection,
    3 x 2 x 4 x (16 + 16) numbers on the tiny BERT, besides the head."""
    got = selection(student, "lora4")
    adapters = {n for n in got["returned"] if n.split(".")[-1] in ("lora_A", "lora_B")}
    other = set(got["returned"]) - adapters - CLASSIFIER
    assert not other, f"mode 'lora4' must train only the adapters (and the head); it also returns {sorted(other)[:3]}"
    layers = {n.rsplit(".", 1)[0] for n in adapters}
    expected = {f"bert.encoder.layer.{i}.attention.self.{p}" for i in range(3) for p in ("query", "value")}
    assert layers == expected, (
        f"adapters on {sorted(layers)}; expected the query and value projections of every block (add_lora)"
    )
    numel = sum(got["sizes"][n] for n in adapters)
    assert numel == 3 * 2 * 4 * (16 + 16), f"{numel} adapter parameters, expected 3 x 2 x 4 x (16 + 16) = 768 (rank 4)"


@graded("1b-4-basic", points=1, timeout=30)
def test_classifier_head_trained_in_every_mode(student):
    """A classifier's new, random head (``model.classifier``) is returned in every mode."""
    for mode in ("first", "middle", "last", "lora4"):
        got = selection(student, mode)
        assert CLASSIFIER <= set(got["returned"]), (
            f"mode {mode!r}: the classifier head is new and random, so train it in every mode"
        )


@graded("1b-5-basic", points=1, timeout=30)
def test_everything_else_is_frozen(student):
    """Exactly the returned parameters have requires_grad=True, each returned once."""
    for mode in ("head", "first", "last", "all", "lora4"):
        got = selection(student, mode)
        returned = got["returned"]
        assert len(returned) == len(set(returned)), (
            f"mode {mode!r}: a parameter is returned twice (the optimiser would step it twice)"
        )
        frozen_missing = sorted(set(got["requires_grad"]) - set(returned))
        assert not frozen_missing, (
            f"mode {mode!r}: {frozen_missing[:3]} still have requires_grad=True: freeze the rest of the model"
        )
        not_trainable = sorted(set(returned) - set(got["requires_grad"]))
        assert not not_trainable, f"mode {mode!r}: returned {not_trainable[:3]} with requires_grad=False"


@graded("1b-6-hidden", points=1, timeout=30)
def test_modes_on_a_causal_lm(student, reference):
    """On a causal LM (Llama's layout: no classifier), every mode returns the same parameters as the reference
    (head: ``lm_head``; blocks of ``model.layers``; LoRA on q_proj / v_proj)."""
    got = {mode: sorted(selection(student, mode, "llama")["returned"])
           for mode in ("head", "first", "middle", "last", "lora4")}
    # BEGIN HIDDEN
    for mode, names in got.items():
        want = sorted(reference.probe(probes.finetune_selection, "llama", mode)["returned"])
        assert names == want, f"tiny Llama, mode {mode!r}: returned {names[:3]}..., expected {want[:3]}..."
    # END HIDDEN


@graded("1b-7-basic", points=1, timeout=90)
def test_counts_on_real_minilm(student):
    """On the real all-MiniLM-L6-v2 with a 5-way head (22,715,141 parameters), "head" returns 1,925 parameters
    and "lora4" 38,789 (6 blocks x 2 projections x 4 x (384 + 384), plus the head)."""
    counts = student.probe(probes.minilm_counts)
    assert counts["total"] == 22_715_141, (
        f"the installed all-MiniLM-L6-v2 has {counts['total']} parameters, not 22,715,141: reinstall it (README)"
    )
    assert counts["head"] == 384 * 5 + 5, f"mode 'head': {counts['head']} parameters, expected 1,925"
    assert counts["lora4"] == 6 * 2 * 4 * (384 + 384) + 1925, (
        f"mode 'lora4': {counts['lora4']} parameters, expected 38,789"
    )
