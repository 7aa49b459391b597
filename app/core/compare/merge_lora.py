"""Merge a PEFT LoRA adapter into its base model: ``W += scale * B @ A`` per adapted module.

The adapter is a folder (or its ``adapter_model.safetensors`` / ``.bin``) with
``adapter_config.json`` beside it. Keys look like ``base_model.model.<module>.lora_A.weight``
(an optional adapter name such as ``.default`` before ``.weight``); the target is
``<module>.weight`` of the document. ``scale = lora_alpha / r`` (``/ sqrt(r)`` with
``use_rslora``); ``rank_pattern`` / ``alpha_pattern`` entries apply to a module whose name is the
key or ends with ``.key``. Embeddings (``lora_embedding_A/B``) add ``(B @ A).T``;
``fan_in_fan_out`` (GPT-2's Conv1D) adds the transpose; convolutions compose their kernels.
Any other adapter tensor (``modules_to_save``) replaces its target. Every adapter key must find
its target with a matching shape, or nothing is merged.
"""
from __future__ import annotations

import json
import math
import os
import re

import torch

from .diff import read_entry
from ..model.document import Document
from ..errors import UserError
from .merge import _ValueEdit

PREFIX = "base_model.model."
_LORA = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)"
                   r"(?:\.[^.]+)?(?:\.weight)?$")
_EXTRA = re.compile(r"^(?P<name>.+?)(?:\.modules_to_save\.[^.]+|\.original_module)?"
                    r"(?P<leaf>\.[^.]+)$")


def adapter_files(path: str) -> tuple[str, str]:
    """(weights file, config file) of the adapter at ``path`` (folder or weights file)."""
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    config = os.path.join(folder, "adapter_config.json")
    if os.path.isdir(path):
        for fname in ("adapter_model.safetensors", "adapter_model.bin"):
            if os.path.isfile(os.path.join(path, fname)):
                return os.path.join(path, fname), config
        raise UserError(f"{path} holds no adapter_model.safetensors or adapter_model.bin")
    if not os.path.isfile(path):
        raise UserError(f"{path} does not exist")
    return path, config


def read_config(config_path: str) -> dict:
    try:
        with open(config_path, encoding="utf-8") as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise UserError(f"{config_path} is missing: a LoRA adapter needs its adapter_config.json "
                        "(r, lora_alpha)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{config_path} cannot be read: {exc}") from None
    if not isinstance(cfg, dict):
        raise UserError(f"{config_path} is not a JSON object")
    r = cfg.get("r")
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise UserError(f"{config_path}: 'r' must be a positive integer, not {r!r}")
    alpha = cfg.get("lora_alpha", r)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise UserError(f"{config_path}: 'lora_alpha' must be a number, not {alpha!r}")
    if cfg.get("use_dora"):
        raise UserError(f"{config_path}: DoRA adapters (use_dora) are not supported")
    for key in ("rank_pattern", "alpha_pattern"):
        if not isinstance(cfg.get(key) or {}, dict):
            raise UserError(f"{config_path}: {key!r} must be an object")
    return cfg


def _pattern(patterns: dict, module: str, default):
    for key, value in (patterns or {}).items():
        if module == key or module.endswith("." + key):
            return value
    return default


