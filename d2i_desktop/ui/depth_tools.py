"""The depth tools panel: brushes, whole-map tools, undo/redo and the 3D preview, driving the session's depth map."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QIcon, QImage, QKeySequence
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
    QSlider, QStyle, QToolButton, QVBoxLayout, QWidget,
)

from ..core.depth import edit as depth_edit
from ..core.errors import D2IError
from ..session import DepthDocument, EditHistory
from .canvas import TOOL_BRUSH, TOOL_MASK, TOOL_PAN, TOOL_PICK, Canvas
from .parallax_view import ParallaxView

BRIGHT_MEANS = {"Bright = near": True, "Bright = far": False, "Guess from the file": None}
TOOLS = (("Hand", TOOL_PAN, "Pan the view (H)", "H"), ("Raise", "raise", "Bring depth nearer (R)", "R"),
         ("Lower", "lower", "Push depth farther (L)", "L"),
         ("Flatten", "flatten", "Pull depth towards the picked depth (F)", "F"),
         ("Smooth", "smooth", "Smooth away bumps (S)", "S"),
         ("Pick", TOOL_PICK, "Pick the depth to flatten to (I, or Alt+click with any brush)", "I"))


def history_actions(parent: QWidget, what: str, undo, redo) -> tuple[QAction, QAction]:
    """Undo and Redo of `what`'s edits ("depth", "mask"), with the usual keys; disabled until there is an edit."""
    undo_action = QAction(f"Undo {what} edit", parent, objectName=f"undo{what.capitalize()}Action", enabled=False,
                          shortcut=QKeySequence.StandardKey.Undo)
    redo_action = QAction(f"Redo {what} edit", parent, objectName=f"redo{what.capitalize()}Action", enabled=False)
    redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
    undo_action.triggered.connect(undo)
    redo_action.triggered.connect(redo)
    return undo_action, redo_action


def history_buttons(parent: QWidget, undo_action: QAction, redo_action: QAction) -> QHBoxLayout:
    """Undo and Redo as an icon and a word each; what they would undo is their tooltip (and the menu's text)."""
    row = QHBoxLayout()
    style = parent.style()
    for action, word, theme_icon, fallback in (
            (undo_action, QCoreApplication.translate("history", "Undo"), "edit-undo", QStyle.StandardPixmap.SP_ArrowBack),
            (redo_action, QCoreApplication.translate("history", "Redo"), "edit-redo",
             QStyle.StandardPixmap.SP_ArrowForward)):
        action.setIcon(QIcon.fromTheme(theme_icon, style.standardIcon(fallback)))
        action.setIconText(word)
        button = QToolButton(objectName=action.objectName().replace("Action", "Button"))
        button.setDefaultAction(action)
        button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        row.addWidget(button, 1)
    return row


class BrushSizeKeys(QObject):
    """The [ and ] keys that shrink and grow a brush's size slider, as actions of the panel holding it."""

    def __init__(self, panel: QWidget, slider):
        super().__init__(panel)
        self.slider = slider
        self.actions = []
        for key, slot in (("[", self.shrink), ("]", self.grow)):
            action = QAction(panel, shortcut=QKeySequence(key))
            action.triggered.connect(slot)  # bound methods, not lambdas: no reference cycles through Qt
            panel.addAction(action)
            self.actions.append(action)

    def grow(self) -> None:
        size = self.slider.value()
        self.slider.setValue(max(int(size * 1.25), size + 1))

    def shrink(self) -> None:
        self.slider.setValue(int(self.slider.value() * 0.8))


def show_history(undo_action: QAction, redo_action: QAction, history: EditHistory, what: str) -> None:
    """Name in the actions what Undo and Redo would do, and enable them only when there is something to do."""
    for action, verb, text in ((undo_action, "Undo", history.undo_text()), (redo_action, "Redo", history.redo_text())):
        action.setEnabled(bool(text))
        action.setText(f"{verb} {text.lower() or what + ' edit'}")


def _slider(name: str, low: int, high: int, value: int, tip: str) -> QSlider:
    return QSlider(Qt.Orientation.Horizontal, objectName=name, minimum=low, maximum=high, value=value, toolTip=tip)


