"""The gallery: every indexed picture as a thumbnail, searchable by prompt words, filtered by model, LoRA, date and
favourites; each can be used again, reproduced, opened, deleted or dragged out.

Pictures are listed a page at a time, newest first; the next page is read when the view is scrolled near its
end. Thumbnails are made in a thread pool (PIL, then a QImage; never a QPixmap off the GUI thread) and cached on
disk by core.history.thumbnails and in memory here.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, QRunnable, QSize, Qt, QThreadPool, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout,
    QWidget,
)
from send2trash import send2trash

from ..core.errors import D2IError
from ..core.history.index import Entry, History
from ..core.history.record import depth_path_for
from ..core.history.thumbnails import thumbnail
from .canvas import to_qimage
from .panel_button import panel_button

log = logging.getLogger(__name__)
ENTRY_ID = Qt.ItemDataRole.UserRole
PATH = Qt.ItemDataRole.UserRole + 1
ALL_MODELS = "All models"
ALL_LORAS = "All LoRAs"
PERIODS = {"Any time": None, "Today": 0, "Last 7 days": 7, "Last 30 days": 30}  # days back; 0: since midnight
PAGE = 200  # pictures read from the index at a time
NEAR_END = 2  # grid rows from the end of the view at which the next page is read


class _Thumbnails(QObject):
    sig_ready = Signal(str, QImage)
    """A thumbnail was made; carries the picture's path and the image."""


class _MakeThumbnail(QRunnable):
    def __init__(self, path: str, done: _Thumbnails):
        super().__init__()
        self.path, self.done = path, done

    def run(self) -> None:
        try:
            image = to_qimage(thumbnail(self.path))
        except (OSError, D2IError) as exc:
            log.info("no thumbnail for %s: %s", self.path, exc)
            return
        self.done.sig_ready.emit(self.path, image)


class _Synced(QObject):
    sig_done = Signal(object)
    """The index is in step with the folders; carries the SyncReport, or the sqlite3 error that stopped it."""


class _SyncIndex(QRunnable):
    """Bring the index in step with the folders on a connection of its own (it stats every indexed file)."""

    def __init__(self, database: Path, folders: list[str], done: _Synced):
        super().__init__()
        self.database, self.folders, self.done = database, folders, done

    def run(self) -> None:
        try:
            history = History(self.database)
            try:
                report = history.sync(self.folders)
            finally:
                history.close()
        except (sqlite3.Error, D2IError) as exc:
            report = exc
        self.done.sig_done.emit(report)


class GalleryList(QListWidget):
    """Thumbnails that can be dragged out to another application as files."""

    def mimeData(self, items):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(item.data(PATH)) for item in items])
        return mime


