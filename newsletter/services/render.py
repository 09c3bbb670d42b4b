"""Issue -> Jinja2 -> MJML -> HTML (mjml-python), plus the plain-text twin, rendered once."""

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
from newsletter.domain.links import Utm, tag_url
from newsletter.domain.markdown import render_markdown, wrap
from newsletter.domain.mjml_rules import validate_mjml
from newsletter.domain.personalize import RenderedIssue, placeholder, reject_reserved
from newsletter.errors import InputError
from newsletter.infra.files import display_path, read_text
from newsletter.infra.settings import Settings
from newsletter.services.inline import inline_css, take_inline_styles

HTML_TEMPLATE = "email/issue.mjml.j2"
TEXT_TEMPLATE = "email/issue.txt.j2"


@dataclass(frozen=True)
class Rendering:
    mjml: str
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
        self.env.globals["ph"] = _placeholder
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

    def render(self, issue: Issue) -> Rendering:
        meta = issue.meta
        return self.render_pair(
            HTML_TEMPLATE,
            TEXT_TEMPLATE,
            self._context(issue),
            slug=issue.slug,
            subject=meta.subject.strip(),
            preheader=(meta.preheader or "").strip(),
        )

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
        }

    def _context(self, issue: Issue) -> dict[str, Any]:
        settings = self.settings
        utm = (
            Utm(
                source=settings.utm.source,
                medium=settings.utm.medium,
                campaign=issue.slug,
                domains=tuple(settings.utm_domains),
            )
            if settings.utm.source
            else None
        )
        intro = render_markdown(issue.source.intro, utm)
        snippets = []
        for snippet in issue.snippets:
            body = render_markdown(snippet.body, utm)
            meta = snippet.meta
            snippets.append(
                {
                    "id": snippet.id,
                    "title": meta.title,
                    "summary": meta.summary,
                    "tags": meta.tags,
                    "html": Markup(body.html),
                    "text": body.text,
                    "image": meta.image,
                    "alt": meta.alt,
                    "sources": [
                        {"title": s.title, "url": tag_url(s.url, utm)} for s in meta.sources
                    ],
                }
            )
        day = issue.meta.date
        return {
            "newsletter": self.newsletter_context(),
            "issue": {
                "slug": issue.slug,
                "subject": issue.meta.subject.strip(),
                "preheader": (issue.meta.preheader or "").strip(),
                "date": day,
                "date_text": f"{day.day} {day:%B %Y}",
                "intro_html": Markup(intro.html),
                "intro_text": intro.text,
            },
            "snippets": snippets,
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
