"""The typer application, its global options, and what every command module shares."""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, get_args

import typer
import typer.main
from rich.console import Console
from typer.core import TyperArgument, TyperGroup, _TyperParameter

from newsletter import __version__
from newsletter.errors import InputError
from newsletter.infra.redaction import redact

if TYPE_CHECKING:
    from rich.table import Table

    from newsletter.infra.workspace import Workspace

# Every module of this package keeps to typer, rich and the standard library at import
# time; a command imports its services when it runs, so `--help` or `check` does not pay
# for the database layer, the web server or Alembic (tests/test_startup.py checks it).

# rich_markup_mode=None: click's plain help. Rich markup would read "[schedule]" in a help
# text as a style and swallow it.
app = typer.Typer(
    help="Write snippets, compose issues, render them into email, check and send them.",
    epilog="Example: newsletter check 2026-12-welcome",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
snippets_app = typer.Typer(
    help="The snippet library (issues/snippets/).",
    epilog="Example: newsletter snippets list --tag evidence",
    no_args_is_help=True,
    rich_markup_mode=None,
)
issues_app = typer.Typer(
    help="Issue files (issues/).",
    epilog="Example: newsletter issues list",
    no_args_is_help=True,
    rich_markup_mode=None,
)
subscribers_app = typer.Typer(
    help="The subscriber list and its consent record.",
    epilog="Example: newsletter subscribers import subscribers/sample.csv",
    no_args_is_help=True,
    rich_markup_mode=None,
)
db_app = typer.Typer(
    help="The database schema.",
    epilog="Example: newsletter db upgrade",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(snippets_app, name="snippets")
app.add_typer(issues_app, name="issues")
app.add_typer(subscribers_app, name="subscribers")
sends_app = typer.Typer(
    help="Sends and their per-recipient ledger.",
    epilog="Example: newsletter sends show 3",
    no_args_is_help=True,
    rich_markup_mode=None,
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
    from newsletter.domain.links import is_local_http
    from newsletter.infra.workspace import open_workspace

    workspace = open_workspace(options.workspace)
    if is_local_http(workspace.settings.base_url) and not options.warned_local:
        options.warned_local = True
        err.print(
            f"warning: base_url {workspace.settings.base_url} is plain http on this machine: "
            "fine for trying the flow locally; real mail needs an https base_url",
            markup=False,
        )
    return workspace


class _Subcommands(MutableMapping[str, Any]):
    """The root's commands and groups, each made by typer when first looked up."""

    def __init__(self, source: typer.Typer) -> None:
        made: dict[str, Any] = {
            "pretty_exceptions_short": source.pretty_exceptions_short,
            "rich_markup_mode": source.rich_markup_mode,
        }
        self._makers: dict[str, Callable[[], Any]] = {}
        for info in source.registered_commands:  # commands before groups, as typer lists them
            assert info.callback is not None
            name = info.name or typer.main.get_command_name(info.callback.__name__)
            self._makers[name] = partial(typer.main.get_command_from_info, info, **made)
        for group in source.registered_groups:
            assert isinstance(group.name, str), "every group is added with a name"
            self._makers[group.name] = partial(
                typer.main.get_group_from_info,
                group,
                suggest_commands=source.suggest_commands,
                **made,
            )
        self._made: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._made:
            self._made[name] = self._makers[name]()
        return self._made[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._makers[name] = lambda: command
        self._made[name] = command

    def __delitem__(self, name: str) -> None:
        del self._makers[name]
        self._made.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)


def root_command() -> TyperGroup:
    """`app` as a click group, like typer.main.get_command(app), except that its commands
    are made when looked up: typer would read all ~50 signatures on every run (~20 ms),
    where a command line names one. `newsletter --help` lists them, and makes them all."""
    bare = copy.copy(app)
    bare.registered_commands, bare.registered_groups = [], []
    root = typer.main.get_command(bare)
    assert isinstance(root, TyperGroup)
    root.commands = _Subcommands(app)
    return root


def new_table(**options: Any) -> Table:
    """A rich Table; rich.table is imported by the commands that print one."""
    from rich.table import Table

    return Table(**options)


def confirm(question: str, *, doing: str, undone: str) -> None:
    """Ask before what cannot be taken back; a script (no terminal) must say --yes. No is
    exit 2 with "aborted: nothing was <undone>"."""
    if not sys.stdin.isatty():
        raise InputError(f"{doing} needs --yes when not run interactively")
    if not typer.confirm(question, default=False):
        raise InputError(f"aborted: nothing was {undone}")


def print_json(data: Any) -> None:
    """Through the redaction step: no secret or URL password reaches a script's stdout."""
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    sys.stdout.write(redact(text) + "\n")


# Help in click's words. typer 0.29 names a value by its Python type (`--rate <float range>`,
# `--to <list[str]>`, `ISSUE <str>`) and writes a required argument `{ISSUE}` in the usage
# line. These overrides print what click and most command lines print instead: the
# parameter's metavar when it has one, else TEXT, INTEGER, FLOAT, FILE, DIRECTORY, PATH or
# the choices as [a|b]; ISSUE or [ISSUE] in the usage line. tests/test_help.py renders every
# command's help and fails if typer's style comes back.
_CLICK_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN"}
_PATH_NAMES = {"file": "FILE", "dir": "DIRECTORY", "path": "PATH"}


def _display_type(self: _TyperParameter, ctx: typer.Context) -> str:
    if self.metavar is not None:
        return self.metavar
    desc = self.type_descriptor
    if desc.choices is not None:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices) + "]"
    if desc.is_path:
        return _PATH_NAMES[desc.path_type]
    annotation = get_args(desc.annotation)[0] if desc.is_list else desc.annotation
    name = getattr(annotation, "__name__", str(annotation))
    return _CLICK_NAMES.get(name, name.upper()) + (" RANGE" if desc.is_ranged else "")


def _argument_display_type(self: TyperArgument, ctx: typer.Context) -> str | None:
    # The argument's name is its metavar already: "ISSUE  Issue slug", not "ISSUE ISSUE".
    return None if self.metavar is not None else _display_type(self, ctx)


def _argument_usage(self: TyperArgument, ctx: typer.Context) -> list[str]:
    name = self.display_name_raw + ("..." if self.nargs != 1 else "")
    return [name if self.required else f"[{name}]"]


_TyperParameter.display_type = _display_type  # type: ignore[method-assign]
TyperArgument.display_type_rich = _argument_display_type  # type: ignore[method-assign]
TyperArgument.get_usage_pieces = _argument_usage  # type: ignore[method-assign]
