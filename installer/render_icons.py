"""Render resources/icons/d2i-desktop.svg to the PNG sizes desktops ask for (run after editing the SVG)."""

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def main() -> None:
    renderer = QSvgRenderer(str(ICONS / "d2i-desktop.svg"))
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        image.save(str(ICONS / f"d2i-desktop-{size}.png"))
        print(ICONS / f"d2i-desktop-{size}.png")


if __name__ == "__main__":
    app = QGuiApplication([])  # QPainter needs an application
    main()
