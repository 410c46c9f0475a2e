"""A page that asks for the whole height of its wrapped text, and scrolls instead of squeezing it when the screen
is too small."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


class ScrollPage(QScrollArea):
    def __init__(self, page: QWidget, parent=None):
        super().__init__(parent)
        self.setWidget(page)
        self.setWidgetResizable(True)  # the page gets the viewport's width and at least its height for that width
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        page.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:  # its contents changed
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():  # wrapped text takes another height
            self.updateGeometry()

    def sizeHint(self) -> QSize:
        """The page's height at the current width (QScrollArea caps its hint at a few dozen lines of text)."""
        page = self.widget()
        width = self.viewport().width() if self.isVisible() else page.sizeHint().width()
        height = page.heightForWidth(width) if page.hasHeightForWidth() else page.sizeHint().height()
        return QSize(page.sizeHint().width(), height)
