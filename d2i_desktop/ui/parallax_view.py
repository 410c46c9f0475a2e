"""A live 3D preview: the image displaced by its depth, swaying gently or following the mouse."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..core.depth import maps as depth_maps
from ..core.depth.view import parallax
from .canvas import to_qimage

PREVIEW_SIDE = 320  # the preview works on a copy this size, so each frame costs a millisecond or two
FRAME_MS = 40
SWAY_PERIOD_S = 4.0
SWAY_SHARE = 0.03  # near pixels move up to this share of the preview's width


class ParallaxView(QWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("parallaxView")
        self.setAccessibleName("3D parallax preview")
        self.setToolTip("The image shifted by its depth: wrong depth shows as tearing or floating parts. "
                        "Hover to steer it with the mouse.")
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setMouseTracking(True)
        self.source_shape: tuple[int, int] | None = None
        self.step = 1
        self.image: np.ndarray | None = None
        self.depth01: np.ndarray | None = None
        self.frame = None
        self.phase = 0.0
        self._pointer: QPointF | None = None
        self.timer = QTimer(self, interval=FRAME_MS)
        self.timer.timeout.connect(self.advance)

    def set_image(self, image: np.ndarray | None) -> None:
        """The uint8 (h, w, 3) picture to move, or None; shown once a depth map of its size arrives."""
        self.source_shape = None if image is None else image.shape[:2]
        if image is not None:
            height, width = self.source_shape
            # Every `step`th pixel, for the picture and later its depth alike, so the two stay aligned.
            self.step = max(int(np.ceil(max(width, height) / PREVIEW_SIDE)), 1)
            size = (len(range(0, width, self.step)), len(range(0, height, self.step)))
            self.image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        else:
            self.image = None
        self.set_depth(None)

    def set_depth(self, depth: np.ndarray | None) -> None:
        """The picture's float depth map (any range, bright = near), or None to stop."""
        if self.image is None or depth is None or depth.shape != self.source_shape:
            self.depth01 = self.frame = None
            self.timer.stop()
            self.update()
            return
        self.depth01 = depth_maps.normalize(depth[::self.step, ::self.step])
        self._sync_timer()
        self.render_frame()

    def offset(self) -> tuple[float, float]:
        """How far near pixels move now: towards the pointer when it hovers, else a slow figure of eight."""
        amplitude = SWAY_SHARE * self.image.shape[1]
        if self._pointer is not None and self.width() and self.height():
            return (amplitude * (2 * self._pointer.x() / self.width() - 1),
                    amplitude * (2 * self._pointer.y() / self.height() - 1))
        return amplitude * math.sin(self.phase), 0.4 * amplitude * math.sin(2 * self.phase)

    def advance(self) -> None:
        self.phase = (self.phase + 2 * math.pi * FRAME_MS / 1000 / SWAY_PERIOD_S) % (2 * math.pi)
        self.render_frame()

    def render_frame(self) -> None:
        if self.depth01 is None:
            return
        self.frame = to_qimage(parallax(self.image, self.depth01, *self.offset()))
        self.update()

    def _sync_timer(self) -> None:
        # Only animate while someone can see it.
        if self.isVisible() and self.depth01 is not None and self._pointer is None:
            self.timer.start()
        else:
            self.timer.stop()

    def showEvent(self, event):
        self._sync_timer()
        super().showEvent(event)

    def hideEvent(self, event):
        self.timer.stop()
        super().hideEvent(event)

    def mouseMoveEvent(self, event):
        self._pointer = event.position()
        self._sync_timer()
        self.render_frame()

    def leaveEvent(self, _event):
        self._pointer = None
        self._sync_timer()

    def paintEvent(self, _event):
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1e1f22"))
        if self.frame is None:
            painter.setPen(QColor("#9aa0a6"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "3D preview: needs a depth map")
            return
        scale = min(self.width() / self.frame.width(), self.height() / self.frame.height())
        width, height = self.frame.width() * scale, self.frame.height() * scale
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(QRectF((self.width() - width) / 2, (self.height() - height) / 2, width, height), self.frame)
