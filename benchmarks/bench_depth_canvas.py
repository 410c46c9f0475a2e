"""What a brush stroke costs in the real canvas on a 2048x2048 map: each mouse move (dabs, recolouring the
changed box, repainting it) and the stroke's end (undo record, full refresh, 3D preview update).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_depth_canvas.py [--side 2048] [--size 256] [--moves 120]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication

from d2i_desktop.ui.canvas import Canvas
from d2i_desktop.ui.depth_tools import DepthEditor, DepthToolsPanel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=2048)
    parser.add_argument("--size", type=int, default=256, help="brush diameter in pixels")
    parser.add_argument("--step", type=int, default=64, help="image pixels between mouse events")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    canvas, editor = Canvas(), DepthEditor()
    panel = DepthToolsPanel(editor, canvas)
    canvas.resize(1000, 800)
    canvas.show()
    panel.show()
    image = QImage(args.side, args.side, QImage.Format.Format_RGB888)
    image.fill(0x808080)
    canvas.set_input(image)
    rng = np.random.default_rng(0)
    editor.load(rng.random((args.side, args.side), dtype=np.float32), "Estimate", "bench")
    panel.size_slider.setValue(args.size)
    print(f"{args.side}x{args.side} map, {args.size} px brush, a mouse event every {args.step} image px, "
          f"canvas {canvas.width()}x{canvas.height()} (zoom {canvas.zoom:.2f})")
    print(f"{'brush':8} {'move median ms':>15} {'move p95 ms':>12} {'press ms':>9} {'release ms':>11}")

    def send(kind, at, button, buttons):
        QApplication.sendEvent(canvas, QMouseEvent(kind, at, canvas.mapToGlobal(at), button, buttons,
                                                   Qt.KeyboardModifier.NoModifier))

    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    for kind in ("raise", "lower", "flatten", "smooth"):
        panel.set_tool(kind)
        path = [canvas.offset + QPointF(x, args.side / 2) * canvas.zoom
                for x in np.arange(args.size, args.side - args.size, args.step)]
        began = time.perf_counter()
        send(QEvent.Type.MouseButtonPress, path[0], left, left)
        press_ms = (time.perf_counter() - began) * 1000
        moves = []
        for at in path[1:]:
            began = time.perf_counter()
            send(QEvent.Type.MouseMove, at, none, left)
            canvas.repaint()  # paint now, as the event loop would before the next move
            moves.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        send(QEvent.Type.MouseButtonRelease, path[-1], left, none)
        canvas.repaint()
        release_ms = (time.perf_counter() - began) * 1000
        print(f"{kind:8} {np.median(moves):15.2f} {np.percentile(moves, 95):12.2f} {press_ms:9.1f} {release_ms:11.1f}")
    app.processEvents()


if __name__ == "__main__":
    main()
