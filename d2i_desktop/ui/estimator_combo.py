"""A choice of depth estimator: each by its label, marked when its licence is non-commercial or it is not downloaded."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox

from ..core.depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS, estimator_folder, estimator_spec
from ..core.models.downloads import format_bytes


class EstimatorCombo(QComboBox):
    """The estimators in the catalogue's order; which are downloaded is looked up again each time the list opens,
    so one downloaded meanwhile (Model ▸ Models…) shows as such."""

    sig_refreshed = Signal()
    """Which estimators are downloaded was looked up again."""

    def __init__(self, object_name: str, parent=None):
        super().__init__(parent, objectName=object_name)
        # Long labels ("… (non-commercial, not downloaded)") must not widen the panel; the open list shows them whole.
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(14)
        self._model_has_own = False  # the loaded SD2-depth model carries its DPT-hybrid
        for name in ESTIMATORS:
            self.addItem("", name)
        self.currentIndexChanged.connect(self._show_tip)
        self.refresh()

    def name(self) -> str:
        return self.currentData()

    def set_name(self, name: str) -> None:
        """Choose `name`; one this version does not know chooses the default."""
        self.setCurrentIndex(max(self.findData(name), 0))

    def set_model_has_own(self, has_own: bool) -> None:
        self._model_has_own = has_own
        self.refresh()

    def is_available(self, name: str) -> bool:
        return (name == DEFAULT_ESTIMATOR and self._model_has_own) or estimator_folder(name) is not None

    def showPopup(self) -> None:
        self.refresh()
        super().showPopup()

    def refresh(self) -> None:
        for index in range(self.count()):
            spec = ESTIMATORS[self.itemData(index)]
            available = self.is_available(spec.name)
            marks = ([] if spec.commercial_use else [self.tr("non-commercial")]) + \
                ([] if available else [self.tr("not downloaded")])
            self.setItemText(index, spec.label + (f" ({', '.join(marks)})" if marks else ""))
            self.setItemData(index, self._tip(spec.name, available), Qt.ItemDataRole.ToolTipRole)
        self.view().setMinimumWidth(self.view().sizeHintForColumn(0) + 24)  # room for a scroll bar
        self._show_tip()
        self.sig_refreshed.emit()

    def _show_tip(self) -> None:
        self.setToolTip(self.itemData(self.currentIndex(), Qt.ItemDataRole.ToolTipRole))

    def _tip(self, name: str, available: bool) -> str:
        spec = estimator_spec(name)
        lines = [spec.note, self.tr("Licence: {licence}{use}. Download: {size}.").format(
            licence=spec.licence, use="" if spec.commercial_use else self.tr(" (non-commercial use only)"),
            size=format_bytes(spec.size_bytes))]
        if not available:
            lines.append(self.missing_text())
        return "\n".join(lines)

    def missing_text(self) -> str:
        return self.tr("Not downloaded: get it in Model ▸ Models….")
