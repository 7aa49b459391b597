"""Command line (CONTRACT.md section 1): the GUI by default, headless sub-commands otherwise."""
from __future__ import annotations

import argparse
import os
import sys

from . import __version__

COMMANDS = ("inspect", "apply", "screenshot", "diff")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        args = _command_parser().parse_args(argv)
    else:
        args = _gui_parser().parse_args(argv)
        args.command = "gui"
    try:
        status = _run(args)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at interpreter exit
        return status
    except BrokenPipeError:  # `paramedit inspect big.pt | head`: the reader has had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, never a traceback
        from .core.errors import UserError
        if isinstance(exc, UserError):
            print(f"error: {one_line(str(exc))}", file=sys.stderr)
            return 2
        if args.command == "inspect":  # untrusted input: even a bug gives one line, not a traceback
            text = " ".join(str(exc).split())[:200]
            print(f"error: {args.path} could not be inspected (internal error: "
                  f"{type(exc).__name__}: {text})", file=sys.stderr)
            return 2
        raise


def one_line(text: str) -> str:
    """``text`` as one printable line: names from a hostile file may carry newlines or escapes."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in " ".join(text.splitlines()))


def _gui_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="paramedit",
        description="Desktop editor for PyTorch model parameters. "
                    f"Headless commands: {', '.join(COMMANDS)} (paramedit COMMAND --help).")
    p.add_argument("path", nargs="?", help="checkpoint file or sharded folder to open "
                                           "(default: the built-in demo model)")
    p.add_argument("--version", action="version", version=f"paramedit {__version__}")
    _add_open_options(p)
    return p


def _add_open_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="MODULE:FACTORY",
                   help="build the architecture from code and load PATH into it")
    p.add_argument("--model-args", metavar="JSON", help="keyword arguments for the factory, as JSON")
    p.add_argument("--trust", action="store_true",
                   help="allow a pickle that imports code, or a TorchScript archive that needs "
                        "torch.jit.load (it runs the archive's code): only for files you trust")


def _command_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="paramedit")
    sub = p.add_subparsers(dest="command", required=True)
    ins = sub.add_parser("inspect", help="print what a checkpoint holds")
    ins.add_argument("path")
    ins.add_argument("--json", action="store_true", help="machine-readable output (CONTRACT.md)")
    ins.add_argument("--stats", action="store_true", help="add min/max/mean/std/NaN/Inf/zeros")
    ins.add_argument("--verify", action="store_true",
                     help="also read every zip member and check its CRC (torch does not); "
                          "a mismatch is an error (exit 2)")
    _add_open_options(ins)
    app_ = sub.add_parser("apply", help="replay a recipe on a checkpoint and save the result")
    app_.add_argument("recipe")
    app_.add_argument("path")
    app_.add_argument("-o", "--output", required=True, help="where to save (suffix picks the format)")
    app_.add_argument("--drop-entries", dest="drop_non_tensor", action="store_true",
                      help="saving as safetensors: drop non-tensor entries (epoch, optimizer ...)")
    app_.add_argument("--input", action="append", metavar="NAME=PATH",
                      help="another checkpoint the recipe uses (overrides its \"inputs\")")
    _add_open_options(app_)
    shot = sub.add_parser("screenshot", help="render the main window to a PNG, offscreen")
    shot.add_argument("path", nargs="?")
    shot.add_argument("-o", "--output", required=True)
    shot.add_argument("--select", metavar="NAME", help="tensor (or module) to select first")
    shot.add_argument("--size", default="1400x900", help="window size, WIDTHxHEIGHT")
    shot.add_argument("--compare", metavar="REF", help="compare with the checkpoint REF first")
    _add_open_options(shot)
    from .core.compare.diff_cli import add_diff_parser
    add_diff_parser(sub)
    return p


def _verify(path: str) -> None:
    from .core.errors import CheckpointError
    from .core.formats import verify_document
    bad = verify_document(path)
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointError(f"{path} is corrupt: {len(bad)} zip member(s) fail their CRC "
                              f"check ({shown})")


def _run(args) -> int:
    if args.command == "inspect":
        from .core.loading.open import open_document
        from .core.report import inspect_json, inspect_text, write_json
        doc = open_document(args.path, model=args.model, model_args=args.model_args, trust=args.trust)
        if args.verify:
            _verify(args.path)
        if args.json:
            out = inspect_json(doc, args.stats)
            if args.verify:
                out["verified"] = True
            write_json(out, sys.stdout)
        else:
            print(inspect_text(doc, args.stats))
            if args.verify:
                print("verified: every zip member matches its CRC (safetensors and legacy pickles "
                      "carry no checksums)")
        return 0
    if args.command == "apply":
        from .core.recipes.apply_cli import apply_command
        return apply_command(args)
    if args.command == "diff":
        from .core.compare.diff_cli import diff_command
        return diff_command(args)
    if args.command == "screenshot":
        from .qt.screenshot import screenshot_command
        return screenshot_command(args)
    from .qt.launch import run_gui
    return run_gui(args)


if __name__ == "__main__":
    sys.exit(main())
