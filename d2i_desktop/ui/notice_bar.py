"""A slim, non-modal message bar: what happened and what to do, never a traceback."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

STYLES = {
    "error": "background:#5c1f1f; color:#ffd9d6; border:1px solid #a33;",
    "warning": "background:#4d3b12; color:#ffe9b3; border:1px solid #a8801f;",
    "info": "background:#1d3a52; color:#d6ecff; border:1px solid #2f6690;",
}


class NoticeBar(QFrame):
    """Errors and warnings stay until dismissed; an info notice hides itself after `info_lifetime_ms`, though not
    while the pointer is over it (it is being read)."""

    info_lifetime_ms = 8000

    def __init__(self, parent=None, object_name: str = "noticeBar", closable: bool = True):
        super().__init__(parent)
        self.setObjectName(object_name)
        self.level = "info"
        self.text = QLabel(objectName="noticeText", wordWrap=True)
        self.text.setTextInteractionFlags(self.text.textInteractionFlags() | self.text.textInteractionFlags().TextSelectableByMouse)
        self.action = QPushButton(objectName="noticeAction")
        self.action.clicked.connect(self._act)
        self._callback = None
        self.close_button = QToolButton(text="✕", objectName="noticeCloseButton", toolTip=self.tr("Dismiss"),
                                        autoRaise=True, visible=closable)
        self.close_button.setAccessibleName(self.tr("Dismiss the notice"))
        self.close_button.clicked.connect(self.hide)
        self.expiry = QTimer(self, singleShot=True)
        self.expiry.timeout.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.action)
        layout.addWidget(self.close_button)
        self.hide()

    def show_message(self, message: str, hint: str = "", level: str = "error") -> None:
        self.level = level
        self.setStyleSheet(f"#{self.objectName()} {{{STYLES[level]} border-radius:4px;}} QLabel {{border:none;}}")
        self.text.setText(f"<b>{_escape(message)}</b>" + (f"<br>{_escape(hint)}" if hint else ""))
        self.action.hide()
        self.show()
        self._expire_later()

    def set_action(self, label: str, callback) -> None:
        """Offer the shown message's cure as one button; pressing it dismisses the bar and calls `callback`.
        A notice with a cure stays until it is used or dismissed."""
        self._callback = callback
        self.action.setText(label)
        self.action.show()
        self.expiry.stop()

    def _expire_later(self) -> None:
        if self.level == "info" and self.action.isHidden() and not self.underMouse():
            self.expiry.start(self.info_lifetime_ms)
        else:
            self.expiry.stop()

    def enterEvent(self, event):
        self.expiry.stop()
        super().enterEvent(event)

    def leaveEvent(self, event):
        if not self.isHidden():
            self._expire_later()
        super().leaveEvent(event)

    def _act(self) -> None:
        self.hide()
        self._callback()

    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""

    def show_error(self, error) -> None:
        """Show a D2IError's message and hint."""
        self.show_message(error.message, error.hint)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