class DepthToolsPanel(QWidget):
    """Brushes, whole-map tools, undo/redo and the 3D preview, driving the depth map and the canvas."""

    sig_failed = Signal(str, str)
    """A tool refused its settings; carries a message and a hint."""

    def __init__(self, editor: DepthDocument, canvas: Canvas, parent=None):
        super().__init__(parent)
        self.setObjectName("depthToolsPanel")
        self.editor, self.canvas = editor, canvas
        self._build_actions()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self._brush_box())
        layout.addWidget(self._map_box())
        self.parallax = ParallaxView()
        self.parallax.setMinimumHeight(110)
        preview_box = QGroupBox("3D preview")
        QVBoxLayout(preview_box).addWidget(self.parallax)
        layout.addWidget(preview_box, 1)

        canvas.sig_stroke_started.connect(editor.begin_stroke)
        canvas.sig_stroke_moved.connect(editor.continue_stroke)
        canvas.sig_stroke_finished.connect(editor.end_stroke)
        canvas.sig_depth_picked.connect(editor.pick)
        canvas.sig_tool_changed.connect(self._canvas_tool_changed)
        editor.sig_painting.connect(canvas.paint_depth_box)
        editor.sig_changed.connect(self._on_changed)
        editor.sig_picked.connect(self._on_picked)
        editor.sig_history_changed.connect(self._on_history_changed)
        self._update_enabled()

    # -- construction ------------------------------------------------------------------
    def _build_actions(self) -> None:
        self.undo_action, self.redo_action = history_actions(self, "depth", self.editor.undo, self.editor.redo)
        self.tool_group = QActionGroup(self)
        for label, tool, tip, key in TOOLS:
            action = QAction(label, self.tool_group, checkable=True, toolTip=tip, objectName=f"tool{label}Action",
                             shortcut=QKeySequence(key), data=tool)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.tool_group.actions()[0].setChecked(True)
        self.tool_group.triggered.connect(self._tool_chosen)

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
        self.resize_actions = BrushSizeKeys(self, self.size_slider).actions
        self.strength_slider = _slider("brushStrengthSlider", 1, 100, int(self.editor.brush.strength * 100),
                                       "How much each dab changes the depth")
        self.hardness_slider = _slider("brushHardnessSlider", 0, 100, int(self.editor.brush.hardness * 100),
                                       "How much of the brush paints at full strength before it fades")
        self.size_label, self.strength_label, self.hardness_label = QLabel(), QLabel(), QLabel()
        for slider in (self.size_slider, self.strength_slider, self.hardness_slider):
            slider.valueChanged.connect(self._brush_settings_changed)
        self.target_label = QLabel(objectName="flattenTargetLabel", wordWrap=True)
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
        layout = QVBoxLayout(box)
        layout.addLayout(tools)
        layout.addLayout(form)
        layout.addLayout(history_buttons(self, self.undo_action, self.redo_action))
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

        grid = QGridLayout(box)
        grid.addWidget(self.invert_button, 0, 0, 1, 2)
        grid.addWidget(self.reset_button, 0, 2, 1, 2)
        grid.addWidget(QLabel("Radius"), 1, 0)
        grid.addWidget(self.blur_spin, 1, 1)
        grid.addWidget(self.blur_button, 1, 2, 1, 2)
        for column, (label, widget) in enumerate((("Near", self.near_spin), ("Far", self.far_spin))):
            grid.addWidget(QLabel(label), 2, 2 * column)
            grid.addWidget(widget, 2, 2 * column + 1)
        grid.addWidget(QLabel(self.tr("Gamma"), toolTip=self.gamma_spin.toolTip()), 3, 0)
        grid.addWidget(self.gamma_spin, 3, 1)
        grid.addWidget(self.levels_button, 3, 2, 1, 2)
        grid.addWidget(QLabel("Loading files"), 4, 0, 1, 2)
        grid.addWidget(self.bright_combo, 4, 2, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
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

    def _canvas_tool_changed(self, tool: str) -> None:
        """While the mask tool has the canvas, no depth tool is pressed and Undo, Redo, [ and ] are the mask's."""
        mask = tool == TOOL_MASK
        for action in (self.undo_action, self.redo_action):
            action.setVisible(not mask)
        for action in self.resize_actions:
            action.setEnabled(not mask)
        if mask and (pressed := self.tool_group.checkedAction()) is not None:
            policy = QActionGroup.ExclusionPolicy
            self.tool_group.setExclusionPolicy(policy.ExclusiveOptional)  # Exclusive keeps one action pressed
            pressed.setChecked(False)
            self.tool_group.setExclusionPolicy(policy.Exclusive)
        elif tool == TOOL_PAN:
            self.tool_group.actions()[0].setChecked(True)

    def _brush_settings_changed(self) -> None:
        size, strength, hardness = (self.size_slider.value(), self.strength_slider.value() / 100,
                                    self.hardness_slider.value() / 100)
        self.editor.set_brush(size=float(size), strength=strength, hardness=hardness)
        self.canvas.set_brush_size(float(size))
        self.size_label.setText(f"{size} px")
        self.strength_label.setText(f"{strength:.0%}")
        self.hardness_label.setText(f"{hardness:.0%}")

    def _on_history_changed(self) -> None:
        show_history(self.undo_action, self.redo_action, self.editor.history, "depth")

    def _on_picked(self, value: float) -> None:
        depth = self.editor.depth
        if depth is None:
            self.target_label.setText("(Alt+click the map to pick)")
            return
        low, high = float(depth.min()), float(depth.max())
        share = (value - low) / (high - low) if high > low else 0.0
        self.target_label.setText(self.tr("{value}  ({share} of the way from far to near)").format(
            value=f"{value:,.3f}", share=f"{share:.0%}"))

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