class GalleryPanel(QWidget):
    sig_use = Signal(str)
    """Put this picture's settings, input image, depth map and LoRAs into the window; carries its path."""
    sig_message = Signal(str, str, str)
    """A message for the notice bar: text, hint, level."""
    sig_reproduce = Signal(str)
    """Make this picture again from its record and compare; carries its path."""

    def __init__(self, folders, parent=None):
        super().__init__(parent)
        self.folders = folders  # a callable giving the folders whose pictures are indexed
        self.history: History | None = None
        self.entries: dict[int, Entry] = {}
        self.items: dict[str, QListWidgetItem] = {}  # by picture path, for thumbnails that arrive
        self.complete = True  # every match is listed
        self.icons: dict[str, QIcon] = {}
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self.thumbnails = _Thumbnails(self)
        self.thumbnails.sig_ready.connect(self._thumbnail_ready)
        self.synced = _Synced(self)
        self.synced.sig_done.connect(self._synced)

        self.search = QLineEdit(objectName="gallerySearch", placeholderText="Search prompts…", clearButtonEnabled=True)
        self.search.textChanged.connect(lambda _text: self.refresh(keep=False))
        self.favourites_only = QCheckBox("★", objectName="galleryFavouritesOnly")
        self.favourites_only.toggled.connect(lambda _on: self.refresh(keep=False))
        self.model = QComboBox(objectName="galleryModel")
        self.model.currentIndexChanged.connect(lambda _index: self.refresh(keep=False))
        self.lora = QComboBox(objectName="galleryLora", toolTip="Show only pictures made with this LoRA")
        self.lora.currentIndexChanged.connect(lambda _index: self.refresh(keep=False))
        self.period = QComboBox(objectName="galleryPeriod", toolTip="Show only pictures made in this time")
        self.period.addItems(list(PERIODS))
        self.period.currentIndexChanged.connect(lambda _index: self.refresh(keep=False))
        self.list = GalleryList(objectName="galleryList", viewMode=QListWidget.ViewMode.IconMode,
                                resizeMode=QListWidget.ResizeMode.Adjust, movement=QListWidget.Movement.Static,
                                uniformItemSizes=True, wordWrap=True)
        self.list.setIconSize(QSize(72, 72))
        self.list.setGridSize(QSize(96, 96))
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setDragEnabled(True)
        self.list.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.list.itemSelectionChanged.connect(self._update_buttons)
        self.list.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.list.itemDoubleClicked.connect(lambda item: self.sig_use.emit(self._path(item)))
        self.use_button = panel_button("Use settings", "useSettingsButton",
                                       "Its settings, input image, depth map and LoRAs back into the window",
                                       lambda: self._with_current(self.sig_use.emit))
        self.open_button = panel_button("Open", "openPictureButton", "Open it in the system's viewer",
                                        lambda: self._with_current(lambda path: QDesktopServices.openUrl(
                                            QUrl.fromLocalFile(path))))
        self.favourite_button = panel_button("★", "favouriteButton", "Mark or unmark as a favourite",
                                             self.toggle_favourite)
        self.delete_button = panel_button("Delete", "deletePictureButton", "Move to the trash, with its depth map",
                                          self.delete_selected)
        self.reproduce_button = panel_button("Reproduce", "reproducePictureButton",
                                             "Make it again from its record and say whether it comes out identical",
                                             lambda: self._with_current(self.sig_reproduce.emit))

        self.favourites_only.setToolTip("Show only favourites")
        for combo in (self.model, self.lora, self.period):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(4)
        search = QHBoxLayout()
        search.addWidget(self.search, 1)
        search.addWidget(self.favourites_only)
        filters = QHBoxLayout()
        for combo in (self.model, self.lora, self.period):
            filters.addWidget(combo, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.use_button, 2)
        for button in (self.reproduce_button, self.open_button, self.favourite_button, self.delete_button):
            buttons.addWidget(button, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(search)
        layout.addLayout(filters)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    # -- the index ------------------------------------------------------------------------
    def _index(self) -> History | None:
        if self.history is None:
            try:
                self.history = History()
            except D2IError as exc:
                self.sig_message.emit(exc.message, exc.hint, "error")
        return self.history

    def sync(self) -> None:
        """Notice pictures deleted or moved outside the app and index those dropped into the output folder, in the
        background; the list follows when it is done."""
        history = self._index()
        if history is not None:
            folders = [str(folder) for folder in self.folders() if Path(folder).is_dir()]
            self.pool.start(_SyncIndex(history.path, folders, self.synced))

    def _synced(self, report) -> None:
        if isinstance(report, Exception):
            self.sig_message.emit(f"The history index could not be brought up to date: {report}.", "", "error")
            return
        if report.added or report.removed:
            log.info("history sync: %s", report)
        if report.moved or report.removed:
            self._reload()
        else:
            self.refresh()

    def refresh(self, keep: bool = True) -> None:
        """Show the newest pictures matching the search and filters. `keep`: re-read the first page only, list the
        pictures new to it at the top and leave the rest as listed and where it is scrolled (a new picture costs the
        same however far the view was scrolled); else list the first page from the top (a new search)."""
        history = self._index()
        if history is None:
            return
        try:
            found = self._search(history, 0, PAGE)
            self._update_choices(history)
        except sqlite3.Error as exc:
            self.sig_message.emit(f"The history index cannot be read: {exc}.", "", "error")
            return
        if keep and any(entry.id in self.entries for entry in found):
            self._merge(found)
        else:
            self._rebuild(found, len(found) < PAGE, 0)

    def _reload(self) -> None:
        """Read again every listed picture, keeping the scroll position (after pictures left the index)."""
        try:
            found = self._search(self.history, 0, max(PAGE, self.list.count()))
            self._update_choices(self.history)
        except sqlite3.Error as exc:
            self.sig_message.emit(f"The history index cannot be read: {exc}.", "", "error")
            return
        self._rebuild(found, len(found) < max(PAGE, self.list.count()), self.list.verticalScrollBar().value())

    def _update_choices(self, history: History) -> None:
        self._set_choices(self.model, ALL_MODELS, history.models())
        self._set_choices(self.lora, ALL_LORAS, history.loras())

    def _rebuild(self, found: list[Entry], complete: bool, scrolled: int) -> None:
        """List `found` alone, keeping the selection, scrolled to `scrolled`."""
        selected = set(self.selected_ids())
        self.entries, self.items, self.complete = {}, {}, complete
        self.list.blockSignals(True)
        self.list.verticalScrollBar().blockSignals(True)
        self.list.clear()
        for entry in found:
            item = self._item(entry)
            self.list.addItem(item)
            item.setSelected(entry.id in selected)
        self.list.verticalScrollBar().setValue(scrolled)
        self.list.verticalScrollBar().blockSignals(False)
        self.list.blockSignals(False)
        self._update_buttons()

    def _merge(self, first_page: list[Entry]) -> None:
        """Insert the entries of the first page not listed yet at their rows; update those listed in place."""
        for row, entry in enumerate(first_page):
            if entry.id in self.entries:
                self._update_item(entry)
            else:
                self.list.insertItem(row, self._item(entry))

    def load_more(self) -> int:
        """List the next page of matches; gives how many were added."""
        if self.complete or self.history is None:
            return 0
        try:
            found = self._search(self.history, self.list.count(), PAGE)
        except sqlite3.Error as exc:
            self.sig_message.emit(f"The history index cannot be read: {exc}.", "", "error")
            return 0
        self.complete = len(found) < PAGE
        for entry in found:
            self.list.addItem(self._item(entry))
        return len(found)

    def _search(self, history: History, offset: int, limit: int) -> list[Entry]:
        return history.search(self.search.text(), model=self.model.currentText() if self.model.currentIndex() > 0 else None,
                              lora=self.lora.currentText() if self.lora.currentIndex() > 0 else None,
                              favourite=self.favourites_only.isChecked(), since=self._since(), limit=limit,
                              offset=offset)

    def _item(self, entry: Entry) -> QListWidgetItem:
        """An item for `entry`, not yet in the list; its thumbnail is asked of the thread pool unless already made."""
        item = QListWidgetItem(self.icons.get(entry.path, QIcon()), self._label(entry))
        item.setData(ENTRY_ID, entry.id)
        item.setData(PATH, entry.path)
        item.setToolTip(f"{entry.path}\n{entry.prompt}")
        self.entries[entry.id] = entry
        self.items[entry.path] = item
        if entry.path not in self.icons:
            self.pool.start(_MakeThumbnail(entry.path, self.thumbnails))
        return item

    def _update_item(self, entry: Entry) -> None:
        self.entries[entry.id] = entry
        self.items[entry.path].setText(self._label(entry))

    def _take(self, entry: Entry) -> None:
        """Drop `entry`'s item from the list."""
        del self.entries[entry.id]
        self.list.takeItem(self.list.row(self.items.pop(entry.path)))

    def _scrolled(self, value: int) -> None:
        bar = self.list.verticalScrollBar()
        if value >= bar.maximum() - NEAR_END * self.list.gridSize().height():
            self.load_more()

    @staticmethod
    def _label(entry: Entry) -> str:
        return ("★ " if entry.favourite else "") + (str(entry.seed) if entry.seed is not None else Path(entry.path).stem)

    @staticmethod
    def _set_choices(combo: QComboBox, everything: str, names: list[str]) -> None:
        current = combo.currentText()
        wanted = [everything, *names]
        if [combo.itemText(index) for index in range(combo.count())] != wanted:
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(wanted)
            combo.setCurrentText(current if current in wanted else everything)
            combo.blockSignals(False)

    def _since(self) -> float | None:
        """The start of the chosen period, in seconds since the epoch; None for any time."""
        days = PERIODS[self.period.currentText()]
        if days is None:
            return None
        if days == 0:
            return datetime.now().replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        return time.time() - days * 86400

    def _thumbnail_ready(self, path: str, image: QImage) -> None:
        self.icons[path] = QIcon(QPixmap.fromImage(image))
        if (item := self.items.get(path)) is not None:
            item.setIcon(self.icons[path])

    # -- what can be done with a picture ----------------------------------------------------
    def selected_ids(self) -> list[int]:
        return [item.data(ENTRY_ID) for item in self.list.selectedItems()]

    def select(self, path: str | Path) -> None:
        """Select the picture at `path` alone."""
        self.list.clearSelection()
        for row in range(self.list.count()):
            if self._path(self.list.item(row)) == str(Path(path).resolve()):
                self.list.setCurrentRow(row)

    @staticmethod
    def _path(item: QListWidgetItem) -> str:
        return item.data(PATH)

    def _with_current(self, action) -> None:
        item = self.list.currentItem()
        if item is not None and item.isSelected():
            action(self._path(item))

    def toggle_favourite(self) -> None:
        entries = [self.entries[picture_id] for picture_id in self.selected_ids()]
        favourite = not all(entry.favourite for entry in entries)
        try:
            for entry in entries:
                self.history.set_favourite(entry.id, favourite)
                if self.favourites_only.isChecked() and not favourite:
                    self._take(entry)
                else:
                    self._update_item(replace(entry, favourite=favourite))
        except (D2IError, sqlite3.Error) as exc:
            self.sig_message.emit(f"Could not mark the picture: {exc}.", "", "error")
        self._update_buttons()

    def delete_selected(self) -> None:
        """Move the selected pictures and their depth maps to the system trash and drop them from the index."""
        moved = 0
        for picture_id in self.selected_ids():
            entry = self.entries[picture_id]
            path = Path(entry.path)
            try:
                for file in (path, depth_path_for(path)):
                    if file.exists():
                        send2trash(str(file))
                self.history.remove(picture_id)
                self._take(entry)
                moved += 1
            except (OSError, sqlite3.Error) as exc:
                self.sig_message.emit(f"Could not move {path.name} to the trash: {exc}.",
                                      "Check that the file is not open elsewhere.", "error")
                break
        if moved:
            self.sig_message.emit(f"Moved {moved} picture(s) to the trash.", "Restore them from the trash to bring them back.",
                                  "info")
        try:
            self._update_choices(self.history)
        except sqlite3.Error as exc:
            self.sig_message.emit(f"The history index cannot be read: {exc}.", "", "error")
        self._update_buttons()

    def _update_buttons(self) -> None:
        count = len(self.list.selectedItems())
        for button in (self.use_button, self.open_button, self.reproduce_button):
            button.setEnabled(count == 1)
        for button in (self.favourite_button, self.delete_button):
            button.setEnabled(count > 0)

    def shutdown(self) -> None:
        """Make no more thumbnails and wait for those being made; close the index."""
        self.pool.clear()
        self.pool.waitForDone(2000)
        if self.history is not None:
            self.history.close()
            self.history = None

