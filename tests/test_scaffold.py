"""Scaffolding at the editor's desk: `snippets new`, `issues new`, `snippets show`."""

from __future__ import annotations

import json
from datetime import date

from newsletter.errors import ExitStatus
from newsletter.infra.workspace import open_workspace
from newsletter.services.library import Library


def test_a_new_snippet_is_a_valid_file_dated_today_and_never_overwritten(cli, sample):
    result = cli("snippets", "new", "scalp-cooling", "--title", 'Scalp "cooling": a primer')
    assert result.code == 0, result.err
    assert result.out.strip() == "issues/snippets/scalp-cooling.md"
    snippet = Library(open_workspace(sample.root)).load_snippet(
        sample.root / "issues/snippets/scalp-cooling.md"
    )
    assert snippet.meta.title == 'Scalp "cooling": a primer'
    assert snippet.meta.reviewed == date.today()
    before = (sample.root / "issues/snippets/scalp-cooling.md").read_text()
    again = cli("snippets", "new", "scalp-cooling")
    assert again.code == ExitStatus.INPUT_ERROR
    assert "already exists; not overwritten" in again.err
    assert (sample.root / "issues/snippets/scalp-cooling.md").read_text() == before
    bad = cli("snippets", "new", "Scalp Cooling")
    assert bad.code == ExitStatus.INPUT_ERROR and "lowercase letters" in bad.err


def test_a_new_issue_is_a_draft_with_its_snippets_and_date(cli, sample):
    result = cli(
        "issues",
        "new",
        "2027-02-aftercare",
        "--snippet",
        "side-effects-and-aftercare",
        "--snippet",
        "realistic-expectations",
        "--date",
        "2027-02-04",
        "--json",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"path": "issues/2027-02-aftercare.md"}
    issue = Library(open_workspace(sample.root)).load_issue("2027-02-aftercare")
    assert issue.meta.status == "draft" and issue.meta.date == date(2027, 2, 4)
    assert issue.meta.snippets == ["side-effects-and-aftercare", "realistic-expectations"]
    unknown = cli("issues", "new", "2027-03-x", "--snippet", "no-such-snippet")
    assert unknown.code == ExitStatus.INPUT_ERROR and "--snippet no-such-snippet" in unknown.err
    assert not (sample.root / "issues/2027-03-x.md").exists()
    assert cli("issues", "new", "2027-02-aftercare").code == ExitStatus.INPUT_ERROR


def test_snippets_show_prints_the_text_as_read_and_the_issues_using_it(cli):
    result = cli("snippets", "show", "how-microneedling-works")
    assert result.code == 0, result.err
    assert result.out.startswith("How microneedling works on the scalp\n")
    assert "Used by: 2026-12-welcome" in result.out
    assert "## " not in result.out  # Markdown is shown as text, not as source
    data = json.loads(cli("snippets", "show", "how-microneedling-works", "--json").out)
    assert data["used_by"] == ["2026-12-welcome"] and data["sources"]
    missing = cli("snippets", "show", "nope")
    assert missing.code == ExitStatus.INPUT_ERROR and "no snippet 'nope'" in missing.err
