"""The depth estimators the app offers, each with its licence, size and whether it is on this computer,
and a Download button for the selected one."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ..core.depth.estimators import ESTIMATORS
from ..core.models.downloads import format_bytes
from .offline_summary import estimator_presence

NON_COMMERCIAL_COLOUR = QColor("#e0a030")


class EstimatorsBox(QWidget):
    sig_download = Signal(str)
    """Download this estimator (its name in the catalogue)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model_has_own = False  # the model in use holds its own DPT-hybrid
        self.busy = False
        intro = QLabel(self.tr(
            "A depth estimator turns a photo into the depth map SD2-depth follows. DPT-Hybrid is what SD2-depth was "
            "trained on and comes inside the SD2-depth model; the others are separate downloads. Choose the default "
            "in Edit ▸ Settings, and one per image in the Depth panel."), wordWrap=True)
        self.tree = QTreeWidget(objectName="estimatorList")
        self.tree.setHeaderLabels([self.tr("Depth estimator"), self.tr("Licence"), self.tr("Size"),
                                   self.tr("On this computer")])
        self.tree.setRootIsDecorated(False)
        self.tree.setSizeAdjustPolicy(QTreeWidget.SizeAdjustPolicy.AdjustToContents)  # every row, without a scroll bar
        self.tree.currentItemChanged.connect(self._update_button)
        self.download_button = QPushButton(self.tr("Download selected"), objectName="downloadEstimator")
        self.download_button.clicked.connect(self._download_selected)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.download_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.tree, 1)
        layout.addLayout(buttons)
        for spec in ESTIMATORS.values():
            item = QTreeWidgetItem([spec.label, spec.licence if spec.commercial_use else
                                    self.tr("{licence} · non-commercial").format(licence=spec.licence),
                                    format_bytes(spec.size_bytes), ""])
            item.setData(0, Qt.ItemDataRole.UserRole, spec.name)
            for column in range(4):
                item.setToolTip(column, f"{spec.note}\n{spec.repo_id}")
            if not spec.commercial_use:
                item.setForeground(1, QBrush(NON_COMMERCIAL_COLOUR))
            self.tree.addTopLevelItem(item)
        self.refresh()

    def set_model_has_own(self, has_own: bool) -> None:
        self.model_has_own = has_own
        self.refresh()

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self._update_button()

    def refresh(self) -> None:
        """Look again which estimators are on this computer."""
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            where = self._where(item.data(0, Qt.ItemDataRole.UserRole))
            item.setText(3, where or self.tr("not downloaded"))
        for column in range(4):
            self.tree.resizeColumnToContents(column)
        self._update_button()

    def row(self, name: str) -> QTreeWidgetItem:
        """The list's row of the estimator `name`."""
        return next(self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())
                    if self.tree.topLevelItem(i).data(0, Qt.ItemDataRole.UserRole) == name)

    def _where(self, name: str) -> str:
        """"✓ downloaded", "✓ inside the model", or "" when it is not on this computer."""
        presence = estimator_presence(name, self.model_has_own)
        return {"in-model": self.tr("✓ inside the model"), "downloaded": self.tr("✓ downloaded"), None: ""}[presence]

    def _selected(self) -> str | None:
        item = self.tree.currentItem()
        return item.data(0, Qt.ItemDataRole.UserRole) if item else None

    def _update_button(self) -> None:
        name = self._selected()
        self.download_button.setEnabled(not self.busy and name is not None and not self._where(name))

    def _download_selected(self) -> None:
        if (name := self._selected()) is not None:
            self.sig_download.emit(name)
