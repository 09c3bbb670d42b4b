"""Snippet images: sizes read from file headers, shown responsive with width and height at
most the text's width, local files published with the archive (`archive build` copies them,
`serve` answers them), and the checks: alt text, https, missing files, the weight budget."""

from __future__ import annotations

import http.client
import json
import os
import struct
import zlib
from html.parser import HTMLParser

import httpx
import pytest

from newsletter.domain.images import (
    MAX_WIDTH,
    display_size,
    image_dimensions,
    parse_image_ref,
)
from newsletter.domain.mjml_rules import validate_mjml
from newsletter.errors import ExitStatus
from newsletter.infra.workspace import open_workspace
from newsletter.services.build import Builder

BASE = "https://news.follicle-notes.example.com"
REMOTE = "https://images.example.org/scalp.jpg"


def png(width: int, height: int, padding: int = 0) -> bytes:
    """A valid one-colour PNG; `padding` bytes of noise after it make it heavier."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body + os.urandom(padding)


def jpeg(width: int, height: int) -> bytes:
    """A JPEG's markers up to its frame header: an APP0 segment, a DQT, then SOF2."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\xff\xdb" + struct.pack(">H", 67) + bytes(65)
    sof = b"\xff\xc2" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + dqt + b"\xff\xff" + sof + b"\xff\xda\x00\x02\xff\xd9"


def exif(orientation: int, order: str = ">") -> bytes:
    """An APP1 segment holding only the Exif Orientation tag."""
    mark = b"MM" if order == ">" else b"II"
    entry = struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = mark + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", 1) + entry
    tiff += struct.pack(order + "I", 0)
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body


def webp(kind: bytes, payload: bytes) -> bytes:
    chunk = kind + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


class Images(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[dict[str, str]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})


def shown(html: str) -> list[dict[str, str]]:
    """The snippet images (not the masthead's logo, if a theme sets one)."""
    return [i for i in Images(html).images if "nl-image" in i.get("class", "").split()]


@pytest.fixture
def check(cli):
    def run(issue: str = "t") -> dict:
        result = cli("check", issue, "--json")
        assert result.code in (ExitStatus.OK, ExitStatus.CHECKS_FAILED), result.err
        return {f["code"]: f for f in json.loads(result.out)["findings"]}

    return run


def with_image(sample, image: str, snippet: str = "a", **front: str) -> None:
    sample.snippet(snippet, image=image, alt='"A test picture"', **front)


# -- sizes from headers ---------------------------------------------------------------------


def test_dimensions_are_read_from_png_gif_jpeg_and_webp_headers():
    assert image_dimensions(png(640, 480)) == (640, 480)
    assert image_dimensions(b"GIF89a" + struct.pack("<HH", 120, 45) + bytes(20)) == (120, 45)
    assert image_dimensions(jpeg(1200, 800)) == (1200, 800)
    lossy = b"\x00\x00\x00\x9d\x01\x2a" + struct.pack("<HH", 300, 150) + bytes(8)
    assert image_dimensions(webp(b"VP8 ", lossy)) == (300, 150)
    bits = (300 - 1) | ((150 - 1) << 14)
    assert image_dimensions(webp(b"VP8L", b"\x2f" + struct.pack("<I", bits))) == (300, 150)
    extended = bytes(4) + (299).to_bytes(3, "little") + (149).to_bytes(3, "little")
    assert image_dimensions(webp(b"VP8X", extended)) == (300, 150)


def test_a_jpeg_stored_on_its_side_is_measured_as_shown():
    photo = jpeg(4000, 3000)
    for orientation, size in ((1, (4000, 3000)), (3, (4000, 3000)), (6, (3000, 4000))):
        for order in (">", "<"):
            turned = photo[:2] + exif(orientation, order) + photo[2:]
            assert image_dimensions(turned) == size, (orientation, order)
    broken = b"\xff\xe1" + struct.pack(">H", 16) + b"Exif\0\0MM\0\x2a\xff\xff\xff\xff"
    assert image_dimensions(photo[:2] + broken + photo[2:]) == (4000, 3000)


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image", png(10, 10)[:20], jpeg(10, 10)[:30], b"GIF89a", b"RIFF\0\0\0\0WEBP"],
)
def test_what_is_not_a_readable_image_has_no_dimensions(data):
    assert image_dimensions(data) is None


def test_the_shown_size_is_at_most_the_texts_width_in_proportion():
    assert MAX_WIDTH == 552 <= 600
    assert display_size(400, 300) == (400, 300)  # never enlarged
    assert display_size(1104, 300) == (552, 150)
    assert display_size(5000, 1) == (552, 1)


@pytest.mark.parametrize(
    "value",
    ["images/../newsletter.toml", "images/sub/a.png", "images/.hidden.png", "images/a.svg",
     "/etc/passwd", "scalp.png", "ftp://example.org/a.png", "https://"],
)  # fmt: skip
def test_an_image_is_a_url_or_a_file_directly_in_issues_images(value):
    with pytest.raises(ValueError):
        parse_image_ref(value)


