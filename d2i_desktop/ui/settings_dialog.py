"""The Settings dialog. Its Performance page picks a preset or each speed and memory option; its Depth page the
estimator a new image starts with.

The dialog only edits values; the window stores them in QSettings and sends the performance settings
to the worker, which applies them to the engine off the GUI thread.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QListWidget,
    QStackedWidget, QVBoxLayout, QWidget,
)

from ..core.depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS
from ..core.speed.acceleration import (
    ATTENTION, COMPILE, COMPILE_MODES, DEFAULT_PRESET, OFFLOAD, PRECISIONS, PRESETS, PerformanceReport,
    PerformanceSettings, SettingsError, available_devices,
)
from ..core.paths import data_dir, is_frozen
from .estimator_combo import EstimatorCombo

SETTINGS_GROUP = "performance"
DEVICE_KEY = "engine/device"  # shared with the app's start-up, which creates the engine on it
PRECISION_KEY = "engine/precision"
DEFAULT_ESTIMATOR_KEY = "depth/estimator"

DEVICE_LABELS = {"auto": "Automatic (fastest available)", "cuda": "NVIDIA GPU (CUDA)", "mps": "Apple GPU (MPS)",
                 "cpu": "CPU"}
PRECISION_LABELS = {"auto": "Automatic (fp16 on CUDA, else fp32)", "fp16": "fp16", "bf16": "bf16", "fp32": "fp32"}
ATTENTION_LABELS = {"sdpa": "PyTorch SDPA", "xformers": "xformers (if installed, CUDA)"}
COMPILE_LABELS = {"off": "Off (eager)", "cuda-graphs": "CUDA graphs (no wait)",
                  "torch-compile": "torch.compile + CUDA graphs (compiles in the background)"}
COMPILE_MODE_LABELS = {"default": "default", "max-autotune-no-cudagraphs": "max-autotune (slow to compile)"}
OFFLOAD_LABELS = {"none": "None (all on the GPU)", "model": "Model CPU offload", "sequential": "Sequential CPU offload (slowest)"}
CUSTOM = "custom"
CUDA_OPTIONS = ("compile", "offload")  # the options only an NVIDIA GPU can use: grouped on the page


def installed_app_note() -> str:
    """What differs in the installed app, for the Performance page (empty when run from Python)."""
    if not is_frozen():
        return ""
    return ("Installed app: torch.compile needs a C compiler and Python headers, which the app does not ship, so "
            "\"torch.compile + CUDA graphs\" records CUDA graphs of each UNet step without compiling. The app reads its "
            f"own files from its folder and never writes there; settings, models, the library and the log are in {data_dir()}.")


NO_CUDA_HERE = "This computer has no NVIDIA GPU (CUDA), so these options cannot apply here."
NOT_ON_THIS_DEVICE = "These options apply to an NVIDIA GPU (CUDA) only; the device above is not one."


def load_performance(settings: QSettings) -> PerformanceSettings:
    """The stored settings; anything unreadable falls back to the defaults."""
    values = {field.name: settings.value(f"{SETTINGS_GROUP}/{field.name}")
              for field in dataclasses.fields(PerformanceSettings)}
    values["device"] = settings.value(DEVICE_KEY) or "auto"
    values["precision"] = settings.value(PRECISION_KEY) or "auto"
    try:
        return PerformanceSettings.from_dict(values)
    except SettingsError:
        return PerformanceSettings()


def save_performance(settings: QSettings, performance: PerformanceSettings) -> None:
    for name, value in performance.to_dict().items():
        if name not in ("device", "precision"):
            settings.setValue(f"{SETTINGS_GROUP}/{name}", value)
    for key, value in ((DEVICE_KEY, performance.device), (PRECISION_KEY, performance.precision)):
        if value == "auto":
            settings.remove(key)
        else:
            settings.setValue(key, value)


def load_default_estimator(settings: QSettings) -> str:
    """The estimator a new image starts with; one this version does not know reads as the default."""
    name = settings.value(DEFAULT_ESTIMATOR_KEY, DEFAULT_ESTIMATOR)
    return name if name in ESTIMATORS else DEFAULT_ESTIMATOR


def save_default_estimator(settings: QSettings, name: str) -> None:
    settings.setValue(DEFAULT_ESTIMATOR_KEY, name)


def _combo(name: str, labels: dict[str, str], tip: str) -> QComboBox:
    combo = QComboBox(objectName=name, toolTip=tip)
    for value, label in labels.items():
        combo.addItem(label, value)
    return combo


class PerformancePage(QWidget):
    """Preset plus each option; choosing a preset fills the options, editing one shows "custom"."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.preset_combo = _combo("presetCombo", {name: name for name in PRESETS} | {CUSTOM: "custom"},
                                   "fastest: compiled UNet in CUDA graphs · balanced: CUDA graphs, no compile wait · "
                                   "low VRAM: offload, slicing and tiling for small GPUs")
        self.device_combo = _combo("deviceCombo", {v: DEVICE_LABELS[v] for v in available_devices()},
                                   "Changing it reloads the model")
        self.precision_combo = _combo("precisionCombo", {v: PRECISION_LABELS[v] for v in PRECISIONS},
                                      "Changing it reloads the model")
        self.attention_combo = _combo("attentionCombo", {v: ATTENTION_LABELS[v] for v in ATTENTION},
                                      "Attention kernels; xformers is used only when it is installed")
        self.compile_combo = _combo("compileCombo", {v: COMPILE_LABELS[v] for v in COMPILE},
                                    "Removes Python overhead from each step on CUDA; images stay the same")
        self.compile_mode_combo = _combo("compileModeCombo", {v: COMPILE_MODE_LABELS[v] for v in COMPILE_MODES},
                                         "torch.compile's mode; compiled code is cached on disk")
        self.offload_combo = _combo("offloadCombo", {v: OFFLOAD_LABELS[v] for v in OFFLOAD},
                                    "Keeps parts of the model in main memory; changing it reloads the model")
        self.channels_last_check = QCheckBox("Channels-last memory format", objectName="channelsLastCheck")
        self.fuse_qkv_check = QCheckBox("Fused attention projections (off while LoRAs are loaded)", objectName="fuseQkvCheck")
        self.attention_slicing_check = QCheckBox(
            "Attention slicing", objectName="attentionSlicingCheck",
            toolTip="For devices without memory-efficient attention (e.g. Apple GPUs); on CUDA, SDPA already saves the memory")
        self.vae_slicing_check = QCheckBox("VAE slicing", objectName="vaeSlicingCheck")
        self.vae_tiling_check = QCheckBox("VAE tiling (large images on small GPUs)", objectName="vaeTilingCheck")
        self.in_effect = QLabel(objectName="inEffectLabel", wordWrap=True, textFormat=Qt.TextFormat.PlainText)
        self.in_effect.setStyleSheet("color: palette(placeholder-text);")

        self.cuda_box = QGroupBox("NVIDIA GPU only", objectName="cudaOptionsBox")
        self.cuda_note = QLabel(objectName="cudaNoteLabel", wordWrap=True)
        cuda_form = QFormLayout(self.cuda_box)
        cuda_form.addRow(self.cuda_note)
        cuda_form.addRow("Acceleration", self.compile_combo)
        cuda_form.addRow("Compile mode", self.compile_mode_combo)
        cuda_form.addRow("Memory", self.offload_combo)

        form = QFormLayout()
        form.addRow("Preset", self.preset_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Precision", self.precision_combo)
        form.addRow("Attention", self.attention_combo)
        for check in (self.channels_last_check, self.fuse_qkv_check, self.attention_slicing_check,
                      self.vae_slicing_check, self.vae_tiling_check):
            form.addRow("", check)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.cuda_box)
        if note := installed_app_note():
            layout.addWidget(QLabel(note, objectName="installedAppLabel", wordWrap=True))
        layout.addWidget(self.in_effect)
        layout.addStretch(1)

        self.preset_combo.currentIndexChanged.connect(self._preset_chosen)
        self.device_combo.currentIndexChanged.connect(self._sync_enabled)
        for combo in self._option_combos():
            combo.currentIndexChanged.connect(self._option_changed)
        for check in self._checks().values():
            check.toggled.connect(self._option_changed)
        self._filling = False
        self.set_settings(PerformanceSettings())

    def _option_combos(self) -> tuple[QComboBox, ...]:
        return (self.attention_combo, self.compile_combo, self.compile_mode_combo, self.offload_combo)

    def _checks(self) -> dict[str, QCheckBox]:
        return {"channels_last": self.channels_last_check, "fuse_qkv": self.fuse_qkv_check,
                "attention_slicing": self.attention_slicing_check, "vae_slicing": self.vae_slicing_check,
                "vae_tiling": self.vae_tiling_check}

    def settings(self) -> PerformanceSettings:
        return PerformanceSettings(
            device=self.device_combo.currentData(), precision=self.precision_combo.currentData(),
            attention=self.attention_combo.currentData(), compile=self.compile_combo.currentData(),
            compile_mode=self.compile_mode_combo.currentData(), offload=self.offload_combo.currentData(),
            **{name: check.isChecked() for name, check in self._checks().items()},
        )

    def set_settings(self, settings: PerformanceSettings) -> None:
        self._filling = True
        try:
            for combo, value in ((self.device_combo, settings.device), (self.precision_combo, settings.precision),
                                 (self.attention_combo, settings.attention), (self.compile_combo, settings.compile),
                                 (self.compile_mode_combo, settings.compile_mode), (self.offload_combo, settings.offload)):
                combo.setCurrentIndex(max(combo.findData(value), 0))  # a device this machine lacks: automatic
            for name, check in self._checks().items():
                check.setChecked(getattr(settings, name))
            self.preset_combo.setCurrentIndex(self.preset_combo.findData(settings.preset))
        finally:
            self._filling = False
        self._sync_enabled()

    def show_report(self, report: PerformanceReport | None) -> None:
        """What is in effect, and why any option outside the GPU-only group could not be honoured."""
        if report is None:
            self.in_effect.setText("Applied when a model is loaded.")
            return
        lines = ["In effect: " + (", ".join(report.applied) or "plain PyTorch") + "."]
        grouped = tuple(option.replace("_", " ") + ":" for option in CUDA_OPTIONS)
        lines += [note.replace(": ", " is not used: ", 1).capitalize() + "."
                  for note in report.fallbacks if not (self._cuda_unusable() and note.startswith(grouped))]
        self.in_effect.setText("\n".join(lines))

    def _cuda_unusable(self) -> bool:
        return "cuda" not in available_devices() or self.device_combo.currentData() not in ("auto", "cuda")

    def _preset_chosen(self) -> None:
        name = self.preset_combo.currentData()
        if not self._filling and name != CUSTOM:
            self.set_settings(self.settings().with_preset(name))

    def _option_changed(self) -> None:
        if not self._filling:
            self._filling = True
            self.preset_combo.setCurrentIndex(self.preset_combo.findData(self.settings().preset))
            self._filling = False
        self._sync_enabled()

    def _sync_enabled(self) -> None:
        self.compile_mode_combo.setEnabled(self.compile_combo.currentData() == "torch-compile")
        unusable = self._cuda_unusable()
        self.cuda_box.setEnabled(not unusable)
        self.cuda_note.setVisible(unusable)
        self.cuda_note.setText(NO_CUDA_HERE if "cuda" not in available_devices() else NOT_ON_THIS_DEVICE)


