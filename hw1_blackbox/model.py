"""HW1, part 2: a memory-augmented black-box meta-learner (Santoro et al., 2016, simplified).

The model reads a task as one sequence: the N*K support examples, each image concatenated with its
one-hot label, then the N query images with their labels replaced by zeros. From the sequence alone
it must predict the query labels: "learning" happens in the hidden state, not in the weights.

    input_images (B, K+1, N, 784), input_labels (B, K+1, N, N)  ->  predictions (B, K+1, N, N) logits

Variants (``model=``):

- ``"lstm"``         (the assignment) raw pixels + label -> LSTM(128) -> LSTM(N)
- ``"conv_lstm"``    a small conv net encodes each image to 64 features first, then the same two LSTMs
- ``"transformer"``  raw pixels + label -> linear(128) + learned positions -> 2-layer causal transformer -> linear(N)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MODELS = ("lstm", "conv_lstm", "transformer")


class ConvEncoder(nn.Module):
    """(..., 784) images -> (..., out_dim) features: two stride-2 conv blocks and a linear layer."""

    def __init__(self, out_dim: int = 64, image_size: int = 28):
        super().__init__()
        self.image_size = image_size
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Flatten(), nn.Linear(32 * ((image_size + 3) // 4) ** 2, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        z = self.net(x.reshape(-1, 1, self.image_size, self.image_size))
        return z.reshape(*lead, -1)


class MANN(nn.Module):
    """The black-box meta-learner. ``forward(images, labels)`` returns logits for every position;
    only the query row's are used (see ``loss_function``)."""

    def __init__(self, num_classes: int, samples_per_class: int, hidden_dim: int = 128, model: str = "lstm",
                 input_dim: int = 784):
        super().__init__()
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        self.num_classes, self.samples_per_class, self.model = num_classes, samples_per_class, model
        N = num_classes
        feature_dim = input_dim
        self.encoder = nn.Identity()
        if model == "conv_lstm":
            feature_dim = 64
            self.encoder = ConvEncoder(feature_dim, image_size=int(round(input_dim**0.5)))
        if model in ("lstm", "conv_lstm"):
            self.layer1 = nn.LSTM(feature_dim + N, hidden_dim, batch_first=True)
            self.layer2 = nn.LSTM(hidden_dim, N, batch_first=True)
            for lstm in (self.layer1, self.layer2):  # the course's initialisation
                nn.init.xavier_uniform_(lstm.weight_ih_l0)
                nn.init.zeros_(lstm.bias_hh_l0)
                nn.init.zeros_(lstm.bias_ih_l0)
        else:
            self.embed = nn.Linear(feature_dim + N, hidden_dim)
            self.pos = nn.Parameter(0.02 * torch.randn(1, 512, hidden_dim))
            layer = nn.TransformerEncoderLayer(hidden_dim, nhead=4, dim_feedforward=2 * hidden_dim, dropout=0.0,
                                               batch_first=True, norm_first=True)
            self.transformer = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
            self.head = nn.Linear(hidden_dim, N)

    def sequence_model(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) sequence -> (B, T, N) logits; position t sees positions <= t only."""
        if self.model == "transformer":
            T = x.shape[1]
            mask = nn.Transformer.generate_square_subsequent_mask(T, device=x.device)
            h = self.transformer(self.embed(x) + self.pos[:, :T], mask=mask, is_causal=True)
            return self.head(h)
        # BEGIN SOLUTION hint="run the two LSTM layers (self.layer1, then self.layer2) over the sequence"
        h, _ = self.layer1(x)
        out, _ = self.layer2(h)
        return out
        # END SOLUTION

    def forward(self, input_images: torch.Tensor, input_labels: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input_images: (B, K+1, N, 784) flattened images; row K is the query set.
            input_labels: (B, K+1, N, N) one-hot labels; the query row's must not reach the model.
        Returns:
            (B, K+1, N, N) logits, one prediction per position.
        """
        B, K1, N, _ = input_images.shape
        features = self.encoder(input_images)  # (B, K+1, N, F): the images themselves for "lstm"
        # BEGIN SOLUTION hint="zero the query labels, concatenate features and labels, flatten to a (B, (K+1)*N, F+N) \
        #     sequence, run self.sequence_model, reshape back"
        labels = torch.cat([input_labels[:, :-1], torch.zeros_like(input_labels[:, -1:])], dim=1)
        x = torch.cat([features, labels], dim=-1).reshape(B, K1 * N, -1)
        out = self.sequence_model(x)
        return out.reshape(B, K1, N, N)
        # END SOLUTION


def loss_function(preds: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the query predictions only.

    Args:
        preds: (B, K+1, N, N) logits from ``MANN.forward``.
        labels: (B, K+1, N, N) one-hot labels.
    Returns:
        a scalar: the cross-entropy of ``preds[:, -1]`` against ``labels[:, -1]``, averaged over the B*N queries.
    """
    # BEGIN SOLUTION hint="cross-entropy between the query row's logits and its labels (as class indices)"
    N = preds.shape[-1]
    return F.cross_entropy(preds[:, -1].reshape(-1, N), labels[:, -1].reshape(-1, N).argmax(dim=-1))
    # END SOLUTION


def query_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of query predictions that are right."""
    return (preds[:, -1].argmax(-1) == labels[:, -1].argmax(-1)).float().mean().item()
