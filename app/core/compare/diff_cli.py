"""``main.py diff A B``: CONTRACT.md section 5's JSON, or a readable table."""
from __future__ import annotations

import json
import math
import sys

from .diff import DiffResult, open_and_diff, suggest_rename
from ..errors import UserError


def add_diff_parser(sub) -> None:
    p = sub.add_parser("diff", help="compare two checkpoints tensor by tensor "
                                    "(exit 0 equal, 1 different, 2 bad input)")
    p.add_argument("a", help="first checkpoint (A)")
    p.add_argument("b", help="reference checkpoint (B)")
    p.add_argument("--json", action="store_true", help="machine-readable output (CONTRACT.md)")
    p.add_argument("--atol", default="0", help="absolute tolerance (default 0)")
    p.add_argument("--rtol", default="0",
                   help="relative tolerance, times |B| (default 0: bit-exact)")
    p.add_argument("--rename", action="append", default=[], metavar="FROM=TO",
                   help="regular expression applied to both sides' names before matching "
                        "(repeatable; presets: 'module' strips module., '_orig_mod' strips "
                        "_orig_mod.)")
    p.add_argument("--trust", action="store_true",
                   help="allow pickles that import code (only for files you trust)")


def _tolerance(option: str, text) -> float:
    try:
        x = float(text)
    except ValueError:
        raise UserError(f"{option} {text!r}: not a number") from None
    if not math.isfinite(x) or x < 0:
        raise UserError(f"{option} {text!r}: must be a finite number >= 0")
    return x


def diff_command(args) -> int:
    atol, rtol = _tolerance("--atol", args.atol), _tolerance("--rtol", args.rtol)
    res = open_and_diff(args.a, args.b, atol=atol, rtol=rtol, renames=args.rename,
                        trust=args.trust)
    if args.json:
        text = json.dumps(res.to_json(), indent=2, allow_nan=False)
    else:
        text = diff_text(res, hint=not args.rename)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `diff ... | head`
        pass
    return res.exit_code


def _num(x: float | None, fmt: str = ".4g") -> str:
    return "inf" if x is None else format(x, fmt)


def _section(lines: list[str], title: str, items: list[str]) -> None:
    if items:
        lines.append(f"{title} ({len(items)}):")
        lines += [f"  {item}" for item in items]


def diff_text(res: DiffResult, hint: bool = True) -> str:
    lines = [f"A: {res.a}", f"B: {res.b}"]
    if res.atol or res.rtol:
        lines.append(f"tolerance: |A-B| <= {res.atol:g} + {res.rtol:g}*|B|")
    _section(lines, "only in A", res.only_a)
    _section(lines, "only in B", res.only_b)
    _section(lines, "shape changed", [f"{s['name']}  {s['a']} -> {s['b']}" for s in res.shape_changed])
    _section(lines, "dtype changed", [f"{s['name']}  {s['a']} -> {s['b']}" for s in res.dtype_changed])
    if res.changed:
        lines.append(f"changed ({len(res.changed)}):")
        rows = [("name", "max|A-B|", "rel_l2", "cosine", "differ", "numel")]
        for k in res.changed:
            d = res.diffs[k]
            nan = f" (NaN: A {d.nan_a}, B {d.nan_b})" if d.nan_a != d.nan_b else ""
            rows.append((k, _num(d.max_abs), _num(d.rel_l2), _num(d.cosine, ".6f"),
                         f"{d.n_diff:,}{nan}", f"{d.numel:,}"))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            lines.append("  " + r[0].ljust(widths[0]) + "".join(
                "  " + c.rjust(w) for c, w in zip(r[1:], widths[1:])))
    lines.append(f"equal: {len(res.equal)} tensor{'s' if len(res.equal) != 1 else ''}")
    s = res.to_json()["summary"]
    lines.append(f"{s['matched']} matched: {s['changed']} changed, {s['equal']} equal; "
                 f"{s['only_a']} only in A, {s['only_b']} only in B, "
                 f"{s['shape_changed']} shape changed, {s['dtype_changed']} dtype changed")
    if hint and (res.only_a or res.only_b):
        rule = suggest_rename(res.only_a, res.only_b)
        if rule:
            lines.append(f"hint: names differ by a prefix; try --rename '{rule}'")
    lines.append("identical" if not res.differs else "differ")
    return "\n".join(lines)

