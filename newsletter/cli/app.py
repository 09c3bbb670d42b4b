"""The typer application, its global options, and what every command module shares."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from newsletter import __version__
from newsletter.infra.redaction import redact
from newsletter.infra.settings import is_local_http
from newsletter.infra.workspace import Workspace, open_workspace

app = typer.Typer(
    help="Write snippets, compose issues, render them into email, check and send them.",
    epilog="Example: newsletter check 2026-12-welcome",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
snippets_app = typer.Typer(
    help="The snippet library (issues/snippets/).",
    epilog="Example: newsletter snippets list --tag evidence",
    no_args_is_help=True,
)
issues_app = typer.Typer(
    help="Issue files (issues/).", epilog="Example: newsletter issues list", no_args_is_help=True
)
subscribers_app = typer.Typer(
    help="The subscriber list and its consent record.",
    epilog="Example: newsletter subscribers import subscribers/sample.csv",
    no_args_is_help=True,
)
db_app = typer.Typer(
    help="The database schema.", epilog="Example: newsletter db upgrade", no_args_is_help=True
)
app.add_typer(snippets_app, name="snippets")
app.add_typer(issues_app, name="issues")
app.add_typer(subscribers_app, name="subscribers")
sends_app = typer.Typer(
    help="Sends and their per-recipient ledger.",
    epilog="Example: newsletter sends show 3",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")
app.add_typer(sends_app, name="sends")

PIPE_CLOSED = 141  # 128 + SIGPIPE, as a shell reports `newsletter ... | head -1`


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # Rich exits 1 here, which means "check errors" to our callers.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        raise SystemExit(PIPE_CLOSED)


out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@dataclass
class Options:
    workspace: Path | None = None
    debug: bool = False
    warned_local: bool = False  # the plain-http base_url warning, once per process


options = Options()


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
            help="Workspace folder (default: found upwards from the current folder, "
            "or NEWSLETTER_WORKSPACE).",
            file_okay=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    options.workspace = workspace
    options.debug = debug


def open_current_workspace() -> Workspace:
    workspace = open_workspace(options.workspace)
    if is_local_http(workspace.settings.base_url) and not options.warned_local:
        options.warned_local = True
        err.print(
            f"warning: base_url {workspace.settings.base_url} is plain http on this machine: "
            "fine for trying the flow locally; real mail needs an https base_url",
            markup=False,
        )
    return workspace


def print_json(data: Any) -> None:
    """Through the redaction step: no secret or URL password reaches a script's stdout."""
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write(redact(text) + "\n")
