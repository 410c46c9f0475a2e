"""Spin boxes, combo boxes and sliders in a scrolled panel take the mouse wheel only once they have focus, so
the wheel scrolls the panel instead of changing whatever value passes under the pointer."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSlider, QAbstractSpinBox, QApplication, QComboBox, QScrollBar, QWidget

GUARDED = (QAbstractSpinBox, QComboBox, QAbstractSlider)


class WheelGuard(QObject):
    """An application event filter for the value widgets under one root widget, those made later included (a
    LoRA's weight row): they get focus by click or Tab only, and pass the wheel on to the panel while unfocused."""

    def __init__(self, root: QWidget):
        super().__init__(root)  # dies with the root, and Qt then drops the filter
        self.root = root
        for widget in root.findChildren(QWidget):
            if self._guards(widget):
                widget.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        QApplication.instance().installEventFilter(self)

    def _guards(self, watched: QObject) -> bool:
        return (isinstance(watched, GUARDED) and not isinstance(watched, QScrollBar)
                and self.root.isAncestorOf(watched))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.Polish and self._guards(watched):
            watched.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # not WheelFocus: the wheel must not take focus
        elif kind == QEvent.Type.Wheel and self._guards(watched) and not watched.hasFocus():
            if (area := _scroll_area_around(watched)) is not None:
                QApplication.sendEvent(area.viewport(), event.clone())
                return True
            event.ignore()  # filtered out, and ignored so that Qt offers it to the parents
            return True
        return False


def _scroll_area_around(widget: QWidget) -> QAbstractScrollArea | None:
    parent = widget.parentWidget()
    while parent is not None and not (isinstance(parent, QAbstractScrollArea) and parent.viewport().isAncestorOf(widget)):
        parent = parent.parentWidget()
    return parent


def install_wheel_guard(root: QWidget) -> WheelGuard:
    """Guard every spin box, combo box and slider under `root` (scroll bars keep the wheel)."""
    return WheelGuard(root)
