"""Pre-flight checks through `newsletter check --json`: errors exit 1, warnings inform."""

from __future__ import annotations

import json

import pytest

from newsletter.errors import ExitStatus

SNIPPET = "how-microneedling-works"


@pytest.fixture
def check(cli):
    def run_check(issue: str = "t"):
        result = cli("check", issue, "--json")
        assert result.code in (ExitStatus.OK, ExitStatus.CHECKS_FAILED), result.err
        report = json.loads(result.out)
        assert (result.code == ExitStatus.CHECKS_FAILED) == (report["errors"] > 0)
        return {f["code"]: f for f in report["findings"]}

    return run_check


def edit_template(sample, name: str, old: str, new: str) -> int:
    return sample.edit(f"templates/email/{name}", old, new)


def test_clean_issue_has_no_findings(sample, check):
    sample.snippet("a")
    sample.issue("t", ["a"])
    assert check() == {}


def test_html_over_gmail_clip_is_an_error(sample, check, monkeypatch):
    sample.snippet("a")
    sample.issue("t", ["a"])
    monkeypatch.setenv("NEWSLETTER_CHECKS__HTML_MAX_KB", "10")
    monkeypatch.setenv("NEWSLETTER_CHECKS__HTML_WARN_KB", "5")
    finding = check()["html-too-large"]
    assert finding["severity"] == "error"
    assert "Gmail clips above 10 KB" in finding["message"]


def test_html_close_to_clip_is_a_warning(sample, check, monkeypatch):
    sample.snippet("a")
    sample.issue("t", ["a"])
    monkeypatch.setenv("NEWSLETTER_CHECKS__HTML_WARN_KB", "5")
    assert check()["html-large"]["severity"] == "warning"


def test_missing_unsubscribe_link_is_an_error(sample, check):
    sample.snippet("a")
    sample.issue("t", ["a"])
    edit_template(
        sample, "footer.mjml.j2", """<a href="{{ ph('unsubscribe_url') }}">Unsubscribe</a>""", ""
    )
    assert check()["unsubscribe-missing"]["severity"] == "error"


def test_missing_postal_address_is_an_error(sample, check):
    sample.snippet("a")
    sample.issue("t", ["a"])
    edit_template(sample, "footer.mjml.j2", "<p>{{ newsletter.postal_address }}</p>", "")
    assert check()["postal-address-missing"]["severity"] == "error"


def test_image_without_alt_points_at_template_line(sample, check):
    sample.snippet("a")
    sample.issue("t", ["a"])
    line = edit_template(
        sample,
        "footer.mjml.j2",
        "      <mj-column>\n",
        '      <mj-column>\n        <mj-image src="https://example.org/logo.png" />\n',
    )
    finding = check()["image-no-alt"]
    assert finding["severity"] == "error"
    assert finding["file"].endswith("templates/email/footer.mjml.j2")
    assert finding["line"] == line + 1


@pytest.mark.parametrize(
    "href", ["http://example.org/page", "/relative/page", "ftp://example.org/file"]
)
def test_link_that_is_not_https_points_at_snippet_line(sample, check, href):
    sample.snippet("a", body=f"First line.\n\nSee [this page]({href}).")
    sample.issue("t", ["a"])
    finding = check()["link-not-https"]
    assert finding["severity"] == "error"
    assert finding["file"] == "issues/snippets/a.md"
    assert finding["line"] == 12


def test_mailto_links_are_allowed(sample, check):
    sample.snippet("a", body="Write to [the editors](mailto:editors@example.com).")
    sample.issue("t", ["a"])
    assert "link-not-https" not in check()


@pytest.mark.parametrize("marker", ["TK", "TODO", "{{ name }}"])
def test_editing_marker_left_in_content(sample, check, marker):
    sample.snippet("a", body=f"Intro.\n\nThe study had {marker} participants.")
    sample.issue("t", ["a"])
    finding = check()["marker-left"]
    assert finding["severity"] == "error"
    assert (finding["file"], finding["line"]) == ("issues/snippets/a.md", 12)


def test_lowercase_words_are_not_markers(sample, check):
    sample.snippet("a", body="A todo list and a tk-style name are fine.")
    sample.issue("t", ["a"])
    assert "marker-left" not in check()


def test_unknown_placeholder_left_in_output(sample, check):
    sample.snippet("a")
    sample.issue("t", ["a"])
    edit_template(
        sample,
        "footer.mjml.j2",
        "<p>{{ newsletter.postal_address }}</p>",
        "<p>{{ newsletter.postal_address }} ⟦nickname⟧</p>",
    )
    assert check()["placeholder-left"]["severity"] == "error"


def test_snippet_used_twice(sample, check):
    sample.snippet("a")
    sample.snippet("b")
    sample.issue("t", ["a", "b", "a"])
    finding = check()["snippet-duplicate"]
    assert finding["severity"] == "error"
    assert (finding["file"], finding["line"]) == ("issues/t.md", 9)


def test_snippet_without_sources_warns(sample, check):
    sample.snippet("a", sources=None)
    sample.issue("t", ["a"])
    finding = check()["snippet-no-sources"]
    assert finding["severity"] == "warning"
    assert finding["file"] == "issues/snippets/a.md"


