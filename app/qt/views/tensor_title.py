"""The title above the grid: the tensor's name, elided in the middle when the pane is narrow, and
its shape and dtype, always shown in full."""
from __future__ import annotations

import html

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QLabel, QSizePolicy

SEP = "\u00a0" * 3  # between the parts: no-break spaces, measured as drawn (rich text keeps them)
MIN_NAME = 16       # characters of the name kept before the optional parts are dropped


class TensorTitle(QLabel):
    """``set_title(name, essentials, optional)``: the name in bold, then ``essentials`` (shape and
    dtype: never cut), then each ``optional`` part (element count, layout, quantization) while it
    fits. A narrow label first elides the middle of the name (``model.enc…qkv.weight``), then drops
    the optional parts from the last, then elides the name further; the full text is the tooltip.

    ``setText`` with any other text shows it as a plain QLabel would (e.g. "no gradient").
    """

    def __init__(self, text: str = "", parent=None, objectName: str = "tensorTitle"):  # noqa: N803
        super().__init__(text, parent, objectName=objectName)
        self._parts: tuple[str, str, tuple[str, ...]] | None = None
        self.setTextFormat(Qt.RichText)
        self.setTextInteractionFlags(Qt.TextSelectableByMouse)
        # Expanding: as wide as the row allows, never narrower than the shape and dtype
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Preferred)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        self._parts = None
        super().setText(text)

    def set_title(self, name: str, essentials: str, optional=()) -> None:
        self._parts = (name, essentials, tuple(p for p in optional if p))
        self.setToolTip(SEP.join((name, essentials) + self._parts[2]).replace(SEP, "  "))
        self._layout_text()
        self.updateGeometry()

    def _bold_metrics(self) -> QFontMetrics:
        font = QFont(self.font())
        font.setBold(True)
        return QFontMetrics(font)

    def fitted(self, width: int) -> tuple[str, tuple[str, ...]]:
        """The name as shown and the optional parts kept, for a label ``width`` pixels wide."""
        name, essentials, optional = self._parts
        fm, bold = self.fontMetrics(), self._bold_metrics()
        room = width - 2 * self.margin() - 2 * self.frameWidth() - 4

        def rest(parts) -> int:
            return fm.horizontalAdvance(SEP + SEP.join((essentials,) + parts))

        min_name = bold.horizontalAdvance(name[:MIN_NAME // 2] + "…" + name[-(MIN_NAME // 2):]) \
            if len(name) > MIN_NAME else bold.horizontalAdvance(name)
        for keep in range(len(optional), -1, -1):  # drop optional parts only to keep MIN_NAME
            parts = optional[:keep]
            if room - rest(parts) >= min_name or keep == 0:
                break
        avail = max(0, room - rest(parts))
        return bold.elidedText(name, Qt.ElideMiddle, avail), parts

    def _layout_text(self) -> None:
        if self._parts is None:
            return
        if self.isVisible():
            shown, parts = self.fitted(self.width())
        else:  # not laid out yet: its width means nothing; fitted when shown
            shown, parts = self._parts[0], self._parts[2]
        text = f"<b>{html.escape(shown)}</b>" + "".join(
            SEP + html.escape(p) for p in (self._parts[1],) + parts)
        super().setText(text)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        hint = super().minimumSizeHint()
        if self._parts is None:  # a message: cut at the right, as a QLabel that may shrink
            return QSize(40, hint.height())
        essentials = self.fontMetrics().horizontalAdvance("…" + SEP + self._parts[1])
        return QSize(essentials + 2 * self.margin() + 2 * self.frameWidth() + 8, hint.height())

    def sizeHint(self) -> QSize:  # noqa: N802 (a long name asks for no width: it elides)
        return self.minimumSizeHint()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._layout_text()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self._layout_text()