# -- rendering ------------------------------------------------------------------------------


def test_a_local_image_is_shown_from_the_archive_with_its_size(sample):
    sample.write("issues/images/wide.png", png(1200, 600))
    with_image(sample, "images/wide.png", credit='"Photo: A. Person"')
    sample.issue("t", ["a"])
    build = Builder(open_workspace(sample.root)).build("t")
    [image] = shown(build.rendered.html)
    assert image["src"] == f"{BASE}/archive/images/wide.png"
    assert (image["width"], image["height"]) == ("552", "276")
    assert image["alt"] == "A test picture"
    style = image["style"].replace(" ", "")
    assert "width:100%" in style and "max-width:552px" in style and "height:auto" in style
    assert "Photo: A. Person" in build.rendered.html
    assert "[Image: A test picture]\nPhoto: A. Person" in build.rendered.text
    assert not validate_mjml(build.mjml)
    assert build.findings == []


def test_a_small_image_keeps_its_natural_size(sample):
    sample.write("issues/images/small.gif", b"GIF89a" + struct.pack("<HH", 120, 45) + bytes(20))
    with_image(sample, "images/small.gif")
    sample.issue("t", ["a"])
    [image] = shown(Builder(open_workspace(sample.root)).build("t").rendered.html)
    assert (image["width"], image["height"]) == ("120", "45")
    assert "max-width:120px" in image["style"].replace(" ", "")


def test_a_remote_image_takes_its_size_from_the_front_matter(sample, check):
    with_image(sample, REMOTE, width="1600", height="900", bytes="120000")
    sample.issue("t", ["a"])
    [image] = shown(Builder(open_workspace(sample.root)).build("t").rendered.html)
    assert (image["src"], image["width"], image["height"]) == (REMOTE, "552", "311")
    assert check() == {}


def test_a_teaser_does_not_show_its_image_in_the_email(sample):
    sample.write("issues/images/wide.png", png(800, 400))
    with_image(sample, "images/wide.png")
    sample.write(
        "issues/t.md",
        "---\nsubject: S\npreheader: P\ndate: 2026-12-01\nstatus: ready\n"
        "snippets:\n  - id: a\n    teaser: true\n---\nHi.\n",
    )
    builder = Builder(open_workspace(sample.root))
    assert shown(builder.build("t").rendered.html) == []
    public = builder.renderer.render(builder.library.compose("t"), public=True)
    assert len(shown(public.rendered.html)) == 1


# -- checks ---------------------------------------------------------------------------------


def test_an_image_without_alt_is_an_input_error_at_its_line(sample, cli):
    sample.snippet("a", image=REMOTE)
    sample.issue("t", ["a"])
    result = cli("check", "t")
    assert result.code == ExitStatus.INPUT_ERROR
    assert "issues/snippets/a.md:9:" in result.err and "alt" in result.err


def test_an_http_image_is_one_error_at_the_image_line(sample, check):
    with_image(sample, "http://images.example.org/a.png", width="10", height="10")
    sample.issue("t", ["a"])
    findings = check()
    error = findings["image-not-https"]
    assert (error["severity"], error["file"], error["line"]) == (
        "error",
        "issues/snippets/a.md",
        9,
    )
    assert list(findings).count("image-not-https") == 1


def test_a_missing_local_file_is_an_error_naming_the_snippet_and_line(sample, check):
    with_image(sample, "images/nowhere.png")
    sample.issue("t", ["a"])
    error = check()["image-missing"]
    assert (error["severity"], error["file"], error["line"]) == (
        "error",
        "issues/snippets/a.md",
        9,
    )
    assert "images/nowhere.png" in error["message"]


def test_a_file_that_is_not_an_image_is_an_error(sample, check):
    sample.write("issues/images/fake.png", b"this is text, not a PNG")
    with_image(sample, "images/fake.png")
    sample.issue("t", ["a"])
    assert check()["image-unreadable"]["line"] == 9


def test_a_remote_image_without_its_size_is_an_error(sample, check):
    with_image(sample, REMOTE)
    sample.issue("t", ["a"])
    error = check()["image-no-size"]
    assert (error["severity"], error["line"]) == ("error", 9)
    assert "width" in error["message"] and "height" in error["message"]


@pytest.mark.parametrize(
    ("front", "fragment"),
    [
        ({"image": '"images/a.png"', "alt": "A", "width": "10"}, "read from the file"),
        ({"width": "10"}, "only goes with an 'image:'"),
        ({"image": '"images/../x.png"', "alt": "A"}, "not a file directly in issues/images/"),
        ({"image": '"scalp.png"', "alt": "A"}, "images/<file>"),
    ],
)
def test_bad_image_fields_are_input_errors(sample, cli, front, fragment):
    sample.snippet("a", **front)
    sample.issue("t", ["a"])
    result = cli("check", "t")
    assert result.code == ExitStatus.INPUT_ERROR, result.out
    assert "issues/snippets/a.md:" in result.err and fragment in result.err, result.err


