"""The parameter panel: every setting the engine takes, as widgets."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QSpinBox, QToolButton, QWidget,
)

from ..core.generation.params import DEFAULT_SCHEDULER, MAX_IMAGES, MAX_STEPS, SCHEDULERS, GenerationParams
from .prompt_edit import PromptEdit

QT_MAX_INT = 2**31 - 1  # QSpinBox holds a signed 32-bit int
MAX_BATCH = 100


class ParamsPanel(QWidget):
    sig_submit = Signal()
    """Ctrl+Enter was pressed in a prompt box."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.prompt = self._prompt_edit("promptEdit", "Describe the picture you want…", 64)
        self.negative = self._prompt_edit("negativePromptEdit", "What to avoid (optional)…", 40)
        self.strength = self._double_spin("strengthSpin", 0.01, 1.0, 0.05, 0.8, 2,
                                          "How much to repaint: low keeps the photo's look, 1 repaints it fully.")
        self.steps = QSpinBox(objectName="stepsSpin", minimum=1, maximum=MAX_STEPS, value=30)
        self.steps.setToolTip("Denoising steps before strength is applied (strength 0.8 runs 80% of them).")
        self.guidance = self._double_spin("guidanceSpin", 0.0, 30.0, 0.5, 7.5, 1,
                                          "How closely to follow the prompt (classifier-free guidance).")
        self.seed = QSpinBox(objectName="seedSpin", minimum=-1, maximum=QT_MAX_INT, value=-1)
        self.seed.setSpecialValueText("Random")
        self.seed.setToolTip("-1 (Random) picks a new seed each time; the seed used is shown with the result.")
        self.random_seed = QToolButton(text="Random", objectName="randomSeedButton", toolTip="Use a new random seed each time")
        self.random_seed.clicked.connect(lambda: self.seed.setValue(-1))
        self.reuse_seed = QToolButton(text="Reuse", objectName="reuseSeedButton", toolTip="Reuse the last seed", enabled=False)
        self.reuse_seed.clicked.connect(lambda: self.seed.setValue(self._last_seed))
        self._last_seed = -1
        self.num_images = QSpinBox(objectName="numImagesSpin", minimum=1, maximum=MAX_IMAGES, value=1)
        self.batch = QSpinBox(objectName="batchSpin", minimum=1, maximum=MAX_BATCH, value=1)
        self.batch.setToolTip("Run these settings this many times, one after another, with successive seeds.")
        self.scheduler = QComboBox(objectName="schedulerCombo")
        self.scheduler.addItems(list(SCHEDULERS))
        self.scheduler.setCurrentText(DEFAULT_SCHEDULER)
        self.scheduler.setToolTip("The sampler that walks from noise to picture.")
        self.tile = QCheckBox("Seamless tile", objectName="tileCheck")
        self.tile.setToolTip("Make the picture repeat seamlessly left to right and top to bottom "
                             "(View ▸ Tiled preview shows it 2x2).")

        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed, 1)
        seed_row.addWidget(self.random_seed)
        seed_row.addWidget(self.reuse_seed)
        form = QFormLayout(self)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Prompt", self.prompt)
        form.addRow("Negative", self.negative)
        form.addRow("Strength", self.strength)
        form.addRow("Steps", self.steps)
        form.addRow("Guidance", self.guidance)
        form.addRow("Seed", seed_row)
        form.addRow("Images", self.num_images)
        form.addRow("Batch count", self.batch)
        form.addRow("Sampler", self.scheduler)
        form.addRow("Tile", self.tile)

    def _prompt_edit(self, name: str, placeholder: str, height: int) -> PromptEdit:
        edit = PromptEdit(objectName=name, placeholderText=placeholder, tabChangesFocus=True)
        edit.setAccessibleName(placeholder.rstrip("…"))
        edit.setMinimumHeight(height)
        edit.setMaximumHeight(2 * height)
        edit.sig_submit.connect(self.sig_submit)
        return edit

    @staticmethod
    def _double_spin(name, low, high, step, value, decimals, tip) -> QDoubleSpinBox:
        spin = QDoubleSpinBox(objectName=name, minimum=low, maximum=high, singleStep=step, decimals=decimals)
        spin.setValue(value)
        spin.setToolTip(tip)
        return spin

    def params(self) -> GenerationParams:
        return GenerationParams(
            prompt=self.prompt.toPlainText().strip(),
            negative_prompt=self.negative.toPlainText().strip(),
            strength=round(self.strength.value(), 4),
            steps=self.steps.value(),
            guidance_scale=self.guidance.value(),
            seed=self.seed.value(),
            num_images=self.num_images.value(),
            scheduler=self.scheduler.currentText(),
            tile=self.tile.isChecked(),
        )

    def set_params(self, params: GenerationParams) -> None:
        self.prompt.setPlainText(params.prompt)
        self.negative.setPlainText(params.negative_prompt)
        self.strength.setValue(params.strength)
        self.steps.setValue(params.steps)
        self.guidance.setValue(params.guidance_scale)
        self.seed.setValue(params.seed if params.seed <= QT_MAX_INT else -1)
        self.num_images.setValue(params.num_images)
        self.scheduler.setCurrentText(params.scheduler)
        self.tile.setChecked(params.tile)

    def set_library_names(self, loras: list[str], embeddings: list[str]) -> None:
        """The LoRA and embedding names the prompt boxes complete."""
        for edit in (self.prompt, self.negative):
            edit.set_library_names(loras, embeddings)

    def remember_seed(self, seed: int) -> None:
        self._last_seed = seed if seed <= QT_MAX_INT else -1
        self.reuse_seed.setEnabled(self._last_seed >= 0)
        self.reuse_seed.setToolTip(f"Reuse the last seed ({seed})")
