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
    epilog="Example: newsletter issues new 2027-02-evidence --from-library --tags evidence,safety",
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
    from_library: Annotated[
        bool,
        typer.Option("--from-library", help="Draft from snippets never sent, freshly reviewed."),
    ] = False,
    tags: Annotated[
        list[str] | None,
        typer.Option(
            "--tags", help="With --from-library: only these tags (comma-separated).", metavar="TAGS"
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", min=1, help="With --from-library: how many snippets (5).", metavar="N"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write issues/SLUG.md as a draft from a template (never overwrites); prints its path.

    With --from-library, the snippets are chosen for you and it says why."""
    from newsletter.errors import InputError
    from newsletter.services.library import Library
    from newsletter.services.scaffold import new_issue

    when = _date(day) if day else date.today()
    if from_library:
        if snippet:
            raise InputError("--snippet and --from-library: choose the snippets one way")
        _draft(slug, when, tags or [], count, subject, as_json)
        return
    if tags or count is not None:
        raise InputError("--tags and --count go with --from-library")
    created = new_issue(Library(open_current_workspace()), slug, snippet or [], when, subject)
    if as_json:
        print_json({"path": created.shown})
        return
    out.print(Text(created.shown))


def _draft(
    slug: str, when: date, tags: list[str], count: int | None, subject: str | None, as_json: bool
) -> None:
    from newsletter.infra.db.engine import connect
    from newsletter.services.drafting import DEFAULT_COUNT, draft_from_library

    workspace = open_current_workspace()
    with connect(workspace.database_url) as engine:
        drafted = draft_from_library(
            workspace,
            engine,
            slug,
            day=when,
            tags=tags,
            count=count or DEFAULT_COUNT,
            subject=subject,
        )
    if as_json:
        print_json(drafted.to_dict())
        return
    out.print(Text(drafted.created.shown))  # the path first, for scripts
    for picked in drafted.choice.picked:
        out.print(Text(f"  + {picked.id}: {picked.reason}"))
    for skipped in drafted.choice.skipped:
        out.print(Text(f"  - {skipped.id}: {skipped.reason}", style="dim"))


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; write it as YYYY-MM-DD") from None
