"""SAKE's CSE-ResNet for the benchmarks and the parity fixture, written from sake.md §2 and
resnet-family.md §2.3 (the same network as vireo's `sake::model`): a Caffe-style SE-ResNet
(stride on the first 1x1, stem max-pool 3x3/2 without padding in ceil mode) whose SE modules
take SAKE's domain bit: ``g = sigmoid(fc2(cat(relu(fc1(mean(x))), y)))`` with the bit appended
last, after the ReLU. `KDHashing` puts the embedding (``second_last_linear``), the ImageNet head
(``last_linear``) and the benchmark classifier (``linear``) on top, with the released models'
module names (``original_model.*``, ``linear``). `soft_ce` is the knowledge-preservation loss
(§2.4, photos only, normalised by the photo count).

Also used by crates/sake/tests/fixtures/make_sake_checkpoint.py.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class CSEModule(nn.Module):
    """Conditional SE (sake.md §2.2): linear layers, the condition enters fc2 only."""

    def __init__(self, c, reduction=16, condition=1):
        super().__init__()
        self.fc1 = nn.Linear(c, c // reduction)
        self.fc2 = nn.Linear(c // reduction + condition, c)

    def forward(self, x, y):
        h = F.relu(self.fc1(x.mean(dim=(2, 3))))
        if y is not None:
            h = torch.cat([h, y], 1)
        return x * torch.sigmoid(self.fc2(h))[:, :, None, None]


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, condition=1):
        super().__init__()
        c = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, stride, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c)
        self.se_module = CSEModule(c, condition=condition)
        self.downsample = None
        if stride != 1 or cin != c:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, c, 1, stride, bias=False), nn.BatchNorm2d(c)
            )

    def forward(self, x, y):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.se_module(self.bn3(self.conv3(out)), y)
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)


class CSEResNet(nn.Module):
    """Cadene-layout module names: ``layer0.{conv1,bn1}``, ``layer{1..4}``, ``last_linear``."""

    def __init__(self, layers=(3, 4, 6, 3), planes=(64, 128, 256, 512), stem=64,
                 num_classes=1000, condition=1):
        super().__init__()
        self.layer0 = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, stem, 7, 2, 3, bias=False)),
            ("bn1", nn.BatchNorm2d(stem)),
            ("relu1", nn.ReLU(inplace=True)),
            ("pool", nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ]))
        cin = stem
        for i, (n, p) in enumerate(zip(layers, planes)):
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(cin, p, 2 if (b == 0 and i > 0) else 1, condition))
                cin = p * 4
            setattr(self, f"layer{i + 1}", nn.ModuleList(blocks))
        self.features_dim = cin
        self.last_linear = nn.Linear(cin, num_classes)

    def features(self, x, y):
        x = self.layer0(x)
        for i in range(1, 5):
            for block in getattr(self, f"layer{i}"):
                x = block(x, y)
        return x.mean(dim=(2, 3))  # AvgPool2d(7, stride 1) at 224 px

    def forward(self, x, y):
        return self.last_linear(self.features(x, y))


class KDHashing(nn.Module):
    """``CSEResnetModel_KDHashing``: pooled → second_last_linear (D) → last_linear (ImageNet
    head) and linear (benchmark classes). Returns ``(logits_cls, logits_kd)``."""

    def __init__(self, hashing_dim, num_classes, teacher_classes=1000, **backbone):
        super().__init__()
        self.original_model = CSEResNet(num_classes=teacher_classes, **backbone)
        c = self.original_model.features_dim
        self.original_model.second_last_linear = nn.Linear(c, hashing_dim)
        self.original_model.last_linear = nn.Linear(hashing_dim, teacher_classes)
        self.linear = nn.Linear(hashing_dim, num_classes)

    def forward(self, x, y):
        e = self.original_model.second_last_linear(self.original_model.features(x, y))
        return self.linear(e), self.original_model.last_linear(e)


def soft_ce(student_kd, teacher_logits, tags, cid_rows, kd_lambda=1.0, kdneg_lambda=0.3):
    """sake.md §2.4: target = softmax(kd_lambda * z_t + kdneg_lambda * m[c]); photos only."""
    target = F.softmax(kd_lambda * teacher_logits + kdneg_lambda * cid_rows, dim=1)
    per_sample = -(F.log_softmax(student_kd, dim=1) * target).sum(1)
    return (per_sample * tags).sum() / tags.sum()
