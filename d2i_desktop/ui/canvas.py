"""The canvas: the input picture, its depth map and the result, with zoom, pan and depth painting.

Mouse: with the brush, left-drag paints, Alt+click picks a depth; with the mask tool, left-drag
paints the repaint mask (shown as a red wash); middle-drag or Space+drag pans
(with the hand tool, left-drag pans too). The wheel zooms, a double click fits. In the Compare view
the input shows left of a split line and the result right of it; drag the line to compare. The tiled
preview draws the result 2x2 in its panel, so a seamless tile's seams can be checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from ..core.depth import maps as depth_maps
from ..core.depth.view import model_view

VIEW_INPUT, VIEW_RESULT, VIEW_SIDE_BY_SIDE, VIEW_COMPARE = "Input", "Result", "Side by side", "Compare"
VIEW_MODES = (VIEW_INPUT, VIEW_RESULT, VIEW_SIDE_BY_SIDE, VIEW_COMPARE)
OVERLAY_BLEND, OVERLAY_SIDE, OVERLAY_SPLIT = "Blended", "Side by side", "Split"
OVERLAY_MODES = (OVERLAY_BLEND, OVERLAY_SIDE, OVERLAY_SPLIT)
TOOL_PAN, TOOL_BRUSH, TOOL_PICK, TOOL_MASK = "pan", "brush", "pick", "mask"
MASK_TINT = (255, 60, 60)  # the repaint mask shows as a red wash over the input
GAP = 16  # pixels between pictures side by side, in image units
LEGEND_SIZE = (196, 56)  # the depth legend's box (colour bar, title and labels), widget pixels
LEGEND_MARGIN = 6  # between the legend and the widget's edge or the picture
SPLIT_GRAB = 8  # how close (widget pixels) to the split line a press grabs it


def to_qimage(picture: Image.Image | np.ndarray) -> QImage:
    """A deep-copied RGB888 QImage from a PIL image or a uint8 (h, w, 3) array."""
    array = np.ascontiguousarray(np.asarray(picture.convert("RGB") if isinstance(picture, Image.Image) else picture,
                                            dtype=np.uint8))
    height, width = array.shape[:2]
    return QImage(array.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


class DepthPicture:
    """A colour picture of a float depth map that can be recoloured box by box while it is painted."""

    def __init__(self, depth: np.ndarray, cmap: str):
        self.depth, self.cmap = depth, cmap
        self.low, self.high = 0.0, 1.0
        self.rgb = np.zeros((*depth.shape, 3), dtype=np.uint8)
        height, width = depth.shape
        # The QImage shares self.rgb's memory, so recolouring a box needs no copy of the whole picture.
        self.image = QImage(self.rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
        self.refit()

    def refit(self, box: tuple[int, int, int, int] | None = None) -> None:
        """After an edit: recolour its box on the same colour scale, so a stroke stays a stroke (values past
        the scale show its end colours); an edit of the whole map (or no box) fits the scale to the map again."""
        whole = (0, 0, *self.depth.shape)
        if box is None or tuple(box) == whole:
            self.low, self.high = float(self.depth.min()), float(self.depth.max())
            box = whole
        self.recolour(box)

    def recolour(self, box: tuple[int, int, int, int]) -> None:
        """Recolour a (top, left, bottom, right) box with the current range: cheap enough for every dab."""
        top, left, bottom, right = box
        self.rgb[top:bottom, left:right] = depth_maps.colorize_range(self.depth[top:bottom, left:right], self.low,
                                                                     self.high, self.cmap)


class Canvas(QWidget):
    sig_files_dropped = Signal(list)
    """Files were dropped on the canvas; carries their paths."""
    sig_stroke_started = Signal(QPointF)
    """A brush stroke began; carries the point in depth-map pixels."""
    sig_stroke_moved = Signal(QPointF)
    """The brush moved while painting; carries the point in depth-map pixels."""
    sig_stroke_finished = Signal()
    """The brush was lifted."""
    sig_depth_picked = Signal(QPointF)
    """The user picked the depth at a point (depth-map pixels)."""
    sig_mask_pressed = Signal(QPointF)
    """With the mask tool, the left button went down; carries the point in image pixels."""
    sig_mask_dragged = Signal(QPointF)
    """With the mask tool, the mouse moved while pressed; carries the point in image pixels."""
    sig_mask_released = Signal()
    """With the mask tool, the left button came up."""
    sig_tool_changed = Signal(str)
    """Another tool (TOOL_PAN, TOOL_BRUSH, TOOL_PICK or TOOL_MASK) took the canvas."""
    sig_view_mode_changed = Signal(str)
    """The canvas shows another view (one of VIEW_MODES), chosen by the user or by a new picture."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("canvas")
        self.setAccessibleName("Image canvas")
        self.setAcceptDrops(True)
        self.setMouseTracking(True)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.input_image: QImage | None = None
        self.depth_image: QImage | None = None
        self.depth_picture: DepthPicture | None = None
        self.model_image: QImage | None = None
        self.result_image: QImage | None = None
        self.mask_image: QImage | None = None  # the repaint mask's tint over the input
        self.mask_rect: QRectF | None = None  # a rectangle being dragged out, in image pixels
        self.result_is_preview = False
        self.overlay_visible = True
        self.overlay_opacity = 0.5
        self.overlay_mode = OVERLAY_BLEND
        self.split = 0.5  # where the split line sits, as a share of the image's width
        self.show_model_view = False
        self.tile_preview = False  # the result drawn 2x2, to check that a seamless tile wraps
        self.cmap = "viridis"
        self.view_mode = VIEW_INPUT
        self.tool = TOOL_PAN
        self.brush_size = 64.0  # diameter in image pixels
        self.zoom = 1.0
        self.offset = QPointF(0, 0)
        self._fit = True
        self._drag_from: QPointF | None = None
        self._dragging_split = False
        self._stroke_panel_x: float | None = None  # scene x of the panel a stroke started in
        self._hover: QPointF | None = None
        self._space_down = False

    # -- content ---------------------------------------------------------------------
    def set_input(self, image: QImage | None) -> None:
        self.input_image, self.result_image = image, None
        self.set_depth(None)
        self.set_view_mode(VIEW_INPUT)

    def set_depth(self, image: QImage | None) -> None:
        """Show a ready-made depth picture (the map itself is then not editable here)."""
        self.depth_image, self.depth_picture, self.model_image = image, None, None
        self.update()

    def set_depth_map(self, depth: np.ndarray | None) -> None:
        """Show a float depth map; `refresh_depth` follows the edits made to that array in place."""
        if depth is None:
            self.set_depth(None)
            return
        if self.depth_picture is not None and self.depth_picture.depth is depth:
            self.refresh_depth(None)
            return
        self.depth_picture = DepthPicture(depth, self.cmap)
        self.depth_image = self.depth_picture.image
        self.model_image = None
        self._refresh_model_view()
        self._fit_if_scene_changed()

    def set_colormap(self, cmap: str) -> None:
        if cmap == self.cmap:
            return
        self.cmap = cmap
        if self.depth_picture is not None:
            self.depth_picture = DepthPicture(self.depth_picture.depth, cmap)
            self.depth_image = self.depth_picture.image
            self._refresh_model_view()
            self.update()

    def paint_depth_box(self, box: tuple[int, int, int, int]) -> None:
        """Show a stroke's latest dabs: recolour and repaint only their (top, left, bottom, right) box."""
        if self.depth_picture is None:
            return
        self.depth_picture.recolour(box)
        for rect in self._widget_rects(box):
            self.update(rect)

    def refresh_depth(self, box: tuple[int, int, int, int] | None) -> None:
        """Show a finished edit of the map in `box` (None: anywhere)."""
        if self.depth_picture is None:
            return
        self.depth_picture.refit(box)
        self._refresh_model_view()
        self.update()

    def _refresh_model_view(self) -> None:
        if not self.show_model_view or self.depth_picture is None:
            self.model_image = None
            return
        seen = model_view(self.depth_picture.depth)
        self.model_image = to_qimage(depth_maps.colorize((seen + 1) / 2, self.depth_picture.cmap))

    def set_mask(self, mask: np.ndarray | None) -> None:
        """Show a repaint mask (float32 (H, W), 1 = repaint) as a tint over the input; None hides it."""
        if mask is None:
            self.mask_image = None
        else:
            rgba = np.empty((*mask.shape, 4), dtype=np.uint8)
            rgba[..., :3] = MASK_TINT
            rgba[..., 3] = np.round(np.clip(mask, 0, 1) * 140).astype(np.uint8)
            height, width = mask.shape
            self.mask_image = QImage(rgba.data, width, height, 4 * width, QImage.Format.Format_RGBA8888).copy()
        self.update()

    def set_mask_rect(self, rect: QRectF | None) -> None:
        """Outline a rectangle being dragged out (image pixels), or none."""
        self.mask_rect = rect
        self.update()

    def set_result(self, image: QImage | None, preview: bool = False) -> None:
        """Show a result (or a per-step preview, scaled up to the input's size)."""
        if image is not None and self.input_image is not None and image.size() != self.input_image.size():
            image = image.scaled(self.input_image.size(), Qt.AspectRatioMode.IgnoreAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
        self.result_image, self.result_is_preview = image, preview
        if self.view_mode == VIEW_INPUT and image is not None:
            self.set_view_mode(VIEW_SIDE_BY_SIDE)
        self.update()

    def set_overlay(self, visible: bool, opacity: float | None = None) -> None:
        self.overlay_visible = visible
        if opacity is not None:
            self.overlay_opacity = opacity
        self._fit_if_scene_changed()

    def set_overlay_mode(self, mode: str) -> None:
        self.overlay_mode = mode
        self._fit_if_scene_changed()

    def set_model_view(self, shown: bool) -> None:
        """Show the depth as the model receives it (latent grid, min-max scaled) instead of the full map."""
        self.show_model_view = shown
        self._refresh_model_view()
        self.update()

    def set_tile_preview(self, shown: bool) -> None:
        """Show the result repeated 2x2 in its panel (the Result view when only the input was shown)."""
        self.tile_preview = shown
        if shown and self.view_mode == VIEW_INPUT and self.result_image is not None:
            self.set_view_mode(VIEW_RESULT)
        self.update()

    def set_view_mode(self, mode: str) -> None:
        changed, self.view_mode = mode != self.view_mode, mode
        self.fit()
        if changed:
            self.sig_view_mode_changed.emit(mode)

    def set_tool(self, tool: str) -> None:
        self.tool = tool
        self._update_cursor()
        self.update()
        self.sig_tool_changed.emit(tool)

    def set_brush_size(self, size: float) -> None:
        self.brush_size = size
        self.update()

    # -- geometry --------------------------------------------------------------------
    def _shown_depth(self) -> QImage | None:
        if not self.overlay_visible or self.depth_image is None or self.view_mode == VIEW_COMPARE:
            return None
        return self.model_image if self.show_model_view and self.model_image is not None else self.depth_image

    def _panels(self) -> list[tuple[str, float]]:
        """What the scene shows, left to right: ("input" | "depth" | "result" | "compare", scene x)."""
        if self.input_image is None:
            return []
        if self.view_mode == VIEW_COMPARE:
            return [("compare", 0.0)]
        kinds = [] if self.view_mode == VIEW_RESULT else ["input"]
        if kinds and self.overlay_mode == OVERLAY_SIDE and self._shown_depth() is not None:
            kinds.append("depth")
        if self.view_mode in (VIEW_RESULT, VIEW_SIDE_BY_SIDE):
            kinds.append("result")
        step = self.input_image.width() + GAP
        return [(kind, index * step) for index, kind in enumerate(kinds)]

    def _scene_size(self) -> tuple[float, float]:
        panels = self._panels()
        if not panels:
            return 0.0, 0.0
        return len(panels) * (self.input_image.width() + GAP) - GAP, self.input_image.height()

    def _fit_if_scene_changed(self) -> None:
        if self._fit:
            self.fit()
        else:
            self.update()

    def fit(self) -> None:
        """Scale the scene to fill the widget and centre it."""
        self._fit = True
        scene_w, scene_h = self._scene_size()
        if scene_w and scene_h:
            width, height = self.width(), self.height()
            self.zoom = min(width / scene_w, height / scene_h) * 0.98
            side_room = (width - scene_w * self.zoom) / 2
            if self._shown_depth() is not None and side_room < LEGEND_SIZE[0] + 2 * LEGEND_MARGIN:
                height -= LEGEND_SIZE[1] + 2 * LEGEND_MARGIN  # keep a strip below the picture for the legend
                self.zoom = max(min(width / scene_w, height / scene_h) * 0.98, 0.01)
            self.offset = QPointF((width - scene_w * self.zoom) / 2, (height - scene_h * self.zoom) / 2)
        self.update()

    def picture_rect(self) -> QRectF:
        """Where the scene's pictures are drawn, in widget pixels."""
        scene_w, scene_h = self._scene_size()
        return QRectF(self.offset, self.offset + QPointF(scene_w, scene_h) * self.zoom)

    def legend_rect(self) -> QRectF:
        """The depth legend's box: bottom left, in the margin beside or below the pictures; over them only when
        zoomed in so far that there is no margin left."""
        box_w, box_h = LEGEND_SIZE
        picture = self.picture_rect()
        bottom = self.height() - LEGEND_MARGIN - box_h
        candidates = (QRectF(LEGEND_MARGIN, bottom, box_w, box_h),
                      QRectF(LEGEND_MARGIN, max(picture.bottom() + LEGEND_MARGIN, LEGEND_MARGIN), box_w, box_h),
                      QRectF(self.width() - LEGEND_MARGIN - box_w, bottom, box_w, box_h))
        inside = QRectF(self.rect())
        return next((box for box in candidates if inside.contains(box) and not box.intersects(picture)), candidates[0])

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

    def to_scene(self, point: QPointF) -> QPointF:
        return (point - self.offset) / self.zoom

    def _map_point(self, point: QPointF, panel_x: float | None = None) -> tuple[QPointF, float] | None:
        """The depth-map pixel under a widget point, with its panel's scene x (input or depth panels only)."""
        scene = self.to_scene(point)
        if panel_x is None:
            width = self.input_image.width() if self.input_image is not None else 0
            panel_x = next((x for kind, x in self._panels() if kind in ("input", "depth") and x <= scene.x() < x + width), None)
            if panel_x is None or not 0 <= scene.y() < self.input_image.height():
                return None
        return QPointF(scene.x() - panel_x, scene.y()), panel_x

    def _widget_rects(self, box: tuple[int, int, int, int]) -> list[QRect]:
        top, left, bottom, right = box
        return [QRectF(self.offset.x() + (x + left) * self.zoom, self.offset.y() + top * self.zoom,
                       (right - left) * self.zoom, (bottom - top) * self.zoom).toAlignedRect().adjusted(-2, -2, 2, 2)
                for kind, x in self._panels() if kind in ("input", "depth")]

    def _split_x(self) -> float | None:
        """The split line's widget x, when the compare view or the split overlay is on screen."""
        compare = self.view_mode == VIEW_COMPARE and self.result_image is not None
        if not compare and (self.overlay_mode != OVERLAY_SPLIT or self._shown_depth() is None):
            return None
        panel_x = next((x for kind, x in self._panels() if kind in ("input", "compare")), None)
        if panel_x is None:
            return None
        return self.offset.x() + (panel_x + self.split * self.input_image.width()) * self.zoom

    # -- painting --------------------------------------------------------------------
    def paintEvent(self, _event):
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#1e1f22"))
        if self.input_image is None:
            painter.setPen(QColor("#9aa0a6"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                             "Open a photo (Ctrl+O), drop one here, or paste one (Ctrl+V)")
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 2)
        painter.translate(self.offset)
        painter.scale(self.zoom, self.zoom)
        width, height = self.input_image.width(), self.input_image.height()
        for kind, x in self._panels():
            target = QRectF(x, 0, width, height)
            if kind == "input":
                self._draw_input(painter, target)
            elif kind == "depth":
                self._draw_depth(painter, target)
            elif kind == "compare":
                self._draw_compare(painter, target)
            else:
                self._draw_result(painter, target)
        painter.restore()
        self._draw_split_line(painter)
        self._draw_legend(painter)
        self._draw_brush_outline(painter)

    def _draw_depth(self, painter: QPainter, target: QRectF, source: QRectF | None = None) -> None:
        depth = self._shown_depth()
        # The model's grid is drawn blocky on purpose: each block is one value the model receives.
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform,
                              depth is not self.model_image and self.zoom < 2)
        if source is None:
            painter.drawImage(target, depth)
        else:
            scale = depth.width() / self.input_image.width()
            painter.drawImage(target, depth, QRectF(source.x() * scale, 0, source.width() * scale, depth.height()))
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 2)

    def _draw_input(self, painter: QPainter, target: QRectF) -> None:
        painter.drawImage(target, self.input_image)
        self._draw_depth_overlay(painter, target)
        if self.mask_image is not None:
            painter.drawImage(target, self.mask_image)
        if self.mask_rect is not None:
            painter.setPen(QPen(QColor(*MASK_TINT), 0, Qt.PenStyle.DashLine))
            painter.drawRect(self.mask_rect.translated(target.topLeft()))

    def _draw_depth_overlay(self, painter: QPainter, target: QRectF) -> None:
        if self._shown_depth() is None:
            return
        if self.overlay_mode == OVERLAY_BLEND:
            painter.setOpacity(self.overlay_opacity)
            self._draw_depth(painter, target)
            painter.setOpacity(1.0)
        elif self.overlay_mode == OVERLAY_SPLIT:
            cut = self.split * target.width()
            self._draw_depth(painter, QRectF(target.x() + cut, target.y(), target.width() - cut, target.height()),
                             QRectF(cut, 0, target.width() - cut, target.height()))

    def _draw_compare(self, painter: QPainter, target: QRectF) -> None:
        """Input left of the split line, result right of it (the input alone until there is a result)."""
        painter.drawImage(target, self.input_image)
        if self.result_image is not None:
            cut = self.split * target.width()
            painter.drawImage(QRectF(target.x() + cut, 0, target.width() - cut, target.height()), self.result_image,
                              QRectF(cut, 0, target.width() - cut, target.height()))

    def _draw_result(self, painter: QPainter, target: QRectF) -> None:
        if self.result_image is None:
            painter.setPen(QPen(QColor("#5f6368"), 0, Qt.PenStyle.DashLine))
            painter.drawRect(target)
            return
        if not self.tile_preview:
            painter.drawImage(target, self.result_image)
            return
        half_w, half_h = target.width() / 2, target.height() / 2
        for column in (0, 1):
            for row in (0, 1):
                painter.drawImage(QRectF(target.x() + column * half_w, target.y() + row * half_h, half_w, half_h),
                                  self.result_image)

    def _draw_split_line(self, painter: QPainter) -> None:
        x = self._split_x()
        if x is None:
            return
        top = self.offset.y()
        bottom = top + self.input_image.height() * self.zoom
        painter.setPen(QPen(QColor("#ffffff"), 2))
        painter.drawLine(QPointF(x, top), QPointF(x, bottom))
        painter.setBrush(QColor("#ffffff"))
        painter.drawEllipse(QPointF(x, (top + bottom) / 2), 6, 6)
        painter.setBrush(Qt.BrushStyle.NoBrush)

    def _draw_legend(self, painter: QPainter) -> None:
        """A colour bar from far to near, so the colours can be read without guessing."""
        if self._shown_depth() is None:
            return
        cmap = self.depth_picture.cmap if self.depth_picture is not None else "grey"
        table = depth_maps.colorize(np.linspace(0, 1, 9)[None, :], cmap)[0]
        box = self.legend_rect()
        bar = QRectF(box.x() + 8, box.y() + 22, box.width() - 16, 10)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for index, colour in enumerate(table):
            gradient.setColorAt(index / 8, QColor(*map(int, colour)))
        painter.fillRect(box, QColor(30, 31, 34, 210))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor("#e8eaed"))
        title = "What the model sees (-1..1)" if self.show_model_view else "Depth"
        painter.drawText(QRectF(bar.x(), bar.y() - 20, bar.width(), 16), Qt.AlignmentFlag.AlignLeft, title)
        labels = QRectF(bar.x(), bar.bottom() + 2, bar.width(), 16)
        painter.drawText(labels, Qt.AlignmentFlag.AlignLeft, "far")
        painter.drawText(labels, Qt.AlignmentFlag.AlignRight, "near")

    def _draw_brush_outline(self, painter: QPainter) -> None:
        painting = self.depth_picture is not None if self.tool == TOOL_BRUSH else self.tool == TOOL_MASK
        if not painting or self._hover is None:
            return
        radius = self.brush_size / 2 * self.zoom
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for colour, width in (("#000000", 3), ("#ffffff", 1)):  # readable on light and dark
            painter.setPen(QPen(QColor(colour), width))
            painter.drawEllipse(self._hover, radius, radius)

    # -- interaction -----------------------------------------------------------------
    def _update_cursor(self) -> None:
        if self._drag_from is not None:
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
        elif self._space_down or self.tool == TOOL_PAN:
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        else:
            self.setCursor(Qt.CursorShape.CrossCursor)

    def wheelEvent(self, event):
        steps = event.angleDelta().y() / 120
        if steps:
            self.zoom_by(1.15 ** steps, event.position())

    def mousePressEvent(self, event):
        position, button = event.position(), event.button()
        split_x = self._split_x()
        alt = bool(event.modifiers() & Qt.KeyboardModifier.AltModifier)
        if button == Qt.MouseButton.MiddleButton or (
                button == Qt.MouseButton.LeftButton and (self.tool == TOOL_PAN or self._space_down) and not alt
                and (split_x is None or abs(position.x() - split_x) > SPLIT_GRAB)):
            self._drag_from = position
            self._update_cursor()
        elif button != Qt.MouseButton.LeftButton:
            return
        elif split_x is not None and abs(position.x() - split_x) <= SPLIT_GRAB:
            self._dragging_split = True
        elif self.tool == TOOL_MASK and (mapped := self._map_point(position)) is not None:
            self._stroke_panel_x = mapped[1]
            self.sig_mask_pressed.emit(mapped[0])
        elif self.depth_picture is not None and (mapped := self._map_point(position)) is not None:
            point, panel_x = mapped
            if self.tool == TOOL_PICK or alt:
                self.sig_depth_picked.emit(point)
            elif self.tool == TOOL_BRUSH:
                self._stroke_panel_x = panel_x
                self.sig_stroke_started.emit(point)

    def mouseMoveEvent(self, event):
        position = event.position()
        if self._drag_from is not None:
            self.offset += position - self._drag_from
            self._drag_from = position
            self._fit = False
            self.update()
        elif self._dragging_split:
            panel_x = next(x for kind, x in self._panels() if kind in ("input", "compare"))
            self.split = min(max(self.to_scene(position).x() - panel_x, 0) / self.input_image.width(), 1.0)
            self.update()
        elif self._stroke_panel_x is not None:
            point = self._map_point(position, self._stroke_panel_x)[0]
            (self.sig_mask_dragged if self.tool == TOOL_MASK else self.sig_stroke_moved).emit(point)
        if self.tool in (TOOL_BRUSH, TOOL_MASK):
            old, self._hover = self._hover, position
            radius = int(self.brush_size / 2 * self.zoom) + 4
            for centre in (old, position):
                if centre is not None:
                    self.update(QRect(int(centre.x()) - radius, int(centre.y()) - radius, 2 * radius, 2 * radius))

    def mouseReleaseEvent(self, _event):
        if self._stroke_panel_x is not None:
            self._stroke_panel_x = None
            (self.sig_mask_released if self.tool == TOOL_MASK else self.sig_stroke_finished).emit()
        self._drag_from = None
        self._dragging_split = False
        self._update_cursor()

    def leaveEvent(self, _event):
        self._hover = None
        self.update()

    def keyPressEvent(self, event):
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = True
            self._update_cursor()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event):
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space_down = False
            self._update_cursor()
        else:
            super().keyReleaseEvent(event)

    def mouseDoubleClickEvent(self, _event):
        if self.tool == TOOL_PAN:
            self.fit()

    def dragEnterEvent(self, event):
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.sig_files_dropped.emit(paths)
