"""Each kind of bad input: one line naming file and line, exit 2, no traceback, no output."""

from __future__ import annotations

import pytest

from newsletter.errors import ExitStatus

WELCOME = "2026-12-welcome"
FIRST_SNIPPET = "how-microneedling-works"


def assert_one_line_error(result, location: str, fragment: str) -> None:
    assert result.code == ExitStatus.INPUT_ERROR, result.out + result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    assert f"{location}:" in lines[0] or lines[0].endswith(location), lines[0]
    assert fragment in lines[0], lines[0]


@pytest.fixture
def build(cli, tmp_path):
    """`newsletter build ISSUE --out DIR`; asserts nothing was written when it fails."""

    def run_build(issue: str = WELCOME):
        out = tmp_path / "out"
        result = cli("build", issue, "--out", str(out))
        if result.code == ExitStatus.INPUT_ERROR:
            assert not out.exists(), "a failed build left output behind"
        return result

    return run_build


def test_broken_yaml(sample, build):
    sample.snippet(FIRST_SNIPPET, title="[unclosed")
    result = build()
    assert_one_line_error(result, f"issues/snippets/{FIRST_SNIPPET}.md:2", "invalid YAML")


def test_missing_required_field(sample, build):
    sample.snippet(FIRST_SNIPPET, title=None)
    assert_one_line_error(
        build(), f"issues/snippets/{FIRST_SNIPPET}.md:1", "missing required field 'title'"
    )


def test_unknown_field_names_its_line(sample, build):
    sample.snippet(FIRST_SNIPPET, author="Somebody")
    assert_one_line_error(
        build(), f"issues/snippets/{FIRST_SNIPPET}.md:9", "unknown field 'author'"
    )


def test_unknown_field_in_issue(sample, build):
    sample.issue("bad-issue", [FIRST_SNIPPET], colour="green")
    assert_one_line_error(build("bad-issue"), "issues/bad-issue.md:6", "unknown field 'colour'")


def test_invalid_value_names_field_and_line(sample, build):
    sample.snippet(FIRST_SNIPPET, reviewed="last tuesday")
    assert_one_line_error(build(), f"issues/snippets/{FIRST_SNIPPET}.md:5", "reviewed:")


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("2026-02-30", "'2026-02-30' is not a date: that day does not exist in that month"),
        ("2026-13-01", "'2026-13-01' is not a date: there is no such month"),
        ("2026-1-5", "'2026-1-5' is not a date: it is incomplete"),
        ("next week", "'next week' is not a date; write it as YYYY-MM-DD"),
    ],
)
def test_bad_dates_are_explained_in_plain_words(sample, build, written, words):
    sample.snippet(FIRST_SNIPPET, reviewed=written)
    result = build()
    assert_one_line_error(result, f"issues/snippets/{FIRST_SNIPPET}.md:5", f"reviewed: {words}")
    assert "invalid character" not in result.err and "Input should" not in result.err


def test_source_url_must_be_https(sample, build):
    sample.snippet(FIRST_SNIPPET, sources="\n  - title: Old\n    url: http://example.org/x")
    assert_one_line_error(build(), f"issues/snippets/{FIRST_SNIPPET}.md:8", "https://")


def test_image_needs_alt(sample, build):
    sample.snippet(FIRST_SNIPPET, image="https://example.org/scalp.jpg")
    assert_one_line_error(build(), f"issues/snippets/{FIRST_SNIPPET}.md", "alt")


def test_unknown_snippet_suggests_closest(sample, build):
    sample.issue("typo", ["how-microneedling-work", "collagen-and-elastin"])
    assert_one_line_error(
        build("typo"),
        "issues/typo.md:7",
        "unknown snippet 'how-microneedling-work'; did you mean how-microneedling-works",
    )


def test_unknown_snippet_is_an_input_error_for_check_too(sample, cli):
    sample.issue("typo", ["nothing-like-this-at-all"])
    result = cli("check", "typo")
    assert_one_line_error(result, "issues/typo.md:7", "unknown snippet")


