"""Issue -> Jinja2 -> MJML -> HTML (mjml-python) -> inlined CSS, plus the plain-text twin,
rendered once."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mjml
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateRuntimeError,
    TemplateSyntaxError,
)
from markupsafe import Markup

from newsletter.domain.issue import Issue
from newsletter.domain.markdown import underline, wrap
from newsletter.domain.mjml_rules import validate_mjml
from newsletter.domain.personalize import (
    CLOSE,
    OPEN,
    RenderedIssue,
    placeholder,
    reject_reserved,
)
from newsletter.domain.theme import email_theme
from newsletter.errors import InputError
from newsletter.infra.files import display_path, read_text
from newsletter.infra.settings import Settings
from newsletter.services.inline import inline_css, take_inline_styles
from newsletter.services.issue_context import issue_context

HTML_TEMPLATE = "email/issue.mjml.j2"
TEXT_TEMPLATE = "email/issue.txt.j2"


@dataclass(frozen=True)
class Rendering:
    mjml: str  # the source as MJML 4 would read it (inline mj-styles included)
    rendered: RenderedIssue


def _autoescape(name: str | None) -> bool:
    return name is None or not name.endswith(".txt.j2")


def _placeholder(name: str, fallback: str = "") -> Markup:
    try:
        return Markup(placeholder(name, fallback))
    except ValueError as exc:  # a template error, reported with the template's line
        raise TemplateRuntimeError(str(exc)) from None


class Renderer:
    """Holds the Jinja environment; templates are compiled once and reused across renders."""

    def __init__(self, templates_dir: Path, settings: Settings) -> None:
        self.templates_dir = templates_dir
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(str(templates_dir), encoding="utf-8-sig"),
            autoescape=_autoescape,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["wrap"] = wrap
        self.env.filters["underline"] = underline
        self.env.globals["ph"] = _placeholder
        # The [theme] (colours, font, logo, footer line), in macros and includes too.
        theme = email_theme(settings.theme, settings.base_url)
        self.env.globals.update(theme=theme, colors=theme.light, dark=theme.dark)
        self._validated = False

    def template_sources(self) -> list[tuple[str, str]]:
        """(shown path, text) of every email template, read strictly as UTF-8."""
        folder = self.templates_dir / "email"
        if not folder.is_dir():
            raise InputError("email template folder is missing", display_path(folder))
        return [(display_path(p), read_text(p)) for p in sorted(folder.glob("*.j2"))]

    def validate_templates(self) -> None:
        """Reject unknown MJML tags and attributes with template file and line, before mjml."""
        for shown, text in self.template_sources():
            if shown.endswith(".mjml.j2"):
                for problem in validate_mjml(text, template=True):
                    raise InputError(problem.message, shown, problem.line)
        self._validated = True

    def render(self, issue: Issue, *, public: bool = False) -> Rendering:
        """The issue as subscribers get it, with ⟦placeholders⟧ for `personalize` to fill.

        `public=True` renders it for the public web archive (`/archive/<slug>/`): the same
        content with no per-recipient part at all: "Hi there," instead of the first name, a
        Subscribe link (`{base_url}/subscribe`) instead of the unsubscribe and preferences
        links, no "view online" link and no UTM parameters. Its `rendered.html` is a complete
        page with nothing left to fill in; `rendered.text` is its plain-text twin.
        """
        meta = issue.meta
        rendering = self.render_pair(
            HTML_TEMPLATE,
            TEXT_TEMPLATE,
            {
                "newsletter": self.newsletter_context(),
                **issue_context(issue, self.settings, public=public),
            },
            slug=issue.slug,
            subject=meta.subject.strip(),
            preheader=(meta.preheader or "").strip(),
        )
        if public:
            for label, body in (
                ("HTML", rendering.rendered.html),
                ("text", rendering.rendered.text),
            ):
                if OPEN in body or CLOSE in body:
                    raise InputError(
                        f"the public {label} still holds a per-recipient placeholder; "
                        "the email templates must leave it out when `public` is true",
                        self._shown(HTML_TEMPLATE if label == "HTML" else TEXT_TEMPLATE),
                    )
        return rendering

    def render_pair(
        self,
        html_template: str,
        text_template: str,
        context: dict[str, Any],
        *,
        slug: str,
        subject: str,
        preheader: str,
    ) -> Rendering:
        """Render an MJML template and its text twin into one `RenderedIssue`."""
        if not self._validated:
            self.validate_templates()
        source = self.render_template(html_template, context)
        for problem in validate_mjml(source):
            # Nesting is only known once rendered; point at the template line that made it.
            row = source.splitlines()[problem.line - 1].strip()
            for shown, template in self.template_sources():
                position = template.find(row) if row else -1
                if position >= 0:
                    line = template.count("\n", 0, position) + 1
                    raise InputError(problem.message, shown, line)
            raise InputError(
                f"{problem.message} (line {problem.line} of the rendered MJML: {row[:60]})",
                self._shown(html_template),
            )
        # mjml-python ignores <mj-style inline="inline">: its CSS is inlined afterwards.
        without_inline, css = take_inline_styles(source)
        try:
            html = inline_css(mjml.mjml2html(without_inline, disable_comments=True, fonts={}), css)
        except ValueError as exc:  # css_inline.InlineError is a ValueError too
            raise InputError(
                f"MJML could not be rendered: {exc}", self._shown(html_template)
            ) from None
        text = self.render_template(text_template, context)
        rendered = RenderedIssue.create(
            slug=slug, subject=subject, preheader=preheader, html=html, text=text.strip() + "\n"
        )
        return Rendering(mjml=source, rendered=rendered)

    def newsletter_context(self) -> dict[str, Any]:
        settings = self.settings
        for key in ("name", "from_name", "postal_address"):
            reject_reserved(getattr(settings, key), f"newsletter.toml ({key})")
        return {
            "name": settings.name,
            "from_name": settings.from_name,
            "postal_address": settings.postal_address,
            "base_url": settings.base_url,
            "reply_to": settings.reply_to,
            "tracks_clicks": settings.tracking.clicks,
            "subscribe_url": f"{settings.base_url}/subscribe",
        }

    def _shown(self, name: str) -> str:
        return display_path(self.templates_dir / name)

    def render_template(self, name: str, context: dict[str, Any]) -> str:
        """Render any workspace template; its errors name the template file and line."""
        try:
            return self.env.get_template(name).render(context)
        except TemplateSyntaxError as exc:
            shown = display_path(Path(exc.filename)) if exc.filename else self._shown(name)
            raise InputError(f"template syntax error: {exc.message}", shown, exc.lineno) from None
        except TemplateNotFound as exc:
            raise InputError(f"template not found: {exc.name}", self._shown(name)) from None
        except TemplateError as exc:
            file, line = self._template_frame(exc)
            raise InputError(f"template error: {exc}", file or self._shown(name), line) from None

    def _template_frame(self, exc: BaseException) -> tuple[str | None, int | None]:
        """Jinja maps template lines into tracebacks; take the innermost template frame."""
        root = str(self.templates_dir.resolve())
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename and str(Path(frame.filename).resolve()).startswith(root):
                return display_path(Path(frame.filename)), frame.lineno
        return None, None
