"""Hugging Face model folders and PEFT adapter folders, opened as one document.

A model folder holds ``config.json`` beside its weights: ``model.safetensors``, sharded
``model.safetensors.index.json`` + shards, or ``pytorch_model.bin`` (or its index); an adapter
folder holds ``adapter_config.json`` + ``adapter_model.safetensors`` (or ``.bin``). The weights
open with their own reader; the config is summarised as a non-tensor entry (``config.json`` /
``adapter_config.json``), so ``inspect``, its JSON and the window's tree show it, and is kept on
the document as ``doc.hf``. Saving in place rewrites only the weights file(s) in their layout
(a sharded folder's shards and index, as before); ``config.json`` is never rewritten.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..errors import ContentError
from ..model.document import Document

CONFIG, ADAPTER_CONFIG = "config.json", "adapter_config.json"
MAX_CONFIG_BYTES = 16 * 1024 * 1024
#: weights in the order Hugging Face prefers them (safetensors before pickles)
MODEL_WEIGHTS = ("model.safetensors.index.json", "model.safetensors",
                 "pytorch_model.bin.index.json", "pytorch_model.bin")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass
class HfFolder:
    """What a document opened from a Hugging Face folder knows about it (``doc.hf``).

    Attributes
    ----------
    folder : str
    kind : str
        ``"model"`` or ``"adapter"`` (a PEFT LoRA adapter).
    weights : str
        The weights file (or index) the tensors come from.
    config : dict
        ``config.json`` or ``adapter_config.json``, parsed.
    summary : str
        One line: model type and architectures, or LoRA r, alpha and target modules.
    """
    folder: str
    kind: str
    weights: str
    config: dict = field(default_factory=dict)
    summary: str = ""


def find_hf_folder(path: str) -> HfFolder | None:
    """The folder's layout when ``path`` is a model or adapter folder, else None (nothing read
    but the names in the folder)."""
    if not os.path.isdir(path):
        return None
    try:
        names = set(os.listdir(path))
    except OSError:
        return None
    if ADAPTER_CONFIG in names:
        weights = next((w for w in ADAPTER_WEIGHTS if w in names), None)
        if weights:
            return HfFolder(path, "adapter", os.path.join(path, weights))
    if CONFIG in names:
        weights = next((w for w in MODEL_WEIGHTS if w in names), None)
        if weights:
            return HfFolder(path, "model", os.path.join(path, weights))
    return None


def read_config(path: str) -> dict:
    """A config file, parsed; ContentError when it is not a JSON object of bounded size."""
    name = os.path.basename(path)
    try:
        if os.path.getsize(path) > MAX_CONFIG_BYTES:
            raise ContentError(f"its {name} is larger than any config ({MAX_CONFIG_BYTES // 2**20} MiB)")
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        detail = "it nests too deeply" if isinstance(exc, RecursionError) else exc
        raise ContentError(f"its {name} is not readable JSON: {detail}") from None
    if not isinstance(cfg, dict):
        raise ContentError(f"its {name} is not a JSON object")
    return cfg


def _text(value, most: int = 6) -> str:
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
        return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")
    return str(value)


def summarise(kind: str, cfg: dict) -> str:
    """One line for people: ``llama (LlamaForCausalLM)``, ``LoRA r=8, alpha=16, targets q_proj, v_proj``."""
    if kind == "adapter":
        parts = [f"{cfg.get('peft_type') or 'LoRA'}".replace("LORA", "LoRA")]
        parts.append(", ".join(f"{k}={cfg[key]}" for k, key in (("r", "r"), ("alpha", "lora_alpha"))
                               if key in cfg))
        if cfg.get("target_modules"):
            parts.append(f"targets {_text(cfg['target_modules'])}")
        if cfg.get("base_model_name_or_path"):
            parts.append(f"base {cfg['base_model_name_or_path']}")
        return " ".join(parts[:1]) + (" " + ", ".join(p for p in parts[1:] if p) if parts[1:] else "")
    model_type = cfg.get("model_type") or "model"
    arch = cfg.get("architectures")
    return f"{model_type} ({_text(arch)})" if arch else str(model_type)


def config_fields(doc: Document) -> dict | None:
    """The optional ``hf_config`` field of ``inspect --json``: the config keys people look for."""
    hf = getattr(doc, "hf", None)
    if hf is None:
        return None
    keys = (("peft_type", "r", "lora_alpha", "target_modules", "base_model_name_or_path")
            if hf.kind == "adapter" else ("model_type", "architectures", "torch_dtype"))
    return {"kind": hf.kind, **{k: hf.config[k] for k in keys if k in hf.config}}


def load_hf_folder(hf: HfFolder, progress=None, trust: bool = False) -> Document:
    """Open the folder's weights with their own reader and attach the config."""
    config_name = ADAPTER_CONFIG if hf.kind == "adapter" else CONFIG
    hf.config = read_config(os.path.join(hf.folder, config_name))
    hf.summary = summarise(hf.kind, hf.config)
    if hf.weights.endswith(".index.json"):
        from .sharded import load_sharded
        doc = load_sharded(hf.weights if "safetensors" not in hf.weights else hf.folder,
                           progress=progress, trust=trust)
    else:
        from . import _load
        doc = _load(hf.weights, progress, trust)
    doc.entries = {config_name: hf.summary, **doc.entries}
    doc.build_tree()
    doc.hf = hf
    return doc
