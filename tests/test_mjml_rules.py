"""MJML validation that mjml-python lacks: unknown tags and attributes, with lines."""

from __future__ import annotations

import mjml

from newsletter.domain.mjml_rules import schema, validate_mjml


def messages(source: str, template: bool = False) -> list[tuple[int, str]]:
    return [(p.line, p.message) for p in validate_mjml(source, template=template)]


def test_mjml_python_itself_lets_unknown_tags_through():
    """Why the rules exist: mjml-python renders a misspelt tag into the HTML silently."""
    html = mjml.mjml2html("<mjml><mj-body><mj-foo>x</mj-foo></mj-body></mjml>")
    assert "mj-foo" in html


def test_valid_document_has_no_problems():
    source = """<mjml lang="en">
  <mj-head>
    <mj-preview>Hello</mj-preview>
    <mj-attributes>
      <mj-all font-family="Arial" />
      <mj-text color="#000" padding="0" />
      <mj-class name="muted" color="#999" anything-goes="1" />
    </mj-attributes>
  </mj-head>
  <mj-body width="600px">
    <mj-section full-width="full-width" css-class="x">
      <mj-column width="50%" mj-class="muted">
        <mj-image src="https://example.org/a.png" alt="A" href="https://example.org" />
        <mj-button href="https://example.org">Go</mj-button>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>"""
    assert messages(source) == []


def test_unknown_tag_with_line():
    assert messages("<mjml>\n<mj-body>\n  <mj-sektion>\n</mj-sektion></mj-body></mjml>") == [
        (3, "unknown MJML tag <mj-sektion>")
    ]


def test_attribute_not_allowed_with_its_own_line():
    source = '<mj-section\n  padding="0"\n  colour="red">\n</mj-section>'
    assert messages(source) == [(3, "attribute 'colour' is not allowed on <mj-section>")]


def test_attribute_of_another_tag_is_rejected():
    assert messages('<mj-text src="https://x">t</mj-text>') == [
        (1, "attribute 'src' is not allowed on <mj-text>")
    ]


def test_defaults_inside_mj_attributes_use_the_components_attributes():
    bad = "<mj-attributes>\n<mj-text colr='red' />\n</mj-attributes>"
    assert messages(bad) == [(2, "attribute 'colr' is not allowed on <mj-text>")]


def test_unsupported_by_mjml_python():
    ((_line, message),) = messages("<mj-head><mj-html-attributes></mj-html-attributes></mj-head>")
    assert "not supported" in message


def test_jinja_is_blanked_and_lines_kept():
    source = (
        '{% for s in snippets %}\n<mj-text padding="{{ p }}">{{ s.title }}</mj-text>\n'
        '{# <mj-bogus> in a comment is fine #}\n<mj-text bad="{{ x }}">x</mj-text>\n{% endfor %}'
    )
    assert messages(source, template=True) == [(4, "attribute 'bad' is not allowed on <mj-text>")]


def test_schema_data_has_the_documented_components():
    rules = schema()
    assert {
        "mj-section",
        "mj-column",
        "mj-text",
        "mj-image",
        "mj-button",
        "mj-divider",
        "mj-social",
        "mj-hero",
        "mj-wrapper",
        "mj-group",
        "mj-spacer",
        "mj-table",
        "mj-raw",
        "mj-preview",
        "mj-title",
        "mj-style",
        "mj-breakpoint",
    } <= set(rules.components)
    assert {"src", "alt", "href", "width"} <= rules.components["mj-image"]
    assert "full-width" in rules.components["mj-section"]
    assert rules.global_attributes == {"css-class", "mj-class"}


def test_tag_in_the_wrong_parent():
    source = "<mjml><mj-body>\n<mj-section>\n<mj-text>x</mj-text>\n</mj-section></mj-body></mjml>"
    assert messages(source) == [(3, "<mj-text> is not allowed inside <mj-section>")]


def test_templates_are_not_judged_for_nesting():
    source = "{% if a %}<mj-column>{% else %}<mj-column>{% endif %}<mj-text>x</mj-text>"
    assert messages(source, template=True) == []


def test_inline_mj_style_and_legacy_version_are_accepted_as_in_mjml_4():
    source = (
        '<mjml version="4.0.0" lang="en"><mj-head>\n'
        '<mj-style inline="inline">h2 { color: red; }</mj-style>\n'
        "<mj-style>@media (prefers-color-scheme: dark) { h2 { color: white; } }</mj-style>\n"
        "</mj-head><mj-body></mj-body></mjml>"
    )
    assert messages(source) == []


def test_unknown_attributes_are_still_refused_on_mj_style_and_mjml():
    source = '<mjml versoin="4">\n<mj-head>\n<mj-style inlined="inline">a {}</mj-style>'
    assert messages(source) == [
        (1, "attribute 'versoin' is not allowed on <mjml>"),
        (3, "attribute 'inlined' is not allowed on <mj-style>"),
    ]


def test_inline_belongs_to_mj_style_only():
    assert messages('<mj-text inline="inline">x</mj-text>') == [
        (1, "attribute 'inline' is not allowed on <mj-text>")
    ]
