"""The Hub address the Models dialog downloads from: the Hugging Face Hub or a mirror of it, with a connection test."""

from __future__ import annotations

import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from ..core.models.hub_endpoint import (
    DEFAULT_ENDPOINT, DownloadError, normalize_endpoint, remembered_endpoint, resolve_endpoint,
)
from .download_worker import HubAddress


def initial_address(given: str = "") -> str:
    """What the field shows at first: `given`, else a remembered mirror or HF_ENDPOINT; empty for the Hub itself.
    An HF_ENDPOINT that is no web address is shown as it is, so that the user sees what to mend."""
    if given:
        return given
    if remembered_endpoint() or os.environ.get("HF_ENDPOINT"):
        try:
            return resolve_endpoint()
        except DownloadError:
            return os.environ["HF_ENDPOINT"]
    return ""


class HubMirrorRow(QWidget):
    sig_test = Signal()
    """The user asked to test the connection to the address in the field."""

    def __init__(self, address: str = "", parent=None):
        super().__init__(parent)
        self.edit = QLineEdit(initial_address(address), objectName="endpointEdit", clearButtonEnabled=True)
        self.edit.setPlaceholderText(self.tr("{hub} (the Hugging Face Hub), or a mirror such as {mirror}").format(
            hub=DEFAULT_ENDPOINT, mirror="https://hf-mirror.com"))
        self.edit.setToolTip(self.tr("Where downloads come from. A mirror serves the Hub's files where the Hub is "
                                     "blocked or slow; the address is remembered once a test or a download through it "
                                     "succeeds."))
        self.test_button = QPushButton(self.tr("Test connection"), objectName="testConnection")
        self.test_button.clicked.connect(self.sig_test)
        self.edit.returnPressed.connect(self.sig_test)
        self.answer = QLabel(objectName="endpointAnswer", wordWrap=True)
        self.answer.hide()
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(QLabel(self.tr("Hub address:")))
        row.addWidget(self.edit, 1)
        row.addWidget(self.test_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        column.addLayout(row)
        column.addWidget(self.answer)

    def address(self) -> HubAddress:
        """The address in the field (the Hub's when it is empty); DownloadError when it is not a web address."""
        typed = self.edit.text().strip()
        endpoint = normalize_endpoint(typed) if typed else DEFAULT_ENDPOINT
        return HubAddress(endpoint, endpoint if typed else None)

    def show_answer(self, text: str, ok: bool) -> None:
        self.answer.setText(("✓ " if ok else "✗ ") + text)
        self.answer.setStyleSheet("" if ok else "color:#e5534b;")
        self.answer.show()

    def show_testing(self, endpoint: str) -> None:
        self.answer.setText(self.tr("Testing {endpoint}…").format(endpoint=endpoint))
        self.answer.setStyleSheet("")
        self.answer.show()

