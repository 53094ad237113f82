"""ParticleNet in torch (build-time only: needs the ``build`` extra).

The architecture as published (H. Qu, L. Gouskos, Phys. Rev. D 101, 056019 (2020)), "ParticleNet"
(not "-Lite"): three EdgeConv blocks with k=16 and channels (64,64,64), (128,128,128),
(256,256,256); a feature fusion 1x1 convolution over the concatenated block outputs; global mean
pooling over the real particles only; fc 256 + ReLU + dropout 0.1; fc 2; softmax.

Masking: padded particles get their coordinates shifted by 1e9 so they are never anyone's nearest
neighbour (the first block uses the (deta, dphi) points, later blocks the previous block's
features), and all features are multiplied by the mask after every block.

Written for ``torch.export`` (the torch engine's artefact): no device or dtype is fixed in the code
(neighbours are gathered, not indexed with an ``arange`` built on a device; the mask is a bool that
promotes to the features' dtype), so the exported program runs on any device and in any precision.
The neighbour search always runs in fp32: the 1e9 shift is a float32 tensor, and squared distances of
shifted points overflow fp16.
"""

from __future__ import annotations

import torch
from torch import nn

COORD_SHIFT = 1e9


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (N, P, k) of the k nearest neighbours of every point (itself excluded)."""
    inner = -2 * torch.matmul(x.transpose(2, 1), x)
    xx = torch.sum(x**2, dim=1, keepdim=True)
    neg_dist = -xx - inner - xx.transpose(2, 1)
    return neg_dist.topk(k=k + 1, dim=-1)[1][:, :, 1:]


def edge_features(x: torch.Tensor, k: int, idx: torch.Tensor) -> torch.Tensor:
    """EdgeConv inputs (N, 2C, P, k): [x_i, x_j - x_i] for the k neighbours j of i."""
    n, c, p = x.shape
    index = idx.reshape(n, p * k, 1).expand(-1, -1, c)
    neighbours = torch.gather(x.transpose(2, 1), 1, index).view(n, p, k, c).permute(0, 3, 1, 2)
    centre = x.unsqueeze(-1).expand(-1, -1, -1, k)
    return torch.cat((centre, neighbours - centre), dim=1)


class EdgeConvBlock(nn.Module):
    def __init__(self, k: int, in_channels: int, channels: tuple[int, ...]):
        super().__init__()
        self.k = k
        layers: list[nn.Module] = []
        prev = 2 * in_channels
        for ch in channels:
            layers += [nn.Conv2d(prev, ch, kernel_size=1, bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
            prev = ch
        self.convs = nn.Sequential(*layers)
        self.shortcut = nn.Sequential(
            nn.Conv1d(in_channels, channels[-1], kernel_size=1, bias=False),
            nn.BatchNorm1d(channels[-1]),
        )
        self.act = nn.ReLU()

    def forward(self, points: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        idx = knn(points, self.k)
        x = self.convs(edge_features(features, self.k, idx)).mean(dim=-1)
        return self.act(x + self.shortcut(features))


class ParticleNet(nn.Module):
    def __init__(
        self,
        num_features: int,
        num_classes: int = 2,
        k: int = 16,
        conv_channels: tuple[tuple[int, ...], ...] = ((64, 64, 64), (128, 128, 128), (256, 256, 256)),
        fc_channels: int = 256,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.bn_fts = nn.BatchNorm1d(num_features)
        blocks = []
        prev = num_features
        for channels in conv_channels:
            blocks.append(EdgeConvBlock(k, prev, channels))
            prev = channels[-1]
        self.edge_convs = nn.ModuleList(blocks)
        fused_in = sum(c[-1] for c in conv_channels)
        fused_out = min(max((fused_in // 128) * 128, 128), 1024)  # 448 -> 384, as published
        self.fusion = nn.Sequential(
            nn.Conv1d(fused_in, fused_out, kernel_size=1, bias=False), nn.BatchNorm1d(fused_out), nn.ReLU()
        )
        self.fc = nn.Sequential(
            nn.Linear(fused_out, fc_channels), nn.ReLU(), nn.Dropout(dropout), nn.Linear(fc_channels, num_classes)
        )

    def forward(self, points: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Class probabilities (what is exported and served)."""
        return torch.softmax(self.logits(points, features, mask), dim=1)

    def logits(self, points: torch.Tensor, features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mask = mask != 0  # bool: promotes to the features' dtype, whatever the precision
        points = points * mask
        features = features * mask
        shift = torch.logical_not(mask) * COORD_SHIFT  # float32 (the default dtype): knn in fp32
        counts = mask.sum(dim=-1).clamp(min=1)
        fts = self.bn_fts(features) * mask
        outputs = []
        for i, conv in enumerate(self.edge_convs):
            pts = (points if i == 0 else fts) + shift
            fts = conv(pts, fts) * mask
            outputs.append(fts)
        fused = self.fusion(torch.cat(outputs, dim=1)) * mask
        pooled = fused.sum(dim=-1) / counts
        return self.fc(pooled)
