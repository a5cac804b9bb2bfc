"""The two networks, in PyTorch.

- `Classifier`: torchvision MobileNetV2 features (one input channel) + the seed paper's head
  (global average pool, dense 512 ReLU, dropout 0.4, dense 2). `forward` returns logits; the
  exported graph (`ClassifierExport`) ends in Softmax and names its output `probs`.
- `YoloV4Tiny`: darknet yolov4-tiny.cfg layout (CSP tiny backbone, leaky 0.1, two heads at strides
  32 and 16) with one input channel and one class. It returns the RAW 1x1-conv head outputs in
  darknet layout [N, A*(5+C), H, W]; decoding lives in common.py (numpy) and in the Rust daemon.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import mobilenet_v2

from common import HEADS, NUM_CLASSES


class Classifier(nn.Module):
    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        base = mobilenet_v2(weights=None, width_mult=width_mult)
        first = base.features[0][0]
        base.features[0][0] = nn.Conv2d(1, first.out_channels, 3, 2, 1, bias=False)
        self.features = base.features
        feat = base.last_channel
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(feat, 512)
        self.drop = nn.Dropout(0.4)
        self.fc2 = nn.Linear(512, 2)
        # Training-only auxiliary head (deep supervision): per 32x32-pixel cell of the last feature
        # map, "an embolus centre lies here". Not used by forward(), so not part of the export.
        self.aux = nn.Conv2d(feat, 1, 1)

    def forward_train(self, x):
        f = self.features(x)
        h = self.pool(f).flatten(1)
        return self.fc2(self.drop(F.relu(self.fc1(h)))), self.aux(f)

    def head_parameters(self):
        return list(self.fc1.parameters()) + list(self.fc2.parameters())

    def forward(self, x):
        x = self.pool(self.features(x)).flatten(1)
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class ClassifierExport(nn.Module):
    def __init__(self, net: Classifier):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


class ConvBN(nn.Module):
    def __init__(self, cin, cout, k, s=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, momentum=0.03, eps=1e-4)

    def forward(self, x):
        return F.leaky_relu(self.bn(self.conv(x)), 0.1)


class CspTiny(nn.Module):
    """yolov4-tiny's CSP block: conv3x3, take the second half of channels (route groups=2
    group_id=1), two conv3x3, concat, conv1x1, concat with the block input conv, maxpool."""

    def __init__(self, cin, c):
        super().__init__()
        self.c1 = ConvBN(cin, c, 3)
        self.c2 = ConvBN(c // 2, c // 2, 3)
        self.c3 = ConvBN(c // 2, c // 2, 3)
        self.c4 = ConvBN(c, c, 1)

    def forward(self, x):
        a = self.c1(x)
        half = a.shape[1] // 2
        b = self.c2(a[:, half:])
        c = self.c3(b)
        d = self.c4(torch.cat([c, b], 1))
        return F.max_pool2d(torch.cat([a, d], 1), 2, 2), d


class YoloV4Tiny(nn.Module):
    def __init__(self, width: float = 1.0):
        super().__init__()
        w = lambda c: max(8, int(round(c * width / 8)) * 8)  # noqa: E731
        na = 3
        out = na * (5 + NUM_CLASSES)
        self.stem = nn.Sequential(ConvBN(1, w(32), 3, 2), ConvBN(w(32), w(64), 3, 2))
        self.csp1 = CspTiny(w(64), w(64))
        self.csp2 = CspTiny(w(128), w(128))
        self.csp3 = CspTiny(w(256), w(256))
        self.c14 = ConvBN(w(512), w(512), 3)
        self.c15 = ConvBN(w(512), w(256), 1)
        self.c16 = ConvBN(w(256), w(512), 3)
        self.head32 = nn.Conv2d(w(512), out, 1)
        self.c17 = ConvBN(w(256), w(128), 1)
        self.c18 = ConvBN(w(128) + w(256), w(256), 3)
        self.head16 = nn.Conv2d(w(256), out, 1)
        for head in (self.head32, self.head16):
            b = head.bias.detach().view(na, 5 + NUM_CLASSES)
            b.zero_()
            b[:, 4] = math.log(0.01 / 0.99)  # objectness prior: few cells hold an embolus
            head.weight.data.normal_(0, 0.01)

    def forward(self, x):
        x = self.stem(x)
        x, _ = self.csp1(x)
        x, _ = self.csp2(x)
        x, route26 = self.csp3(x)
        x = self.c14(x)
        x15 = self.c15(x)
        h32 = self.head32(self.c16(x15))
        up = F.interpolate(self.c17(x15), scale_factor=2.0, mode="nearest")
        h16 = self.head16(self.c18(torch.cat([up, route26], 1)))
        return h32, h16


assert [h[0] for h in HEADS] == ["head_s32", "head_s16"]
