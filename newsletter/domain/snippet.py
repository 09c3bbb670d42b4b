"""A snippet: one short article, Markdown with validated front matter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
)

from newsletter.domain.frontmatter import FrontMatter, parse_document
from newsletter.domain.images import local_name, parse_image_ref
from newsletter.domain.links import require_https
from newsletter.errors import InputError

HttpsUrl = Annotated[str, AfterValidator(require_https)]
Tag = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=40)]


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    url: HttpsUrl


class SnippetMeta(BaseModel):
    """The allowed front matter of a snippet file."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    title: str = Field(min_length=1, max_length=120)
    summary: str = Field(min_length=1)
    tags: list[Tag] = Field(default_factory=list)
    sources: list[Source] = Field(default_factory=list)
    reviewed: date
    alt: str | None = None
    # An https URL, or a file in issues/images/ written `images/<file>` (domain/images.py).
    image: Annotated[str, AfterValidator(parse_image_ref)] | None = None
    credit: str | None = Field(default=None, min_length=1, max_length=200)
    # A remote image's size in pixels (a local file's is read from the file), and its
    # weight in bytes for the image budget (`[checks] image_max_kb`).
    width: PositiveInt | None = None
    height: PositiveInt | None = None
    bytes: PositiveInt | None = None

    @field_validator("image")
    @classmethod
    def _image_needs_alt(cls, image: str | None, info: ValidationInfo) -> str | None:
        alt = info.data.get("alt")
        if image and not (alt and alt.strip()):
            raise ValueError("an image needs alt text describing it (add an 'alt:' line)")
        return image

    @field_validator("credit", "width", "height", "bytes")
    @classmethod
    def _only_with_a_remote_image(cls, value: object, info: ValidationInfo) -> object:
        image = info.data.get("image")
        if value is not None and not image:
            raise ValueError("only goes with an 'image:'")
        if value is not None and info.field_name != "credit" and local_name(image or ""):
            raise ValueError(
                "is read from the file itself for an image in issues/images/; remove this line"
            )
        return value


@dataclass(frozen=True)
class Snippet:
    id: str
    file: str
    meta: SnippetMeta
    body: str
    body_line: int
    front: FrontMatter
    source_text: str  # the whole file, for pointing findings at lines

    @property
    def title(self) -> str:
        return self.meta.title


def parse_snippet(snippet_id: str, text: str, file: str) -> Snippet:
    front, meta = parse_document(SnippetMeta, "snippet", snippet_id, text, file)
    if meta.id is not None and meta.id != snippet_id:
        raise InputError(
            f"id '{meta.id}' differs from the file name '{snippet_id}'; the id is the file name",
            file,
            front.line_of("id"),
        )
    return Snippet(
        id=snippet_id,
        file=file,
        meta=meta,
        body=front.body,
        body_line=front.body_line,
        front=front,
        source_text=text,
    )
