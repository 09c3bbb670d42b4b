"""The command line: outputs, --json, exit codes (0 ok, 1 check errors, 2 input errors)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from newsletter.errors import ExitStatus

SAMPLES = ["2026-12-welcome", "2027-01-evidence"]


@pytest.mark.parametrize("slug", SAMPLES)
def test_sample_issues_pass_check(cli, slug):
    result = cli("check", slug, "--json")
    report = json.loads(result.out)
    assert result.code == ExitStatus.OK, report["findings"]
    assert report["ok"] is True
    assert report["errors"] == 0
    assert report["issue"] == slug


def test_build_writes_html_text_and_mjml(cli, sample, tmp_path):
    out = tmp_path / "out"
    result = cli("build", "2026-12-welcome", "--out", str(out))
    assert result.code == 0, result.out + result.err
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "index.txt", "issue.mjml"]
    html = (out / "index.html").read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    assert "<mj-" not in html
    assert "@media only screen and (min-width:480px)" in html  # stacks below 480 px
    assert (out / "issue.mjml").read_text(encoding="utf-8").lstrip().startswith("<mjml")
    assert "Unsubscribe" in (out / "index.txt").read_text(encoding="utf-8")
    assert str(out / "index.html") in result.out


def test_build_default_output_goes_to_state_dir(cli, sample):
    result = cli("build", "2027-01-evidence", "--json")
    report = json.loads(result.out)
    assert Path(report["files"]["index.html"]) == (
        sample.root / ".state" / "build" / "2027-01-evidence" / "index.html"
    )
    assert Path(report["files"]["index.html"]).is_file()


def test_issue_may_be_given_as_a_path(cli, sample):
    result = cli("check", str(sample.root / "issues" / "2026-12-welcome.md"))
    assert result.code == 0


def test_snippets_list_filters_by_tag_as_json(cli):
    everything = json.loads(cli("snippets", "list", "--json").out)
    evidence = json.loads(cli("snippets", "list", "--tag", "evidence", "--json").out)
    assert len(everything) >= 10
    assert evidence and all("evidence" in s["tags"] for s in evidence)
    assert len(evidence) < len(everything)
    assert {"id", "title", "summary", "tags", "sources", "reviewed", "file"} <= set(everything[0])


def test_snippets_list_table(cli):
    result = cli("snippets", "list")
    assert result.code == 0
    assert "how-microneedling-works" in result.out


def test_issues_list(cli):
    issues = json.loads(cli("issues", "list", "--json").out)
    assert [i["slug"] for i in issues] == SAMPLES
    assert all(i["status"] == "ready" and i["snippets"] for i in issues)
    assert "2026-12-welcome" in cli("issues", "list").out


def test_preview_writes_self_contained_page(cli, sample):
    result = cli("preview", "2026-12-welcome")
    assert result.code == 0
    path = Path(result.out.strip())
    page = path.read_text(encoding="utf-8")
    assert path.parent == sample.root / ".state" / "preview"
    assert page.count("<iframe") == 2
    assert "width: 375px" in page
    assert "<pre>" in page  # the text version
    assert "https://" not in page.split("<body>")[0]  # no external assets in the head
    assert "⟦" not in page  # previewed for a sample reader, placeholders filled


def test_unknown_issue_is_an_input_error(cli):
    result = cli("check", "no-such-issue")
    assert result.code == ExitStatus.INPUT_ERROR
    assert "no issue 'no-such-issue'" in result.err
    assert "2026-12-welcome" in result.err


def test_usage_error_exits_2(cli):
    result = cli("build")
    assert result.code == 2


def test_help_on_every_command_shows_an_example(cli):
    for command in (["snippets", "list"], ["issues", "list"], ["build"], ["check"], ["preview"]):
        result = cli(*command, "--help")
        assert result.code == 0
        assert "Example: newsletter" in result.out


def test_missing_workspace_is_explained(tmp_path, monkeypatch, capsys):
    from newsletter.cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NEWSLETTER_WORKSPACE", raising=False)
    code = run(["issues", "list"])
    assert code == 2
    assert "no newsletter.toml found" in capsys.readouterr().err


def test_workspace_found_from_a_subfolder_and_from_env(sample, tmp_path, monkeypatch, capsys):
    from newsletter.cli import run

    monkeypatch.chdir(sample.root / "issues" / "snippets")
    monkeypatch.delenv("NEWSLETTER_WORKSPACE", raising=False)
    assert run(["issues", "list", "--json"]) == 0
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NEWSLETTER_WORKSPACE", str(sample.root))
    capsys.readouterr()
    assert run(["issues", "list", "--json"]) == 0
    assert "2026-12-welcome" in capsys.readouterr().out


def test_console_script_errors_without_traceback_unless_debug(sample):
    """The installed `newsletter` command, in a real process."""
    bad = sample.write("issues/broken.md", "---\nsubject: [unclosed\n---\n")
    env = {**os.environ, "NEWSLETTER_WORKSPACE": str(sample.root)}
    command = [sys.executable, "-m", "newsletter", "check", "broken"]
    plain = subprocess.run(command, capture_output=True, text=True, env=env, cwd=sample.root)
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1
    assert "Traceback" not in plain.stderr
    assert f"{bad.relative_to(sample.root)}:2: invalid YAML" in plain.stderr
    debug = subprocess.run(
        [*command[:3], "--debug", *command[3:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=sample.root,
    )
    assert debug.returncode != 0
    assert "Traceback" in debug.stderr


def test_unreachable_database_exits_69(cli, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/none")
    result = cli("subscribers", "count")
    assert result.code == ExitStatus.UNAVAILABLE
    assert result.err.startswith("error: cannot open the database")
    assert "Traceback" not in result.err


def test_a_bug_exits_70_with_one_line(cli, monkeypatch):
    from newsletter.services import library

    def broken(self, tag=None):
        raise RuntimeError("boom")

    monkeypatch.setattr(library.Library, "snippets", broken)
    result = cli("snippets", "list")
    assert result.code == ExitStatus.INTERNAL_ERROR
    assert result.err.strip() == "internal error: RuntimeError: boom (rerun with --debug)"


def test_serve_on_a_busy_port_exits_69_before_saying_serving(cli, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_SECRET_KEY", "a-signing-key-for-this-test-0123")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.code == ExitStatus.UNAVAILABLE
    assert f"port {port} is in use on 127.0.0.1" in result.err
    assert "serving" not in result.out
