"""The plate detector: a tiny fully-convolutional net giving a plate-centre heatmap and box size.

Input: BGR scenes, (N, 3, H, W) float in [0, 1], H and W multiples of 32 (a frame letterboxed to
a long side of about 384). A strided conv backbone (stride 32) and a top-down path bring
features back to stride 4; the head gives, per stride-4 cell, the logit of a plate centre there
and the log of the plate's box width and height in cells: (N, 3, H/4, W/4). The exported ONNX
applies the sigmoid to channel 0 (`edge.recognition.plate_detect.decode` reads it).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STRIDE = 4  # input pixels per output cell


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PlateDetector(nn.Module):
    """Backbone to stride 32, top-down merge to stride 4, heatmap + size head."""

    def __init__(self, widths: tuple[int, ...] = (12, 16, 32, 48, 64)) -> None:
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.stem = nn.Sequential(_conv(3, w0, 2), _conv(w0, w1, 2), _conv(w1, w1))  # /4
        self.s8 = nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2))
        self.s16 = nn.Sequential(_conv(w2, w3, 2), _conv(w3, w3))
        self.s32 = nn.Sequential(_conv(w3, w4, 2), _conv(w4, w4))
        self.lat16 = nn.Conv2d(w3, w4, 1)
        self.top16 = _conv(w4, w2)
        self.lat8 = nn.Conv2d(w2, w2, 1)
        self.top8 = _conv(w2, w1)
        self.lat4 = nn.Conv2d(w1, w1, 1)
        self.head = nn.Sequential(_conv(w1, w1), nn.Conv2d(w1, 3, 1))
        nn.init.constant_(self.head[-1].bias, 0.0)
        with torch.no_grad():
            self.head[-1].bias[0] = -4.0  # centres are rare: start near p = 0.02

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, H/4, W/4): centre logit, log width, log height."""
        x = x - 0.5
        c4 = self.stem(x)
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        p16 = self.top16(self.lat16(c16) + F.interpolate(c32, scale_factor=2.0, mode="nearest"))
        p8 = self.top8(self.lat8(c8) + F.interpolate(p16, scale_factor=2.0, mode="nearest"))
        p4 = self.lat4(c4) + F.interpolate(p8, scale_factor=2.0, mode="nearest")
        return self.head(p4)


class Exported(nn.Module):
    """What the ONNX holds: the detector with the sigmoid on the heatmap channel."""

    def __init__(self, model: PlateDetector) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> (N, 3, H/4, W/4): centre probability, log w, log h."""
        out = self.model(x)
        return torch.cat([torch.sigmoid(out[:, :1]), out[:, 1:]], dim=1)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
