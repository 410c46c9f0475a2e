"""The buttons along the bottom of a list panel (queue, gallery): one row, sharing its width."""

from PySide6.QtWidgets import QSizePolicy, QToolButton


def panel_button(text: str, name: str, tip: str, slot) -> QToolButton:
    button = QToolButton(text=text, objectName=name, toolTip=tip)
    button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    button.clicked.connect(slot)
    return button
