"""The depth panel: estimate (with the estimator chosen for this image), load and save the map, and how the canvas
shows it."""

from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider, QWidget

from ..core.depth import maps as depth_maps
from ..core.depth.estimators import DepthSettings
from .canvas import OVERLAY_MODES, VIEW_MODES, Canvas
from .estimator_combo import EstimatorCombo

KEY_COLORMAP, KEY_OPACITY, KEY_OVERLAY_MODE = "depth/colormap", "depth/overlay_opacity", "depth/overlay_mode"


class DepthPanel(QWidget):
    sig_estimate = Signal()
    """Estimate depth was pressed."""
    sig_load = Signal()
    """Load… was pressed: pick a depth file."""
    sig_save = Signal()
    """Save… was pressed: pick where to save the map."""

    def __init__(self, canvas: Canvas, parent=None):
        super().__init__(parent)
        self.setObjectName("depthPanel")
        self.canvas = canvas
        self.estimate_button = QPushButton("Estimate depth", objectName="estimateDepthButton")
        self.estimate_button.clicked.connect(self.sig_estimate)
        self.load_button = QPushButton("Load…", objectName="loadDepthButton", toolTip="Load a depth map from a file")
        self.load_button.clicked.connect(self.sig_load)
        self.save_button = QPushButton("Save…", objectName="saveDepthButton", enabled=False,
                                       toolTip="Save the edited depth map as 16-bit PNG or float .npy")
        self.save_button.clicked.connect(self.sig_save)
        self.estimator_combo = EstimatorCombo("depthEstimatorCombo")
        self.fine_detail_check = QCheckBox(self.tr("Fine detail"), objectName="depthFineDetailCheck",
                                           toolTip=self.tr("For large photos: estimate overlapping tiles too and merge "
                                                           "their detail in (slower)"))
        self.estimator_note = QLabel(objectName="depthEstimatorNote", wordWrap=True)
        self.estimator_note.setStyleSheet("color: palette(placeholder-text);")
        self.overlay_check = QCheckBox("Show over image", objectName="depthOverlayCheck", checked=True,
                                       toolTip="Show the depth with the picture (D)")
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, objectName="depthOpacitySlider",
                                      minimum=0, maximum=100, value=50, toolTip="Depth overlay opacity")
        self.opacity_label = QLabel(objectName="depthOpacityLabel", minimumWidth=36,
                                    alignment=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.overlay_mode_combo = QComboBox(objectName="depthOverlayModeCombo",
                                            toolTip="How the depth is shown with the image")
        self.overlay_mode_combo.addItems(list(OVERLAY_MODES))
        self.model_view_check = QCheckBox("What the model sees", objectName="modelViewCheck",
                                          toolTip="The depth as the model receives it: shrunk to the latent grid "
                                                  "(1/8 of each side) and stretched to -1..1, so only its shape counts")
        self.colormap_combo = QComboBox(objectName="depthColormapCombo", toolTip="Depth colours (bright/yellow = near)")
        self.colormap_combo.addItems(list(depth_maps.COLORMAPS))
        self.colormap_combo.setCurrentText(canvas.cmap)
        self.view_combo = QComboBox(objectName="viewCombo", toolTip="What the canvas shows (Compare: C)")
        self.view_combo.addItems(list(VIEW_MODES))

        files = QHBoxLayout()
        files.addWidget(self.estimate_button, 1)
        files.addWidget(self.load_button)
        files.addWidget(self.save_button)
        opacity = QHBoxLayout()
        opacity.addWidget(self.opacity_slider, 1)
        opacity.addWidget(self.opacity_label)
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        grid.addLayout(files, 0, 0, 1, 4)
        grid.addWidget(QLabel(self.tr("Estimator")), 1, 0)
        grid.addWidget(self.estimator_combo, 1, 1, 1, 2)
        grid.addWidget(self.fine_detail_check, 1, 3)
        grid.addWidget(self.estimator_note, 2, 0, 1, 4)
        grid.addWidget(self.overlay_check, 3, 0, 1, 2)
        grid.addLayout(opacity, 3, 2, 1, 2)
        grid.addWidget(QLabel(self.tr("Overlay")), 4, 0)
        grid.addWidget(self.overlay_mode_combo, 4, 1)
        grid.addWidget(QLabel(self.tr("Colours")), 4, 2)
        grid.addWidget(self.colormap_combo, 4, 3)
        grid.addWidget(QLabel(self.tr("View")), 5, 0)
        grid.addWidget(self.view_combo, 5, 1)
        grid.addWidget(self.model_view_check, 5, 2, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.setRowStretch(6, 1)

        self.estimator_combo.currentIndexChanged.connect(self._show_estimator_note)
        self.estimator_combo.sig_refreshed.connect(self._show_estimator_note)
        self._show_estimator_note()

        self.overlay_check.toggled.connect(self._overlay_changed)
        self.opacity_slider.valueChanged.connect(self._overlay_changed)
        self.overlay_mode_combo.currentTextChanged.connect(canvas.set_overlay_mode)
        self.model_view_check.toggled.connect(canvas.set_model_view)
        self.colormap_combo.currentTextChanged.connect(canvas.set_colormap)
        self.view_combo.currentTextChanged.connect(canvas.set_view_mode)
        canvas.sig_view_mode_changed.connect(self.view_combo.setCurrentText)
        self._overlay_changed()

    def bind_settings(self, settings: QSettings) -> None:
        """Show the overlay as last time (colours, opacity, mode) and remember each change in `settings`;
        a stored value that is not one of the choices is passed over."""
        if (cmap := settings.value(KEY_COLORMAP)) in depth_maps.COLORMAPS:
            self.colormap_combo.setCurrentText(cmap)
        if (mode := settings.value(KEY_OVERLAY_MODE)) in OVERLAY_MODES:
            self.overlay_mode_combo.setCurrentText(mode)
        opacity = str(settings.value(KEY_OPACITY, ""))
        if opacity.isdigit():
            self.opacity_slider.setValue(int(opacity))
        self.colormap_combo.currentTextChanged.connect(lambda cmap: settings.setValue(KEY_COLORMAP, cmap))
        self.overlay_mode_combo.currentTextChanged.connect(lambda mode: settings.setValue(KEY_OVERLAY_MODE, mode))
        self.opacity_slider.valueChanged.connect(lambda value: settings.setValue(KEY_OPACITY, value))

    def _overlay_changed(self) -> None:
        self.opacity_label.setText(f"{self.opacity_slider.value()}%")
        self.canvas.set_overlay(self.overlay_check.isChecked(), self.opacity_slider.value() / 100)

    def depth_settings(self) -> DepthSettings:
        """The estimator and its settings chosen for this image."""
        return DepthSettings(self.estimator_combo.name(), self.fine_detail_check.isChecked())

    def set_depth_settings(self, settings: DepthSettings) -> None:
        self.estimator_combo.set_name(settings.estimator)
        self.fine_detail_check.setChecked(settings.fine_detail)

    def set_model_has_own_estimator(self, has_own: bool) -> None:
        """Whether the loaded model carries DPT-hybrid (else DPT-hybrid must be downloaded like the others)."""
        self.estimator_combo.set_model_has_own(has_own)

    def _show_estimator_note(self) -> None:
        available = self.estimator_combo.is_available(self.estimator_combo.name())
        self.estimator_note.setText("" if available else self.estimator_combo.missing_text())
        self.estimator_note.setVisible(not available)

    def set_state(self, can_estimate: bool, has_depth: bool) -> None:
        self.estimate_button.setEnabled(can_estimate)
        self.save_button.setEnabled(has_depth)
