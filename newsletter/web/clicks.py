"""`GET /c/<token>/<tag>?u=<target>`: a tracked link. Records the click and answers 302 to
the target, which must carry our signature (never an open redirect); anything forged or
tampered is 404. HEAD (link checkers, previews) leads on without counting."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from newsletter.domain.clicks import PATH
from newsletter.domain.tokens import Signer
from newsletter.services.clicks import UnknownLink, follow

ROUTE = PATH + "{token}/{tag}"


@dataclass
class ClickContext:
    engine: Engine
    signer: Signer


async def click(ctx: ClickContext, request: Request) -> Response:
    params = request.path_params
    target = request.query_params.get("u", "")
    try:
        found = await run_in_threadpool(
            follow,
            ctx.engine,
            ctx.signer,
            params["token"],
            params["tag"],
            target,
            record=request.method == "GET",
        )
    except UnknownLink:
        return PlainTextResponse("This link is not one of ours.", status_code=404)
    return RedirectResponse(found.target, status_code=302)
