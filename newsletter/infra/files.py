"""Reading user files strictly and writing output atomically."""

from __future__ import annotations

import codecs
import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from newsletter.errors import InputError


def display_path(path: Path) -> str:
    """A path as the user would type it: relative to the current directory when inside it.

    Symlinks are not followed: an error names the file the user has, not its target.
    """
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute, os.getcwd())
    return absolute if relative.startswith("..") else relative


def read_text(path: Path) -> str:
    """Read a UTF-8 file (a BOM is dropped); anything else is an error naming file and line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError("file not found", display_path(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror}", display_path(path)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8",
            display_path(path),
            line,
        ) from None
    return text.replace("\r\n", "\n")


def first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(line, byte) of the first byte that is not UTF-8, read in constant memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as fh:
        while block := fh.read(1 << 16):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return line + block.count(b"\n", 0, max(exc.start, 0)), block[exc.start]
            line += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line, 0
    return None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_files_atomically(directory: Path, files: dict[str, str | bytes]) -> None:
    """Write every file to a temporary name first and rename them into place only once all
    are written: a failure leaves no partial file (renames are atomic one file at a time)."""
    staged: list[tuple[str, Path]] = []
    mode = 0o666 & ~_umask()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
            staged.append((tmp, directory / name))
            os.fchmod(fd, mode)  # mkstemp makes 0600; output is for others to read too
            with os.fdopen(fd, "wb") as fh:
                fh.write(content.encode("utf-8") if isinstance(content, str) else content)
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as exc:
        raise InputError(
            f"cannot write output: {exc.strerror or exc}", display_path(directory)
        ) from None
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)


@contextlib.contextmanager
def open_atomically(path: Path) -> Iterator[TextIO]:
    """A text file written under a temporary name and renamed into place when the block
    ends without error: streamed, so its size does not matter, and never half-written."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.fchmod(fd, 0o666 & ~_umask())
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror or exc}", display_path(path)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
