"""Saving pictures with their generation text, atomically and never overwriting; reading that text back."""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .app_data import sweep_stale_temporaries
from ..errors import D2IError, ParamError
from .images import open_image

_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286
# Text chunks other tools write, best first: AUTOMATIC1111 / Fooocus / ours, then InvokeAI, then ComfyUI.
_METADATA_KEYS = ("parameters", "invokeai_metadata", "sd-metadata", "Dream", "prompt", "workflow")
_NUMBERED_NAME = re.compile(r"^(\d+)-")
# AUTOMATIC1111's settings line: `Key: value` or `Key: "quoted, value"`, comma separated.
_QUOTED = re.compile(r'"(?:\\.|[^\\"])+"')
MAX_PARAMETERS_CHARS = 100_000  # AUTOMATIC1111's own texts are a few KB; a long prompt and many LoRAs stay far below
_NEGATIVE_PREFIX = "Negative prompt:"


class OutputError(D2IError):
    """An output file could not be written."""


class OutputExistsError(OutputError):
    """The target file already exists; outputs never overwrite."""

    def __init__(self, path: Path):
        super().__init__(f"{path.name} already exists in {path.parent}.",
                         "Choose another file name; existing files are never overwritten.")
        self.path = path


def save_png(image: Image.Image, path: str | Path, parameters: str | None = None) -> Path:
    """Write `image` to `path` as PNG with a `parameters` text chunk; raise OutputExistsError if it exists."""
    path = Path(path)
    if os.path.lexists(path):
        raise OutputExistsError(path)
    return save_new_file(_png_writer(image, parameters), [path])


def save_unique_png(image: Image.Image, path: str | Path, parameters: str | None = None,
                    texts: dict[str, str] | None = None) -> Path:
    """Like save_png, but if `path` is taken, use the first free `stem-1.png`, `stem-2.png`, ...

    `texts`: more PNG text chunks (key -> text), e.g. the machine-readable record.
    """
    path = Path(path)
    alternatives = (path.with_name(f"{path.stem}-{number}{path.suffix}") for number in itertools.count(1))
    return save_new_file(_png_writer(image, parameters, texts), itertools.chain([path], alternatives))


def save_numbered_png(image: Image.Image, folder: str | Path, seed: int, parameters: str | None = None) -> Path:
    """Save as `00001-<seed>.png` (AUTOMATIC1111 style), numbered above the highest number in `folder`."""
    folder = Path(folder)
    names = (folder / f"{number:05d}-{seed}.png" for number in itertools.count(next_number(folder)))
    return save_new_file(_png_writer(image, parameters), names)


def next_number(folder: str | Path) -> int:
    """One above the highest AUTOMATIC1111-style number (`00007-...`) of the files in `folder`; 1 when none."""
    folder = Path(folder)
    numbers = [int(match.group(1)) for entry in (folder.iterdir() if folder.is_dir() else ())
               if (match := _NUMBERED_NAME.match(entry.name))]
    return max(numbers, default=0) + 1


def _png_writer(image: Image.Image, parameters: str | None, texts: dict[str, str] | None = None) -> Callable[[BinaryIO], None]:
    info = PngInfo()
    if parameters is not None:
        info.add_text("parameters", parameters)  # switches to iTXt (UTF-8) for non-Latin-1 text
    for key, text in (texts or {}).items():
        info.add_text(key, text)
    return lambda file: image.save(file, format="PNG", pnginfo=info)


def save_new_file(write: Callable[[BinaryIO], None], candidates: Iterable[Path]) -> Path:
    """Write once to a temp file, then give it the first free candidate name; an existing file is never replaced.

    Whatever happens, no partial or empty file is left under a final name, and the temp file is removed
    (one left by a killed process is swept away a day later).
    """
    candidates = iter(candidates)
    first = next(candidates)
    folder = first.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sweep_stale_temporaries(folder)
        temp = _write_temp(write, folder, first.suffix)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise OutputError(f"Could not save {first.name} in {folder}: {_reason(error)}.",
                          "Check that the folder is writable and the disk has free space.") from error
    try:
        for target in itertools.chain([first], candidates):
            if _claim(temp, target):
                _sync_folder(folder)
                return target
        raise OutputExistsError(first)
    except OSError as error:
        raise OutputError(f"Could not save {first.name} in {folder}: {_reason(error)}.",
                          "Check that the folder is writable and the disk has free space.") from error
    finally:
        _remove(temp)


def _write_temp(write: Callable[[BinaryIO], None], folder: Path, suffix: str) -> Path:
    temp = folder / f".d2i-{secrets.token_hex(6)}{suffix}.tmp"
    # os.open with 0o666 honours the umask, unlike tempfile's private 0o600 files.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        _remove(temp)
        raise
    return temp


def _remove(temp: Path) -> None:
    try:
        temp.unlink(missing_ok=True)
    except OSError:  # e.g. the disk went read-only meanwhile: the sweep removes it later
        pass


