"""Reference networks in plain torch, state-dict compatible with torchvision.

The five networks the project ships profiles for, defined without torchvision (which here
needs a multi-GB CUDA build of a newer torch). Module names, parameter and buffer keys and
their shapes follow ``torchvision.models`` (AlexNet, VGG16 without batch norm, ResNet18,
ResNet50 v1.5, MobileNetV2), so ``model.load_state_dict(torchvision_model.state_dict())``
works both ways and a later split-execution runtime can load published weights.

Every factory returns a randomly initialised model in eval mode. Initialisation follows
torchvision's schemes and is deterministic: it draws from a private generator seeded with
``seed`` and leaves the global random state untouched.

>>> import torch
>>> from edgesplit.cost_models import zoo
>>> model = zoo.resnet18()
>>> model.training
False
>>> sum(p.numel() for p in model.parameters())
11689512
>>> zoo.mobilenet_v2(device="meta")(torch.empty(1, 3, 224, 224, device="meta")).shape
torch.Size([1, 1000])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

__all__ = [
    "FACTORIES",
    "VGG",
    "AlexNet",
    "BasicBlock",
    "Bottleneck",
    "InvertedResidual",
    "MobileNetV2",
    "ResNet",
    "alexnet",
    "mobilenet_v2",
    "resnet18",
    "resnet50",
    "vgg16",
]


class AlexNet(nn.Module):
    """AlexNet as in torchvision (the one-GPU variant of Krizhevsky's "one weird trick").

    Parameters
    ----------
    num_classes
        Width of the last linear layer.
    dropout
        Dropout probability of the classifier (inactive in eval mode).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of images ``x`` of shape ``(N, 3, H, W)``."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


_VGG16_CFG: list[int | str] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
]  # fmt: skip


class VGG(nn.Module):
    """VGG (configuration "D" gives VGG16) without batch norm, as in torchvision.

    Parameters
    ----------
    cfg
        Output channels of each 3x3 convolution, ``"M"`` for a 2x2 max-pool.
    num_classes
        Width of the last linear layer.
    dropout
        Dropout probability of the classifier (inactive in eval mode).
    """

    def __init__(self, cfg: list[int | str], num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                out_channels = int(v)
                layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
                layers.append(nn.ReLU(inplace=True))
                in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of images ``x`` of shape ``(N, 3, H, W)``."""
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def _conv3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def _conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """The two-convolution residual block of ResNet18/34."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """The block's output: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """The 1x1-3x3-1x1 residual block of ResNet50 v1.5 (stride on the 3x3, as torchvision)."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        width = planes
        self.conv1 = _conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        """The block's output: three conv-bn stages plus the shortcut, then ReLU."""
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


class ResNet(nn.Module):
    """ResNet as in torchvision (``layers`` blocks of type ``block`` per stage).

    Parameters
    ----------
    block
        :class:`BasicBlock` or :class:`Bottleneck`.
    layers
        Number of blocks in each of the four stages.
    num_classes
        Width of the last linear layer.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: list[int],
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        planes: int,
        blocks: int,
        stride: int = 1,
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self.inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers.extend(block(self.inplanes, planes) for _ in range(1, blocks))
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of images ``x`` of shape ``(N, 3, H, W)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.fc(x)


class Conv2dNormActivation(nn.Sequential):
    """Conv2d, BatchNorm2d, ReLU6: torchvision's ``Conv2dNormActivation`` as MobileNetV2 uses it.

    Children are named ``0``, ``1``, ``2`` as in torchvision.
    """

    def __init__(
        self, in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1,
        groups: int = 1,
    ) -> None:  # fmt: skip
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_planes),
            nn.ReLU6(inplace=True),
        )  # fmt: skip
        self.out_channels = out_planes


class InvertedResidual(nn.Module):
    """MobileNetV2's inverted residual block (expand 1x1, depthwise 3x3, project 1x1)."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride should be 1 or 2, got {stride!r}")
        self.stride = stride
        hidden_dim = round(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1))
        layers.extend(
            [
                Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
                nn.BatchNorm2d(oup),
            ]
        )
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def forward(self, x: Tensor) -> Tensor:
        """The block's output, with the identity shortcut when shapes allow."""
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class MobileNetV2(nn.Module):
    """MobileNetV2 (width multiplier 1.0) as in torchvision.

    Parameters
    ----------
    num_classes
        Width of the last linear layer.
    dropout
        Dropout probability of the classifier (inactive in eval mode).
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        input_channel = 32
        last_channel = 1280
        settings = [
            # expansion t, channels c, repeats n, stride s
            [1, 16, 1, 1],
            [6, 24, 2, 2],
            [6, 32, 3, 2],
            [6, 64, 4, 2],
            [6, 96, 3, 1],
            [6, 160, 3, 2],
            [6, 320, 1, 1],
        ]
        input_channel = _make_divisible(input_channel)
        self.last_channel = _make_divisible(last_channel)
        features: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2)]
        for t, c, n, s in settings:
            output_channel = _make_divisible(c)
            for i in range(n):
                features.append(
                    InvertedResidual(input_channel, output_channel, s if i == 0 else 1, t)
                )
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch of images ``x`` of shape ``(N, 3, H, W)``."""
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        x = torch.flatten(x, 1)
        return self.classifier(x)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator inside the block and restore its state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _build(
    ctor: Callable[[], nn.Module], seed: int, device: str | torch.device | None
) -> nn.Module:
    with _seeded(seed):
        if device is None:
            model = ctor()
        else:
            with torch.device(device):
                model = ctor()
    return model.eval()


