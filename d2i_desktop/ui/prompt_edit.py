"""The prompt box: AUTOMATIC1111 syntax highlighted, LoRA and embedding names completed, Ctrl+Up/Down weights.

Ctrl+Up/Down changes the weight of the selection, or of the word under the cursor, or of the `(…:w)` group
the cursor is in, by 0.1 as AUTOMATIC1111 does: `word` becomes `(word:1.1)`, and at 1.0 the parentheses go.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QStringListModel, Qt, Signal
from PySide6.QtGui import QColor, QFont, QSyntaxHighlighter, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QCompleter, QPlainTextEdit

from ..core.generation.prompts import MAX_WEIGHT

WEIGHT_STEP = 0.1
_WEIGHTED = re.compile(r"\(([^()]*):([+-]?\d*\.?\d+)\)")
_LORA_TAG = re.compile(r"<lora:[^<>]*>?", re.IGNORECASE)
_BRACKETS = re.compile(r"(?<!\\)[()\[\]]")
_WEIGHT_NUMBER = re.compile(r":\s*[+-]?\d*\.?\d+\s*(?=\))")
_BREAK = re.compile(r"\bBREAK\b")
_LORA_PREFIX = re.compile(r"<lora:([^:<>]*)$", re.IGNORECASE)
_WORD = re.compile(r"[\w'-]+")


def _format(colour: str, bold: bool = False) -> QTextCharFormat:
    text_format = QTextCharFormat()
    text_format.setForeground(QColor(colour))
    if bold:
        text_format.setFontWeight(QFont.Weight.Bold)
    return text_format


class PromptHighlighter(QSyntaxHighlighter):
    """Colours brackets, `:1.3` weights, `BREAK` and `<lora:name:w>` tags (readable on light and dark themes)."""

    FORMATS = {"bracket": _format("#d9822b", bold=True), "weight": _format("#3d9be9", bold=True),
               "lora": _format("#b15fd8"), "break": _format("#d64545", bold=True)}

    def highlightBlock(self, text: str) -> None:
        for kind, pattern in (("bracket", _BRACKETS), ("weight", _WEIGHT_NUMBER), ("break", _BREAK),
                              ("lora", _LORA_TAG)):
            for match in pattern.finditer(text):
                self.setFormat(match.start(), match.end() - match.start(), self.FORMATS[kind])


def change_weight(text: str, start: int, end: int, delta: float) -> tuple[str, int, int]:
    """`text` with the weight of the span `start:end` changed by `delta`; returns the text and the span's new
    bounds. An empty span means the `(…:w)` group around `start`, else the word under it; no word, no change."""
    group = next((m for m in _WEIGHTED.finditer(text) if m.start() <= start and max(end, start) <= m.end()), None)
    if group is not None and (start == end or (start, end) == group.span(1)):
        inner, weight = group.group(1), float(group.group(2))
        begin, finish = group.span()
    else:
        if start == end:
            word = next((m for m in _WORD.finditer(text) if m.start() <= start <= m.end()), None)
            if word is None:
                return text, start, end
            start, end = word.span()
        inner, weight, begin, finish = text[start:end], 1.0, start, end
    weight = round(min(max(weight + delta, -MAX_WEIGHT), MAX_WEIGHT), 1)
    if weight == 1.0:
        return text[:begin] + inner + text[finish:], begin, begin + len(inner)
    replacement = f"({inner}:{weight:.1f})"
    return text[:begin] + replacement + text[finish:], begin + 1, begin + 1 + len(inner)


class PromptEdit(QPlainTextEdit):
    """A prompt box: Ctrl+Enter generates, Ctrl+Up/Down weights, names complete after `<lora:` and as words."""

    sig_submit = Signal()
    """Ctrl+Enter was pressed."""

    def __init__(self, parent=None, **kwargs):
        super().__init__(parent, **kwargs)
        self.highlighter = PromptHighlighter(self.document())
        self._loras: list[str] = []
        self._embeddings: list[str] = []
        self.completer = QCompleter(QStringListModel(self), self, caseSensitivity=Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setWidget(self)
        self.completer.activated.connect(self._complete)
        self._prefix_length = 0
        self._lora_completion = False

    def set_library_names(self, loras: list[str], embeddings: list[str]) -> None:
        """The names to complete: LoRAs after `<lora:`, embeddings as words."""
        self._loras, self._embeddings = sorted(loras), sorted(embeddings)

    def keyPressEvent(self, event):
        key, control = event.key(), bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        popup = self.completer.popup()
        if popup.isVisible() and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Tab, Qt.Key.Key_Escape):
            event.ignore()  # the completer takes these
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and control:
            self.sig_submit.emit()
            return
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and control:
            self.step_weight(WEIGHT_STEP if key == Qt.Key.Key_Up else -WEIGHT_STEP)
            return
        super().keyPressEvent(event)
        if event.text() and not control:
            self._offer_completions()

    def step_weight(self, delta: float) -> None:
        """Change the weight of the selection or the word under the cursor by `delta`, as one undo step."""
        cursor = self.textCursor()
        text, (start, end) = self.toPlainText(), sorted((cursor.anchor(), cursor.position()))
        new_text, new_start, new_end = change_weight(text, start, end, delta)
        if new_text == text:
            return
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(new_text)
        cursor.endEditBlock()
        cursor.setPosition(new_start)
        cursor.setPosition(new_end, QTextCursor.MoveMode.KeepAnchor)
        self.setTextCursor(cursor)

    def _offer_completions(self) -> None:
        before = self.toPlainText()[:self.textCursor().position()]
        lora = _LORA_PREFIX.search(before)
        if lora is not None:
            prefix, names = lora.group(1), self._loras
        else:
            word = re.search(r"[\w-]+$", before)
            prefix, names = (word.group(0), self._embeddings) if word else ("", [])
            if len(prefix) < 2:
                names = []
        matches = [name for name in names if name.lower().startswith(prefix.lower()) and name != prefix]
        if not matches:
            self.completer.popup().hide()
            return
        self._prefix_length, self._lora_completion = len(prefix), lora is not None
        self.completer.model().setStringList(names)
        self.completer.setCompletionPrefix(prefix)
        popup = self.completer.popup()
        rect = self.cursorRect()
        rect.setWidth(popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width())
        self.completer.complete(rect)
        popup.setCurrentIndex(self.completer.completionModel().index(0, 0))  # Enter takes the first name

    def _complete(self, name: str) -> None:
        cursor = self.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.Left, QTextCursor.MoveMode.KeepAnchor, self._prefix_length)
        cursor.insertText(f"{name}:1>" if self._lora_completion else name)
        self.setTextCursor(cursor)
