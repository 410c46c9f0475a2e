"""Keys that belong to the text field being typed in: Esc there must not reach the window's Cancel."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit, QTextEdit


class TextFieldKeys(QObject):
    """An application event filter: while an editable text field has focus, Esc is that field's key and no
    window shortcut fires on it."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() == QEvent.Type.ShortcutOverride and event.key() == Qt.Key.Key_Escape
                and _is_editable_text(watched)):
            event.accept()  # the field gets Esc as a key press; the shortcut does not fire
        return False


def _is_editable_text(widget: QObject) -> bool:
    return isinstance(widget, (QLineEdit, QPlainTextEdit, QTextEdit)) and not widget.isReadOnly()
