"""The canvas: the input picture, its depth overlay and the result, with zoom and pan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

VIEW_INPUT, VIEW_RESULT, VIEW_SIDE_BY_SIDE = "Input", "Result", "Side by side"
VIEW_MODES = (VIEW_INPUT, VIEW_RESULT, VIEW_SIDE_BY_SIDE)
GAP = 16  # pixels between the two pictures side by side, in image units


def to_qimage(picture: Image.Image | np.ndarray) -> QImage:
    """A deep-copied RGB888 QImage from a PIL image or a uint8 (h, w, 3) array."""
    array = np.ascontiguousarray(np.asarray(picture.convert("RGB") if isinstance(picture, Image.Image) else picture,
                                            dtype=np.uint8))
    height, width = array.shape[:2]
    return QImage(array.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class Canvas(QWidget):
    sig_files_dropped = Signal(list)
    """Files were dropped on the canvas; carries their paths."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("canvas")
        self.setAccessibleName("Image canvas")
        self.setAcceptDrops(True)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.input_image: QImage | None = None
        self.depth_image: QImage | None = None
        self.result_image: QImage | None = None
        self.result_is_preview = False
        self.overlay_visible = True
        self.overlay_opacity = 0.5
        self.view_mode = VIEW_INPUT
        self.zoom = 1.0
        self.offset = QPointF(0, 0)
        self._fit = True
        self._drag_from: QPointF | None = None

    # -- content ---------------------------------------------------------------------
    def set_input(self, image: QImage | None) -> None:
        self.input_image, self.depth_image, self.result_image = image, None, None
        self.view_mode = VIEW_INPUT
        self.fit()

    def set_depth(self, image: QImage | None) -> None:
        self.depth_image = image
        self.update()

    def set_result(self, image: QImage | None, preview: bool = False) -> None:
        """Show a result (or a per-step preview, scaled up to the input's size)."""
        if image is not None and self.input_image is not None and image.size() != self.input_image.size():
            image = image.scaled(self.input_image.size(), Qt.AspectRatioMode.IgnoreAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
        self.result_image, self.result_is_preview = image, preview
        if self.view_mode == VIEW_INPUT and image is not None:
            self.view_mode = VIEW_SIDE_BY_SIDE
            self.fit()
        self.update()

    def set_overlay(self, visible: bool, opacity: float | None = None) -> None:
        self.overlay_visible = visible
        if opacity is not None:
            self.overlay_opacity = opacity
        self.update()

    def set_view_mode(self, mode: str) -> None:
        self.view_mode = mode
        self.fit()

    # -- geometry --------------------------------------------------------------------
    def _scene_size(self) -> tuple[float, float]:
        if self.input_image is None:
            return 0.0, 0.0
        width, height = self.input_image.width(), self.input_image.height()
        if self.view_mode == VIEW_SIDE_BY_SIDE:
            return 2 * width + GAP, height
        return width, height

    def fit(self) -> None:
        """Scale the scene to fill the widget and centre it."""
        self._fit = True
        scene_w, scene_h = self._scene_size()
        if scene_w and scene_h:
            self.zoom = min(self.width() / scene_w, self.height() / scene_h) * 0.98
            self.offset = QPointF((self.width() - scene_w * self.zoom) / 2, (self.height() - scene_h * self.zoom) / 2)
        self.update()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        anchor = anchor or QPointF(self.width() / 2, self.height() / 2)
        new_zoom = min(max(self.zoom * factor, 0.05), 32.0)
        # Keep the scene point under the anchor fixed.
        self.offset = anchor - (anchor - self.offset) * (new_zoom / self.zoom)
        self.zoom, self._fit = new_zoom, False
        self.update()

    def resizeEvent(self, event):
        if self._fit:
            self.fit()
        super().resizeEvent(event)

    # -- painting --------------------------------------------------------------------
    def paintEvent(self, _event):
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1e1f22"))
        if self.input_image is None:
            painter.setPen(QColor("#9aa0a6"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                             "Open a photo (Ctrl+O), drop one here, or paste one (Ctrl+V)")
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 2)
        painter.translate(self.offset)
        painter.scale(self.zoom, self.zoom)
        width, height = self.input_image.width(), self.input_image.height()
        if self.view_mode in (VIEW_INPUT, VIEW_SIDE_BY_SIDE):
            self._draw_input(painter, QRectF(0, 0, width, height))
        if self.view_mode == VIEW_SIDE_BY_SIDE:
            self._draw_result(painter, QRectF(width + GAP, 0, width, height))
        elif self.view_mode == VIEW_RESULT:
            self._draw_result(painter, QRectF(0, 0, width, height))

    def _draw_input(self, painter: QPainter, target: QRectF) -> None:
        painter.drawImage(target, self.input_image)
        if self.overlay_visible and self.depth_image is not None:
            painter.setOpacity(self.overlay_opacity)
            painter.drawImage(target, self.depth_image)
            painter.setOpacity(1.0)

    def _draw_result(self, painter: QPainter, target: QRectF) -> None:
        if self.result_image is None:
            painter.setPen(QPen(QColor("#5f6368"), 0, Qt.PenStyle.DashLine))
            painter.drawRect(target)
            return
        painter.drawImage(target, self.result_image)

    # -- interaction -----------------------------------------------------------------
    def wheelEvent(self, event):
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(1.15 ** steps, event.position())

    def mousePressEvent(self, event):
        if event.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            self._drag_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event):
        if self._drag_from is not None:
            self.offset += event.position() - self._drag_from
            self._drag_from = event.position()
            self._fit = False
            self.update()

    def mouseReleaseEvent(self, _event):
        self._drag_from = None
        self.unsetCursor()

    def mouseDoubleClickEvent(self, _event):
        self.fit()

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.sig_files_dropped.emit(paths)
