"""The `newsletter` command: parse, call the services, present. No logic of its own."""

from __future__ import annotations

import json
import sys
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from newsletter import __version__
from newsletter.domain.checks import Finding, Severity
from newsletter.errors import ExitStatus, NewsletterError
from newsletter.infra.workspace import Workspace, open_workspace
from newsletter.services.build import Build, Builder, default_out_dir, write_build
from newsletter.services.library import Library
from newsletter.services.preview import write_preview

app = typer.Typer(
    help="Write snippets, compose issues, render them into email, check and send them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
snippets_app = typer.Typer(help="The snippet library (issues/snippets/).", no_args_is_help=True)
issues_app = typer.Typer(help="Issue files (issues/).", no_args_is_help=True)
app.add_typer(snippets_app, name="snippets")
app.add_typer(issues_app, name="issues")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class _Options:
    workspace: Path | None = None
    debug: bool = False


_options = _Options()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
IssueArg = Annotated[str, typer.Argument(help="Issue slug (e.g. 2026-12-welcome) or path.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"newsletter {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    workspace: Annotated[
        Path | None,
        typer.Option(
            "--workspace",
            "-w",
            help="Workspace folder (default: found upwards from "
            "the current folder, or NEWSLETTER_WORKSPACE).",
            file_okay=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _options.workspace = workspace
    _options.debug = debug


def _workspace() -> Workspace:
    return open_workspace(_options.workspace)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")


@snippets_app.command("list", epilog="Example: newsletter snippets list --tag evidence")
def snippets_list(
    tag: Annotated[
        str | None, typer.Option("--tag", "-t", help="Only snippets with this tag.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """List the snippets in the library."""
    snippets = Library(_workspace()).snippets(tag)
    if as_json:
        _print_json(
            [
                {"id": s.id, "file": s.file, **s.meta.model_dump(mode="json", exclude={"id"})}
                for s in snippets
            ]
        )
        return
    table = Table(box=None)
    table.add_column("id", no_wrap=True)  # ids are typed back into issue files: never cut
    for name in ("title", "tags", "reviewed", "sources"):
        table.add_column(name)
    for s in snippets:
        table.add_row(
            s.id,
            s.meta.title,
            ", ".join(s.meta.tags),
            str(s.meta.reviewed),
            str(len(s.meta.sources)),
        )
    out.print(table)
    out.print(f"{len(snippets)} snippet(s)")


@issues_app.command("list", epilog="Example: newsletter issues list --json")
def issues_list(as_json: JsonFlag = False) -> None:
    """List the issue files."""
    issues = Library(_workspace()).issues()
    if as_json:
        _print_json(
            [{"slug": i.slug, "file": i.file, **i.meta.model_dump(mode="json")} for i in issues]
        )
        return
    table = Table(box=None)
    table.add_column("slug", no_wrap=True)
    for name in ("date", "status", "snippets", "subject"):
        table.add_column(name)
    for i in issues:
        table.add_row(
            i.slug, str(i.meta.date), i.meta.status, str(len(i.meta.snippets)), i.meta.subject
        )
    out.print(table)
    out.print(f"{len(issues)} issue(s)")


def _show_findings(findings: list[Finding]) -> None:
    for f in findings:
        style = "red" if f.severity == Severity.ERROR else "yellow"
        where = f"{f.where}: " if f.where else ""
        out.print(
            f"[{style}]{f.severity}[/{style}] {escape(where + f.message)} [dim]({f.code})[/dim]"
        )
    errors = sum(f.severity == Severity.ERROR for f in findings)
    warnings = len(findings) - errors
    out.print(f"{errors} error(s), {warnings} warning(s)")


def _build_json(build: Build, **extra: Any) -> dict[str, Any]:
    findings = build.findings
    return {
        "issue": build.issue.slug,
        "ok": build.ok,
        "errors": sum(f.severity == Severity.ERROR for f in findings),
        "warnings": sum(f.severity == Severity.WARNING for f in findings),
        "content_hash": build.rendered.content_hash,
        "html_bytes": len(build.probe.html.encode("utf-8")),
        "findings": [f.to_dict() for f in findings],
        **extra,
    }


def _exit_for(build: Build) -> None:
    if not build.ok:
        raise typer.Exit(ExitStatus.CHECKS_FAILED)


@app.command(epilog="Example: newsletter check 2026-12-welcome --json")
def check(issue: IssueArg, as_json: JsonFlag = False) -> None:
    """Run the pre-flight checks. Exit 1 if any check is an error."""
    build = Builder(_workspace()).build(issue)
    if as_json:
        _print_json(_build_json(build))
    else:
        _show_findings(build.findings)
    _exit_for(build)


@app.command(epilog="Example: newsletter build 2026-12-welcome --out /tmp/welcome")
def build(
    issue: IssueArg,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Output folder (default: STATE/build/SLUG).", file_okay=False
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Build index.html, index.txt and issue.mjml, and run the checks (exit 1 on errors)."""
    workspace = _workspace()
    result = Builder(workspace).build(issue)
    written = write_build(result, out_dir or default_out_dir(workspace, result.issue.slug))
    if as_json:
        _print_json(_build_json(result, files={k: str(v) for k, v in written.items()}))
    else:
        _show_findings(result.findings)
        out.print(f"HTML: {written['index.html']}")
        out.print(f"Text: {written['index.txt']}")
    _exit_for(result)


@app.command(epilog="Example: newsletter preview 2026-12-welcome --open")
def preview(
    issue: IssueArg,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Preview file (default: STATE/preview/SLUG.html).", dir_okay=False
        ),
    ] = None,
) -> None:
    """Write a preview page: desktop and 375 px mobile side by side, and the text version."""
    builder = Builder(_workspace())
    path = write_preview(builder, builder.build(issue), out_file)
    out.print(str(path))
    if open_browser:
        webbrowser.open(path.resolve().as_uri())


def run(argv: list[str]) -> int:
    """Run one command; our errors become one line and an exit status (tracebacks need --debug).

    Usage errors are typer's own (exit 2), so the whole CLI speaks one set of exit codes.
    """
    try:
        app(args=argv, prog_name="newsletter")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else int(bool(exc.code))
    except NewsletterError as exc:
        if _options.debug:
            raise
        err.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return int(exc.exit_status)
    except Exception as exc:
        if _options.debug:
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", markup=False)
        return int(ExitStatus.INTERNAL_ERROR)
    return int(ExitStatus.OK)


def main() -> None:
    sys.exit(run(sys.argv[1:]))
