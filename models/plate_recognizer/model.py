"""The plate recognizer: a small CNN + transformer encoder with a CTC head.

Input: grey crops, (N, 1, 64, 192) float in [0, 1] (any plate stretched to that size, both rows
of a 2-row plate in the one image). The conv stem brings the feature map to height 2 and width
48; the two rows of features are laid end to end (top row's 48 columns, then the bottom row's),
mixed by a small transformer encoder, and a linear head gives per-frame class probabilities:
(N, T=96, 1 + len(charset)), column 0 the CTC blank — the matrix `edge.recognition.grammar.decode`
reads. A 1-row plate may emit its characters in either half.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, stride: tuple[int, int] = (1, 1)) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlateRecognizer(nn.Module):
    """CNN stem (64x192 -> 2x48) + transformer encoder over 96 frames + CTC head."""

    def __init__(self, num_classes: int, width: int = 128, layers: int = 2, heads: int = 4,
                 input_hw: tuple[int, int] = (64, 192)) -> None:
        super().__init__()
        self.input_hw = input_hw
        self.stem = nn.Sequential(
            _conv(1, 24, (2, 2)),  # 32 x 96
            _conv(24, 48, (2, 2)),  # 16 x 48
            _conv(48, 64, (2, 1)),  # 8 x 48
            _conv(64, 64),
            _conv(64, 96, (2, 1)),  # 4 x 48
            _conv(96, 96),
            _conv(96, width, (2, 1)),  # 2 x 48
        )
        frames = 2 * input_hw[1] // 4
        self.pos = nn.Parameter(torch.zeros(1, frames, width))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, dim_feedforward=2 * width, dropout=0.1,
                                           activation="relu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, num_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) grey in [0, 1] -> (N, T, C) logits."""
        f = self.stem(x - 0.5)  # (N, C, 2, W/4)
        n, c, h, w = f.shape
        seq = f.permute(0, 2, 3, 1).reshape(n, h * w, c)  # top row's columns, then bottom's
        seq = self.encoder(seq + self.pos)
        return self.head(self.norm(seq))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) grey in [0, 1] -> (N, T, C) probabilities (softmax over C)."""
        return self.logits(x).softmax(dim=-1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
