"""The library panel: LoRAs and embeddings with what they are, a weight slider each, import, trash and edits."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PySide6.QtCore import QEvent, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QDoubleSpinBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QPushButton, QSlider, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from ..core.errors import D2IError
from ..core.extras.library import EMBEDDING, LORA, Library, LibraryItem
from ..core.extras.lora_files import WEIGHT_SUFFIXES
from . import library_jobs
from .library_jobs import LibraryJobs

NAME, WEIGHT, KIND, BASE, WORDS, SIZE = range(6)
WEIGHT_STEPS = 100  # slider steps per 1.0 of weight
FILE_FILTER = "LoRAs and embeddings (" + " ".join(f"*{s}" for s in WEIGHT_SUFFIXES) + ");;All files (*)"
ICON_SIZE = 24
WEIGHT_WIDTH = 100  # the weight column: a short slider and its value
NAME_MIN_WIDTH = 110  # the name column never gets narrower than this; the other columns go first
WORDS_MAX_WIDTH = 160  # longer trigger word lists are elided (the details below show them whole)
OPTIONAL_COLUMNS = (KIND, WORDS, BASE, SIZE)  # shown while they fit, the first kept longest


class WeightSlider(QWidget):
    """A LoRA's weight: a slider from -1 to 2 and the value beside it."""

    sig_changed = Signal(float)

    def __init__(self, weight: float, parent=None):
        super().__init__(parent)
        self.slider = QSlider(Qt.Orientation.Horizontal, minimum=-WEIGHT_STEPS, maximum=2 * WEIGHT_STEPS,
                              singleStep=5, pageStep=25, objectName="loraWeightSlider")
        self.label = QLabel(minimumWidth=34, alignment=Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(2, 0, 2, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.label)
        self.slider.valueChanged.connect(self._moved)
        self.set_weight(weight)

    def weight(self) -> float:
        return self.slider.value() / WEIGHT_STEPS

    def set_weight(self, weight: float) -> None:
        self.slider.setValue(round(max(-1.0, min(2.0, weight)) * WEIGHT_STEPS))
        self._moved()

    def _moved(self) -> None:
        self.label.setText(f"{self.weight():.2f}")
        self.sig_changed.emit(self.weight())


class LibraryPanel(QWidget):
    sig_insert_text = Signal(str)
    """Text for the prompt: an embedding's token or a LoRA's trigger words."""
    sig_message = Signal(str, str, str)
    """A message for the notice bar: message, hint, level ("error", "warning" or "info")."""
    sig_export_mix = Signal(object, str)
    """Save the ticked LoRAs at their weights as one LoRA: ((name, weight), ...) and the file to write."""
    sig_names_changed = Signal(list, list)
    """The usable LoRA names and embedding names, after every scan."""

    def __init__(self, library: Library | None = None, parent=None):
        super().__init__(parent)
        self.library = library or Library()
        self.items: dict[str, LibraryItem] = {}  # by row key (kind:name)
        self._chosen: dict[str, tuple[bool, float]] = {}  # LoRA name -> (ticked, weight), kept across refreshes
        self._current_result: Image.Image | None = None
        self.jobs = LibraryJobs(self.library)
        self.jobs.sig_busy.connect(self._busy_changed)
        self.jobs.sig_finished.connect(self._job_finished)
        self.setAcceptDrops(True)

        self.search = QLineEdit(objectName="librarySearch", placeholderText="Search name, trigger words, base model…",
                                clearButtonEnabled=True)
        self.search.textChanged.connect(self._filter)
        self.tree = QTreeWidget(objectName="libraryTree", rootIsDecorated=False, uniformRowHeights=True,
                                alternatingRowColors=True)
        self.tree.setHeaderLabels(["Name", "Weight", "Kind", "Made for", "Trigger words", "Size"])
        self.tree.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        self.tree.setStyleSheet("QTreeWidget::item { min-height: 26px; }")  # room for the weight sliders
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setMinimumSectionSize(24)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(WEIGHT, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(WEIGHT, WEIGHT_WIDTH)
        self.tree.viewport().installEventFilter(self)  # the columns are fitted to its width
        self.tree.itemChanged.connect(self._item_changed)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.tree.currentItemChanged.connect(self._show_details)

        import_button = QPushButton("Import…", objectName="libraryImportButton",
                                    toolTip="Copy LoRA or embedding files into the library (or drop files here)")
        import_button.clicked.connect(self.import_dialog)
        folder_button = QPushButton("Add folder…", objectName="libraryFolderButton",
                                    toolTip="Also list the files of a folder, in place, without copying them")
        folder_button.clicked.connect(self.add_folder_dialog)
        self.remove_button = QPushButton("Remove", objectName="libraryRemoveButton", enabled=False,
                                         toolTip="Move the selected file and its sidecar files to the trash")
        self.remove_button.clicked.connect(self.remove_current)
        refresh = QPushButton("Rescan", objectName="libraryRescanButton", toolTip="Read the library folders again")
        refresh.clicked.connect(self.refresh_in_background)
        self.mix_button = QPushButton("Export mix…", objectName="libraryMixButton",
                                      toolTip="Save the ticked LoRAs at their weights as one LoRA file in the library")
        self.mix_button.clicked.connect(self.export_mix_dialog)
        buttons = QGridLayout()  # two rows: one row of five is wider than the dock beside the picture
        for index, button in enumerate((import_button, folder_button, self.remove_button, refresh, self.mix_button)):
            buttons.addWidget(button, index // 3, index % 3)
        self.busy_label = QLabel(objectName="libraryBusy", visible=False)
        self.busy_label.setStyleSheet("color: palette(placeholder-text);")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.empty_hint = QLabel("No LoRAs or embeddings yet. Import .safetensors files (or drop them here); "
                                 "they are copied into the library.", objectName="libraryEmptyHint", wordWrap=True)
        self.empty_hint.setStyleSheet("color: palette(placeholder-text); padding: 6px;")
        layout.addWidget(self.search)
        layout.addWidget(self.empty_hint)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.busy_label)
        layout.addLayout(buttons)
        layout.addWidget(self._details_box())
        self.refresh_in_background()

    def _details_box(self) -> QGroupBox:
        box = QGroupBox("Selected", objectName="libraryDetails")
        self.thumbnail = QLabel(objectName="libraryThumbnail", alignment=Qt.AlignmentFlag.AlignCenter)
        self.thumbnail.setFixedSize(96, 96)
        self.thumbnail.setStyleSheet("border:1px solid palette(mid);")
        self.details = QLabel(objectName="libraryDetailsText", wordWrap=True,
                              textInteractionFlags=Qt.TextInteractionFlag.TextSelectableByMouse)
        self.words_edit = QLineEdit(objectName="libraryTriggerWords", placeholderText="comma, separated, words")
        self.words_edit.editingFinished.connect(self._save_edits)
        self.default_weight = QDoubleSpinBox(objectName="libraryDefaultWeight", minimum=-1.0, maximum=2.0,
                                             singleStep=0.05, decimals=2, value=1.0)
        self.default_weight.editingFinished.connect(self._save_edits)
        self.thumb_button = QPushButton("Use current result as thumbnail", objectName="libraryThumbButton", enabled=False)
        self.thumb_button.clicked.connect(self.thumbnail_from_result)
        form = QFormLayout()
        form.addRow("Trigger words", self.words_edit)
        form.addRow("Default weight", self.default_weight)
        text = QVBoxLayout()
        text.addWidget(self.details)
        text.addLayout(form)
        row = QHBoxLayout()
        row.addWidget(self.thumbnail, 0, Qt.AlignmentFlag.AlignTop)
        row.addLayout(text, 1)
        column = QVBoxLayout(box)
        column.addLayout(row)
        column.addWidget(self.thumb_button)  # below, not beside the thumbnail: its text is long
        self._show_details(None)
        return box

    # -- list ------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the library folders now and show them: cheap after the first scan (the scan cache knows the files)."""
        self._show(self.library.items())

    def refresh_in_background(self) -> None:
        """Read the library folders off the GUI thread (at start, on Rescan); the list follows."""
        self.jobs.run(self.tr("Reading the library…"), lambda _library: None)

    @property
    def scanning(self) -> bool:
        """Library work (an import, a removal, a scan) is under way off the GUI thread; the list follows it."""
        return self.jobs.busy

    def _busy_changed(self, doing: str) -> None:
        self.busy_label.setText(doing)
        self.busy_label.setVisible(bool(doing))
        self._show_details(self.tree.currentItem())

    def _job_finished(self, notice, found) -> None:
        if isinstance(found, D2IError):
            self.sig_message.emit(found.message, found.hint, "error")
        else:
            self._show(found)
        if notice is not None:  # after the scan's: what the job did matters more
            self.sig_message.emit(*notice)

    def _show(self, found: list[LibraryItem]) -> None:
        current = self.current_item()
        self.tree.blockSignals(True)
        self.tree.clear()
        self.items.clear()
        for item in found:
            key = f"{item.kind}:{item.name}" if item.usable else f"?:{item.path}"
            self.items[key] = item
            row = QTreeWidgetItem(self.tree, [item.name, "", item.kind if item.usable else "unusable",
                                              item.base_model or "?", ", ".join(item.trigger_words or item.suggested_words),
                                              _size_text(item.size)])
            row.setData(NAME, Qt.ItemDataRole.UserRole, key)
            row.setToolTip(NAME, item.problem or f"{item.name}\n{item.path}")
            if item.thumbnail:
                row.setIcon(NAME, QIcon(QPixmap(str(item.thumbnail)).scaled(
                    ICON_SIZE, ICON_SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)))
            if not item.usable:
                for column in range(self.tree.columnCount()):
                    row.setForeground(column, self.palette().placeholderText())
                    row.setToolTip(column, item.problem)
            elif item.kind == LORA:
                ticked, weight = self._chosen.get(item.name, (False, item.default_weight))
                row.setCheckState(NAME, Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
                slider = WeightSlider(weight)
                slider.sig_changed.connect(lambda value, name=item.name: self._weight_changed(name, value))
                self.tree.setItemWidget(row, WEIGHT, slider)
            else:
                row.setToolTip(NAME, f"Write '{item.name}' in the prompt to use it (double-click inserts it).")
            if current is not None and key == f"{current.kind}:{current.name}":
                self.tree.setCurrentItem(row)
        self.tree.blockSignals(False)
        self.empty_hint.setVisible(not self.items)
        usable = [item for item in self.items.values() if item.usable]
        self.sig_names_changed.emit([item.name for item in usable if item.kind == LORA],
                                    [item.name for item in usable if item.kind == EMBEDDING])
        self._filter(self.search.text())
        self._show_details(self.tree.currentItem())
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Name and weight always; then as many of the other columns as fit whole, the name taking what is left."""
        header, room = self.tree.header(), self.tree.viewport().width()
        wanted = {column: max(self.tree.sizeHintForColumn(column), header.sectionSizeHint(column))
                  for column in OPTIONAL_COLUMNS}
        wanted[WORDS] = min(wanted[WORDS], WORDS_MAX_WIDTH)
        shown = list(OPTIONAL_COLUMNS)
        while shown and NAME_MIN_WIDTH + WEIGHT_WIDTH + sum(wanted[column] for column in shown) > room:
            shown.pop()
        for column in OPTIONAL_COLUMNS:
            header.setSectionHidden(column, column not in shown)
            if column in shown:
                header.resizeSection(column, wanted[column])

    def eventFilter(self, watched, event) -> bool:
        if watched is self.tree.viewport() and event.type() == QEvent.Type.Resize:
            self._fit_columns()
        return super().eventFilter(watched, event)

    def _filter(self, text: str) -> None:
        words = text.lower().split()
        for index in range(self.tree.topLevelItemCount()):
            row = self.tree.topLevelItem(index)
            haystack = " ".join(row.text(column) for column in (NAME, KIND, BASE, WORDS)).lower()
            row.setHidden(not all(word in haystack for word in words))

    def row_of(self, name: str) -> QTreeWidgetItem | None:
        for index in range(self.tree.topLevelItemCount()):
            row = self.tree.topLevelItem(index)
            if row.text(NAME) == name:
                return row
        return None

    def current_item(self) -> LibraryItem | None:
        row = self.tree.currentItem()
        return self.items.get(row.data(NAME, Qt.ItemDataRole.UserRole)) if row is not None else None

    # -- choosing LoRAs ----------------------------------------------------------------
    def selected_loras(self) -> tuple[tuple[str, float], ...]:
        """The ticked LoRAs with their slider weights, in list order."""
        chosen = []
        for index in range(self.tree.topLevelItemCount()):
            row = self.tree.topLevelItem(index)
            if row.checkState(NAME) == Qt.CheckState.Checked:
                chosen.append((row.text(NAME), self.tree.itemWidget(row, WEIGHT).weight()))
        return tuple(chosen)

    def select_loras(self, loras: tuple[tuple[str, float], ...]) -> list[str]:
        """Tick exactly these LoRAs at these weights; returns the names the library does not hold."""
        wanted = dict(loras)
        for index in range(self.tree.topLevelItemCount()):
            row = self.tree.topLevelItem(index)
            item = self.items.get(row.data(NAME, Qt.ItemDataRole.UserRole))
            if item is not None and item.kind == LORA:
                if item.name in wanted:
                    self.tree.itemWidget(row, WEIGHT).set_weight(wanted[item.name])
                row.setCheckState(NAME, Qt.CheckState.Checked if item.name in wanted else Qt.CheckState.Unchecked)
        return [name for name in wanted if self.row_of(name) is None]

    def weight_slider(self, name: str) -> WeightSlider:
        return self.tree.itemWidget(self.row_of(name), WEIGHT)

    def _item_changed(self, row: QTreeWidgetItem, column: int) -> None:
        item = self.items.get(row.data(NAME, Qt.ItemDataRole.UserRole))
        if column == NAME and item is not None and item.kind == LORA:
            slider = self.tree.itemWidget(row, WEIGHT)
            self._chosen[item.name] = (row.checkState(NAME) == Qt.CheckState.Checked, slider.weight())

    def _weight_changed(self, name: str, weight: float) -> None:
        ticked = self._chosen.get(name, (False, weight))[0]
        self._chosen[name] = (ticked, weight)

    def _double_clicked(self, row: QTreeWidgetItem, _column: int) -> None:
        item = self.items.get(row.data(NAME, Qt.ItemDataRole.UserRole))
        if item is None or not item.usable:
            return
        if item.kind == EMBEDDING:
            self.sig_insert_text.emit(item.name)
        elif item.trigger_words or item.suggested_words:
            self.sig_insert_text.emit(", ".join(item.trigger_words or item.suggested_words))

    # -- details and edits -------------------------------------------------------------
    def _show_details(self, row, _previous=None) -> None:
        item = self.items.get(row.data(NAME, Qt.ItemDataRole.UserRole)) if row is not None else None
        editable = item is not None and item.usable
        self.remove_button.setEnabled(item is not None and not self.scanning)
        self.words_edit.setEnabled(editable)
        self.default_weight.setEnabled(editable and item.kind == LORA)
        self.thumb_button.setEnabled(editable and self._current_result is not None)
        if item is None:
            self.details.setText("Pick a LoRA or embedding to see what it is.")
            self.thumbnail.clear()
            self.words_edit.clear()
            return
        lines = [f"<b>{_escape(item.name)}</b> · {item.kind or 'unusable'} · {_size_text(item.size)}"]
        if item.problem:
            lines.append(f"<span style='color:#d9534f'>{_escape(item.problem)}</span>")
        if item.base_model:
            lines.append(f"Made for: {_escape(item.base_model)}")
        if trained_on := item.metadata.get("ss_sd_model_name"):
            lines.append(f"Trained on: {_escape(trained_on)}")
        if item.suggested_words and not item.trigger_words:
            lines.append("Suggested from training tags: " + _escape(", ".join(item.suggested_words)))
        if item.notes:
            lines.append(_escape(item.notes[:300]))
        self.details.setText("<br>".join(lines))
        self.words_edit.setText(", ".join(item.trigger_words))
        self.default_weight.setValue(item.default_weight)
        if item.thumbnail:
            self.thumbnail.setPixmap(QPixmap(str(item.thumbnail)).scaled(
                96, 96, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
        else:
            self.thumbnail.setText("no\npreview")

    def _save_edits(self) -> None:
        item = self.current_item()
        if item is None or not item.usable:
            return
        words = [w.strip() for w in self.words_edit.text().split(",") if w.strip()]
        weight = self.default_weight.value() if item.kind == LORA else None
        if tuple(words) == item.trigger_words and (weight is None or weight == item.default_weight):
            return
        self.library.edit(item.name, trigger_words=words, default_weight=weight)
        self.refresh()

    def set_current_result(self, image: Image.Image | None) -> None:
        """The picture "Use current result as thumbnail" takes."""
        self._current_result = image
        self._show_details(self.tree.currentItem())

    def thumbnail_from_result(self) -> None:
        item = self.current_item()
        if item is None or self._current_result is None:
            return
        self.library.set_thumbnail(item.name, self._current_result)
        self.refresh()

    # -- mixes ------------------------------------------------------------------------------
    def export_mix_dialog(self) -> None:
        sources = self.selected_loras()
        if not sources:
            self.sig_message.emit("Tick the LoRAs to mix first.", "Their weights in the list are the mix's weights.",
                                  "warning")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export LoRA mix", str(self.library.root / "mix.safetensors"),
                                              "LoRA (*.safetensors)")
        if path:
            self.sig_export_mix.emit(sources, path)

    def mix_exported(self, item: LibraryItem) -> None:
        self.refresh()
        self.sig_message.emit(f"Saved the mix as '{item.name}'.", f"{item.path}", "info")

    # -- import, folders, remove ------------------------------------------------------------
    def import_dialog(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Import LoRAs or embeddings", "", FILE_FILTER)
        if paths:
            self.import_files(paths)

    def import_files(self, paths: list[str | Path]) -> None:
        """Copy files into the library off the GUI thread; the list and the notice bar (what was skipped or refused)
        follow."""
        paths = [Path(path) for path in paths]
        if not paths:
            return
        doing = self.tr("Importing {}…").format(paths[0].name) if len(paths) == 1 else \
            self.tr("Importing {} files…").format(len(paths))
        self.jobs.run(doing, lambda library: library_jobs.import_files(library, paths))

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A folder of LoRAs or embeddings")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str | Path) -> None:
        """List a folder's files in place, off the GUI thread (a new folder is read whole)."""
        folder = Path(folder)
        self.jobs.run(self.tr("Adding the folder {}…").format(folder.name or folder),
                      lambda library: library.add_folder(folder))

    def remove_current(self) -> None:
        item = self.current_item()
        if item is None or self.scanning:
            return
        self._chosen.pop(item.name, None)
        self.jobs.run(self.tr("Moving {} to the trash…").format(item.path.name),
                      lambda library: library_jobs.remove_item(library, item))

    # -- drag and drop -------------------------------------------------------------------
    def dragEnterEvent(self, event):
        if any(url.isLocalFile() and url.toLocalFile().lower().endswith(WEIGHT_SUFFIXES) for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.import_files(paths)


def _size_text(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.0f} kB"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

