"""The headless sub-commands (inspect, apply, diff, screenshot): what ``main`` runs for them."""
from __future__ import annotations

import contextlib
import sys
import warnings


def run_command(args) -> int:
    with _library_warnings_silenced():
        return _dispatch(args)


@contextlib.contextmanager
def _library_warnings_silenced():
    """No library warning on stderr: a failure is one ``error:`` line, and a success prints only
    its report (torch warns, for one, about every protocol-5 pickle it reads). paramedit's own
    messages are printed, never warned. Warnings asked for (``python -W``, ``PYTHONWARNINGS``)
    are shown as asked."""
    if sys.warnoptions:
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _dispatch(args) -> int:
    if args.command == "inspect":
        return _inspect(args)
    if args.command == "apply":
        from .core.recipes.apply_cli import apply_command
        return apply_command(args)
    if args.command == "diff":
        from .core.compare.diff_cli import diff_command
        return diff_command(args)
    if args.command == "screenshot":
        from .qt.screenshot import screenshot_command
        return screenshot_command(args)
    raise ValueError(f"unknown command {args.command!r}")


def _inspect(args) -> int:
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


def _verify(path: str) -> None:
    from .core.errors import CheckpointError
    from .core.formats import verify_document
    bad = verify_document(path)
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise CheckpointError(f"{path} is corrupt: {len(bad)} zip member(s) fail their CRC "
                              f"check ({shown})")
