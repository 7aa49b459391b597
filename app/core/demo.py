"""The built-in demo model: the classic parameter-management examples in one network.

Nested blocks (``rgnet[0][1][0].bias``), a shared ``nn.Linear`` used at two places (tied), an
``nn.LSTM(512, 64)`` (``weight_ih_l0`` ...) and a conv block with BatchNorm (buffers).
"""
from __future__ import annotations

import torch
from torch import nn


def block() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU())


def rgnet() -> nn.Sequential:
    """A Sequential of Sequentials, as in the classic ``rgnet[0][1][0].bias`` example."""
    net = nn.Sequential()
    for i in range(4):
        net.add_module(str(i), block())
    return nn.Sequential(net, nn.Linear(4, 1))


class SharedMLP(nn.Module):
    """One ``nn.Linear`` used at two places (``encoder.2`` and ``decoder.0``): its parameters
    are tied, and editing one place edits the other."""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(8, 8)
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), shared)
        self.decoder = nn.Sequential(shared, nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.relu(self.encoder(x)))


class ConvBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DemoModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rgnet = rgnet()
        self.shared = SharedMLP()
        self.lstm = nn.LSTM(512, 64)
        self.conv = ConvBlock()
        self.head = nn.Linear(64, 10)


def demo_model(seed: int = 0) -> DemoModel:
    torch.manual_seed(seed)
    model = DemoModel()
    with torch.no_grad():  # a little life in the BatchNorm statistics
        model.conv.bn.running_mean.uniform_(-0.1, 0.1)
        model.conv.bn.running_var.uniform_(0.9, 1.1)
        model.conv.bn.num_batches_tracked.fill_(100)
    return model
