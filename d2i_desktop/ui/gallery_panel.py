"""The gallery: every indexed picture as a thumbnail, searchable by prompt words, filtered by model, LoRA, date and
favourites; each can be used again, reproduced, opened, deleted or dragged out.

Pictures are listed a page at a time, newest first; the next page is read when the view is scrolled near its
end. A new search (typing, after a short pause, or a filter) runs in the background (ui.gallery_loader); an answer
overtaken by a newer search is dropped. Thumbnails are made in a thread pool (PIL, then a QImage; never a QPixmap off
the GUI thread), cached on disk by core.history.thumbnails and in memory here; a placeholder stands in meanwhile.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QMimeData, QSize, Qt, QThreadPool, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QIcon, QImage, QPalette, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QHBoxLayout, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout,
    QWidget,
)
from send2trash import send2trash

from ..core.errors import D2IError
from ..core.history.index import Entry, History
from ..core.history.record import depth_path_for
from .gallery_loader import Found, MakeThumbnail, Query, RunSearch, Searches, Synced, SyncIndex, Thumbnails, run_query
from .panel_button import panel_button

log = logging.getLogger(__name__)
ENTRY_ID = Qt.ItemDataRole.UserRole
PATH = Qt.ItemDataRole.UserRole + 1
ALL_MODELS = "All models"
ALL_LORAS = "All LoRAs"
PERIODS = {"Any time": None, "Today": 0, "Last 7 days": 7, "Last 30 days": 30}  # days back; 0: since midnight
PAGE = 200  # pictures read from the index at a time
NEAR_END = 2  # grid rows from the end of the view at which the next page is read
SEARCH_PAUSE_MS = 250  # typing in the search box starts a search once it pauses this long
ICON_SIZE = 72


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
    sig_searched = Signal()
    """A search's answer is listed."""

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
        self.thumbnails = Thumbnails(self)
        self.thumbnails.sig_ready.connect(self._thumbnail_ready)
        self.synced = Synced(self)
        self.synced.sig_done.connect(self._synced)
        self.search_pool = QThreadPool(self)
        self.search_pool.setMaxThreadCount(1)  # searches one after another: an overtaken one is dropped when it ends
        self.searches = Searches(self)
        self.searches.sig_found.connect(self._found)
        self.searches_started = 0  # the number of the newest search: only its answer is listed
        self.search_pause = QTimer(self, singleShot=True, interval=SEARCH_PAUSE_MS)
        self.search_pause.timeout.connect(self.start_search)

        self.search = QLineEdit(objectName="gallerySearch", placeholderText="Search prompts…", clearButtonEnabled=True)
        self.search.textChanged.connect(self.search_pause.start)
        self.favourites_only = QCheckBox("★", objectName="galleryFavouritesOnly")
        self.favourites_only.toggled.connect(self.start_search)
        self.model = QComboBox(objectName="galleryModel")
        self.model.currentIndexChanged.connect(self.start_search)
        self.lora = QComboBox(objectName="galleryLora", toolTip="Show only pictures made with this LoRA")
        self.lora.currentIndexChanged.connect(self.start_search)
        self.period = QComboBox(objectName="galleryPeriod", toolTip="Show only pictures made in this time")
        self.period.addItems(list(PERIODS))
        self.period.currentIndexChanged.connect(self.start_search)
        self.list = GalleryList(objectName="galleryList", viewMode=QListWidget.ViewMode.IconMode,
                                resizeMode=QListWidget.ResizeMode.Adjust, movement=QListWidget.Movement.Static,
                                uniformItemSizes=True, wordWrap=True)
        self.list.setIconSize(QSize(ICON_SIZE, ICON_SIZE))
        placeholder = QPixmap(ICON_SIZE, ICON_SIZE)
        placeholder.fill(self.palette().color(QPalette.ColorRole.Mid))
        self.placeholder = QIcon(placeholder)
        """Shown until a picture's thumbnail is made."""
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
            self.pool.start(SyncIndex(history.path, folders, self.synced))

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

    def start_search(self) -> None:
        """List the first page matching the search and filters from the top, read in the background."""
        self.search_pause.stop()
        history = self._index()
        if history is None:
            return
        self.searches_started += 1
        self.search_pool.clear()  # searches not started yet are overtaken already
        self.search_pool.start(RunSearch(history.path, self.searches_started, self._query(0, PAGE), self.searches))

    def _found(self, number: int, found) -> None:
        if number != self.searches_started:
            return  # a newer search was started meanwhile
        if isinstance(found, Exception):
            self.sig_message.emit(self.tr("The history index cannot be searched: {error}.").format(error=found),
                                  self.tr("Try again; if it keeps failing, restart the app."), "error")
            return
        self._show_choices(found)
        self._rebuild(found.entries, len(found.entries) < PAGE, 0)
        self.sig_searched.emit()

    def refresh(self) -> None:
        """Show the newest pictures matching the search and filters (a new picture or a favourite): re-read the first
        page only, list the pictures new to it at the top and leave the rest as listed and where it is scrolled (a new
        picture costs the same however far the view was scrolled)."""
        history = self._index()
        if history is None:
            return
        try:
            found = run_query(history, self._query(0, PAGE))
        except sqlite3.Error as exc:
            self.sig_message.emit(f"The history index cannot be read: {exc}.", "", "error")
            return
        self._show_choices(found)
        if any(entry.id in self.entries for entry in found.entries):
            self._merge(found.entries)
        else:
            self._rebuild(found.entries, len(found.entries) < PAGE, 0)

    def _reload(self) -> None:
        """Read again every listed picture, keeping the scroll position (after pictures left the index)."""
        listed = max(PAGE, self.list.count())
        try:
            found = run_query(self.history, self._query(0, listed))
        except sqlite3.Error as exc:
            self.sig_message.emit(f"The history index cannot be read: {exc}.", "", "error")
            return
        self._show_choices(found)
        self._rebuild(found.entries, len(found.entries) < listed, self.list.verticalScrollBar().value())

    def _show_choices(self, found: Found) -> None:
        self._set_choices(self.model, ALL_MODELS, found.models)
        self._set_choices(self.lora, ALL_LORAS, found.loras)

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
            found = self.history.search(**vars(self._query(self.list.count(), PAGE)))
        except sqlite3.Error as exc:
            self.sig_message.emit(f"The history index cannot be read: {exc}.", "", "error")
            return 0
        self.complete = len(found) < PAGE
        for entry in found:
            self.list.addItem(self._item(entry))
        return len(found)

    def _query(self, offset: int, limit: int) -> Query:
        return Query(self.search.text(), model=self.model.currentText() if self.model.currentIndex() > 0 else None,
                     lora=self.lora.currentText() if self.lora.currentIndex() > 0 else None,
                     favourite=self.favourites_only.isChecked(), since=self._since(), offset=offset, limit=limit)

    def _item(self, entry: Entry) -> QListWidgetItem:
        """An item for `entry`, not yet in the list; its thumbnail is asked of the thread pool unless already made."""
        item = QListWidgetItem(self.icons.get(entry.path, self.placeholder), self._label(entry))
        item.setData(ENTRY_ID, entry.id)
        item.setData(PATH, entry.path)
        item.setToolTip(f"{entry.path}\n{entry.prompt}")
        self.entries[entry.id] = entry
        self.items[entry.path] = item
        if entry.path not in self.icons:
            self.pool.start(MakeThumbnail(entry.path, self.thumbnails))
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
            self._show_choices(Found([], self.history.models(), self.history.loras()))
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
        """Make no more thumbnails or searches and wait for those under way; close the index."""
        self.search_pause.stop()
        for pool in (self.pool, self.search_pool):
            pool.clear()
            pool.waitForDone(2000)
        if self.history is not None:
            self.history.close()
            self.history = None

