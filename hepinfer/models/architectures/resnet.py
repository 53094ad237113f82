"""ResNet50 written by hand (PyPI's torchvision does not import beside torch 2.13 here).

He et al. 2016, bottleneck blocks [3, 4, 6, 3] with expansion 4, 7x7/2 stem and 3x3/2 max-pool,
global average pool, fc to the classes, softmax.  Input is a jet image (N, C, H, W) as the
``resnet50`` ModelSpec states.
"""

from __future__ import annotations

import torch
from torch import nn


class Residual(nn.Module):
    """A residual block: ``body(x)`` plus the shortcut (a strided 1x1 convolution with batch norm
    where the shape changes), then ReLU."""

    def __init__(self, body: nn.Module, in_planes: int, out: int, stride: int):
        super().__init__()
        self.body = body
        self.downsample = None
        if stride != 1 or in_planes != out:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.act(self.body(x) + identity)


class Bottleneck(Residual):
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        out = planes * self.expansion
        body = nn.Sequential(
            nn.Conv2d(in_planes, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, out, 1, bias=False),
            nn.BatchNorm2d(out),
        )
        super().__init__(body, in_planes, out, stride)


class ResidualNet(nn.Module):
    """A stem, residual stages, global average pool and fc to the classes (He initialisation of
    the convolutions); ``forward`` gives the softmax of ``logits``."""

    def __init__(self, stem: nn.Module, stages: nn.Module, features: int, num_classes: int):
        super().__init__()
        self.stem = stem
        self.stages = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(features, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities (what is exported and served)."""
        return torch.softmax(self.logits(images), dim=1)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.stages(self.stem(images))).flatten(1))


class ResNet(ResidualNet):
    def __init__(self, layers: tuple[int, ...] = (3, 4, 6, 3), in_channels: int = 3, num_classes: int = 2):
        stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        in_planes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(in_planes, planes, stride if b == 0 else 1))
                in_planes = planes * Bottleneck.expansion
            stages.append(nn.Sequential(*stage))
        super().__init__(stem, nn.Sequential(*stages), in_planes, num_classes)


def resnet50(in_channels: int = 3, num_classes: int = 2) -> ResNet:
    return ResNet((3, 4, 6, 3), in_channels, num_classes)
