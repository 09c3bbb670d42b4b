"""What the email templates get for one issue: content, citations and links.

Rendered in reading order (introduction, then each section's snippets: body and sources), so
the first source cited is number 1 in the HTML and in the text alike. Sections, teasers and
images come from `services/composition.py`.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup

from newsletter.domain.archive import page_url
from newsletter.domain.citations import Reference, References
from newsletter.domain.issue import Issue
from newsletter.domain.links import Utm, tag_url
from newsletter.domain.markdown import render_markdown
from newsletter.infra.settings import Settings
from newsletter.services.composition import sections_context

# After the preheader: invisible characters, so inboxes do not go on with the body text.
PREHEADER_FILLER = Markup("&#847;&zwnj;&nbsp;" * 90)
SNIPPET_TOP_HEADING = 3  # snippet titles are h2; their own headings start below


def issue_utm(settings: Settings, slug: str) -> Utm | None:
    if not settings.utm.source:
        return None
    return Utm(
        source=settings.utm.source,
        medium=settings.utm.medium,
        campaign=slug,
        domains=tuple(settings.utm_domains),
    )


def issue_context(issue: Issue, settings: Settings, *, public: bool) -> dict[str, Any]:
    """The template context of an issue, for a subscriber's email or (`public`) the archive."""
    utm = None if public else issue_utm(settings, issue.slug)
    refs = References((s.title, s.url) for snippet in issue.snippets for s in snippet.meta.sources)
    intro = render_markdown(issue.source.intro, utm, refs=refs, top_heading=SNIPPET_TOP_HEADING)
    page = page_url(settings.base_url, issue.slug)
    composed = sections_context(
        issue, refs=refs, utm=utm, public=public, base_url=settings.base_url, page_url=page
    )
    day = issue.meta.date
    return {
        "public": public,
        "issue": {
            "slug": issue.slug,
            "subject": issue.meta.subject.strip(),
            "preheader": (issue.meta.preheader or "").strip(),
            "preheader_filler": PREHEADER_FILLER,
            "date": day,
            "date_text": f"{day.day} {day:%B %Y}",
            "intro_html": Markup(intro.html),
            "intro_text": intro.text,
            "archive_url": tag_url(page, utm),
        },
        **composed,  # sections, toc, snippets (services/composition.py)
        "sources": [_tagged(source, utm) for source in refs.sources],
        "links": refs.links,  # the text part's other links, numbered after the sources
    }


def _tagged(reference: Reference, utm: Utm | None) -> Reference:
    return Reference(reference.number, tag_url(reference.url, utm), reference.title)