def _claim(temp: Path, target: Path) -> bool:
    """Give `temp` the name `target` unless that name exists; False if it does."""
    try:
        os.link(temp, target)  # atomic, and fails rather than replace an existing file
        return True
    except FileExistsError:
        return False
    except OSError:
        pass  # no hard links here (FAT, some network shares)
    if os.path.lexists(target):
        return False
    try:
        # Windows' rename refuses an existing target; elsewhere a file created in this very instant would be replaced,
        # which is the price of never reserving the name with an empty placeholder.
        os.rename(temp, target)
    except FileExistsError:
        return False
    return True


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; NTFS journals the rename anyway
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _reason(error: BaseException) -> str:
    return (getattr(error, "strerror", None) or str(error) or type(error).__name__).rstrip(".")


def read_parameters(path: str | Path) -> str | None:
    """The generation text embedded in an image file, or None if it has none.

    PNG text chunks (AUTOMATIC1111 `parameters`, also Fooocus; else InvokeAI or ComfyUI raw JSON)
    and EXIF UserComment (AUTOMATIC1111 JPEG/WebP). Files that are not readable images
    (including empty files) raise ImageError, like everywhere else.
    """
    with open_image(path) as image:
        text = _text_chunk(image.info)
        if text is None and image.format == "PNG":
            image.load()  # text chunks after the pixel data are only read with the pixels
            text = _text_chunk(image.info)
        if text is None:
            exif = image.getexif()
            comment = exif.get_ifd(_EXIF_IFD).get(_USER_COMMENT) or exif.get(_USER_COMMENT)
            text = _decode_user_comment(comment) if comment else None
    return text or None


def _text_chunk(info: dict) -> str | None:
    for key in _METADATA_KEYS:
        value = info.get(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if isinstance(value, str) and value:
            return value
    return None


def _decode_user_comment(raw: bytes | str) -> str | None:
    """Decode an EXIF UserComment: an 8-byte character-code prefix, then the text."""
    if isinstance(raw, str):
        return raw.rstrip("\0") or None
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\0":
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            encoding = "utf-16"
        # piexif (used by AUTOMATIC1111) writes big-endian whatever the EXIF byte order; others use
        # little-endian. ASCII-range text in big-endian UTF-16 has its zero bytes at even offsets.
        elif body[0::2].count(0) >= body[1::2].count(0):
            encoding = "utf-16-be"
        else:
            encoding = "utf-16-le"
        text = body.decode(encoding, errors="replace")
    elif prefix == b"JIS\0\0\0\0\0":
        text = body.decode("shift_jis", errors="replace")
    elif prefix in (b"ASCII\0\0\0", b"\0" * 8):
        text = body.decode("utf-8", errors="replace")
    else:
        text = raw.decode("utf-8", errors="replace")
    return text.rstrip("\0") or None


def parse_parameters(text: str) -> dict[str, str]:
    """Split AUTOMATIC1111 generation text into prompt, negative_prompt and its `Key: value` fields.

    Values stay strings exactly as written (quoted ones unescaped), e.g. {"Steps": "30", "Size": "512x512"}.
    """
    if len(text) > MAX_PARAMETERS_CHARS:
        raise ParamError(f"The picture's settings text is {len(text) // 1000:,} KB long, more than the "
                         f"{MAX_PARAMETERS_CHARS // 1000} KB this app reads.", "Its settings cannot be used; type them in.")
    lines = text.replace("\r\n", "\n").rstrip("\n").split("\n")
    fields: dict[str, str] = {}
    found = _settings_line(lines[-1])
    if len(found) >= 3:  # AUTOMATIC1111's test for a settings line
        lines.pop()
        for key, value in found:
            fields[key.strip()] = _unquote(value.strip())
    prompt: list[str] = []
    negative: list[str] = []
    in_negative = False
    for line in lines:
        if not in_negative and line.startswith(_NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(_NEGATIVE_PREFIX):].removeprefix(" ")
        (negative if in_negative else prompt).append(line)
    return {"prompt": "\n".join(prompt), "negative_prompt": "\n".join(negative)} | fields


def _settings_line(line: str) -> list[tuple[str, str]]:
    """What AUTOMATIC1111's pattern `\\s*(\\w[\\w \\-/]+):\\s*("(?:\\\\.|[^\\\\"])+"|[^,]*)(?:,|$)` finds in `line`,
    in linear time (the pattern itself backtracks quadratically on long lines without a colon)."""
    found, pos = [], 0
    while (colon := line.find(":", pos)) >= 0:
        start = colon  # a key is the run of key characters just before the colon, starting with a word character
        while start > pos and (line[start - 1].isalnum() or line[start - 1] in "_ -/"):
            start -= 1
        key = line[start:colon].lstrip(" -/")
        if len(key) < 2:
            pos = colon + 1
            continue
        value_start = colon + 1
        while value_start < len(line) and line[value_start].isspace():
            value_start += 1
        quoted = _QUOTED.match(line, value_start)
        if quoted and (quoted.end() == len(line) or line[quoted.end()] == ","):
            end = quoted.end()
        else:
            end = line.find(",", value_start)
            end = len(line) if end < 0 else end
        found.append((key, line[value_start:end]))
        pos = end + 1
    return found


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value, strict=False)
        except ValueError:
            return value[1:-1]
    return value
