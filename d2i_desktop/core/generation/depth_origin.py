"""What made a depth map: an estimator with its settings, a file, or a hand edit; as the record and the settings
text say it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..depth.estimators import DEFAULT_ESTIMATOR, ESTIMATORS, DepthSettings

ESTIMATED, FILE, EDITED = "estimated", "file", "edited"


@dataclass(frozen=True)
class DepthOrigin:
    """What made a depth map: an estimator with its settings, a file, or a hand edit."""

    kind: str  # ESTIMATED, FILE or EDITED
    settings: DepthSettings | None = None  # the estimator and its settings, for an estimate
    file: str = ""  # the name of the file it was read from

    @classmethod
    def estimated(cls, settings: DepthSettings) -> DepthOrigin:
        return cls(ESTIMATED, settings)

    @classmethod
    def loaded(cls, path: str | Path) -> DepthOrigin:
        return cls(FILE, file=Path(path).name)

    @classmethod
    def edited(cls) -> DepthOrigin:
        return cls(EDITED)

    def describe(self) -> str:
        if self.kind == ESTIMATED:
            return f"estimated with {_describe(self.settings)}"
        return f"loaded from {self.file}" if self.kind == FILE else "edited by hand"

    def parameters_fields(self) -> dict[str, str]:
        """The AUTOMATIC1111 fields: written only for an estimate made other than the default way, so a default
        picture's text stays as it always was (and no estimator is named for a map from a file or a hand edit)."""
        if self.kind != ESTIMATED:
            return {}
        fields = {}
        name = self.settings.estimator
        if name != DEFAULT_ESTIMATOR:
            fields["Depth estimator"] = ESTIMATORS[name].label if name in ESTIMATORS else name  # as a record named it
        if self.settings.fine_detail:
            fields["Depth fine detail"] = "True"
        return fields

    def to_record(self) -> dict:
        if self.kind == ESTIMATED:
            return {"kind": ESTIMATED, "estimator": self.settings.estimator, "fine_detail": self.settings.fine_detail}
        return {"kind": FILE, "file": self.file} if self.kind == FILE else {"kind": EDITED}

    @classmethod
    def from_record(cls, value) -> DepthOrigin | None:
        """The origin a record holds (untrusted); None when it holds none or one this version cannot read."""
        if not isinstance(value, dict):
            return None
        kind = value.get("kind")
        if kind == ESTIMATED and isinstance(value.get("estimator"), str):
            return cls.estimated(DepthSettings(value["estimator"], value.get("fine_detail") is True))
        if kind == FILE:
            return cls(FILE, file=str(value.get("file", "")))
        return cls.edited() if kind == EDITED else None


def _describe(settings: DepthSettings) -> str:
    """The settings in words; an estimator this version does not know is named as recorded."""
    return settings.describe() if settings.estimator in ESTIMATORS else f"'{settings.estimator}' (unknown here)"