def test_stale_review_warns_with_line(sample, check, monkeypatch):
    sample.snippet("a", reviewed="2020-01-01")
    sample.issue("t", ["a"])
    finding = check()["snippet-stale"]
    assert (finding["severity"], finding["line"]) == ("warning", 5)
    monkeypatch.setenv("NEWSLETTER_CHECKS__REVIEW_MAX_AGE_DAYS", "100000")
    assert "snippet-stale" not in check()


def test_long_subject_warns_and_empty_subject_is_an_error(sample, check):
    sample.snippet("a")
    sample.issue("t", ["a"], subject="x" * 79)
    assert check()["subject-long"]["severity"] == "warning"
    sample.issue("t", ["a"], subject='""')
    assert check()["subject-empty"]["severity"] == "error"


def test_missing_preheader_and_draft_status_warn(sample, check):
    sample.snippet("a")
    sample.issue("t", ["a"], preheader=None, status="draft")
    findings = check()
    assert findings["preheader-missing"]["severity"] == "warning"
    assert findings["issue-draft"]["severity"] == "warning"


def test_check_errors_exit_1_and_print_each_finding(sample, cli):
    sample.snippet("a", body="TK")
    sample.issue("t", ["a", "a"])
    result = cli("check", "t")
    assert result.code == ExitStatus.CHECKS_FAILED
    assert "error issues/snippets/a.md:10: editing marker 'TK' left in the text" in result.out
    assert "error issues/t.md:8: snippet 'a' is used more than once" in result.out


def test_raw_html_in_a_snippet_is_an_error_naming_file_line_and_the_markdown_way(sample, cli):
    sample.snippet("a", body="First line.\n\nSome <b>bold</b> words.")
    sample.issue("t", ["a"])
    result = cli("check", "t", "--json")
    assert result.code == ExitStatus.CHECKS_FAILED
    [finding] = [f for f in json.loads(result.out)["findings"] if f["code"] == "raw-html"]
    assert finding["severity"] == "error"
    assert (finding["file"], finding["line"]) == ("issues/snippets/a.md", 12)
    assert "'<b>'" in finding["message"] and "**bold**" in finding["message"]
    assert "literal text" in finding["message"]


def test_each_raw_html_tag_is_reported_once_with_its_own_advice(sample, cli):
    body = "Intro.\n\n<div>\nA block\n</div>\n\nAn <i>aside</i>, <i>again</i>.\n"
    sample.snippet("a", body=body)
    sample.issue("t", ["a"])
    result = cli("check", "t")
    assert result.code == 1
    lines = [line for line in result.out.splitlines() if "HTML '<" in line]
    assert len(lines) == 2, lines
    assert "issues/snippets/a.md:12: HTML '<div>'" in lines[0]
    assert "issues/snippets/a.md:16: HTML '<i>'" in lines[1] and "*italic*" in lines[1]


def test_html_shown_as_code_or_escaped_is_not_raw_html(sample, check):
    sample.snippet("a", body="Write `<b>` in code, or 5 < 6 and 7 > 3, or <https://example.org>.")
    sample.issue("t", ["a"])
    assert "raw-html" not in check()


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("https://made-up.invalid/paper", "link-reserved-host"),
        ("https://journal.example/article", "link-reserved-host"),
        ("https://localhost/paper", "link-reserved-host"),
        ("https://doi.org/not-a-doi", "source-bad-doi"),
        ("https://doi.org/10.12/too-short-a-prefix", "source-bad-doi"),
    ],
)
def test_sources_that_cannot_be_real_are_errors_naming_their_line(sample, check, url, code):
    sample.snippet("a", sources=f"\n  - title: Somebody 2024\n    url: {url}")
    sample.issue("t", ["a"])
    result = check()
    finding = result[code]
    assert finding["file"] == "issues/snippets/a.md" and finding["line"] == 8, finding


def test_a_source_listed_twice_is_an_error(sample, check):
    twice = "\n  - title: One\n    url: https://doi.org/10.1000/182" * 2
    sample.snippet("a", sources=twice)
    sample.issue("t", ["a"])
    assert check()["source-duplicate"]["line"] == 10


def test_a_link_error_quotes_the_link_as_written_without_tracking_parameters(sample, check):
    sample.snippet("a", body="See [our old page](http://news.follicle-notes.example.com/old).")
    sample.issue("t", ["a"])
    finding = check()["link-not-https"]
    assert "'http://news.follicle-notes.example.com/old'" in finding["message"]
    assert "utm_" not in finding["message"]


def test_plain_http_base_url_on_this_machine_passes_the_link_checks(sample, check, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_BASE_URL", "http://127.0.0.1:8000")
    sample.snippet("a")
    sample.issue("t", ["a"])
    assert check() == {}


def test_a_tag_that_is_not_a_configured_topic_warns_with_the_closest(sample, check):
    sample.snippet("a", tags="[evidence, saftey]")
    sample.issue("t", ["a"])
    finding = check()["tag-not-a-topic"]
    assert finding["severity"] == "warning" and finding["line"] == 4
    assert "'saftey'" in finding["message"] and "did you mean 'safety'?" in finding["message"]
