"""Command line (CONTRACT.md section 1): the GUI by default, headless sub-commands otherwise.

A plain GUI start (no argument, or one path) paints its splash about as fast as a bare PySide6
window (issue 15), so this module stays small and builds no argparse parser for it: the parsers
(cli_parser.py) and the commands (cli_commands.py) are imported only when they are needed.
"""
from __future__ import annotations

import os
import sys
from types import SimpleNamespace

COMMANDS = ("inspect", "apply", "screenshot", "diff")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = plain_gui_arguments(argv)
    if args is None:
        from .cli_parser import parse_arguments
        args = parse_arguments(argv, COMMANDS)
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


def plain_gui_arguments(argv: list[str]) -> SimpleNamespace | None:
    """What argparse would make of no argument or one path (not an option, not a command), without
    argparse; None for anything else."""
    if len(argv) > 1 or (argv and (argv[0].startswith("-") or argv[0] in COMMANDS)):
        return None
    return SimpleNamespace(command="gui", path=argv[0] if argv else None, model=None,
                           model_args=None, trust=False)


def one_line(text: str) -> str:
    """``text`` as one printable line: names from a hostile file may carry newlines or escapes."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in " ".join(text.splitlines()))


def _run(args) -> int:
    if args.command == "gui":
        from .qt.launch import run_gui
        return run_gui(args)
    from .cli_commands import run_command
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