def test_heavy_images_are_a_warning_that_counts_what_it_can(sample, check, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_CHECKS__IMAGE_MAX_KB", "20")
    sample.write("issues/images/heavy.png", png(100, 100, padding=15_000))
    with_image(sample, "images/heavy.png")
    with_image(sample, REMOTE, snippet="b", width="100", height="100", bytes="10000")
    with_image(sample, "https://images.example.org/other.jpg", snippet="c", width="9", height="9")
    sample.issue("t", ["a", "b", "c"])
    warning = check()["images-heavy"]
    assert (warning["severity"], warning["file"], warning["line"]) == (
        "warning",
        "issues/t.md",
        6,
    )
    assert "weigh 25 KB together, over the 20 KB" in warning["message"]
    assert "1 remote image without 'bytes:' not counted" in warning["message"]


def test_images_under_the_budget_and_teasers_images_raise_no_warning(sample, check, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_CHECKS__IMAGE_MAX_KB", "20")
    sample.write("issues/images/heavy.png", png(100, 100, padding=25_000))
    with_image(sample, "images/heavy.png")
    sample.write(
        "issues/t.md",
        "---\nsubject: S\npreheader: P\ndate: 2026-12-01\nstatus: ready\n"
        "snippets:\n  - id: a\n    teaser: true\n---\nHi.\n",
    )
    assert "images-heavy" not in check()  # a teaser's image is not in the email


def test_the_default_budget_is_300_kb(sample, check):
    sample.write("issues/images/heavy.png", png(100, 100, padding=310 * 1024))
    with_image(sample, "images/heavy.png")
    sample.issue("t", ["a"])
    assert "over the 300 KB" in check()["images-heavy"]["message"]


def test_a_local_image_under_a_plain_http_base_on_this_machine_passes(sample, check, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "http://127.0.0.1:8000")
    assert check("2026-12-welcome") == {}  # the sample's PNG, as `make demo` sends it


# -- publishing -----------------------------------------------------------------------------


def test_archive_build_copies_the_images(cli, sample, tmp_path):
    sample.edit("issues/2026-12-welcome.md", "status: ready", "status: published")
    sample.write("issues/images/extra.jpg", jpeg(10, 10))
    sample.write("issues/images/notes.txt", "not published")
    out = tmp_path / "site"
    result = cli("archive", "build", "--out", str(out))
    assert result.code == 0, result.err
    published = sorted(p.name for p in (out / "images").iterdir())
    assert published == ["extra.jpg", "needle-depth-range.png"]
    source = sample.root / "issues/images/needle-depth-range.png"
    assert (out / "images/needle-depth-range.png").read_bytes() == source.read_bytes()
    page = (out / "2026-12-welcome/index.html").read_text()
    assert f'src="{BASE}/archive/images/needle-depth-range.png"' in page


def test_serve_answers_images_from_the_folder_only(web, sample, tmp_path):
    folder = sample.root / "issues/images"
    sample.write("issues/images/photo.jpeg", jpeg(10, 10))
    sample.write("issues/images/notes.txt", "not an image")
    sample.write("issues/images/sub/inner.png", png(2, 2))
    (tmp_path / "secret.png").write_bytes(png(3, 3))
    (folder / "link.png").symlink_to(tmp_path / "secret.png")

    found = httpx.get(f"{web.url}/archive/images/needle-depth-range.png")
    assert found.status_code == 200
    assert found.headers["content-type"] == "image/png"
    assert found.content == (folder / "needle-depth-range.png").read_bytes()
    assert found.headers["x-content-type-options"] == "nosniff"
    again = httpx.get(
        f"{web.url}/archive/images/needle-depth-range.png",
        headers={"If-None-Match": found.headers["etag"]},
    )
    assert again.status_code == 304
    jpg = httpx.get(f"{web.url}/archive/images/photo.jpeg")
    assert (jpg.status_code, jpg.headers["content-type"]) == (200, "image/jpeg")

    for path in (
        "notes.txt",
        "nothing.png",
        "sub/inner.png",
        "link.png",
        "..%2Fsnippets%2Fhow-microneedling-works.md",
        "..%2F..%2Fnewsletter.toml",
        "%2e%2e",
        ".png",
    ):
        response = httpx.get(f"{web.url}/archive/images/{path}")
        assert response.status_code == 404, path
    # Sent as written (httpx would resolve the dots first).
    host, port = web.url.removeprefix("http://").split(":")
    for raw in ("/archive/images/../../newsletter.toml", "/archive/images/..", "/archive/images/"):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("GET", raw)
        answer = connection.getresponse()
        body = answer.read()
        connection.close()
        assert answer.status == 404 and b"base_url" not in body, raw


def test_pages_may_load_our_own_images(web, sample):
    sample.edit("issues/2026-12-welcome.md", "status: ready", "status: published")
    page = httpx.get(f"{web.url}/archive/2026-12-welcome/")
    assert "img-src 'self' https:" in page.headers["content-security-policy"]
    assert [i["src"] for i in shown(page.text)] == [f"{BASE}/archive/images/needle-depth-range.png"]
