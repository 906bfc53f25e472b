"""A tiny residual network for the runtime tests (importable as ``runtime_nets:tiny_resnet``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

INPUT_SHAPE = (1, 3, 16, 16)


class TinyResNet(nn.Module):
    """Conv-BN-ReLU stem, one residual block (two tensors cross a cut inside it), head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn(self.stem(x)))
        y = self.conv2(torch.relu(self.conv1(x)))
        x = torch.relu(x + y)
        return self.fc(torch.flatten(self.pool(x), 1))


def tiny_resnet() -> TinyResNet:
    """The tiny network, seeded and in eval mode (with non-trivial batch-norm statistics)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = TinyResNet()
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net.eval()


def partition_tiny(out: Path) -> Path:
    """Partition the tiny network (every candidate) into ``out``, with this folder on
    ``sys.path`` while the partitioner imports ``runtime_nets:tiny_resnet``; returns ``out``."""
    from edgesplit.runtime.partition import partition

    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(__file__).resolve().parent))
        partition("runtime_nets:tiny_resnet", out, input_shape=INPUT_SHAPE)
    return out


def partition_kept(network: str, names: list[str], out: Path) -> Path:
    """Partition a shipped ``network`` at the profile's candidates named ``names`` (a
    policy's kept candidates, all of which must exist) into ``out``, without ONNX (the torch
    engine needs none); returns ``out``."""
    from edgesplit.cost_models.network import load_network
    from edgesplit.runtime.partition import partition

    prof = load_network(network)
    idx = [k for k, c in enumerate(prof.candidates) if c.name in names]
    assert len(idx) == len(names), (network, names)
    partition(network, out, candidates=idx, onnx=False)
    return out
