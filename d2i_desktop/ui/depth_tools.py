"""Depth editing in the GUI: the edited map with its undo stack, and the tool panel that drives it."""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QImage, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
    QSlider, QToolButton, QVBoxLayout, QWidget,
)

from ..core import depth_edit
from ..core.depth_edit import Brush, Patch, Stroke
from ..core.errors import D2IError
from .canvas import TOOL_BRUSH, TOOL_PAN, TOOL_PICK, Canvas
from .parallax_view import ParallaxView

BRIGHT_MEANS = {"Bright = near": True, "Bright = far": False, "Guess from the file": None}
TOOLS = (("Hand", TOOL_PAN, "Pan the view (H)", "H"), ("Raise", "raise", "Bring depth nearer (R)", "R"),
         ("Lower", "lower", "Push depth farther (L)", "L"),
         ("Flatten", "flatten", "Pull depth towards the picked depth (F)", "F"),
         ("Smooth", "smooth", "Smooth away bumps (S)", "S"),
         ("Pick", TOOL_PICK, "Pick the depth to flatten to (I, or Alt+click with any brush)", "I"))


class PatchCommand(QUndoCommand):
    """One edit already applied to the map; undo and redo swap its box back and forth."""

    def __init__(self, editor: "DepthEditor", patch: Patch, text: str):
        super().__init__(text)
        self.editor, self.patch = editor, patch
        self._applied = True  # QUndoStack.push() calls redo(); the edit is on the map already

    def redo(self):
        if self._applied:
            self._applied = False
            return
        self.patch.redo(self.editor.depth)
        self.editor.sig_changed.emit(self.patch.box)

    def undo(self):
        self.patch.undo(self.editor.depth)
        self.editor.sig_changed.emit(self.patch.box)


