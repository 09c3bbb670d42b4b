"""Snippet images: what an `image:` value refers to, an image file's pixel size read from
its header, and the size it is shown at in the email.

Pure: the service reads the files (`services/composition.py`) and hands over the bytes.
A local image is a file directly in `issues/images/`, written `image: images/<file>`; the
email and the archive page load it from `{base_url}/archive/images/<file>`, which `serve`
answers and `archive build` writes. A remote image is an https URL, with `width:` and
`height:` given in the front matter since there is no file to read them from.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

LOCAL_PREFIX = "images/"  # how a snippet names a local image, relative to issues/
URL_PATH = "/archive/images"  # where `serve` and the archive build publish issues/images/
EMAIL_WIDTH = 600
TEXT_INSET = 24
MAX_WIDTH = EMAIL_WIDTH - 2 * TEXT_INSET  # an image lines up with the text: 552 px at most

CONTENT_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
# A file name directly in issues/images/: no folders, no leading dot, a known image type.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")


def image_file_name(name: str) -> str | None:
    """`name` if it can be a published image file (`scalp.png`), else None: no path
    separators, `..`, hidden files or types other than PNG, JPEG, GIF and WebP."""
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        return None
    return name if content_type(name) else None


def content_type(name: str) -> str | None:
    dot = name.rfind(".")
    return CONTENT_TYPES.get(name[dot:].lower()) if dot > 0 else None


def local_name(value: str) -> str | None:
    """The file name of a local image reference (`images/scalp.png` -> `scalp.png`)."""
    if value.startswith(LOCAL_PREFIX):
        return image_file_name(value[len(LOCAL_PREFIX) :])
    return None


def parse_image_ref(value: str) -> str:
    """Pydantic validator for `image:`: an http(s) URL (plain http is a check error, so
    that it is reported with the others), or `images/<file>`; anything else is refused."""
    value = value.strip()
    lowered = value.lower()
    if lowered.startswith(("https://", "http://")):
        if any(c.isspace() for c in value) or not urlsplit(value).netloc:
            raise ValueError(f"must be an absolute https:// URL (got {value!r})")
        return value
    if local_name(value):
        return value
    if value.startswith(LOCAL_PREFIX):
        raise ValueError(
            f"{value!r} is not a file directly in issues/images/ with a PNG, JPEG, GIF "
            "or WebP name (letters, digits, '.', '-', '_'; no folders)"
        )
    raise ValueError(
        f"must be an https:// URL or a file in issues/images/ written as "
        f"images/<file> (got {value!r})"
    )


def image_url(value: str, base_url: str) -> str:
    """Where readers load the image from: local files under the archive, URLs as written."""
    name = local_name(value)
    if name is None:
        return value
    return f"{base_url.rstrip('/')}{URL_PATH}/{quote(name)}"


@dataclass(frozen=True)
class LocalImage:
    """What the service found for one file in issues/images/."""

    name: str
    size: int | None  # bytes on disk; None when there is no such file
    dimensions: tuple[int, int] | None  # (width, height); None when unreadable or missing

    @property
    def found(self) -> bool:
        return self.size is not None


def display_size(width: int, height: int, max_width: int = MAX_WIDTH) -> tuple[int, int]:
    """The width and height attributes: the natural size, scaled down to `max_width`
    (never up), keeping the proportions; at least 1 px each."""
    if width <= max_width:
        return width, height
    return max_width, max(1, (height * max_width + width // 2) // width)  # half rounds up


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels from a PNG, GIF, JPEG or WebP file's header, or None."""
    for reader in (_png, _gif, _jpeg, _webp):
        try:
            found = reader(data)
        except (struct.error, IndexError):
            found = None
        if found is not None:
            width, height = found
            return (width, height) if width > 0 and height > 0 else None
    return None


def _png(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _gif(data: bytes) -> tuple[int, int] | None:
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        return None
    width, height = struct.unpack("<HH", data[6:10])
    return width, height


# Start-of-frame markers hold the size; the other markers in C0-CF do not (DHT, JPG, DAC).
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # markers without a length


def _jpeg(data: bytes) -> tuple[int, int] | None:
    """The frame's size, turned as the Exif orientation says (phones store photos on their
    side and set 5-8: width and height swap), as browsers show it."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    turned = False
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before
            return None
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker == 0xE1 and data[position + 4 : position + 10] == b"Exif\0\0":
            turned = _exif_orientation(data[position + 10 : position + 2 + length]) >= 5
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return (height, width) if turned else (width, height)
        if length < 2:
            return None
        position += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int:
    """The Orientation tag (0x0112) of an Exif block's first directory; 1 when absent or
    unreadable (the photo is then measured as stored)."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None:
        return 1
    try:
        (offset,) = struct.unpack(order + "I", tiff[4:8])
        (count,) = struct.unpack(order + "H", tiff[offset : offset + 2])
        for index in range(count):
            entry = offset + 2 + index * 12
            tag, kind = struct.unpack(order + "HH", tiff[entry : entry + 4])
            if tag == 0x0112 and kind == 3:  # SHORT, stored in the entry itself
                (value,) = struct.unpack(order + "H", tiff[entry + 8 : entry + 10])
                return value
    except struct.error:
        pass
    return 1


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: 3-byte frame tag, start code 9d 01 2a, 14-bit sizes
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2f, then 14 bits each of width-1, height-1
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack("<I", data[21:25])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24 bits each of canvas width-1 and height-1
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None