def lora_scale(cfg: dict, module: str) -> float:
    r = _pattern(cfg.get("rank_pattern"), module, cfg["r"])
    alpha = _pattern(cfg.get("alpha_pattern"), module, cfg.get("lora_alpha", cfg["r"]))
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def plan_lora(doc: Document, adapter: Document) -> tuple[dict[str, dict], dict[str, str]]:
    """``({target: {"A": entry, "B": entry, "module": m, "embedding": bool}}, {target: key})``:
    LoRA pairs and other adapter tensors that replace their target. UserError listing every
    adapter key without a target (or with a mismatched shape)."""
    pairs: dict[str, dict] = {}
    replace: dict[str, str] = {}
    unmatched: list[str] = []
    for key in adapter.names():
        name = key[len(PREFIX):] if key.startswith(PREFIX) else key
        m = _LORA.match(name)
        if m:
            target = m["module"] + ".weight"
            part = m["part"]
            slot = pairs.setdefault(target, {"module": m["module"],
                                             "embedding": part.startswith("lora_embedding")})
            slot["A" if part.endswith("A") else "B"] = adapter.entry(key)
            slot.setdefault("keys", []).append(key)
            continue
        m = _EXTRA.match(name)
        target = (m["name"] + m["leaf"]) if m else name
        if target in doc.tensors and tuple(doc.entry(target).shape) == tuple(adapter.entry(key).shape):
            replace[target] = key
        else:
            unmatched.append(key)
    for target, slot in list(pairs.items()):
        if "A" not in slot or "B" not in slot:
            unmatched += slot["keys"]
            del pairs[target]
        elif target not in doc.tensors:
            unmatched += slot["keys"]
            del pairs[target]
        elif not doc.entry(target).dtype.is_floating_point:
            raise UserError(f"{target} is {doc.entry(target).dtype_name}: LoRA merges into "
                            "floating-point weights only")
    if unmatched:
        more = f" (and {len(unmatched) - 5} more)" if len(unmatched) > 5 else ""
        raise UserError(f"{len(unmatched)} adapter tensor(s) found no target in the base model: "
                        f"{', '.join(unmatched[:5])}{more}")
    if not pairs and not replace:
        raise UserError("the adapter holds no LoRA weights (lora_A / lora_B)")
    return pairs, replace


def lora_delta(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float,
               embedding: bool = False, fan_in_fan_out: bool = False) -> torch.Tensor:
    """``scale * B @ A`` shaped like ``w`` (as PEFT computes it; half types in float32 on CPU)."""
    dt = torch.float32 if w.dtype in (torch.float16, torch.bfloat16) else w.dtype
    a, b = a.to(dt), b.to(dt)
    if w.dim() == 4:  # Conv2d: A (r, in, kh, kw), B (out, r, 1, 1)
        if a.shape[2:] == (1, 1):
            d = (b.squeeze(3).squeeze(2) @ a.squeeze(3).squeeze(2)).unsqueeze(2).unsqueeze(3)
        else:
            d = torch.nn.functional.conv2d(a.permute(1, 0, 2, 3), b).permute(1, 0, 2, 3)
        delta = scale * d
    else:
        delta = scale * (b @ a)
        if embedding or fan_in_fan_out:
            delta = delta.T
    if tuple(delta.shape) != tuple(w.shape):
        raise UserError(f"B @ A has shape {list(delta.shape)}, the weight {list(w.shape)}")
    return delta.to(w.dtype)


class LoraMergeEdit(_ValueEdit):
    """Merge the adapter (a Document of its weights, and its config) into the document."""

    def __init__(self, doc: Document, adapter: Document, config: dict, input_name: str = "lora",
                 adapter_path: str | None = None):
        self.adapter, self.config, self.input_name = adapter, dict(config), input_name
        self.pairs, self.replace = plan_lora(doc, adapter)
        self.inputs = {input_name: adapter_path or adapter.path or ""}
        super().__init__(list(self.pairs) + [n for n in self.replace if n not in self.pairs])

    @property
    def label(self) -> str:
        return f"Merge LoRA adapter {self.input_name} ({len(self.pairs)} modules)"

    def new_value(self, doc, name, w):
        if name in self.replace:
            return read_entry(self.adapter.entry(self.replace[name])).detach()
        slot = self.pairs[name]
        a = read_entry(slot["A"]).detach()
        b = read_entry(slot["B"]).detach()
        delta = lora_delta(w, a, b, lora_scale(self.config, slot["module"]), slot["embedding"],
                           bool(self.config.get("fan_in_fan_out")))
        return w + delta

    def recipe_step(self) -> dict:
        return {"op": "lora_merge", "adapter": self.input_name}

    @classmethod
    def from_step(cls, step: dict, doc: Document, inputs=None) -> _ValueEdit:
        from .merge_ops import merge_edit_for_step
        return merge_edit_for_step(step, doc, inputs)


def open_adapter(path: str) -> tuple[Document, dict]:
    from ..formats import load_document
    weights, config = adapter_files(path)
    cfg = read_config(config)
    return load_document(weights), cfg
