"""What the grid cannot show whole (``grid_limits``): a one-line note (``gridLimitNote``) and, for
each axis shown through a window, a spin box picking where the window starts
(``windowStart<axis>``). ``index_spin`` makes a spin box for indices beyond 32 bits, which
QSpinBox cannot hold."""
from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSpinBox, QWidget

INT_MAX = 2 ** 31 - 1


def index_spin(parent, n: int, object_name: str) -> QSpinBox | QDoubleSpinBox:
    """A spin box of the indices 0 to ``n - 1``: a QSpinBox, or past 32 bits a QDoubleSpinBox
    without decimals (exact up to 2^53). Read it with ``int(spin.value())``."""
    top = max(0, int(n) - 1)
    if top <= INT_MAX:
        spin = QSpinBox(parent, objectName=object_name)
    else:
        spin = QDoubleSpinBox(parent, objectName=object_name, decimals=0)
    spin.setRange(0, top)
    spin.setKeyboardTracking(False)
    return spin


class GridWindowControls(QWidget):
    """The note and the window spin boxes of ``model`` (a ``TensorTableModel``), rebuilt when
    it shows another tensor or slice; hidden when the grid shows everything."""

    def __init__(self, model, parent=None):
        super().__init__(parent, objectName="gridWindowControls")
        self.model = model
        self.note = QLabel(self, objectName="gridLimitNote")
        self.note.setWordWrap(True)
        self.spins: dict[int, QSpinBox | QDoubleSpinBox] = {}
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.note, 1)
        model.modelReset.connect(self.rebuild)
        model.windowChanged.connect(self._sync)
        self.rebuild()

    def rebuild(self) -> None:
        for spin in self.spins.values():
            spin.setParent(None)
            spin.deleteLater()
        self.spins = {}
        vector = self.model.tensor is not None and self.model.tensor.dim() == 1
        for w in self.model.windows():
            spin = index_spin(self, w.length - w.span + 1, f"windowStart{w.axis}")
            spin.setPrefix("values from " if vector else f"axis {w.axis} from ")
            spin.setSuffix(f" / {w.length:,}")
            spin.setSingleStep(max(1, w.span // 2))
            spin.setValue(w.start)
            spin.setToolTip(f"Only {w.span:,} indices of this axis fit the grid at once: "
                            "the first one shown")
            spin.valueChanged.connect(lambda v, a=w.axis: self.model.set_window_start(a, int(v)))
            self._layout.addWidget(spin)
            self.spins[w.axis] = spin
        self._sync()

    def _sync(self) -> None:
        text = self.model.limit_note()
        self.note.setText(text)
        for w in self.model.windows():
            spin = self.spins.get(w.axis)
            if spin is not None and int(spin.value()) != w.start:
                spin.blockSignals(True)
                spin.setValue(w.start)
                spin.blockSignals(False)
        self.setVisible(bool(text))
