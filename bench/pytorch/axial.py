"""PyTorch reference of Axial-DeepLab's position-sensitive axial attention and the conv-stem
Axial-ResNet, written from axial-deeplab.md §2.1-§2.3 and §3.1 (the PyTorch repository's layer:
per-head q|k|v blocks of a 1x1 conv1d, BatchNorm1d on qkv, BatchNorm2d on the stacked (qk, qr, kr)
similarities with channel t*G + g, BatchNorm1d on the interleaved (sv, sve) outputs, shared relative
tables, no 1/sqrt(d), AvgPool after a strided layer). Used by bench/pytorch/bench.py and by
crates/core-attn/tests/fixtures/make_fixtures.py.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class AxialAttention(nn.Module):
    def __init__(self, in_planes, out_planes, heads, span, stride=1, width=False, dl2=False):
        super().__init__()
        self.heads, self.out_planes, self.span = heads, out_planes, span
        self.gp = out_planes // heads
        self.stride, self.width, self.dl2 = stride, width, dl2
        self.qkv_transform = nn.Conv1d(in_planes, 2 * out_planes, 1, bias=False)
        self.bn_qkv = nn.BatchNorm1d(2 * out_planes)
        self.bn_similarity = nn.BatchNorm2d(3 * heads)
        self.bn_output = nn.BatchNorm1d(2 * out_planes)
        self.relative = nn.Parameter(torch.randn(2 * self.gp, 2 * span - 1) / self.gp ** 0.5)
        nn.init.normal_(self.qkv_transform.weight, 0, (1 / in_planes) ** 0.5)

    def table(self, rows, length, query_minus_key):
        i = torch.arange(length).view(-1, 1)
        j = torch.arange(length).view(1, -1)
        index = (i - j if query_minus_key else j - i) + self.span - 1  # [L(i), L(j)]
        return rows[:, index]  # [d, L, L]: E[c, i, j]

    def forward(self, x):
        if self.width:
            x = x.permute(0, 2, 1, 3)  # [N, H, C, W]
        else:
            x = x.permute(0, 3, 1, 2)  # [N, W, C, H]
        n, other, c, length = x.shape
        x = x.reshape(n * other, c, length)
        g, gp = self.heads, self.gp
        qkv = self.bn_qkv(self.qkv_transform(x)).reshape(n * other, g, 2 * gp, length)
        q, k, v = qkv[:, :, : gp // 2], qkv[:, :, gp // 2 : gp], qkv[:, :, gp:]
        rq, rk, rv = self.relative[: gp // 2], self.relative[gp // 2 : gp], self.relative[gp:]
        qv_qmk = not self.dl2
        eq = self.table(rq, length, qv_qmk)
        ek = self.table(rk, length, True)
        ev = self.table(rv, length, qv_qmk)
        qk = torch.einsum("bgci,bgcj->bgij", q, k)
        qr = torch.einsum("bgci,cij->bgij", q, eq)
        kr = torch.einsum("bgci,cij->bgij", k, ek).transpose(2, 3)
        s = self.bn_similarity(torch.cat([qk, qr, kr], dim=1))
        s = s.reshape(n * other, 3, g, length, length).sum(dim=1)
        a = F.softmax(s, dim=3)
        sv = torch.einsum("bgij,bgcj->bgci", a, v)
        sve = torch.einsum("bgij,cij->bgci", a, ev)
        out = torch.cat([sv, sve], dim=-1).reshape(n * other, 2 * self.out_planes, length)
        out = self.bn_output(out).reshape(n, other, self.out_planes, 2, length).sum(dim=-2)
        if self.width:
            out = out.permute(0, 2, 1, 3)  # [N, C, H, W]
        else:
            out = out.permute(0, 2, 3, 1)
        if self.stride > 1:
            out = F.avg_pool2d(out, self.stride, self.stride)
        return out



class AxialBlock(nn.Module):
    """axial-deeplab.md §2.3: conv down, BN, ReLU, height and width attention, ReLU, conv up, BN."""

    expansion = 2

    def __init__(self, in_channels, planes, span, stride=1, heads=8):
        super().__init__()
        out = planes * self.expansion
        self.conv_down = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.hight_block = AxialAttention(planes, planes, heads, span)
        self.width_block = AxialAttention(planes, planes, heads, span, stride=stride, width=True)
        self.conv_up = nn.Conv2d(planes, out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or in_channels != out:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out, 1, stride, bias=False),
                                            nn.BatchNorm2d(out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv_down(x)))
        out = F.relu(self.width_block(self.hight_block(out)))
        out = self.bn2(self.conv_up(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class AxialResNet(nn.Module):
    """axial-deeplab.md §3.1, conv stem, 224 input."""

    def __init__(self, layers, width, num_classes=1000, span=56, heads=8):
        super().__init__()
        stem = int(64 * width)
        self.conv1 = nn.Conv2d(3, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        in_channels, stages = stem, []
        for stage, planes in enumerate([128, 256, 512, 1024]):
            planes, stride, blocks = int(planes * width), (1 if stage == 0 else 2), []
            for b in range(layers[stage]):
                blocks.append(AxialBlock(in_channels, planes, span, stride if b == 0 else 1, heads))
                in_channels = planes * 2
                if b == 0 and stride > 1:
                    span //= stride
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


def axial26s():
    return AxialResNet([1, 2, 4, 1], 0.5)
