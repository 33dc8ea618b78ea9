"""Low-rank adaptation (LoRA, Hu et al. 2021) of the linear layers of a pre-trained transformer.

A frozen linear layer W (d_out, d_in) with bias b gets a trainable low-rank update:

    y = x W^T + b + (alpha / r) * x A^T B^T          A: (r, d_in), B: (d_out, r)

B starts at zero, so the adapted model equals the pre-trained one before training; A starts random
(mean 0, standard deviation 1/sqrt(d_in), e.g. Gaussian) so that B receives a gradient at the first
step. Only A and B are trained: r * (d_in + d_out) parameters instead of d_in * d_out. All randomness
comes from the ``generator`` argument (never the global random state).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a scaled low-rank update; see the module docstring.

    Args:
        base: the pre-trained layer; its parameters are frozen (requires_grad=False).
        rank: r. alpha: the update is scaled by alpha / r (so changing r does not change the step size).
        generator: A is drawn with it (the same seed gives the same A, whatever ``torch.manual_seed`` was).
    Attributes: ``lora_A`` (r, d_in) and ``lora_B`` (d_out, r), ``nn.Parameter``s with the base weight's
    dtype and device. Shapes: (..., d_in) -> (..., d_out), like ``base``.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 16.0, generator: torch.Generator | None = None):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.base, self.rank, self.scale = base, rank, alpha / rank
        for p in base.parameters():
            p.requires_grad_(False)
        d_out, d_in = base.weight.shape
        kw = dict(dtype=base.weight.dtype, device=base.weight.device)
        # BEGIN SOLUTION hint="A: (rank, d_in) Gaussian with std 1/sqrt(d_in), drawn with `generator`; B: (d_out, \
        #     rank) zeros; both nn.Parameter"
        a = torch.randn(rank, d_in, generator=generator, dtype=kw["dtype"]) / math.sqrt(d_in)
        self.lora_A = nn.Parameter(a.to(kw["device"]))
        self.lora_B = nn.Parameter(torch.zeros(d_out, rank, **kw))
        # END SOLUTION

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION hint="base(x) plus scale times x through A then B (never form the d_out x d_in product)"
        return self.base(x) + self.scale * ((x @ self.lora_A.T) @ self.lora_B.T)
        # END SOLUTION

    def merged_weight(self) -> torch.Tensor:
        """(d_out, d_in): W + scale * B @ A, the single matrix this layer is equivalent to."""
        return self.base.weight + self.scale * self.lora_B @ self.lora_A

    def extra_repr(self) -> str:
        return f"rank={self.rank}, scale={self.scale:g}"


# Which linear layers get an adapter: the attention query and value projections, as in the LoRA paper.
DEFAULT_TARGETS = ("query", "value", "q_proj", "v_proj")


def add_lora(model: nn.Module, rank: int, targets=DEFAULT_TARGETS, alpha: float = 16.0,
             seed: int = 0) -> list[LoRALinear]:
    """Replace every ``nn.Linear`` whose attribute name is in ``targets`` by a ``LoRALinear``, in place.

    BERT names its projections ``query``/``key``/``value``; Llama (SmolLM2) ``q_proj``/``k_proj``/``v_proj``.
    Returns the new LoRA layers, in module order. Raises ValueError when no layer matched.
    """
    generator = torch.Generator().manual_seed(seed)
    added = []
    for parent in list(model.modules()):
        for attr, child in list(parent.named_children()):
            if attr in targets and isinstance(child, nn.Linear):
                layer = LoRALinear(child, rank, alpha, generator)
                setattr(parent, attr, layer)
                added.append(layer)
    if not added:
        raise ValueError(f"no nn.Linear named one of {targets} in {type(model).__name__}")
    return added
