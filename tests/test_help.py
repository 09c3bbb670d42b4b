"""`--help` of every command: click's plain style, values named as other command lines name
them, real defaults, an example each, and only the choices a command accepts."""

from __future__ import annotations

import re

import pytest
import typer.main

from newsletter.cli import run
from newsletter.cli.app import app, root_command
from newsletter.cli.subscribers import NewStatus, StatusName
from newsletter.domain.subscriber import Status
from newsletter.errors import ExitStatus


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group, walked from typer's own click tree."""
    paths: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths


PATHS = command_paths()


def help_of(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert run([*path, "--help"]) == 0
    return capsys.readouterr().out


def test_the_tree_is_walked():
    assert len(PATHS) > 40
    assert ("subscribers", "add") in PATHS
    assert ("schedule", "add") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "newsletter")
def test_help_is_plain_and_complete(path, capsys):
    text = help_of(path, capsys)
    usage = text.split("\n\n")[0]
    assert usage.startswith("Usage: newsletter")
    assert "{" not in usage and "}" not in usage
    # typer's names for values: <bool>, <str>, <int>, <float range>, <list[str]>, <dir> ...
    assert not re.search(r"<(bool|str|int|float|list\[|dir|file|path|datetime)", text), text
    for line in text.splitlines():
        # "default:  host" is what is left when markup swallows "[web]"; "default: )" is empty
        assert not re.search(r"(?i)default:( {2,}|\s*[)\];,.])", line), line
    assert re.search(r"Examples?: ", text), f"no example in `newsletter {' '.join(path)} -h`"


def test_arguments_are_named_in_capitals():
    """ISSUE, EMAIL, SEND_ID: in the usage line, the help and the error messages alike."""
    tree = typer.main.get_command(app)
    stack = [tree]
    while stack:
        command = stack.pop()
        stack.extend(getattr(command, "commands", {}).values())
        for param in command.params:
            if param.param_type_name == "argument":
                assert param.metavar and param.metavar == param.metavar.upper(), param.name


def test_flags_and_values_read_like_other_command_lines(capsys):
    send = help_of(("send",), capsys)
    assert re.search(r"^  --to EMAIL ", send, re.MULTILINE)
    assert re.search(r"^  --resume INTEGER ", send, re.MULTILINE)
    assert re.search(r"^  --dry-run +Everything", send, re.MULTILINE)  # no value after a flag
    assert "[test] recipients" in send  # not swallowed as markup
    root = help_of((), capsys)
    assert "-w, --workspace DIRECTORY" in root
    schedule = help_of(("schedule", "add"), capsys)
    assert "(default: [schedule] timezone)" in schedule
    subscribers = help_of(("subscribers", "list"), capsys)
    assert "--limit INTEGER RANGE" in subscribers
    assert "[default: 50; 1<=x<=10000]" in subscribers


def test_status_filters_offer_every_status(capsys):
    assert [s.value for s in StatusName] == [s.value for s in Status]
    text = help_of(("subscribers", "export"), capsys)
    offered = re.search(r"--status \[([a-z|]+)\]", text)
    assert offered and offered.group(1).split("|") == [s.value for s in Status]


@pytest.mark.parametrize("command", [("subscribers", "add"), ("subscribers", "import")])
def test_status_of_new_subscribers_lists_what_is_accepted(command, capsys):
    text = help_of(command, capsys)
    offered = re.search(r"--status \[([a-z|]+)\]", text)
    assert offered and offered.group(1).split("|") == ["active", "pending"]
    assert [s.value for s in NewStatus] == ["active", "pending"]
    assert "[default: active]" in text


def test_subscribers_add_accepts_exactly_the_statuses_its_help_lists(cli, capsys):
    listed = re.search(r"--status \[([a-z|]+)\]", help_of(("subscribers", "add"), capsys))
    assert listed
    for status in Status:
        result = cli("subscribers", "add", f"{status}@example.com", "--status", status.value)
        if status.value in listed.group(1).split("|"):
            assert result.code == ExitStatus.OK, result.err
            assert f"({status.value}, #" in result.out
        else:
            assert result.code == ExitStatus.INPUT_ERROR  # a usage error, before any work
            assert "is not one of 'active', 'pending'" in result.err


def test_the_lazy_root_lists_what_typer_would(capsys):
    full = typer.main.get_command(app)
    lazy = root_command()
    assert list(lazy.commands) == list(full.commands)  # type: ignore[attr-defined]
    with pytest.raises(SystemExit):
        full.main(args=["--help"], prog_name="newsletter")
    typer_help = capsys.readouterr().out
    assert help_of((), capsys) == typer_help
