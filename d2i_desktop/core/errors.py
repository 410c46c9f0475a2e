"""User-facing errors: what went wrong and what to do about it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fix:
    """A change of performance settings that cures an error, offered to the user as one click."""

    label: str  # e.g. "Use fp32 precision"
    preset: str | None = None  # a preset to switch to first (device and precision are kept)
    changes: dict = field(default_factory=dict)  # PerformanceSettings fields to set


class D2IError(Exception):
    """An error meant for the user: a one-line message, a hint, and maybe a one-click fix."""

    def __init__(self, message: str, hint: str = "", fix: Fix | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


class ParamError(D2IError):
    """A generation parameter is out of range or unknown."""


class ImageError(D2IError):
    """An image or depth file cannot be used."""


class ModelError(D2IError):
    """A model is missing, incomplete or of the wrong kind."""


class Cancelled(Exception):
    """Raised inside a running job when the user cancels it."""