class DepthPage(QWidget):
    """The estimator a new image starts with; the Depth panel can choose another for each image."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.estimator_combo = EstimatorCombo("defaultEstimatorCombo")
        explanation = QLabel(self.tr(
            "A new image starts with this estimator; the Depth panel chooses another for one image. DPT-Hybrid "
            "(MiDaS) is the default: SD2-depth was trained on its depth, so its pictures follow it best. "
            "Estimators marked non-commercial may not be used for commercial work; those not downloaded can be "
            "had in Model ▸ Models…."), objectName="depthPageLabel", wordWrap=True)
        form = QFormLayout()
        form.addRow(self.tr("Default estimator"), self.estimator_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(explanation)
        layout.addStretch(1)


class SettingsDialog(QDialog):
    """Pages on the left, the chosen page on the right; OK keeps the changes."""

    def __init__(self, performance: PerformanceSettings, report: PerformanceReport | None = None, parent=None,
                 default_estimator: str = DEFAULT_ESTIMATOR, model_has_own_estimator: bool = False):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setObjectName("settingsDialog")
        self.performance_page = PerformancePage()
        self.performance_page.set_settings(performance)
        self.performance_page.show_report(report)
        self.depth_page = DepthPage()
        self.depth_page.estimator_combo.set_model_has_own(model_has_own_estimator)
        self.depth_page.estimator_combo.set_name(default_estimator)

        self.pages = QListWidget(objectName="settingsPages", maximumWidth=150)
        self.stack = QStackedWidget()
        self.pages.addItem("Performance")
        self.stack.addWidget(self.performance_page)
        self.pages.addItem(self.tr("Depth"))
        self.stack.addWidget(self.depth_page)
        self.pages.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.pages.setCurrentRow(0)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
                                   | QDialogButtonBox.StandardButton.RestoreDefaults)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults).clicked.connect(self.restore_defaults)

        body = QHBoxLayout()
        body.addWidget(self.pages)
        body.addWidget(self.stack, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(body)
        layout.addWidget(buttons)
        self.resize(640, 480)

    def performance(self) -> PerformanceSettings:
        return self.performance_page.settings()

    def default_estimator(self) -> str:
        return self.depth_page.estimator_combo.name()

    def restore_defaults(self) -> None:
        self.performance_page.set_settings(PRESETS[DEFAULT_PRESET])
        self.depth_page.estimator_combo.set_name(DEFAULT_ESTIMATOR)