def alexnet(seed: int = 0, device: str | torch.device | None = None) -> AlexNet:
    """AlexNet, randomly initialised (seeded), in eval mode.

    Parameters
    ----------
    seed
        Seed of the initialisation; the global random state is left untouched.
    device
        Device to build on; ``"meta"`` builds a shape-only model (no memory, no init cost),
        enough for tracing and FLOP counting.

    Returns
    -------
    AlexNet
        0.71 G multiply-accumulates and 61.1 M parameters at 1x3x224x224.
    """
    return _build(AlexNet, seed, device)  # type: ignore[return-value]


def vgg16(seed: int = 0, device: str | torch.device | None = None) -> VGG:
    """VGG16 (configuration D, no batch norm), randomly initialised (seeded), in eval mode.

    Parameters
    ----------
    seed
        Seed of the initialisation; the global random state is left untouched.
    device
        Device to build on (``"meta"`` for a shape-only model).

    Returns
    -------
    VGG
        15.5 G multiply-accumulates and 138.4 M parameters at 1x3x224x224.
    """
    return _build(lambda: VGG(_VGG16_CFG), seed, device)  # type: ignore[return-value]


def resnet18(seed: int = 0, device: str | torch.device | None = None) -> ResNet:
    """ResNet18, randomly initialised (seeded), in eval mode.

    Parameters
    ----------
    seed
        Seed of the initialisation; the global random state is left untouched.
    device
        Device to build on (``"meta"`` for a shape-only model).

    Returns
    -------
    ResNet
        1.82 G multiply-accumulates and 11.7 M parameters at 1x3x224x224.
    """
    return _build(lambda: ResNet(BasicBlock, [2, 2, 2, 2]), seed, device)  # type: ignore[return-value]


def resnet50(seed: int = 0, device: str | torch.device | None = None) -> ResNet:
    """ResNet50 (v1.5: stride on the 3x3 convolution), randomly initialised, in eval mode.

    Parameters
    ----------
    seed
        Seed of the initialisation; the global random state is left untouched.
    device
        Device to build on (``"meta"`` for a shape-only model).

    Returns
    -------
    ResNet
        4.1 G multiply-accumulates and 25.6 M parameters at 1x3x224x224.
    """
    return _build(lambda: ResNet(Bottleneck, [3, 4, 6, 3]), seed, device)  # type: ignore[return-value]


def mobilenet_v2(seed: int = 0, device: str | torch.device | None = None) -> MobileNetV2:
    """MobileNetV2 (width 1.0), randomly initialised (seeded), in eval mode.

    Parameters
    ----------
    seed
        Seed of the initialisation; the global random state is left untouched.
    device
        Device to build on (``"meta"`` for a shape-only model).

    Returns
    -------
    MobileNetV2
        0.30 G multiply-accumulates and 3.5 M parameters at 1x3x224x224.
    """
    return _build(MobileNetV2, seed, device)  # type: ignore[return-value]


FACTORIES: dict[str, Callable[..., nn.Module]] = {
    "alexnet": alexnet,
    "vgg16": vgg16,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "mobilenet_v2": mobilenet_v2,
}
"""Shipped network name -> factory (the profiles in ``edgesplit.cost_models.profiles``)."""
