"""The command line's argparse parsers: built only when there are options or a sub-command to
parse (a plain GUI start skips them: app/__main__.py)."""
from __future__ import annotations

import argparse

from . import __version__


def parse_arguments(argv: list[str], commands: tuple[str, ...]) -> argparse.Namespace:
    """``argv`` parsed; ``args.command`` is one of ``commands``, or "gui"."""
    if argv and argv[0] in commands:
        return _command_parser().parse_args(argv)
    args = _gui_parser(commands).parse_args(argv)
    args.command = "gui"
    return args


def _gui_parser(commands: tuple[str, ...]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="paramedit",
        description="Desktop editor for PyTorch model parameters. "
                    f"Headless commands: {', '.join(commands)} (paramedit COMMAND --help).")
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
