"""Gallery at scale: with 100,000 indexed entries, print how long a page of the gallery takes to appear.

    python benchmarks/gallery_scroll.py [--entries 100000] [--pages 25]

Fills a database as benchmarks/history_search.py does, then times, on an offscreen Qt display, the first page
(a new search, read in the background: the time until it is listed, and the longest the GUI thread was busy at a
stretch meanwhile), each next page read by scrolling to the end (listed and laid out), then, with every page listed, a new
picture (a refresh), a favourite and a delete of the last listed picture. Thumbnails of the made-up entries fail off the GUI thread, as a
missing file's would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from history_search import fill  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from d2i_desktop.core.history.index import History  # noqa: E402
from d2i_desktop.ui.gallery_panel import PAGE, GalleryPanel  # noqa: E402


def shown(app: QApplication, gallery: GalleryPanel, action) -> float:
    """Milliseconds for `action` and the layout of what it listed."""
    started = time.perf_counter()
    action()
    gallery.list.doItemsLayout()
    app.processEvents()
    return (time.perf_counter() - started) * 1000


def searched(gallery: GalleryPanel) -> tuple[float, float]:
    """Milliseconds until a new search is listed, and the longest the GUI thread went without handling events."""
    loop, ticks = QEventLoop(), []
    ticker = QTimer(interval=1)
    ticker.timeout.connect(lambda: ticks.append(time.perf_counter()))
    gallery.sig_searched.connect(loop.quit)
    started = time.perf_counter()
    ticker.start()
    gallery.start_search()
    loop.exec()
    ended = time.perf_counter()
    ticker.stop()
    gallery.sig_searched.disconnect(loop.quit)
    moments = [started, *ticks, ended]
    return (ended - started) * 1000, max(later - earlier for earlier, later in zip(moments, moments[1:])) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--pages", type=int, default=25, help="pages to scroll through")
    args = parser.parse_args()
    app = QApplication([])
    with tempfile.TemporaryDirectory() as folder:
        os.environ["D2I_DATA_DIR"] = folder
        history = History(Path(folder) / "history.sqlite3")
        fill(history, args.entries)
        gallery = GalleryPanel(lambda: [])
        gallery.history = history
        gallery.resize(360, 700)
        gallery.show()
        app.processEvents()
        first, busiest = searched(gallery)
        print(f"{history.count():,} entries, {PAGE} pictures a page")
        print(f"first page (a new search)           {first:8.1f} ms  (GUI thread busy at most {busiest:.1f} ms at a time)")
        pages = [shown(app, gallery, gallery.list.scrollToBottom) for _ in range(args.pages)]
        print(f"next page by scrolling to the end   {statistics.median(pages):8.1f} ms median {max(pages):8.1f} ms max"
              f"  ({args.pages} pages, {gallery.list.count():,} listed)")
        listed = gallery.list.count()
        history.add_many([("/pictures/new.png", {"prompt": "a new picture", "negative": "", "params": {}, "model": "",
                                                 "loras": [], "seed": 1, "width": 512, "height": 512,
                                                 "created": time.time(), "record_id": "new"})])
        print(f"new picture, {listed:,} listed         {shown(app, gallery, gallery.refresh):8.1f} ms")
        gallery.list.item(gallery.list.count() - 1).setSelected(True)
        print(f"favourite the last listed           {shown(app, gallery, gallery.toggle_favourite):8.1f} ms")
        print(f"delete the last listed              {shown(app, gallery, gallery.delete_selected):8.1f} ms")
        gallery.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
