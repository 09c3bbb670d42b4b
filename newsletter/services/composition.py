"""Composition as the templates see it: sections, teasers, anchors and images.

Reads the local images an issue's snippets show (their weight on disk and their size in
pixels from the file header), and turns a composed issue into the template context of its
sections: each snippet with its anchor, its heading level, its image at the size it is
shown, and, when it is a teaser in this rendering, its summary and a "Read more" link to
its place on the issue's archive page. Bodies are rendered in reading order, so that
sources are numbered the same in the email and on the archive page, teasers included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from markupsafe import Markup

from newsletter.domain.citations import References
from newsletter.domain.composition import Placed
from newsletter.domain.images import (
    MAX_WIDTH,
    LocalImage,
    display_size,
    image_dimensions,
    image_file_name,
    image_url,
    local_name,
)
from newsletter.domain.issue import Issue
from newsletter.domain.links import Utm, tag_url
from newsletter.domain.markdown import render_markdown
from newsletter.domain.snippet import Snippet

# Heading levels: a flat issue's snippet titles are h2; in sections, the section title is
# h2 and snippet titles h3. A snippet body's own headings start one level below its title.
FLAT_TITLE_LEVEL = 2
SECTIONED_TITLE_LEVEL = 3


def images_dir(issues_dir: Path) -> Path:
    return issues_dir / "images"


def image_path(folder: Path, name: str) -> Path | None:
    """The file `name` directly in `folder`, when it is a published image there: a
    regular file with an image name, not a link leading out of the folder."""
    if image_file_name(name) is None:
        return None
    path = folder / name
    try:
        if not path.is_file() or path.resolve().parent != folder.resolve():
            return None
    except OSError:
        return None
    return path


def published_images(folder: Path) -> dict[str, Path]:
    """Every image file `serve` answers and the archive build copies, by name."""
    if not folder.is_dir():
        return {}
    found = {}
    for path in sorted(folder.iterdir()):
        checked = image_path(folder, path.name)
        if checked is not None:
            found[path.name] = checked
    return found


def read_local_images(folder: Path, snippets: Iterable[Snippet]) -> dict[str, LocalImage]:
    """What each local image the snippets name weighs and measures; missing files too."""
    out: dict[str, LocalImage] = {}
    for snippet in snippets:
        name = local_name(snippet.meta.image or "")
        if name is None or name in out:
            continue
        path = image_path(folder, name)
        try:
            data = path.read_bytes() if path is not None else None
        except OSError:
            data = None
        out[name] = LocalImage(
            name=name,
            size=len(data) if data is not None else None,
            dimensions=image_dimensions(data) if data is not None else None,
        )
    return out


def sections_context(
    issue: Issue,
    *,
    refs: References,
    utm: Utm | None,
    public: bool,
    base_url: str,
    page_url: str,
) -> dict[str, Any]:
    """`sections` (each with its snippets), `toc` and the flat `snippets`, for the templates.

    `page_url` is the issue's archive page, where a teaser's "Read more" leads; in the
    `public` rendering (that page itself) every snippet is shown in full.
    """
    layout = issue.meta.layout
    level = SECTIONED_TITLE_LEVEL if layout.titled else FLAT_TITLE_LEVEL
    sections = []
    flat = []
    for composed in issue.sections:
        views = []
        for index, placed in enumerate(composed.items):
            view = _snippet_view(
                placed,
                refs=refs,
                utm=utm,
                teaser=placed.entry.teaser and not public,
                level=level,
                images=issue.images,
                base_url=base_url,
                read_more=tag_url(f"{page_url}#{placed.anchor}", utm),
            )
            # A section heading opens its section; a divider goes between snippets.
            view["divider"] = index > 0 or composed.title is None
            views.append(view)
        flat.extend(views)
        sections.append(
            {
                "number": composed.section.number,
                "title": composed.title,
                "anchor": composed.anchor,
                "snippets": views,
            }
        )
    toc = [{"title": s["title"], "anchor": s["anchor"]} for s in sections] if layout.has_toc else []
    return {"sections": sections, "toc": toc, "snippets": flat, "sectioned": layout.titled}


def _snippet_view(
    placed: Placed,
    *,
    refs: References,
    utm: Utm | None,
    teaser: bool,
    level: int,
    images: Mapping[str, LocalImage],
    base_url: str,
    read_more: str,
) -> dict[str, Any]:
    snippet = placed.snippet
    meta = snippet.meta
    # A teaser's body is not shown, but read for its citations, so that its sources keep
    # the numbers they have on the archive page (and stay in the list of sources).
    body = render_markdown(
        snippet.body,
        utm,
        refs=refs.citing_only() if teaser else refs,
        top_heading=level + 1,
    )
    cited = [refs.cite(source.url) for source in meta.sources]
    return {
        "id": snippet.id,
        "anchor": placed.anchor,
        "title": meta.title,
        "level": level,
        "summary": meta.summary,
        "tags": meta.tags,
        "teaser": teaser,
        "read_more_url": read_more if teaser else None,
        "html": Markup("") if teaser else Markup(body.html),
        "text": "" if teaser else body.text,
        "image": None if teaser else image_view(snippet, images, base_url),
        "citations": sorted({c for c in cited if c is not None}, key=lambda ref: ref.number),
    }


def image_view(
    snippet: Snippet, images: Mapping[str, LocalImage], base_url: str
) -> dict[str, Any] | None:
    """The image as the templates show it: absolute src, alt, credit, and the width and
    height attributes (the natural size, at most the text's width) when known."""
    meta = snippet.meta
    if not meta.image:
        return None
    name = local_name(meta.image)
    if name is not None:
        found = images.get(name)
        natural = found.dimensions if found is not None else None
    else:
        natural = (meta.width, meta.height) if meta.width and meta.height else None
    width, height = display_size(*natural) if natural else (None, None)
    return {
        "src": image_url(meta.image, base_url),
        "alt": meta.alt or "",
        "credit": meta.credit,
        "width": width,
        "height": height,
        "max_width": width or MAX_WIDTH,
    }
