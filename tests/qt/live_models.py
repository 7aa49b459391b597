"""Live models built like the tutorials' examples, and helpers for the window tests on them."""
from __future__ import annotations

import pytest
import torch

import app
from tests.helpers.prompts import FakePrompts


class Net(torch.nn.Module):
    """Nested Sequential blocks, a LayerNorm, a buffer."""

    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU()),
            torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()))
        self.norm = torch.nn.LayerNorm(8)
        self.fc = torch.nn.Linear(8, 3)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        return self.fc(self.norm(self.features(x)))


class TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(12, 6)
        self.rnn = torch.nn.LSTM(6, 6, batch_first=True)
        self.head = torch.nn.Linear(6, 12, bias=False)

    def forward(self, ids):
        out, _ = self.rnn(self.embed(ids))
        return self.head(out)


@pytest.fixture
def open_live(qtbot):
    def open_(model):
        win = app.open_editor(model)
        qtbot.addWidget(win)
        win.prompts = FakePrompts(save_changes="discard")
        qtbot.waitUntil(lambda: bool(win.tree_model.params.grads)
                        or not any(True for _ in model.parameters()), timeout=5000)
        return win
    return open_


def backward(model, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(5, 4)
    model(x).square().mean().backward()


def cell(win, name, column):
    source = win.tree_model.find(name)
    return win.tree_model.index(source.row(), column, source.parent())


def shows(win, tensor) -> bool:
    """The grid shows this very tensor (it keeps a detached view of the same memory)."""
    t = win.tensor_view.tensor
    return t is not None and tensor is not None and t.data_ptr() == tensor.data_ptr() \
        and t.shape == tensor.shape


def wait_grads(qtbot, win):
    qtbot.waitUntil(lambda: not win.param_flows.grads_pending, timeout=5000)