class DepthEditor(QObject):
    """The current depth map (float32, edited in place), the estimate it started from, and the undo stack."""

    sig_painting = Signal(object)
    """A stroke in progress changed the map; carries the (top, left, bottom, right) box of its latest dabs."""
    sig_changed = Signal(object)
    """An edit finished; carries the box it changed, or None when the map itself was replaced or cleared."""
    sig_picked = Signal(float)
    """A depth was picked for the flatten brush; carries it in the map's own units."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.depth: np.ndarray | None = None
        self.estimate: np.ndarray | None = None
        self.estimate_key = ""
        self.brush = Brush()
        self.undo_stack = QUndoStack(self)
        self._stroke: Stroke | None = None

    def clear(self) -> None:
        """Forget the map, its estimate and its history (a new image is open)."""
        self._stroke = None
        self.depth = self.estimate = None
        self.estimate_key = ""
        self.undo_stack.clear()
        self.sig_changed.emit(None)

    def load(self, depth: np.ndarray, text: str, estimate_key: str | None = None) -> np.ndarray:
        """Make `depth` the current map: undoably when it replaces one of the same size; the current array."""
        depth = np.ascontiguousarray(depth, dtype=np.float32)
        self.end_stroke()
        if estimate_key is not None:
            self.estimate, self.estimate_key = depth.copy(), estimate_key
        if self.depth is None or self.depth.shape != depth.shape:
            self.depth = depth.copy()
            self.undo_stack.clear()
        elif not np.array_equal(self.depth, depth):
            self._push(depth_edit.replace(self.depth, depth), text)
            return self.depth
        self.sig_changed.emit(None)
        return self.depth

    def is_edited(self) -> bool:
        """True when the map differs from the estimate (or there is no estimate to compare with)."""
        return self.depth is not None and (self.estimate is None or not np.array_equal(self.depth, self.estimate))

    def reset_to_estimate(self) -> bool:
        if self.estimate is None or self.depth is None:
            return False
        self.load(self.estimate, "Reset to the estimate")
        return True

    def apply(self, tool, text: str) -> None:
        """Run a whole-map tool (array -> new array) as one undoable edit."""
        if self.depth is None:
            return
        self.end_stroke()
        self._push(depth_edit.replace(self.depth, tool(self.depth)), text)

    def _push(self, patch: Patch, text: str) -> None:
        """Record an edit already made to the map, and announce it."""
        self.undo_stack.push(PatchCommand(self, patch, text))
        self.sig_changed.emit(patch.box)

    def undo(self) -> None:
        if self._stroke is None:  # never under a stroke: its snapshot would go stale
            self.undo_stack.undo()

    def redo(self) -> None:
        if self._stroke is None:
            self.undo_stack.redo()

    # -- brushes -------------------------------------------------------------------------
    def set_brush(self, **changes) -> None:
        self.brush = dataclasses.replace(self.brush, **changes)

    def begin_stroke(self, point: QPointF) -> None:
        if self.depth is None or self.brush.kind not in depth_edit.BRUSHES:
            return
        self.end_stroke()
        self._stroke = Stroke(self.depth, self.brush)
        self._emit_box(self._stroke.move_to(point.x(), point.y()))

    def continue_stroke(self, point: QPointF) -> None:
        if self._stroke is not None:
            self._emit_box(self._stroke.move_to(point.x(), point.y()))

    def end_stroke(self) -> None:
        stroke, self._stroke = self._stroke, None
        patch = stroke.finish() if stroke is not None else None
        if patch is not None:
            self._push(patch, f"{stroke.brush.kind.capitalize()} stroke")

    def pick(self, point: QPointF) -> float | None:
        if self.depth is None:
            return None
        value = depth_edit.pick(self.depth, point.x(), point.y())
        self.set_brush(target=value)
        self.sig_picked.emit(value)
        return value

    def _emit_box(self, box) -> None:
        if box is not None:
            self.sig_painting.emit(box)


def _slider(name: str, low: int, high: int, value: int, tip: str) -> QSlider:
    return QSlider(Qt.Orientation.Horizontal, objectName=name, minimum=low, maximum=high, value=value, toolTip=tip)


class DepthToolsPanel(QWidget):
    """Brushes, whole-map tools, undo/redo and the 3D preview, driving a DepthEditor and the canvas."""

    sig_failed = Signal(str, str)
    """A tool refused its settings; carries a message and a hint."""

    def __init__(self, editor: DepthEditor, canvas: Canvas, parent=None):
        super().__init__(parent)
        self.setObjectName("depthToolsPanel")
        self.editor, self.canvas = editor, canvas
        self._build_actions()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self._brush_box())
        layout.addWidget(self._map_box())
        self.parallax = ParallaxView()
        self.parallax.setMinimumHeight(170)
        preview_box = QGroupBox("3D preview")
        QVBoxLayout(preview_box).addWidget(self.parallax)
        layout.addWidget(preview_box, 1)

        canvas.sig_stroke_started.connect(editor.begin_stroke)
        canvas.sig_stroke_moved.connect(editor.continue_stroke)
        canvas.sig_stroke_finished.connect(editor.end_stroke)
        canvas.sig_depth_picked.connect(editor.pick)
        editor.sig_painting.connect(canvas.paint_depth_box)
        editor.sig_changed.connect(self._on_changed)
        editor.sig_picked.connect(self._on_picked)
        self._update_enabled()

    # -- construction ------------------------------------------------------------------
    def _build_actions(self) -> None:
        stack = self.editor.undo_stack
        self.undo_action = QAction("Undo depth edit", self, objectName="undoDepthAction", enabled=False,
                                   shortcut=QKeySequence.StandardKey.Undo)
        self.redo_action = QAction("Redo depth edit", self, objectName="redoDepthAction", enabled=False)
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        self.undo_action.triggered.connect(self.editor.undo)
        self.redo_action.triggered.connect(self.editor.redo)
        stack.canUndoChanged.connect(self.undo_action.setEnabled)
        stack.canRedoChanged.connect(self.redo_action.setEnabled)
        stack.undoTextChanged.connect(self._name_undo)
        stack.redoTextChanged.connect(self._name_redo)
        self.tool_group = QActionGroup(self)
        for label, tool, tip, key in TOOLS:
            action = QAction(label, self.tool_group, checkable=True, toolTip=tip, objectName=f"tool{label}Action",
                             shortcut=QKeySequence(key), data=tool)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.tool_group.actions()[0].setChecked(True)
        self.tool_group.triggered.connect(self._tool_chosen)
        for key, slot in (("[", self._shrink_brush), ("]", self._grow_brush)):
            resize = QAction(self, shortcut=QKeySequence(key))
            resize.triggered.connect(slot)  # bound methods, not lambdas: no reference cycles through Qt
            self.addAction(resize)

    def _brush_box(self) -> QGroupBox:
        box = QGroupBox("Paint depth")
        tools = QGridLayout()
        for index, action in enumerate(self.tool_group.actions()):
            button = QToolButton(objectName=f"tool{action.text()}Button")
            button.setDefaultAction(action)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            tools.addWidget(button, index // 3, index % 3)
        self.size_slider = _slider("brushSizeSlider", 2, 512, int(self.editor.brush.size),
                                   "Brush diameter in image pixels ([ and ] change it)")
        self.strength_slider = _slider("brushStrengthSlider", 1, 100, int(self.editor.brush.strength * 100),
                                       "How much each dab changes the depth")
        self.hardness_slider = _slider("brushHardnessSlider", 0, 100, int(self.editor.brush.hardness * 100),
                                       "How much of the brush paints at full strength before it fades")
        self.size_label, self.strength_label, self.hardness_label = QLabel(), QLabel(), QLabel()
        for slider in (self.size_slider, self.strength_slider, self.hardness_slider):
            slider.valueChanged.connect(self._brush_settings_changed)
        self.target_label = QLabel(objectName="flattenTargetLabel")
        form = QFormLayout()
        for name, slider, label in (("Size", self.size_slider, self.size_label),
                                    ("Strength", self.strength_slider, self.strength_label),
                                    ("Hardness", self.hardness_slider, self.hardness_label)):
            row = QHBoxLayout()
            row.addWidget(slider, 1)
            label.setMinimumWidth(48)
            row.addWidget(label)
            form.addRow(name, row)
        form.addRow("Flatten to", self.target_label)
        history = QHBoxLayout()
        for action in (self.undo_action, self.redo_action):
            button = QToolButton()
            button.setDefaultAction(action)
            history.addWidget(button, 1)
        layout = QVBoxLayout(box)
        layout.addLayout(tools)
        layout.addLayout(form)
        layout.addLayout(history)
        self._brush_settings_changed()
        self._on_picked(self.editor.brush.target)
        return box

    def _map_box(self) -> QGroupBox:
        box = QGroupBox("Whole map")
        self.invert_button = QPushButton("Invert", objectName="invertDepthButton", toolTip="Swap near and far")
        self.invert_button.clicked.connect(self._invert)
        self.blur_spin = QDoubleSpinBox(objectName="blurRadiusSpin", minimum=0.5, maximum=256, value=4, suffix=" px",
                                        toolTip="Blur radius")
        self.blur_button = QPushButton("Blur", objectName="blurDepthButton", toolTip="Blur the whole map")
        self.blur_button.clicked.connect(self._blur)
        self.reset_button = QPushButton("Reset", objectName="resetDepthButton",
                                        toolTip="Go back to the estimated depth (undoable)")
        self.reset_button.clicked.connect(self.editor.reset_to_estimate)
        self.near_spin = QDoubleSpinBox(objectName="levelsNearSpin", minimum=0, maximum=1, value=1, singleStep=0.05,
                                        toolTip="Depths at or above this share of the range become the nearest")
        self.far_spin = QDoubleSpinBox(objectName="levelsFarSpin", minimum=0, maximum=1, value=0, singleStep=0.05,
                                       toolTip="Depths at or below this share of the range become the farthest")
        self.gamma_spin = QDoubleSpinBox(objectName="levelsGammaSpin", minimum=0.1, maximum=10, value=1, singleStep=0.1,
                                         toolTip="Above 1 brings middle depths nearer, below 1 pushes them away")
        self.levels_button = QPushButton("Levels", objectName="levelsDepthButton", toolTip="Apply the levels")
        self.levels_button.clicked.connect(self._levels)
        self.bright_combo = QComboBox(objectName="brightMeansCombo",
                                      toolTip="How to read loaded depth files: MiDaS-style maps are bright = near, "
                                              "a renderer's Z pass is bright = far")
        self.bright_combo.addItems(list(BRIGHT_MEANS))
        self.bright_combo.setCurrentText("Guess from the file")

        row1 = QHBoxLayout()
        for widget in (self.invert_button, self.blur_spin, self.blur_button, self.reset_button):
            row1.addWidget(widget)
        row2 = QHBoxLayout()
        for label, widget in (("Near", self.near_spin), ("Far", self.far_spin), ("γ", self.gamma_spin)):
            row2.addWidget(QLabel(label))
            row2.addWidget(widget)
        row2.addWidget(self.levels_button)
        row3 = QHBoxLayout()
        row3.addWidget(QLabel("Loading files:"))
        row3.addWidget(self.bright_combo, 1)
        layout = QVBoxLayout(box)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addLayout(row3)
        return box

    # -- behaviour ---------------------------------------------------------------------
    def bright_is_near(self) -> bool | None:
        """The brightness convention chosen for loading depth files (None: guess)."""
        return BRIGHT_MEANS[self.bright_combo.currentText()]

    def set_tool(self, tool: str) -> None:
        for action in self.tool_group.actions():
            if action.data() == tool:
                action.setChecked(True)
                self._tool_chosen(action)

    def _tool_chosen(self, action: QAction) -> None:
        tool = action.data()
        if tool in depth_edit.BRUSHES:
            self.editor.set_brush(kind=tool)
            self.canvas.set_tool(TOOL_BRUSH)
        else:
            self.canvas.set_tool(tool)

    def _brush_settings_changed(self) -> None:
        size, strength, hardness = (self.size_slider.value(), self.strength_slider.value() / 100,
                                    self.hardness_slider.value() / 100)
        self.editor.set_brush(size=float(size), strength=strength, hardness=hardness)
        self.canvas.set_brush_size(float(size))
        self.size_label.setText(f"{size} px")
        self.strength_label.setText(f"{strength:.0%}")
        self.hardness_label.setText(f"{hardness:.0%}")

    def _name_undo(self, text: str) -> None:
        self.undo_action.setText(f"Undo {text.lower() or 'depth edit'}")

    def _name_redo(self, text: str) -> None:
        self.redo_action.setText(f"Redo {text.lower() or 'depth edit'}")

    def _grow_brush(self) -> None:
        size = self.size_slider.value()
        self.size_slider.setValue(max(int(size * 1.25), size + 1))

    def _shrink_brush(self) -> None:
        self.size_slider.setValue(int(self.size_slider.value() * 0.8))

    def _on_picked(self, value: float) -> None:
        depth = self.editor.depth
        if depth is None:
            self.target_label.setText("(Alt+click the map to pick)")
            return
        low, high = float(depth.min()), float(depth.max())
        share = (value - low) / (high - low) if high > low else 0.0
        self.target_label.setText(f"{value:.4g}  ({share:.0%} of the way from far to near)")

    def _invert(self) -> None:
        self._run(depth_edit.invert, "Invert")

    def _blur(self) -> None:
        radius = self.blur_spin.value()
        self._run(lambda depth: depth_edit.blur(depth, radius), "Blur")

    def _levels(self) -> None:
        near, far, gamma = self.near_spin.value(), self.far_spin.value(), self.gamma_spin.value()
        self._run(lambda depth: depth_edit.levels(depth, near, far, gamma), "Levels")

    def _run(self, tool, text: str) -> None:
        try:
            self.editor.apply(tool, text)
        except D2IError as exc:
            self.sig_failed.emit(exc.message, exc.hint)

    def _on_changed(self, box) -> None:
        if box is None:  # another map, or another image
            self.canvas.set_depth_map(self.editor.depth)
            self.parallax.set_image(self._input_rgb())
            self._update_enabled()
        else:
            self.canvas.refresh_depth(box)
        self.parallax.set_depth(self.editor.depth)

    def _input_rgb(self) -> np.ndarray | None:
        image = self.canvas.input_image
        if image is None:
            return None
        image = image.convertToFormat(QImage.Format.Format_RGB888)
        rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
        return rows[:, : 3 * image.width()].reshape(image.height(), image.width(), 3).copy()

    def _update_enabled(self) -> None:
        has_map = self.editor.depth is not None
        for widget in (self.invert_button, self.blur_button, self.levels_button):
            widget.setEnabled(has_map)
        self.reset_button.setEnabled(has_map and self.editor.estimate is not None)
