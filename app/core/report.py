"""What ``main.py inspect`` prints: CONTRACT.md's JSON, or an indented tree for people."""
from __future__ import annotations

import contextlib
import json
from typing import Any, TextIO

from .model import file_lease
from .model.document import Document
from .stats import compute_stats
from .model.nested import nested_entries
from .model.tree import ENTRY
from .units import human_count, human_size  # noqa: F401  (also used from here)


def inspect_json(doc: Document, with_stats: bool = False) -> dict[str, Any]:
    with _leased(doc, with_stats):
        return _inspect_json(doc, with_stats)


def _leased(doc: Document, with_stats: bool):
    """While statistics read every tensor: a rewrite of the file (a training loop saving to it)
    waits for the tensor being read, and the next one refuses (``file_lease``), never SIGBUS."""
    return file_lease.leased(doc) if with_stats else contextlib.nullcontext()


def _inspect_json(doc: Document, with_stats: bool) -> dict[str, Any]:
    tensors = []
    for e in doc.tensors.values():
        item: dict[str, Any] = {"name": e.name, "shape": list(e.shape), "dtype": e.dtype_name,
                                "numel": e.numel, "kind": e.kind, "shared_with": list(e.shared_with)}
        if with_stats:
            item["stats"] = _stats_dict(e, doc)
        tensors.append(item)
    out = {"path": doc.path, "format": doc.format, "tensors": tensors,
           "entries": all_entries(doc), "total_numel": doc.total_numel()}
    if doc.load_report is not None:
        out["load_report"] = doc.load_report
    from .formats.hf_folder import config_fields
    hf = config_fields(doc)
    if hf is not None:  # a Hugging Face model or adapter folder: what its config says
        out["hf_config"] = hf
    return out


def write_json(out: dict[str, Any], stream: TextIO) -> None:
    """``out`` as JSON, laid out for people: one top-level key a line, one list item a line.

    Every value goes through json's C encoder (``json.dump(indent=2)`` runs the pure-Python one,
    seconds at 100k tensors); only the outer layout is written here."""
    encode = json.JSONEncoder().encode
    stream.write("{\n")
    for i, (key, value) in enumerate(out.items()):
        stream.write(f"  {encode(key)}: ")
        if isinstance(value, list) and value:
            stream.write("[\n    ")
            stream.write(",\n    ".join(map(encode, value)))
            stream.write("\n  ]")
        elif isinstance(value, dict) and value:
            stream.write("{\n    ")
            stream.write(",\n    ".join(f"{encode(k)}: {encode(v)}" for k, v in value.items()))
            stream.write("\n  }")
        else:
            stream.write(encode(value))
        stream.write(",\n" if i < len(out) - 1 else "\n")
    stream.write("}\n")


def all_entries(doc: Document) -> dict[str, str]:
    """Top-level summaries (``optimizer: dict (2 keys)``), then every non-tensor value below the
    top level under its dotted path (``optimizer.param_groups.0.lr: float: 0.001``)."""
    out = dict(doc.entries)
    if doc.container is not None and doc.module is None:
        for k, v in nested_entries(doc.container).items():
            out.setdefault(k, v)
    return out


def _stats_dict(entry, doc: Document) -> dict:
    """The values' statistics (dequantized, sparse zeros counted, fp8 as floats); for complex
    tensors those of abs, with "real" and "imag" beside them. ``std`` is torch's (Bessel)."""
    from .compare.diff import read_entry  # here: the window imports this module at start-up
    with file_lease.reading():
        doc.guard(entry)  # the file changed (or is about to): FileChangedError, one error line
        # read without keeping it in the entry: inspecting a 40 GB file holds one tensor at a time
        t = read_entry(entry).detach()
        try:
            s = compute_stats(t, bins=0)
        except ValueError as exc:  # e.g. an overlapping view far larger than its memory
            return {"error": str(exc)}
        return _stats_fields(t, s)


def _stats_fields(t, s) -> dict:
    out = {"min": s.min, "max": s.max, "mean": s.mean, "std": s.std,
           "nan": s.nan, "inf": s.inf, "zeros": s.zeros}
    if s.part is not None:
        out["part"] = s.part
        for part in ("real", "imag"):
            p = compute_stats(t, bins=0, part=part)
            out[part] = {"min": p.min, "max": p.max, "mean": p.mean, "std": p.std}
    return out


def _g(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def inspect_text(doc: Document, with_stats: bool = False) -> str:
    lines = [f"{doc.path}  ({doc.format})"]
    if doc.load_report is not None:
        from .loading.model_code import describe_report
        lines += [f"  {line}" for line in describe_report(doc.load_report)]
    with _leased(doc, with_stats):
        _tree_lines(doc, 0, lines, with_stats)
    entries = all_entries(doc)
    if entries:
        lines.append("entries:")
        lines += [f"  {k}: {v}" for k, v in entries.items()]
    tied = sum(1 for e in doc.tensors.values() if e.shared_with)
    lines.append(f"{len(doc.tensors)} tensors"
                 + (f" ({tied} tied names)" if tied else "")
                 + f", {human_count(doc.total_numel())} elements, {human_size(doc.total_bytes())}")
    return "\n".join(lines)


def _tree_lines(doc: Document, depth: int, lines: list[str], with_stats: bool) -> None:
    stack = [(c, depth) for c in reversed(doc.root.children)]  # iterative: names may nest deeply
    while stack:
        c, depth = stack.pop()
        pad = "  " * depth
        if c.entry is not None:
            e = c.entry
            text = f"{pad}{c.name}  {list(e.shape)}  {e.dtype_label}  {c.type_name}"
            if e.shared_with:
                text += f"  (tied with {', '.join(e.shared_with)})"
            if with_stats:
                s = _stats_dict(e, doc)
                if s.get("error"):
                    text += f"  (no statistics: {s['error']})"
                elif s and s["min"] is not None:
                    of = f"{s['part']}: " if "part" in s else ""
                    text += (f"  {of}min={_g(s['min'])} max={_g(s['max'])} mean={_g(s['mean'])}"
                             f" std={_g(s['std'])}")
                if s.get("nan") or s.get("inf"):
                    text += f"  NaN={s['nan']} Inf={s['inf']}"
            lines.append(text)
        elif c.kind == ENTRY:
            continue  # listed under "entries:"
        else:
            numel, _ = c.totals()
            label = f" ({c.type_name})" if c.type_name else ""
            lines.append(f"{pad}{c.name}{label}  {human_count(numel)} elements")
            stack.extend((k, depth + 1) for k in reversed(c.children))
