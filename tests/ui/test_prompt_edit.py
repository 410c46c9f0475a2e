"""The prompt box: weights with Ctrl+Up/Down, highlighting, and LoRA / embedding name completion."""

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor

from d2i_desktop.ui.prompt_edit import PromptEdit, PromptHighlighter, change_weight


@pytest.mark.parametrize("text, start, end, delta, expected", [
    ("a red car", 3, 3, 0.1, ("a (red:1.1) car", 3, 6)),
    ("a (red:1.1) car", 4, 4, 0.1, ("a (red:1.2) car", 3, 6)),
    ("a (red:1.1) car", 3, 6, -0.1, ("a red car", 2, 5)),  # back to 1.0: the parentheses go
    ("a red car", 2, 9, -0.1, ("a (red car:0.9)", 3, 10)),
    ("a (red:0.1) car", 4, 4, -0.1, ("a (red:0.0) car", 3, 6)),
    ("a (red:10.0) car", 4, 4, 0.1, ("a (red:10.0) car", 3, 6)),  # the prompt parser's limit
    ("a , car", 2, 2, 0.1, ("a , car", 2, 2)),  # no word under the cursor: nothing changes
])
def test_change_weight(text, start, end, delta, expected):
    assert change_weight(text, start, end, delta) == expected


@pytest.fixture
def edit(qtbot):
    box = PromptEdit()
    qtbot.addWidget(box)
    box.show()
    qtbot.waitExposed(box)
    return box


def place(edit, position, anchor=None):
    cursor = edit.textCursor()
    cursor.setPosition(position if anchor is None else anchor)
    cursor.setPosition(position, QTextCursor.MoveMode.KeepAnchor)
    edit.setTextCursor(cursor)


def test_ctrl_up_and_down_weigh_the_word_under_the_cursor_and_undo_in_one_step(qtbot, edit):
    edit.setPlainText("a lighthouse at dusk")
    place(edit, 5)
    for _ in range(3):
        qtbot.keyClick(edit, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert edit.toPlainText() == "a (lighthouse:1.3) at dusk"
    assert edit.textCursor().selectedText() == "lighthouse"
    for _ in range(3):
        qtbot.keyClick(edit, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert edit.toPlainText() == "a lighthouse at dusk"
    place(edit, 20, anchor=16)  # "dusk" selected
    qtbot.keyClick(edit, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert edit.toPlainText() == "a lighthouse at (dusk:0.9)"
    edit.undo()
    assert edit.toPlainText() == "a lighthouse at dusk"


def test_weights_brackets_and_lora_tags_are_highlighted(qtbot, edit):
    edit.setPlainText("a (red:1.3) car <lora:ink:0.6> plain")
    block = edit.document().firstBlock()
    qtbot.waitUntil(lambda: len(block.layout().formats()) > 0)
    colours = {}
    for fmt_range in block.layout().formats():
        for index in range(fmt_range.start, fmt_range.start + fmt_range.length):
            colours[index] = fmt_range.format.foreground().color()
    text = edit.toPlainText()
    formats = PromptHighlighter.FORMATS
    assert colours[text.index("(")] == formats["bracket"].foreground().color()
    assert colours[text.index("1.3")] == formats["weight"].foreground().color()
    assert colours[text.index("<lora")] == colours[text.index("0.6>") + 3] == formats["lora"].foreground().color()
    assert text.index("red") not in colours and text.index("plain") not in colours


def test_lora_names_complete_after_the_tag_and_embeddings_as_words(qtbot, edit):
    edit.set_library_names(["watercolour", "wood-grain", "ink"], ["bad-hands", "easynegative"])
    qtbot.keyClicks(edit, "a boat <lora:wa")
    popup = edit.completer.popup()
    qtbot.waitUntil(popup.isVisible)
    assert edit.completer.currentCompletion() == "watercolour" and edit.completer.completionCount() == 1
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert edit.toPlainText() == "a boat <lora:watercolour:1>"
    qtbot.keyClicks(edit, ", easy")
    qtbot.waitUntil(popup.isVisible)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert edit.toPlainText() == "a boat <lora:watercolour:1>, easynegative"
    qtbot.keyClicks(edit, " zz")
    assert not popup.isVisible()  # nothing in the library starts so


def test_window_prompt_boxes_learn_the_library_names(window):
    window.library_panel.sig_names_changed.emit(["ink"], ["bad-hands"])
    for box in (window.params_panel.prompt, window.params_panel.negative):
        assert isinstance(box, PromptEdit)
        box.setPlainText("")
        box.setFocus()
        box.insertPlainText("<lora:")
        box._offer_completions()
        assert box.completer.currentCompletion() == "ink"
        box.completer.popup().hide()
