"""Checkpoints the tests make: every format paramedit reads, on small real tensors."""
from __future__ import annotations

import json
import os
from collections import OrderedDict

import torch
from safetensors.torch import save_file
from torch import nn


class TiedLM(nn.Module):
    """Tied input/output embeddings, as in language models."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.body = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.lm_head = nn.Linear(4, 10, bias=False)
        self.lm_head.weight = self.embed.weight


def tied_lm(seed: int = 0) -> TiedLM:
    torch.manual_seed(seed)
    return TiedLM()


def odd_dtypes() -> "OrderedDict[str, torch.Tensor]":
    """One tensor of every awkward kind: bf16, fp16, ints, bool, 0-d, empty, non-contiguous."""
    g = torch.Generator().manual_seed(1)
    return OrderedDict([
        ("z.bf16", torch.randn(3, 5, generator=g).to(torch.bfloat16)),
        ("a.fp16", torch.randn(7, generator=g).to(torch.float16)),
        ("m.f64", torch.randn(2, 3, 4, generator=g, dtype=torch.float64)),
        ("ints.i64", torch.arange(-5, 7)),
        ("ints.i8", torch.tensor([-128, 0, 127], dtype=torch.int8)),
        ("ints.u8", torch.tensor([0, 255], dtype=torch.uint8)),
        ("mask", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(3.5)),
        ("empty", torch.zeros(0, 4)),
        ("transposed", torch.randn(4, 6, generator=g).t()),
    ])


def training_checkpoint(model: nn.Module) -> dict:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()  # gives the optimizer real state (exp_avg, exp_avg_sq, step)
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 12,
            "config": {"lr": 1e-3, "name": "tiny"}, "history": [torch.tensor(1.0), 0.5]}


def save_sharded_safetensors(tensors: dict[str, torch.Tensor], folder: str, per_shard: int = 2) -> str:
    """A Hugging Face style sharded folder: model-0000k-of-0000n.safetensors + index.json."""
    os.makedirs(folder, exist_ok=True)
    names = list(tensors)
    chunks = [names[i:i + per_shard] for i in range(0, len(names), per_shard)]
    weight_map = {}
    for k, chunk in enumerate(chunks, 1):
        shard = f"model-{k:05d}-of-{len(chunks):05d}.safetensors"
        save_file({n: tensors[n].contiguous() for n in chunk}, os.path.join(folder, shard))
        weight_map.update({n: shard for n in chunk})
    index = os.path.join(folder, "model.safetensors.index.json")
    with open(index, "w") as f:
        json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f)
    return index


def save_sharded_torch(tensors: dict[str, torch.Tensor], folder: str, per_shard: int = 2) -> str:
    os.makedirs(folder, exist_ok=True)
    names = list(tensors)
    chunks = [names[i:i + per_shard] for i in range(0, len(names), per_shard)]
    weight_map = {}
    for k, chunk in enumerate(chunks, 1):
        shard = f"pytorch_model-{k:05d}-of-{len(chunks):05d}.bin"
        torch.save({n: tensors[n] for n in chunk}, os.path.join(folder, shard))
        weight_map.update({n: shard for n in chunk})
    index = os.path.join(folder, "pytorch_model.bin.index.json")
    with open(index, "w") as f:
        json.dump({"weight_map": weight_map}, f)
    return index


class MakesMarker:
    """Unpickling this creates a file: proof that a pickle was executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def save_malicious(path: str, marker: str, legacy: bool = False) -> None:
    obj = {"weight": torch.ones(2), "payload": MakesMarker(marker)}
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
