"""ELASTIC's two-path ResNeXt for the benchmarks, written from elastic.md §2.1 (the same network as
vireo's `elastic::models`): per block a full-resolution path and a second path (half resolution
when elastic: right/bottom replicate pad for odd sides, 2x2 average pool, bilinear x2 with
align_corners=False, top-left crop), each of width p with cardinality/2 groups, summed, one BN,
optional SE, shortcut, ReLU (also the building block of
crates/elastic/tests/fixtures/make_elastic_checkpoint.py). `resnext(layers, elastic)`: ResNeXt-50 [3, 4, 6, 3] plain, [6, 8, 5, 3] elastic."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class SE(nn.Module):
    """ELASTIC's squeeze-and-excitation: 1x1 convs with bias, reduction 16, sigmoid."""

    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c // 16, 1)
        self.conv2 = nn.Conv2d(c // 16, c, 1)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.conv2(F.relu(self.conv1(s))))


class TwoPath(nn.Module):
    def __init__(self, cin, p, cardinality, stride, elastic, se=False, dilation=1):
        super().__init__()
        g = cardinality // 2
        self.elastic = elastic and stride == 1
        for suffix in ("_d", ""):
            setattr(self, "conv1" + suffix, nn.Conv2d(cin, p, 1, bias=False))
            setattr(self, "bn1" + suffix, nn.BatchNorm2d(p))
            setattr(self, "conv2" + suffix,
                    nn.Conv2d(p, p, 3, stride, dilation, dilation=dilation, groups=g, bias=False))
            setattr(self, "bn2" + suffix, nn.BatchNorm2d(p))
            setattr(self, "conv3" + suffix, nn.Conv2d(p, 4 * p, 1, bias=False))
        self.bn3 = nn.BatchNorm2d(4 * p)
        if se:
            self.selayer = SE(4 * p)
        self.downsample = None
        if stride != 1 or cin != 4 * p:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, 4 * p, 1, stride, bias=False), nn.BatchNorm2d(4 * p)
            )

    def path(self, x, suffix):
        x = F.relu(getattr(self, "bn1" + suffix)(getattr(self, "conv1" + suffix)(x)))
        x = F.relu(getattr(self, "bn2" + suffix)(getattr(self, "conv2" + suffix)(x)))
        return getattr(self, "conv3" + suffix)(x)

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        d = x
        if self.elastic:
            if h % 2 or w % 2:
                d = F.pad(d, (0, w % 2, 0, h % 2), mode="replicate")
            d = F.avg_pool2d(d, 2, 2)
        d = self.path(d, "_d")
        if self.elastic:
            d = F.interpolate(d, scale_factor=2, mode="bilinear", align_corners=False)
            d = d[:, :, :h, :w]
        out = self.bn3(self.path(x, "") + d)
        if hasattr(self, "selayer"):
            out = self.selayer(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class TwoPathResNeXt(nn.Module):
    def __init__(self, layers, elastic, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin, stages = 64, []
        for i, (p, n) in enumerate(zip([64, 128, 256, 512], layers)):
            blocks = []
            for b in range(n):
                stride = 2 if (b == 0 and i > 0) else 1
                blocks.append(TwoPath(cin, p, 32, stride, elastic and i < 3))
                cin = 4 * p
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.fc(self.layers(x).mean(dim=(2, 3)))


def resnext(layers, elastic):
    return TwoPathResNeXt(layers, elastic)
