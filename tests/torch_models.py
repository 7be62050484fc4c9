"""Models written the way people write them, for the tests: torchvision's VGG and ResNet
idioms (BatchNorm, ``ReLU(inplace=True)``, ``out += identity``, a downsampling conv+BN
shortcut, one ReLU shared by a block), an LSTM run time-major, a model with two inputs
and one with a dict of inputs.

Plain torch, no interp: ``tests/fixtures/zennit/make_reference.py`` imports this file in
an environment of its own (torch, torchvision and Zennit) to compute reference numbers
on identical weights. The blocks copy torchvision's ``BasicBlock`` and ``Bottleneck``
(same attribute names, same state_dict keys), so their weights load into torchvision's
classes.

``inplace=False`` gives each model's out-of-place twin (``ReLU()``, ``out = out +
identity``): the same function, the same state_dict.
"""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock, as written there."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 inplace: bool = True):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=inplace)   # one ReLU, called twice
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        if self.inplace:
            out += identity
        else:
            out = out + identity
        out = self.relu(out)
        return out


class Bottleneck(nn.Module):
    """torchvision.models.resnet.Bottleneck (ResNet V1.5: the stride on the 3x3), as written there."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 inplace: bool = True):
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=inplace)
        self.downsample = downsample
        self.stride = stride
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        if self.inplace:
            out += identity
        else:
            out = out + identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    """A small ResNet built like torchvision's: a stem (conv, BN, in-place ReLU, max pool),
    a stage of BasicBlocks, a downsampling BasicBlock stage, a Bottleneck stage, average
    pooling and a linear head. ``bias=False`` removes the head's bias and leaves the
    batch-norms without shift (so LRP-0 / epsilon conserve relevance exactly)."""

    def __init__(self, num_classes: int = 5, width: int = 8, inplace: bool = True, bias: bool = True):
        super().__init__()
        self.inplanes = width
        self._inplace = inplace
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=inplace)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(BasicBlock, width, 2)
        self.layer2 = self._make_layer(BasicBlock, 2 * width, 1, stride=2)
        self.layer3 = self._make_layer(Bottleneck, width, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width * Bottleneck.expansion, num_classes, bias=bias)
        if not bias:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.bias = None

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, inplace=self._inplace)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, inplace=self._inplace) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class VGG(nn.Module):
    """torchvision's VGG layout with batch-norm: ``features`` (conv, BN, in-place ReLU, max
    pool), ``avgpool``, ``classifier`` (Linear, in-place ReLU, Dropout, ...)."""

    def __init__(self, cfg=(8, "M", 16, 16, "M", 32, "M"), num_classes: int = 5, inplace: bool = True,
                 bias: bool = True, hidden: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                bn = nn.BatchNorm2d(v)
                if not bias:
                    bn.bias = None
                layers += [nn.Conv2d(c, v, kernel_size=3, padding=1, bias=bias), bn, nn.ReLU(inplace=inplace)]
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(c * 4, hidden, bias=bias), nn.ReLU(inplace=inplace), nn.Dropout(0.5),
            nn.Linear(hidden, hidden, bias=bias), nn.ReLU(inplace=inplace), nn.Dropout(0.5),
            nn.Linear(hidden, num_classes, bias=bias),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class TimeMajorLSTM(nn.Module):
    """Token classifier run time-major, as the PyTorch tutorials write it: the ids (batch,
    time) are transposed, embedded, run through a 2-layer ``nn.LSTM`` (batch_first=False),
    a Linear scores every step of its (time, batch, hidden) output, and the last step's
    scores are the model's."""

    def __init__(self, vocab: int = 20, embed: int = 8, hidden: int = 12, num_classes: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        e = self.embedding(tokens.t())          # (time, batch, embed)
        out, _ = self.lstm(e)                    # (time, batch, hidden)
        scores = self.fc(out)                    # (time, batch, classes)
        return scores[-1]


class TimeMajorSequenceLSTM(nn.Module):
    """A float time series model run time-major: (batch, time, features) in, permuted to
    (time, batch, features) for a 2-layer LSTM, a Linear on every step, the last step out."""

    def __init__(self, features: int = 4, hidden: int = 10, num_classes: int = 3):
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, num_layers=2)
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.permute(1, 0, 2))
        return self.fc(out)[-1]


class TwoInput(nn.Module):
    """An image and a feature row: a conv branch and a dense branch, concatenated."""

    def __init__(self, features: int = 5, num_classes: int = 3, inplace: bool = True):
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=inplace),
                                   nn.MaxPool2d(2), nn.Flatten())
        self.table = nn.Sequential(nn.Linear(features, 6), nn.ReLU(inplace=inplace))
        self.head = nn.Linear(4 * 4 * 4 + 6, num_classes)

    def forward(self, image: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.image(image), self.table(table)], dim=1))


class DictInput(nn.Module):
    """Inputs given as one dict, as data loaders of several fields yield them."""

    def __init__(self, features: int = 5, num_classes: int = 3):
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.table = nn.Linear(features, 6)
        self.head = nn.Linear(4 * 8 * 8 + 6, num_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.head(torch.cat([self.image(batch["image"]), torch.relu(self.table(batch["table"]))], dim=1))


def randomize_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters that are not the identity (fresh batch-norms
    are), so that merging them is tested. A batch-norm without bias keeps a zero running mean:
    it shifts nothing (the bias-free variants have no offset anywhere)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                mean = torch.randn(m.running_mean.shape, generator=g) * 0.1
                m.running_mean.copy_(mean if m.bias is not None else torch.zeros_like(mean))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)
                if m.weight is not None:
                    m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return model


def resnet(seed: int = 0, **options) -> ResNet:
    torch.manual_seed(seed)
    return randomize_batch_norms(ResNet(**options), seed).eval()


def vgg(seed: int = 0, **options) -> VGG:
    torch.manual_seed(seed)
    return randomize_batch_norms(VGG(**options), seed).eval()


def twin(model: nn.Module, make, **options) -> nn.Module:
    """``make(inplace=False, **options)`` with ``model``'s weights: its out-of-place twin."""
    other = make(inplace=False, **options)
    other.load_state_dict(model.state_dict())
    return other.eval()
