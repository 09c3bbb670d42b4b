"""`snippets new`, `snippets show`, `issues new`: parse, call the scaffold service, present."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer
from rich.text import Text

from newsletter.cli.app import (
    JsonFlag,
    issues_app,
    open_current_workspace,
    out,
    print_json,
    snippets_app,
)

SnippetId = Annotated[
    str, typer.Argument(help="Snippet id: lowercase words and dashes.", metavar="ID")
]


@snippets_app.command(
    "new", epilog='Example: newsletter snippets new scalp-cooling --title "Scalp cooling"'
)
def snippets_new(
    snippet_id: SnippetId,
    title: Annotated[str | None, typer.Option("--title", help="The snippet's title.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write issues/snippets/ID.md from a template (never overwrites); prints its path."""
    from newsletter.services.library import Library
    from newsletter.services.scaffold import new_snippet

    created = new_snippet(Library(open_current_workspace()), snippet_id, title, date.today())
    if as_json:
        print_json({"path": created.shown})
        return
    out.print(Text(created.shown))


@snippets_app.command("show", epilog="Example: newsletter snippets show how-microneedling-works")
def snippets_show(snippet_id: SnippetId, as_json: JsonFlag = False) -> None:
    """Show a snippet: its front matter, its text as readers get it, and the issues using it."""
    from newsletter.services.library import Library
    from newsletter.services.scaffold import show_snippet

    view = show_snippet(Library(open_current_workspace()), snippet_id)
    meta = view.snippet.meta
    if as_json:
        print_json(
            {
                "id": view.snippet.id,
                "file": view.snippet.file,
                **meta.model_dump(mode="json", exclude={"id"}),
                "text": view.text,
                "used_by": view.used_by,
            }
        )
        return
    out.print(Text(meta.title, style="bold"))
    out.print(
        Text(
            f"{view.snippet.file} · reviewed {meta.reviewed} · tags: "
            + (", ".join(meta.tags) or "none"),
            style="dim",
        )
    )
    out.print(Text(meta.summary, style="italic"))
    out.print()
    out.print(Text(view.text.rstrip()))
    out.print()
    out.print(Text("Sources:" if meta.sources else "Sources: none"))
    for source in meta.sources:
        out.print(Text(f"  - {source.title}\n    {source.url}"))
    used = ", ".join(view.used_by) or "no issue yet"
    out.print(Text(f"Used by: {used}"))


@issues_app.command(
    "new",
    epilog="Example: newsletter issues new 2027-02-aftercare --snippet side-effects-and-aftercare",
)
def issues_new(
    slug: Annotated[
        str, typer.Argument(help="Issue slug, e.g. 2027-02-aftercare.", metavar="SLUG")
    ],
    snippet: Annotated[
        list[str] | None,
        typer.Option(
            "--snippet", "-s", help="A snippet to include (repeatable), in order.", metavar="ID"
        ),
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="The subject line.")] = None,
    day: Annotated[
        str | None,
        typer.Option("--date", help="Send date, YYYY-MM-DD (default: today).", metavar="DATE"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write issues/SLUG.md as a draft from a template (never overwrites); prints its path."""
    from newsletter.services.library import Library
    from newsletter.services.scaffold import new_issue

    when = _date(day) if day else date.today()
    created = new_issue(Library(open_current_workspace()), slug, snippet or [], when, subject)
    if as_json:
        print_json({"path": created.shown})
        return
    out.print(Text(created.shown))


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; write it as YYYY-MM-DD") from None
