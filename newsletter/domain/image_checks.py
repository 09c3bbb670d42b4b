"""Checks of the images an issue's snippets show, from what the service read of them.

Errors: a local file that is not in issues/images/ (or whose size cannot be read), a plain
http image, a remote image without `width:` and `height:` (its place could not be kept
while it loads). A warning when the images the email shows weigh more than `[checks]
image_max_kb` together: local files as they are on disk, remote ones by their `bytes:`,
or not at all (the warning says how many were not counted). Alt text is required when the
snippet is read, and checked again on the rendered HTML (`checks.py`).
"""

from __future__ import annotations

from collections.abc import Mapping

from newsletter.domain.findings import Finding, Severity
from newsletter.domain.images import LocalImage, local_name, parse_image_ref
from newsletter.domain.issue import Issue
from newsletter.domain.links import is_allowed_link


def image_src_allowed(src: str, local: str | None = None) -> bool:
    """An `<img src>` the email may hold: absolute https, or (`local`, a plain-http base
    URL on this machine) one of our own pages' images there."""
    if local and src.startswith(local):
        return True
    return is_allowed_link(src) and not src.lower().startswith("mailto:")


def check_images(
    issue: Issue, images: Mapping[str, LocalImage] | None = None, *, max_bytes: int
) -> list[Finding]:
    """Findings about the snippets' images; `images` defaults to what the issue was
    composed with (`Issue.images`)."""
    read = issue.images if images is None else images
    out: list[Finding] = []
    weights: dict[str, int] = {}  # image -> bytes, each image counted once
    unknown: set[str] = set()
    teasers = {p.snippet.id for s in issue.sections for p in s.items if p.entry.teaser}
    for snippet in issue.snippets:
        meta = snippet.meta
        if not meta.image:
            continue
        value = parse_image_ref(meta.image)
        where = (snippet.file, snippet.front.line_of("image"))
        shown = snippet.id not in teasers  # a teaser's image is only on the archive page
        name = local_name(value)
        if name is not None:
            found = read.get(name)
            if found is None or not found.found:
                out.append(
                    Finding(
                        Severity.ERROR,
                        "image-missing",
                        f"snippet '{snippet.id}' shows images/{name}, but there is no such "
                        "file in issues/images/",
                        *where,
                    )
                )
                continue
            if found.dimensions is None:
                out.append(
                    Finding(
                        Severity.ERROR,
                        "image-unreadable",
                        f"issues/images/{name} is not a PNG, JPEG, GIF or WebP image whose "
                        "size can be read",
                        *where,
                    )
                )
            if shown and found.size is not None:
                weights[name] = found.size
            continue
        if not is_allowed_link(value):
            # The same finding as the rendered HTML's check (checks.py): reported once.
            out.append(
                Finding(
                    Severity.ERROR,
                    "image-not-https",
                    f"image {value!r} is not an absolute https:// URL",
                    *where,
                )
            )
        if not (meta.width and meta.height):
            out.append(
                Finding(
                    Severity.ERROR,
                    "image-no-size",
                    f"snippet '{snippet.id}' shows a remote image without its size: add "
                    "'width:' and 'height:' (pixels), so the email keeps its place while "
                    "it loads",
                    *where,
                )
            )
        if shown:
            if meta.bytes:
                weights[value] = meta.bytes
            else:
                unknown.add(value)
    total = sum(weights.values())
    if total > max_bytes:
        unknown_note = (
            f"; {len(unknown)} remote image{'s' if len(unknown) != 1 else ''} without "
            "'bytes:' not counted"
            if unknown
            else ""
        )
        source = issue.source
        out.append(
            Finding(
                Severity.WARNING,
                "images-heavy",
                f"the images of this email weigh {_kb(total)} together, over the "
                f"{_kb(max_bytes)} of [checks] image_max_kb{unknown_note}; smaller files "
                "load faster on phones",
                source.file,
                source.front.line_of("sections" if source.meta.layout.titled else "snippets"),
            )
        )
    return out


def _kb(size: int) -> str:
    kb = size / 1024
    return f"{kb:.0f} KB" if kb >= 10 else f"{kb:.1f} KB"
