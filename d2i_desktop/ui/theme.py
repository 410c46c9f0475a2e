"""Light and dark themes: follow the system's colour scheme, or force one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

THEME_SYSTEM, THEME_LIGHT, THEME_DARK = "system", "light", "dark"
THEMES = {THEME_SYSTEM: "Follow the system", THEME_LIGHT: "Light", THEME_DARK: "Dark"}


def dark_palette() -> QPalette:
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#2b2d30", QPalette.ColorRole.WindowText: "#e8eaed",
        QPalette.ColorRole.Base: "#1e1f22", QPalette.ColorRole.AlternateBase: "#2b2d30",
        QPalette.ColorRole.Text: "#e8eaed", QPalette.ColorRole.Button: "#3c3f41",
        QPalette.ColorRole.ButtonText: "#e8eaed", QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: "#3574f0", QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.ToolTipBase: "#3c3f41", QPalette.ColorRole.ToolTipText: "#e8eaed",
        QPalette.ColorRole.PlaceholderText: "#8c8f94", QPalette.ColorRole.Link: "#6ea8fe",
        QPalette.ColorRole.Light: "#4a4d50", QPalette.ColorRole.Midlight: "#3c3f41", QPalette.ColorRole.Mid: "#2f3134",
        QPalette.ColorRole.Dark: "#1b1c1e", QPalette.ColorRole.Shadow: "#111214",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6f7378"))
    return palette


def system_is_dark() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def apply_theme(name: str) -> str:
    """Apply a theme (THEMES key; anything else follows the system); returns "light" or "dark", as applied."""
    app = QApplication.instance()
    dark = name == THEME_DARK or (name != THEME_LIGHT and system_is_dark())
    app.setStyle(QStyleFactory.create("Fusion"))  # one style that draws both palettes well on every system
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
    return THEME_DARK if dark else THEME_LIGHT