def test_jinja_syntax_error(sample, build):
    template = sample.root / "templates/email/snippet.mjml.j2"
    lines = template.read_text(encoding="utf-8").splitlines()
    lines.insert(3, "{% if snippet.image %}")  # never closed
    template.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = build()
    assert result.code == ExitStatus.INPUT_ERROR
    assert "templates/email/snippet.mjml.j2:" in result.err
    assert "template syntax error" in result.err
    assert len(result.err.strip().splitlines()) == 1


def test_undefined_template_variable_names_template_line(sample, build):
    line = sample.edit(
        "templates/email/footer.mjml.j2",
        "{{ newsletter.postal_address }}",
        "{{ newsletter.postal_adress }}",
    )
    assert_one_line_error(build(), f"templates/email/footer.mjml.j2:{line}", "postal_adress")


def test_unknown_mjml_tag(sample, build):
    line = sample.edit(
        "templates/email/footer.mjml.j2",
        "      <mj-column>\n",
        "      <mj-column>\n        <mj-foo>hi</mj-foo>\n",
    )
    assert_one_line_error(
        build(), f"templates/email/footer.mjml.j2:{line + 1}", "unknown MJML tag <mj-foo>"
    )


def test_attribute_not_allowed_on_tag(sample, build):
    line = sample.edit(
        "templates/email/masthead.mjml.j2",
        '<mj-column width="60%"',
        '<mj-column width="60%"\n        bogus="1"',
    )
    assert_one_line_error(
        build(),
        f"templates/email/masthead.mjml.j2:{line + 1}",
        "attribute 'bogus' is not allowed on <mj-column>",
    )


def test_non_utf8_snippet(sample, build):
    sample.write(
        f"issues/snippets/{FIRST_SNIPPET}.md",
        b"---\ntitle: Caf\xe9\nsummary: s\nreviewed: 2026-01-01\n---\nbody\n",
    )
    assert_one_line_error(build(), f"issues/snippets/{FIRST_SNIPPET}.md:2", "not valid UTF-8")


def test_non_utf8_template(sample, build):
    template = sample.root / "templates/email/footer.mjml.j2"
    template.write_bytes(template.read_bytes() + b"\n<!-- \xff -->\n")
    line = template.read_bytes().count(b"\n")
    assert_one_line_error(build(), f"templates/email/footer.mjml.j2:{line}", "not valid UTF-8")


def test_reserved_placeholder_characters_in_content(sample, build):
    sample.snippet(FIRST_SNIPPET, body="Line one.\nSee ⟦unsubscribe_url⟧ here.")
    assert_one_line_error(build(), f"issues/snippets/{FIRST_SNIPPET}.md:11", "U+27E6")


def test_failed_build_keeps_previous_output(sample, cli, tmp_path):
    out = tmp_path / "out"
    assert cli("build", WELCOME, "--out", str(out)).code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    sample.snippet(FIRST_SNIPPET, title="[unclosed")
    assert cli("build", WELCOME, "--out", str(out)).code == ExitStatus.INPUT_ERROR
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_wrong_nesting_names_the_template_line(sample, build):
    line = sample.edit(
        "templates/email/footer.mjml.j2",
        "      <mj-column>",
        "      <mj-text>loose</mj-text>\n      <mj-column>",
    )
    assert_one_line_error(
        build(),
        f"templates/email/footer.mjml.j2:{line}",
        "<mj-text> is not allowed inside <mj-section>",
    )


def test_broken_preview_template_names_file_and_line(sample, cli):
    page = sample.root / "templates/preview/page.html.j2"
    page.write_text(page.read_text(encoding="utf-8") + "{% endfor %}\n", encoding="utf-8")
    result = cli("preview", WELCOME)
    assert result.code == ExitStatus.INPUT_ERROR
    assert "templates/preview/page.html.j2:" in result.err
    assert not (sample.root / ".state" / "preview").exists()
