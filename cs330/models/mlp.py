"""A small fully connected regressor, the network of the MAML sinusoid experiments (Finn et al., 2017).

    x (..., n, in_features) -> Linear -> ReLU -> ... -> Linear -> (..., n, out_features)   (or another activation)

Parameter names: ``body.{2i}.weight / bias`` for the hidden layers, ``head.weight / bias`` for the last
layer (what a head-only inner loop adapts). A plain ``nn.Module`` with no buffers, so it runs under
``torch.func.functional_call`` with any parameter dict, and leading batch dims pass through.
"""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """MLP(in_features, out_features, hidden=(40, 40)): ReLU hidden layers (or ``activation``), a linear head."""

    def __init__(self, in_features: int = 1, out_features: int = 1, hidden: tuple[int, ...] = (40, 40),
                 activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        layers, width = [], in_features
        for h in hidden:
            layers += [nn.Linear(width, h), activation()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, out_features)
        self.feature_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
