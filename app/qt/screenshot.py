"""``main.py screenshot [PATH] -o PNG [--select NAME] [--size WxH]``: the window, offscreen, as a PNG."""
from __future__ import annotations

import os
import sys
import time

from ..core.errors import UserError

SETTLE_TIMEOUT_S = 15.0


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {text!r} is not WIDTHxHEIGHT (e.g. 1400x900)") from None
    if not (200 <= w <= 10000 and 200 <= h <= 10000):
        raise UserError(f"--size {text!r}: width and height must be between 200 and 10000")
    return w, h


def screenshot_command(args) -> int:
    size = parse_size(args.size)
    output = os.path.abspath(args.output)
    if not os.path.isdir(os.path.dirname(output)):
        raise UserError(f"cannot write {args.output}: its folder does not exist")
    # The contract says offscreen; a caller may still pick another platform explicitly.
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from ..core.loading.open import open_document
    from .launch import application, demo_document

    if args.path:  # synchronously: errors surface here as UserError (exit 2)
        doc = open_document(args.path, model=args.model, model_args=args.model_args,
                            trust=args.trust)
        title = None
    else:
        doc, title = demo_document(), "demo model"
    _quiet_platform_warnings()
    app = application()
    from .main_window import MainWindow
    window = MainWindow()
    window.resize(*size)
    window.open_document(doc, title)
    window.show()
    settle(app, window)
    if getattr(args, "compare", None):
        from .compare_flows import compare_for_screenshot
        compare_for_screenshot(window, args.compare, lambda: settle(app, window))
    if args.select and not window.select_name(args.select):
        raise UserError(f"--select {args.select!r}: no tensor or module of that name")
    settle(app, window)
    if not window.grab().save(output, "PNG"):
        raise UserError(f"cannot write {args.output}")
    window.close()
    return 0


def settle(app, window, timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Process events until background work (loading, exact statistics) has finished and the
    views have painted; gives up quietly after ``timeout`` (the PNG then shows what is there)."""
    from PySide6.QtCore import QThreadPool
    pool = QThreadPool.globalInstance()
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        app.processEvents()
        idle = (pool.activeThreadCount() == 0 and not window.stats_panel.is_busy
                and not window.controller.is_loading)
        if idle:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.15:  # queued results delivered and painted
                break
        else:
            quiet_since = None
        time.sleep(0.01)
    app.processEvents()


def _quiet_platform_warnings() -> None:
    """The offscreen platform warns about window features it lacks; that is not news for a PNG."""
    from PySide6.QtCore import QtMsgType, qInstallMessageHandler

    def handler(kind, context, message):
        if kind in (QtMsgType.QtDebugMsg, QtMsgType.QtInfoMsg) or "propagateSizeHints" in message:
            return
        print(message, file=sys.stderr)
    qInstallMessageHandler(handler)
