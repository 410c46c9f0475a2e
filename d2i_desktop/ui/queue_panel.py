"""The queue panel: the running job and the generations waiting behind it, which can be moved, edited or removed."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ..session import Session
from .panel_button import panel_button

JOB_ID = Qt.ItemDataRole.UserRole


class QueuePanel(QWidget):
    sig_edit = Signal(int)
    """Take a queued job back into the Generate panel; carries its id."""
    sig_cancel_all = Signal()
    """Empty the queue and stop the running job."""

    def __init__(self, session: Session, parent=None):
        super().__init__(parent)
        self.session = session
        self.list = QListWidget(objectName="queueList", textElideMode=Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setAccessibleName("Queue")
        self.list.currentRowChanged.connect(lambda _row: self._update_buttons())
        self.up_button = panel_button("Up", "queueUpButton", "Run it earlier", lambda: self._move(-1))
        self.down_button = panel_button("Down", "queueDownButton", "Run it later", lambda: self._move(1))
        self.edit_button = panel_button("Edit", "queueEditButton", "Take it out of the queue into the Generate panel",
                                        lambda: self._emit_current(self.sig_edit.emit))
        self.remove_button = panel_button("Remove", "queueRemoveButton", "Take it out of the queue",
                                          lambda: self._emit_current(self.session.take_back))
        self.cancel_all_button = panel_button("Cancel all", "cancelAllButton", "Empty the queue and stop the running job",
                                              self.sig_cancel_all.emit)
        buttons = QHBoxLayout()
        for button in (self.up_button, self.down_button, self.edit_button, self.remove_button, self.cancel_all_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        session.sig_jobs_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        """Show the running job first (not selectable), then the queue in its order; keep the selected job."""
        selected = self.current_id()
        self.list.blockSignals(True)
        self.list.clear()
        if self.session.running is not None:
            item = QListWidgetItem(f"▶ {self.session.running.what}", self.list)
            item.setFlags(Qt.ItemFlag.ItemIsEnabled)
        for job in self.session.queue:
            item = QListWidgetItem(job.what, self.list)
            item.setToolTip(job.request[0].prompt if job.request else job.what)
            item.setData(JOB_ID, job.id)
            if job.id == selected:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)
        self._update_buttons()

    def current_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else item.data(JOB_ID)

    def select(self, job_id: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(JOB_ID) == job_id:
                self.list.setCurrentRow(row)

    def _move(self, places: int) -> None:
        if (job_id := self.current_id()) is not None:
            self.session.move(job_id, places)

    def _emit_current(self, send) -> None:
        if (job_id := self.current_id()) is not None:
            send(job_id)

    def _update_buttons(self) -> None:
        ids = [job.id for job in self.session.queue]
        job_id = self.current_id()
        index = ids.index(job_id) if job_id in ids else None
        self.up_button.setEnabled(index is not None and index > 0)
        self.down_button.setEnabled(index is not None and index < len(ids) - 1)
        self.edit_button.setEnabled(index is not None)
        self.remove_button.setEnabled(index is not None)
        self.cancel_all_button.setEnabled(self.session.busy or bool(ids))
