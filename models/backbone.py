"""The encoder network (ENC, SLN Sec. 4.2): a compact dilated ResNet whose four stages are fused at stride 4.

SLN uses a dilated ResNet-50 and concatenates the features of its four stages rescaled to one size. This is
the same design at a size that trains from scratch on CPU: a stem and four stages of basic residual blocks
(strides 2, 2, 2, and 1 with dilation 2 for the last, so the deepest features keep stride 8 as in a dilated
ResNet), all four rescaled to stride 4, concatenated and mixed by a 1x1 conv-bn-relu. No pretrained weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """Convolution (no bias), batch norm, ReLU; 'same' padding for odd kernels."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation,
                  bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-bn, identity or 1x1 projection shortcut, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = conv_bn_relu(cin, cout, 3, stride, dilation)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False),
                                   nn.BatchNorm2d(cout))
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class Encoder(nn.Module):
    """Dilated ResNet-style encoder; ``forward`` returns fused features ``(B, out_channels, H/4, W/4)``.

    Input height and width must be multiples of 8 (the deepest stride).
    """

    stride = 4

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 128, 128), out_channels: int = 128,
                 blocks: int = 1) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.out_channels = out_channels
        self.stem = conv_bn_relu(3, w1, 3, stride=2)                          # 1/2

        def stage(cin: int, cout: int, stride: int, dilation: int = 1) -> nn.Sequential:
            layers = [BasicBlock(cin, cout, stride, dilation)]
            layers += [BasicBlock(cout, cout, 1, dilation) for _ in range(blocks - 1)]
            return nn.Sequential(*layers)

        self.stage1 = stage(w1, w1, 1)                                        # 1/2
        self.stage2 = stage(w1, w2, 2)                                        # 1/4
        self.stage3 = stage(w2, w3, 2)                                        # 1/8
        self.stage4 = stage(w3, w4, 1, dilation=2)                            # 1/8, dilated
        self.fuse = conv_bn_relu(w1 + w2 + w3 + w4, out_channels, kernel=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"input size {h}x{w} must be a multiple of 8")
        c1 = self.stage1(self.stem(images))
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        c4 = self.stage4(c3)
        size = c2.shape[-2:]
        feats = [F.avg_pool2d(c1, 2), c2,
                 F.interpolate(c3, size=size, mode="bilinear", align_corners=False),
                 F.interpolate(c4, size=size, mode="bilinear", align_corners=False)]
        return self.fuse(torch.cat(feats, dim=1))
