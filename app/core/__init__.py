"""Qt-free core of paramedit: reading checkpoints, the document and its tree, statistics, edits.

Nothing under ``app.core`` may import PySide6, pyqtgraph or ``app.qt`` (tests/core/test_layering.py).
"""
