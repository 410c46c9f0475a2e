"""User-facing errors: what went wrong and what to do about it."""


class D2IError(Exception):
    """An error meant for the user: a one-line message and a hint."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

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
