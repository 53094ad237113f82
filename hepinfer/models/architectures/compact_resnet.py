"""A compact ResNet for jet images (the ``resnet`` model): residual basic blocks (He et al. 2016,
two 3x3 convolutions with batch norm and a shortcut), sized for 3x64x64 jet images and CPU training.

Stem: a 3x3 convolution with stride ``stem_stride`` (64x64 -> 32x32), batch norm, ReLU; then one
stage per width, ``blocks`` basic blocks each, the first block of every stage after the first
halving the resolution (1x1 strided shortcut); global average pool; fc to the classes; softmax.
The widths and blocks come from the ``resnet`` ModelSpec's ``extra``.
"""

from __future__ import annotations

from torch import nn

from hepinfer.models.architectures.resnet import Residual, ResidualNet


class BasicBlock(Residual):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        body = nn.Sequential(
            nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, padding=1, bias=False),
            nn.BatchNorm2d(planes),
        )
        super().__init__(body, in_planes, planes, stride)


class CompactResNet(ResidualNet):
    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks: tuple[int, ...] = (2, 2, 2),
        in_channels: int = 3,
        num_classes: int = 2,
        stem_stride: int = 2,
    ):
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"widths {widths} and blocks {blocks}: one width per stage")
        stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages, in_planes = [], widths[0]
        for i, (planes, n) in enumerate(zip(widths, blocks)):
            stage = []
            for b in range(n):
                stage.append(BasicBlock(in_planes, planes, 2 if (i > 0 and b == 0) else 1))
                in_planes = planes
            stages.append(nn.Sequential(*stage))
        super().__init__(stem, nn.Sequential(*stages), in_planes, num_classes)
