"""Colour contrast (WCAG 2 relative luminance): readable text on any palette, dark ones too."""
from __future__ import annotations

from PySide6.QtGui import QColor


def luminance(colour: QColor) -> float:
    """WCAG relative luminance of ``colour``, 0 (black) to 1 (white)."""
    def channel(c: int) -> float:
        c /= 255.0
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    return (0.2126 * channel(colour.red()) + 0.7152 * channel(colour.green())
            + 0.0722 * channel(colour.blue()))


def contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours, 1 (same) to 21 (black on white)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)
