"""The public archive on `serve`: GET /archive/, /archive/{slug}/, /feed.xml and the
images issues show, /archive/images/{file}.

Thin: the pages come from the same service as `newsletter archive build`, cached in
memory until the issue files or the ledger change; images are read from issues/images/
(only files directly in it, with an image name and type). Unknown and unpublished slugs
and unknown images raise 404, which the app answers with its not-found page.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from newsletter.domain.images import content_type
from newsletter.services.archive import ArchiveCache, ArchiveSite
from newsletter.services.composition import image_path, images_dir
from newsletter.web.middleware import SECURITY_HEADERS

# The subscriber pages' policy, plus images: issues may show https images of their own, and
# ours from /archive/images/ ('self', for a `serve` on this machine over plain http).
# (The middleware adds its headers only where a route has not set them.)
PAGE_HEADERS = {
    "Content-Security-Policy": SECURITY_HEADERS["Content-Security-Policy"].replace(
        "default-src 'none';", "default-src 'none'; img-src 'self' https: data:;"
    ),
    # Public, but checked again on every visit (a 304 when unchanged, thanks to the ETag):
    # an issue taken off the archive, or corrected, shows at once.
    "Cache-Control": "public, no-cache",
}
ATOM = "application/atom+xml; charset=utf-8"
HTML = "text/html; charset=utf-8"


@dataclass
class ArchiveContext:
    cache: ArchiveCache


def archive_routes(ctx: ArchiveContext) -> list[BaseRoute]:
    return [
        Route("/archive", to_index, methods=["GET"]),
        Route("/archive/", partial(index, ctx), methods=["GET"]),
        Route("/archive/images/{name}", partial(image, ctx), methods=["GET"]),
        Route("/archive/{slug}", partial(to_page, ctx), methods=["GET"]),
        Route("/archive/{slug}/", partial(page, ctx), methods=["GET"]),
        Route("/feed.xml", partial(feed, ctx), methods=["GET"]),
    ]


async def _site(ctx: ArchiveContext) -> ArchiveSite:
    return await run_in_threadpool(ctx.cache.site)


def _answer(request: Request, body: bytes, media_type: str) -> Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {**PAGE_HEADERS, "ETag": etag}
    if etag in (t.strip() for t in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


async def to_index(request: Request) -> Response:
    return RedirectResponse("/archive/", status_code=301)


async def index(ctx: ArchiveContext, request: Request) -> Response:
    return _answer(request, (await _site(ctx)).index, HTML)


async def to_page(ctx: ArchiveContext, request: Request) -> Response:
    slug = request.path_params["slug"]
    if slug not in (await _site(ctx)).pages:
        raise HTTPException(404)
    return RedirectResponse(f"/archive/{quote(slug, safe='')}/", status_code=301)


async def page(ctx: ArchiveContext, request: Request) -> Response:
    body = (await _site(ctx)).pages.get(request.path_params["slug"])
    if body is None:
        raise HTTPException(404)
    return _answer(request, body, HTML)


async def feed(ctx: ArchiveContext, request: Request) -> Response:
    return _answer(request, (await _site(ctx)).feed, ATOM)


async def image(ctx: ArchiveContext, request: Request) -> Response:
    name = request.path_params["name"]
    folder = images_dir(ctx.cache.service.workspace.issues_dir)
    path = image_path(folder, name)
    kind = content_type(name)
    if path is None or kind is None:
        raise HTTPException(404)
    try:
        body = await run_in_threadpool(path.read_bytes)
    except OSError:
        raise HTTPException(404) from None
    return _answer(request, body, kind)
