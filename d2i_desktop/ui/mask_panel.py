"""The mask panel: paint the region to repaint on the canvas (brush, eraser, rectangle), invert, clear, feather,
and save or load it as a PNG; each change is undoable. The mask and its undo history live in the session;
generation takes the mask feathered, as 8-bit levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSettings, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QFileDialog, QFormLayout, QGridLayout, QLabel, QPushButton, QSpinBox,
    QWidget,
)

from ..core.errors import D2IError
from ..core.generation.masks import feather, load_mask, mask_levels, save_mask
from ..session import Session
from .canvas import TOOL_MASK, TOOL_PAN, Canvas
from .depth_tools import BrushSizeKeys, history_actions, history_buttons, show_history

MODE_BRUSH, MODE_ERASE, MODE_RECT = "brush", "erase", "rect"
MODES = (("Brush", MODE_BRUSH, "Paint the region to repaint"), ("Eraser", MODE_ERASE, "Take a part out of the region"),
         ("Rectangle", MODE_RECT, "Drag out a rectangle to repaint"))
MAX_FEATHER = 64
KEY_FEATHER = "mask/feather"


def paint_line(mask: np.ndarray, start: QPointF, end: QPointF, radius: float, value: float) -> None:
    """Set the discs of `radius` along start..end (image pixels) to `value`, in place."""
    steps = max(1, int(np.hypot(end.x() - start.x(), end.y() - start.y()) / max(radius / 3, 1)))
    rows, cols = np.ogrid[:mask.shape[0], :mask.shape[1]]
    for t in np.linspace(0, 1, steps + 1):
        x, y = start.x() + (end.x() - start.x()) * t, start.y() + (end.y() - start.y()) * t
        top, bottom = max(int(y - radius), 0), min(int(y + radius) + 2, mask.shape[0])
        left, right = max(int(x - radius), 0), min(int(x + radius) + 2, mask.shape[1])
        inside = (rows[top:bottom] + 0.5 - y) ** 2 + (cols[:, left:right] + 0.5 - x) ** 2 <= radius ** 2
        mask[top:bottom, left:right][inside] = value


def rect_between(a: QPointF, b: QPointF, shape: tuple[int, int]) -> QRectF:
    """The rectangle of whole pixels spanned by two points, clipped to an image of `shape` (height, width)."""
    left, right = sorted((int(np.clip(a.x(), 0, shape[1])), int(np.clip(b.x(), 0, shape[1]))))
    top, bottom = sorted((int(np.clip(a.y(), 0, shape[0])), int(np.clip(b.y(), 0, shape[0]))))
    return QRectF(left, top, right - left, bottom - top)


class MaskPanel(QWidget):
    sig_message = Signal(str, str, str)
    """A message for the notice bar: message, hint, level ("error", "warning" or "info")."""

    def __init__(self, session: Session, canvas: Canvas, parent=None):
        super().__init__(parent)
        self.setObjectName("maskPanel")
        self.session, self.canvas = session, canvas
        self.mode = MODE_BRUSH
        self._last: QPointF | None = None  # the previous point of a stroke, or a rectangle's first corner
        self._before: np.ndarray | None = None  # the mask as it was when the stroke in progress began
        self.undo_action, self.redo_action = history_actions(self, "mask", self.undo, self.redo)

        self.modes = QButtonGroup(self)
        self.modes.setExclusive(False)  # all unchecked means the canvas pans
        tools = QGridLayout()
        for column, (label, _mode, tip) in enumerate(MODES):
            button = QPushButton(label, checkable=True, toolTip=tip, objectName=f"mask{label}Button")
            self.modes.addButton(button, column)
            tools.addWidget(button, 0, column)
        self.modes.buttonToggled.connect(self._mode_toggled)
        self.invert_button = QPushButton("Invert", objectName="maskInvertButton", toolTip="Repaint the rest instead")
        self.clear_button = QPushButton("Clear", objectName="maskClearButton", toolTip="No mask: repaint all of it")
        self.load_button = QPushButton("Load…", objectName="maskLoadButton", toolTip="A PNG mask: white = repaint")
        self.save_button = QPushButton("Save…", objectName="maskSaveButton", toolTip="Save the mask as a PNG")
        actions = QGridLayout()
        for index, button in enumerate((self.invert_button, self.clear_button, self.load_button, self.save_button)):
            actions.addWidget(button, index // 2, index % 2)
        self.invert_button.clicked.connect(self.invert)
        self.clear_button.clicked.connect(self.clear)
        self.load_button.clicked.connect(self.load_dialog)
        self.save_button.clicked.connect(self.save_dialog)
        self.size = QSpinBox(objectName="maskSizeSpin", minimum=1, maximum=1024, value=48, suffix=" px",
                             toolTip="Brush and eraser diameter, in image pixels ([ and ] change it)")
        self.size.valueChanged.connect(lambda value: self.canvas.set_brush_size(float(value)))
        self.resize_actions = BrushSizeKeys(self, self.size).actions
        self.feather = QSpinBox(objectName="maskFeatherSpin", minimum=0, maximum=MAX_FEATHER, value=4, suffix=" px",
                                toolTip="Soften the mask's edge over this many pixels on each side")
        self.status = QLabel(objectName="maskStatus", wordWrap=True)
        form = QFormLayout(self)
        form.addRow(tools)
        form.addRow(actions)
        form.addRow("Brush size", self.size)
        form.addRow("Feather", self.feather)
        form.addRow(self.status)
        form.addRow(history_buttons(self, self.undo_action, self.redo_action))
        self._canvas_tool_changed(canvas.tool)  # Undo, Redo, [ and ] are the depth map's until a mask tool is chosen

        canvas.sig_mask_pressed.connect(self._pressed)
        canvas.sig_mask_dragged.connect(self._dragged)
        canvas.sig_mask_released.connect(self._released)
        canvas.sig_tool_changed.connect(self._canvas_tool_changed)
        session.sig_image_changed.connect(self._show)
        session.sig_mask_changed.connect(self._show)
        self._show()

    def bind_settings(self, settings: QSettings) -> None:
        """Feather as last time, and remember each change in `settings` (an unreadable value is passed over)."""
        feather_px = str(settings.value(KEY_FEATHER, ""))
        if feather_px.isdigit():
            self.feather.setValue(int(feather_px))  # the spin box clamps it to its range
        self.feather.valueChanged.connect(lambda value: settings.setValue(KEY_FEATHER, value))

    # -- the mask ----------------------------------------------------------------------
    def levels(self) -> np.ndarray | None:
        """The feathered mask as 8-bit levels for a job (None when there is none: all of the picture is repainted)."""
        mask = self.session.mask
        if mask is None or not mask.any():
            return None
        return mask_levels(feather(mask, self.feather.value()))

    def _show(self) -> None:
        mask = self.session.mask
        has = mask is not None and bool(mask.any())
        self.canvas.set_mask(mask if has else None)
        for button in (self.invert_button, self.clear_button, self.save_button):
            button.setEnabled(has)
        share = f"{mask.mean():.0%}" if has else ""
        self.status.setText(f"Only the red region ({share} of the picture) is repainted." if has
                            else "No mask: all of the picture is repainted.")
        show_history(self.undo_action, self.redo_action, self.session.mask_history, "mask")

    def invert(self) -> None:
        if self.session.mask is not None:
            self.session.set_mask(1 - self.session.mask, "Invert mask")

    def clear(self) -> None:
        if self.session.mask is not None:
            self.session.set_mask(None, "Clear mask")

    def undo(self) -> None:
        if self._before is None:  # never under a stroke
            self.session.undo_mask()

    def redo(self) -> None:
        if self._before is None:
            self.session.redo_mask()

    # -- painting ----------------------------------------------------------------------
    def _mode_toggled(self, toggled: QPushButton, on: bool) -> None:
        if on:
            for button in self.modes.buttons():
                if button is not toggled and button.isChecked():
                    button.setChecked(False)
            self.mode = MODES[self.modes.id(toggled)][1]
            self.canvas.set_brush_size(float(self.size.value()))
            self.canvas.set_tool(TOOL_MASK)
        elif not any(button.isChecked() for button in self.modes.buttons()) and self.canvas.tool == TOOL_MASK:
            self.canvas.set_tool(TOOL_PAN)

    def _canvas_tool_changed(self, tool: str) -> None:
        """Undo, Redo, [ and ] are the mask's while a mask tool has the canvas; another tool un-presses them all."""
        mask = tool == TOOL_MASK
        for action in (self.undo_action, self.redo_action):
            action.setVisible(mask)
        for action in self.resize_actions:
            action.setEnabled(mask and self.mode != MODE_RECT)
        if not mask:
            for button in self.modes.buttons():
                button.setChecked(False)

    def _pressed(self, point: QPointF) -> None:
        mask = self.session.mask_to_paint()
        if mask is None:
            return
        self._before, self._last = mask.copy(), point
        self._dragged(point)

    def _dragged(self, point: QPointF) -> None:
        mask = self.session.mask
        if mask is None or self._last is None:
            return
        if self.mode == MODE_RECT:
            self.canvas.set_mask_rect(rect_between(self._last, point, mask.shape))
            return
        paint_line(mask, self._last, point, self.size.value() / 2, 1.0 if self.mode == MODE_BRUSH else 0.0)
        self._last = point
        self.canvas.set_mask(mask)

    def _released(self) -> None:
        rect, before = self.canvas.mask_rect, self._before
        self.canvas.set_mask_rect(None)
        self._last = self._before = None
        if before is None:
            return
        if rect is not None:
            self.session.mask[int(rect.top()):int(rect.bottom()), int(rect.left()):int(rect.right())] = 1.0
        label = next(label for label, mode, _tip in MODES if mode == self.mode)
        self.session.record_mask(before, f"Mask {label.lower()}")

    # -- files -------------------------------------------------------------------------
    def load_file(self, path: str | Path) -> bool:
        if self.session.image is None:
            self.sig_message.emit("Open a photo first.", "A mask marks the part of the photo on the canvas to repaint.",
                                  "error")
            return False
        try:
            mask, notes = load_mask(path, self.session.image.image.size)
        except D2IError as error:
            self.sig_message.emit(error.message, error.hint, "error")
            return False
        self.session.set_mask(mask, f"Load mask {Path(path).name}")
        if notes:
            self.sig_message.emit(f"Loaded the mask {Path(path).name}.", " ".join(notes), "info")
        return True

    def save_file(self, path: str | Path) -> Path | None:
        try:
            return save_mask(self.session.mask, path)
        except D2IError as error:
            self.sig_message.emit(error.message, error.hint, "error")
            return None

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a mask", "", "Images (*.png *.jpg *.jpeg *.webp *.bmp)")
        if path:
            self.load_file(path)

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the mask", "mask.png", "PNG (*.png)",
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.save_file(path)
