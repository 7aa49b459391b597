"""The summary statistics as a small form (objectName ``statsPanel``).

NaN and Inf counts are link-styled buttons (``nanButton``, ``infButton``): clicking one asks to
go to the first such element. Approximate figures (a sampled preview) carry a "≈".
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QPushButton, QWidget

from ...core.stats import Stats

LINK_STYLE = ("QPushButton { border: none; padding: 0; text-align: left; color: palette(link);"
              " text-decoration: underline; } QPushButton:disabled { color: palette(text);"
              " text-decoration: none; }")
FIELDS = (("numel", "elements"), ("min", "min"), ("max", "max"), ("mean", "mean"),
          ("std", "std"), ("l2", "L2 norm"), ("nan", "NaN"), ("inf", "Inf"), ("zeros", "zeros"))


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.6g}"


def _count(n: int, total: int) -> str:
    pct = 100.0 * n / total if total else 0.0
    return f"{n:,}" if n == 0 else f"{n:,} ({pct:.3g} %)"


class StatsTable(QWidget):
    """Shows one ``Stats``; ``stats`` is what is shown, ``values()`` the texts by field."""

    gotoNan = Signal()
    gotoInf = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("statsPanel")
        self.stats: Stats | None = None
        form = QFormLayout(self)
        form.setContentsMargins(4, 2, 4, 2)
        form.setLabelAlignment(Qt.AlignRight)
        self.fields: dict[str, QLabel | QPushButton] = {}
        for key, label in FIELDS:
            if key in ("nan", "inf"):
                w = QPushButton("—", self, objectName=f"{key}Button", flat=True)
                w.setStyleSheet(LINK_STYLE)
                w.setCursor(Qt.PointingHandCursor)
                w.setToolTip(f"Go to the first {label} element")
                w.setEnabled(False)
                w.clicked.connect(self.gotoNan if key == "nan" else self.gotoInf)
            else:
                w = QLabel("—", self, objectName=f"stat_{key}")
                w.setTextInteractionFlags(Qt.TextSelectableByMouse)
                w.setWordWrap(True)  # "131,072 (≈ from 1,048,576 sampled)" wraps, never widens
            if key == "std":
                w.setToolTip("Sample standard deviation with Bessel's correction (divides by "
                             "n - 1), as torch.Tensor.std() computes it; over the finite values")
            self.fields[key] = w
            form.addRow(label + ":", w)

    @property
    def current_stats(self) -> Stats | None:
        return self.stats

    def set_stats(self, s: Stats | None, can_goto: bool = True) -> None:
        self.stats = s
        if s is None:
            for key, w in self.fields.items():
                if w.text() != "—":
                    w.setText("—")  # nothing selected is not "no NaN"
                if isinstance(w, QPushButton):
                    w.setEnabled(False)
            return
        approx = "≈ " if s.approximate else ""
        texts = {"numel": f"{s.numel:,}" + (f"  (≈ from {s.sampled:,} sampled)"
                                             if s.approximate else ""),
                 "min": _num(s.min), "max": _num(s.max), "mean": _num(s.mean),
                 "std": _num(s.std), "l2": _num(s.l2),
                 "nan": _count(s.nan, s.numel), "inf": _count(s.inf, s.numel),
                 "zeros": _count(s.zeros, s.numel)}
        for key, text in texts.items():
            w = self.fields[key]
            text = text if key == "numel" or text == "—" else approx + text
            if w.text() != text:  # a new text lays the rows out again
                w.setText(text)
            if isinstance(w, QPushButton):
                count = s.nan if key == "nan" else s.inf
                w.setEnabled(bool(count) and can_goto and not s.approximate)
        sheet = LINK_STYLE + (" QPushButton:enabled { color: #c00000; }" if s.nan else "")
        if self.fields["nan"].styleSheet() != sheet:  # a new style sheet restyles, relays out
            self.fields["nan"].setStyleSheet(sheet)

    def values(self) -> dict[str, str]:
        return {key: w.text() for key, w in self.fields.items()}

    def text(self) -> str:
        return "\n".join(f"{label}: {self.fields[key].text()}" for key, label in FIELDS)
