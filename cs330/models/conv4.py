"""The standard 4-block convolutional network of few-shot learning (Vinyals et al. 2016; Finn et al. 2017).

Each block: 3x3 conv (``hidden`` channels, padding 1; no bias before a norm, which would cancel it) -> normalisation
-> ReLU -> 2x2 max-pool.
28x28 inputs end as (hidden, 1, 1), i.e. ``hidden`` features; an optional linear head maps them to
``out_features`` logits (MAML); without it the network is an embedding (prototypical networks).

Inputs are (n, C, H, W) or (T, n, C, H, W): a leading task dimension T is allowed, and every task is
normalised with its own statistics, exactly as if each were run on its own (or under ``vmap``).

Normalisation (``norm="batch"``, the default) is batch normalisation *with the statistics of the
current batch only*, written from plain tensor ops (``mean`` / ``var``) and holding no buffers:

    y = (x - mean) / sqrt(var + eps) * weight + bias,  mean and var over (examples, H, W) per channel

This is what MAML uses (statistics of the support / query set at hand; no running averages), it is a
pure function of (parameters, input), and its first and second derivatives are exact under
``vmap``. (``nn.BatchNorm2d(track_running_stats=False)`` computes the same values, but its fused
kernel's double-backward under ``vmap`` is off the per-task loop: 2e-4 relative on
second-order meta-gradients in a one-off float64 check with torch 2.14.1, against ~1e-15 here;
tests/test_models_conv4.py holds this module to 1e-10.)
``norm="instance"`` normalises each example over (H, W) alone; ``norm="none"`` skips it.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TaskNorm2d(nn.Module):
    """Batch norm from the current batch's statistics; (..., n, C, H, W) or (n, C, H, W). No buffers."""

    def __init__(self, channels: int, eps: float = 1e-5, per_example: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps, self.per_example = eps, per_example

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = (-2, -1) if self.per_example else (-4, -2, -1)  # (H, W) or (examples, H, W)
        var, mean = torch.var_mean(x, dims, correction=0, keepdim=True)  # biased variance, as batch norm
        scale = torch.rsqrt(var + self.eps) * self.weight[:, None, None]  # small: (..., 1, C, 1, 1)
        return x * scale + (self.bias[:, None, None] - mean * scale)  # two passes over x


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, norm: str):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=norm == "none")  # a norm cancels a conv bias
        self.norm = {"batch": lambda: TaskNorm2d(c_out), "instance": lambda: TaskNorm2d(c_out, per_example=True),
                     "none": nn.Identity}[norm]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (..., n, C, H, W)
        lead = x.shape[:-3]
        h = self.conv(x.reshape(-1, *x.shape[-3:]))
        h = self.norm(h.reshape(*lead, *h.shape[-3:]))  # statistics per task when there is a task dim
        h = F.max_pool2d(F.relu(h).reshape(-1, *h.shape[-3:]), 2)
        return h.reshape(*lead, *h.shape[-3:])


class Conv4(nn.Module):
    """Conv4 embedding + optional linear head.

    Args:
        out_features: logits per example (N for N-way MAML); None for an embedding network.
        in_channels, hidden, image_size: input channels, channels per block, input height = width.
        norm: "batch" (current-batch statistics), "instance" or "none".

    ``features(x)``: (..., n, C, H, W) -> (..., n, feature_dim); ``forward(x)``: -> (..., n, out_features)
    (the features when there is no head). Parameter names: ``blocks.{i}.conv.*``, ``blocks.{i}.norm.*``,
    ``head.*`` (what ANIL adapts).
    """

    def __init__(self, out_features: int | None = None, in_channels: int = 1, hidden: int = 64,
                 image_size: int = 28, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "instance", "none"):
            raise ValueError(f"norm must be 'batch', 'instance' or 'none', got {norm!r}")
        self.blocks = nn.Sequential(*(ConvBlock(in_channels if i == 0 else hidden, hidden, norm) for i in range(4)))
        size = image_size
        for _ in range(4):
            size //= 2
        self.feature_dim = hidden * size * size
        self.head = nn.Linear(self.feature_dim, out_features) if out_features else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.features(x)
        return self.head(z) if self.head is not None else z
